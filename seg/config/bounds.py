"""Range checks of config values, all worded one way: ``<key>: must be <range>, got <value>``.

A :class:`Bound` names a field and its range; :func:`check_bounds` applies a table of them to a
config node, so each group's ranges read as one table instead of a wall of ``if`` statements.
NaN fails every comparison, so it is refused by any bound.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from numbers import Real
from typing import Any

from omegaconf import OmegaConf

from seg.errors import ConfigError


@dataclass(frozen=True)
class Bound:
    field: str
    low: float | None = None
    high: float | None = None
    low_open: bool = False  # value > low (else >= low)
    high_open: bool = False  # value < high (else <= high)
    nullable: bool = False  # null is allowed (and means what ``note`` says)
    note: str = ""  # what a special value means, e.g. "0 = off"


# Every table of ranges, by the config node it checks (filled by :func:`bounded`): the tests
# walk it to prove that each bound is checked before a run opens.
BOUND_TABLES: dict[str, tuple[Bound, ...]] = {}


def bounded(prefix: str, *bounds: Bound) -> tuple[Bound, ...]:
    """A table of ``bounds`` for the config node at ``prefix``, recorded in BOUND_TABLES."""
    BOUND_TABLES[prefix] = bounds
    return bounds


def range_text(
    low: float | None, high: float | None, low_open: bool = False, high_open: bool = False
) -> str:
    """``>= 0``, ``> 0``, ``<= 1``, ``in [0, 1)``, ..."""
    if high is None:
        return f"{'>' if low_open else '>='} {low}"
    if low is None:
        return f"{'<' if high_open else '<='} {high}"
    return f"in {'(' if low_open else '['}{low}, {high}{')' if high_open else ']'}"


def require_in(
    value: Any,
    key: str,
    low: float | None = None,
    high: float | None = None,
    *,
    low_open: bool = False,
    high_open: bool = False,
    nullable: bool = False,
    note: str = "",
) -> None:
    """ConfigError naming ``key`` unless ``value`` is a number in the range (or None, if
    allowed)."""
    if value is None and nullable:
        return
    ok = isinstance(value, Real) and not isinstance(value, bool)
    if ok and low is not None:
        ok = value > low if low_open else value >= low
    if ok and high is not None:
        ok = value < high if high_open else value <= high
    if not ok:
        text = range_text(low, high, low_open, high_open)
        raise ConfigError(
            f"{key}: must be {'null or ' if nullable else ''}{text}"
            f"{f' ({note})' if note else ''}, got {value!r}"
        )


def check_bounds(node: Any, prefix: str, bounds: tuple[Bound, ...]) -> None:
    """Every bound of the table against ``node`` (a config node or dataclass) at ``prefix``."""
    for b in bounds:
        require_in(
            getattr(node, b.field),
            f"{prefix}.{b.field}",
            b.low,
            b.high,
            low_open=b.low_open,
            high_open=b.high_open,
            nullable=b.nullable,
            note=b.note,
        )


def require(ok: bool, key: str, message: str) -> None:
    """ConfigError ``<key>: <message>`` unless ``ok``."""
    if not ok:
        raise ConfigError(f"{key}: {message}")


def require_finite(node: Any, key: str = "") -> None:
    """No NaN or infinity anywhere in ``node`` (a config or a schema dataclass): OmegaConf takes
    ``inf`` and ``nan`` for a float, and they slip through range checks (``inf > 0`` holds,
    ``nan`` compared to anything is False)."""

    def walk(value: Any, path: str) -> None:
        if isinstance(value, float):
            require(math.isfinite(value), path, f"must be a finite number, got {value}")
        elif isinstance(value, dict):
            for k, v in value.items():
                walk(v, f"{path}.{k}" if path else str(k))
        elif isinstance(value, list):
            for i, v in enumerate(value):
                walk(v, f"{path}[{i}]")

    walk(OmegaConf.to_container(OmegaConf.create(node), resolve=False), key)
