"""Learning-rate schedules by name (seg.training.schedules) against their formulas, and the time
budget (seg.training.budget): it stops after the last epoch that fits and shortens the
schedule to it; both through seg-train."""

from __future__ import annotations

import itertools
import math
from pathlib import Path

import keras
import numpy as np
import pytest
from mlflow.tracking import MlflowClient

from seg.config.trainer import budget_seconds
from seg.errors import ConfigError
from seg.training import budget as budget_module
from seg.training.budget import TimeBudget
from seg.training.callback_list import CheckpointFiles, build_callbacks
from seg.training.schedules import ScheduleLR
from tests.support.cli import run_cli, tracking_uri
from tests.support.compose import compose_run
from tests.support.runs import RecordingRun

LR, TOTAL = 0.01, 100


def _rates(**kwargs) -> np.ndarray:
    schedule = ScheduleLR(LR, TOTAL, **kwargs)
    return np.array([float(schedule(step)) for step in range(TOTAL + 1)])


def test_constant_cosine_poly_step_follow_their_formulas() -> None:
    t = np.arange(TOTAL + 1) / TOTAL
    np.testing.assert_allclose(_rates(), LR)
    np.testing.assert_allclose(
        _rates(name="cosine", min_lr=0.1),
        LR * (0.1 + 0.9 * 0.5 * (1 + np.cos(np.pi * t))),
        rtol=1e-5,
    )
    np.testing.assert_allclose(_rates(name="poly"), LR * (1 - t) ** 0.9, rtol=1e-4, atol=1e-9)
    np.testing.assert_allclose(
        _rates(name="step", milestones=[0.5, 0.75], gamma=0.1),
        LR * 0.1 ** ((t >= 0.5).astype(int) + (t >= 0.75)),
        rtol=1e-5,
    )


def test_onecycle_rises_to_the_peak_and_falls_to_the_end() -> None:
    rates = _rates(name="onecycle", pct_start=0.3, div_factor=25, final_div_factor=1e4)
    assert rates[0] == pytest.approx(LR / 25)
    assert rates.argmax() == 30 and rates.max() == pytest.approx(LR)
    assert rates[-1] == pytest.approx(LR / 25 / 1e4, rel=1e-3)
    assert np.all(np.diff(rates[:31]) >= 0) and np.all(np.diff(rates[30:]) <= 1e-12)


def test_a_warm_up_rises_linearly_then_the_schedule_takes_over() -> None:
    rates = _rates(name="cosine", warmup=0.1)
    assert rates[0] == pytest.approx(LR / 11, rel=1e-3)  # (step + 1) / (0.1 * 100 + 1)
    assert np.all(np.diff(rates[:10]) > 0)
    assert rates[10] == pytest.approx(LR * 0.5 * (1 + math.cos(math.pi * 0.1)), rel=1e-4)


def test_the_total_can_be_shortened_and_the_schedule_serializes() -> None:
    schedule = ScheduleLR(LR, TOTAL, name="cosine")
    schedule.set_total_steps(50)
    assert float(schedule(50)) == pytest.approx(0.0, abs=1e-9)  # the end, at the new total
    rebuilt = keras.optimizers.schedules.deserialize(keras.optimizers.schedules.serialize(schedule))
    assert type(rebuilt) is ScheduleLR and rebuilt.get_config() == schedule.get_config()
    assert rebuilt.get_config()["total_steps"] == 50
    with pytest.raises(ValueError, match="expected one of"):
        ScheduleLR(LR, TOTAL, name="linear")


class _Optimizer:
    iterations = 0  # the step the optimizer is at


class _Model:
    stop_training = False
    optimizer = _Optimizer()


def _budget(
    monkeypatch, seconds: float, epoch_seconds: float | list[float], epochs: int = 10
) -> tuple[TimeBudget, ScheduleLR, list[int], list[float]]:
    """A budget driven by a clock that moves ``epoch_seconds`` per epoch (or each epoch's
    seconds); the epochs run and the learning rate at each of their steps."""
    now = [0.0]
    monkeypatch.setattr(budget_module.time, "perf_counter", lambda: now[0])
    schedule = ScheduleLR(LR, epochs * 4, name="cosine")
    callback = TimeBudget(seconds, epochs, steps_per_epoch=4, schedule=schedule)
    callback.set_model(_Model())
    callback.on_train_begin()
    trained, rates = [], []
    durations = epoch_seconds if isinstance(epoch_seconds, list) else [epoch_seconds] * epochs
    for epoch, duration in zip(range(epochs), durations, strict=False):
        rates += [float(schedule(step)) for step in range(epoch * 4, epoch * 4 + 4)]
        now[0] += duration
        callback.model.optimizer.iterations = (epoch + 1) * 4
        callback.on_epoch_end(epoch)
        trained.append(epoch)
        if callback.model.stop_training:
            break
    return callback, schedule, trained, rates


