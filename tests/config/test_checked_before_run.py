"""Every config check happens before a run opens: each bounded field of every schema, every
numeric argument of every architecture, and the kind of object a ``_target_`` builds, refused
by the checks seg-train makes before it opens its MLflow run (seg.config.validation, then
seg.runner.preflight), naming the key.

The bounded fields are walked from the tables the checks themselves use
(seg.config.bounds.BOUND_TABLES) and from the model schemas, so a new bound or a new model
argument is covered without editing this file.
"""

from __future__ import annotations

import dataclasses
import typing
from pathlib import Path

import pytest

from seg.config.bounds import BOUND_TABLES, Bound
from seg.config.model import MODEL_SCHEMAS
from seg.config.validation import validate
from seg.errors import ConfigError
from seg.runner.preflight import check_model_input
from tests.support.cli import run_cli
from tests.support.compose import compose_run

# Strong augmentation switches every op on, so each op's fields exist to be overridden.
BASE = ["debug=fast", "augmentation=strong"]


def _out_of_range(bound: Bound) -> float:
    """A value just outside the bound (below its low end, else above its high end)."""
    return bound.low - 1 if bound.low is not None else bound.high + 1


BOUNDED = [(prefix, b) for prefix, table in BOUND_TABLES.items() for b in table]


@pytest.mark.parametrize(("prefix", "bound"), BOUNDED, ids=[f"{p}.{b.field}" for p, b in BOUNDED])
def test_every_bounded_field_is_refused_before_the_run(prefix: str, bound: Bound) -> None:
    key = f"{prefix}.{bound.field}"
    cfg = compose_run("train", [*BASE, f"{key}={_out_of_range(bound)}"])
    with pytest.raises(ConfigError, match=rf"^{key}: must be "):
        validate(cfg)


def _model_arguments() -> list[tuple[str, str, str]]:
    """(model, argument, out-of-range value) for every numeric argument of every model."""
    bad = {int: "-1", float: "-1.0"}
    cases = []
    for model, schema in sorted(MODEL_SCHEMAS.items()):
        hints = typing.get_type_hints(schema)
        for field in dataclasses.fields(schema):
            kind = hints[field.name]
            if kind in bad:
                cases.append((model, field.name, bad[kind]))
            elif typing.get_origin(kind) is list and typing.get_args(kind)[0] in bad:
                cases.append((model, field.name, f"[{bad[typing.get_args(kind)[0]]}]"))
    return cases


MODEL_ARGUMENTS = _model_arguments()


@pytest.mark.parametrize(
    ("model", "argument", "value"), MODEL_ARGUMENTS, ids=[f"{m}.{a}" for m, a, _ in MODEL_ARGUMENTS]
)
def test_every_model_argument_is_refused_before_the_run(
    model: str, argument: str, value: str
) -> None:
    """The builder checks its arguments before its first layer; preflight runs it that far
    (no layer built) before the run opens."""
    cfg = compose_run("train", [*BASE, f"model={model}", f"model.{argument}={value}"])
    validate(cfg)
    with pytest.raises(ConfigError, match=rf"model\.{argument}"):
        check_model_input(cfg)


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        (
            "loss._target_=keras.callbacks.CSVLogger",
            "loss._target_=keras.callbacks.CSVLogger: builds from keras.callbacks, but loss "
            "needs a loss of seg.losses or keras.losses",
        ),
        (
            "+callbacks.extra.x._target_=keras.losses.Dice",
            "callbacks.extra.x._target_=keras.losses.Dice: builds from keras.losses, but "
            "callbacks.extra.x needs a callback",
        ),
        ("mlflow.experiment_name=", "mlflow.experiment_name: is empty"),
        ("mlflow.experiment_name=' '", "mlflow.experiment_name: is empty"),
        ("mlflow.run_name=''", "mlflow.run_name: is empty"),
    ],
)
def test_a_target_of_the_wrong_kind_or_an_empty_name_is_refused(
    override: str, expected: str
) -> None:
    with pytest.raises(ConfigError) as info:
        validate(compose_run("train", [*BASE, override]))
    assert expected in str(info.value)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ("model.dropout_rate=1.5", "model.dropout_rate: must be in [0, 1), got 1.5"),
        ("loss._target_=keras.callbacks.CSVLogger", "but loss needs a loss"),
        ("mlflow.experiment_name=", "mlflow.experiment_name: is empty"),
    ],
)
def test_seg_train_refuses_them_in_one_line_before_any_run(
    tmp_path: Path, override: str, expected: str
) -> None:
    proc = run_cli("seg-train", "debug=fast", override, cwd=tmp_path, check=False)
    assert proc.returncode == 2, proc.stderr
    errors = [line for line in proc.stderr.splitlines() if "ERROR" in line or "error:" in line]
    assert len(errors) == 1 and expected in errors[0], proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "mlflow.db").exists()  # no run, not even a store
