"""seg.config.bounds: one wording for every out-of-range config value, and what counts as in
range."""

from __future__ import annotations

import math

import pytest

from seg.config.bounds import Bound, check_bounds, require_in
from seg.errors import ConfigError


@pytest.mark.parametrize(
    ("value", "kwargs", "message"),
    [
        (0, {"low": 1}, "k: must be >= 1, got 0"),
        (0.0, {"low": 0, "low_open": True}, "k: must be > 0, got 0.0"),
        (1.0, {"low": 0, "high": 1, "high_open": True}, "k: must be in [0, 1), got 1.0"),
        (
            0,
            {"low": 0, "high": 1, "low_open": True, "high_open": True},
            "k: must be in (0, 1), got 0",
        ),
        (2, {"high": 1}, "k: must be <= 1, got 2"),
        (
            -1,
            {"low": 0, "nullable": True, "note": "null = off"},
            "k: must be null or >= 0 (null = off), got -1",
        ),
        (math.nan, {"low": 0}, "k: must be >= 0, got nan"),
        (True, {"low": 0}, "k: must be >= 0, got True"),  # a bool is not a number here
        ("3", {"low": 0}, "k: must be >= 0, got '3'"),
        (None, {"low": 0}, "k: must be >= 0, got None"),
    ],
)
def test_out_of_range_is_refused_naming_the_key_and_the_range(value, kwargs, message) -> None:
    with pytest.raises(ConfigError) as err:
        require_in(value, "k", **kwargs)
    assert str(err.value) == message


@pytest.mark.parametrize(
    ("value", "kwargs"),
    [
        (0, {"low": 0}),
        (1, {"low": 0, "high": 1}),
        (0.5, {"low": 0, "high": 1, "low_open": True, "high_open": True}),
        (None, {"low": 1, "nullable": True}),
        (-5, {"high": 0}),
    ],
)
def test_in_range_passes(value, kwargs) -> None:
    require_in(value, "k", **kwargs)


def test_a_table_names_the_first_field_out_of_range() -> None:
    class Node:
        epochs, rate = 3, 1.5

    table = (Bound("epochs", 1), Bound("rate", 0, 1, high_open=True))
    with pytest.raises(ConfigError, match=r"^trainer\.rate: must be in \[0, 1\), got 1\.5$"):
        check_bounds(Node(), "trainer", table)