def test_the_budget_stops_after_the_last_epoch_that_fits(monkeypatch) -> None:
    callback, schedule, trained, _ = _budget(monkeypatch, seconds=35, epoch_seconds=10)
    assert trained == [0, 1, 2]  # a fourth epoch would end at 40 s
    assert callback.report().startswith("stopped after epoch 3 of 10")
    assert float(schedule.total_steps) == 3 * 4  # the schedule ends with the training


def test_a_budget_with_room_to_spare_changes_nothing(monkeypatch) -> None:
    callback, schedule, trained, _ = _budget(monkeypatch, seconds=1000, epoch_seconds=10)
    assert trained == list(range(10)) and callback.report() is None
    assert float(schedule.total_steps) == 10 * 4


def test_a_revised_estimate_never_moves_the_rate_back_up(monkeypatch) -> None:
    """A slow first epoch (graph tracing) makes the budget expect few epochs; faster ones
    lengthen the schedule again, from where it is: the cosine still only decays, to its end."""
    durations = [20.0, 4.0, 4.0, 4.0, 4.0, 4.0, 4.0, 4.0]
    _, schedule, trained, rates = _budget(monkeypatch, seconds=45, epoch_seconds=durations)
    assert len(trained) == 7  # 20 + 6 x 4 = 44 s; an eighth would end at 48
    assert float(schedule.total_steps) == 7 * 4
    assert all(later <= earlier + 1e-9 for earlier, later in itertools.pairwise(rates))
    assert float(schedule(7 * 4)) == pytest.approx(0.0, abs=1e-9)


@pytest.mark.parametrize("value", ["0", "-3", "ten", "1:75", ":30"])
def test_a_bad_budget_names_the_key(value: str) -> None:
    with pytest.raises(ConfigError, match=r"trainer\.time_budget: minutes"):
        budget_seconds(value)


@pytest.mark.slow
def test_seg_train_with_a_budget_and_a_cosine_schedule(tmp_path: Path) -> None:
    """A budget of a few seconds ends the training early and says so; the learning rate of
    each epoch follows the (shortened) cosine; evaluation and inference still run."""
    run_cli(
        "seg-train",
        "debug=fast",
        "trainer.epochs=1000",  # far more than fit in the budget, however fast the machine
        "trainer.time_budget=0.15",
        "trainer.schedule.name=cosine",  # callbacks.reduce_lr (on by default) stays unused
        "callbacks.early_stopping=null",
        "callbacks.epoch_masks=null",
        cwd=tmp_path,
    )
    client = MlflowClient(tracking_uri(tmp_path))
    (run,) = client.search_runs([client.get_experiment_by_name("demo_cells").experiment_id])
    assert run.info.status == "FINISHED"
    said = run.data.tags["seg.time_budget"]
    epochs = len(client.get_metric_history(run.info.run_id, "epoch_time"))
    assert said.startswith(f"stopped after epoch {epochs} of 1000") and 1 <= epochs < 1000
    rates = [m.value for m in client.get_metric_history(run.info.run_id, "lr")]
    assert rates[0] == pytest.approx(1e-3) and all(np.diff(rates) <= 0)
    assert "test_dice" in run.data.metrics and "inferred_images" in run.data.metrics


@pytest.mark.parametrize(("schedule", "plateau"), [("poly", False), ("constant", True)])
def test_reduce_lr_is_the_constant_schedules_plateau_rule(
    tmp_path: Path, schedule: str, plateau: bool
) -> None:
    """A decaying schedule trains without ReduceLROnPlateau, which would fight it (the
    callbacks group keeps its settings); the constant schedule (the default) uses it."""
    cfg = compose_run("train", [f"trainer.schedule.name={schedule}"])
    assert str(cfg.trainer.schedule.name) == schedule
    files = CheckpointFiles(tmp_path / "best.keras", tmp_path / "last", tmp_path / "history.csv")
    callbacks, _ = build_callbacks(
        cfg.callbacks, RecordingRun(), files, schedule=str(cfg.trainer.schedule.name)
    )
    found = [c for c in callbacks if isinstance(c, keras.callbacks.ReduceLROnPlateau)]
    assert len(found) == int(plateau)
    assert any(isinstance(c, keras.callbacks.EarlyStopping) for c in callbacks)
