"""A loss that becomes NaN or infinite stops training at once: the run ends FAILED with the
reason, and neither the best checkpoint nor the resumable last one ever holds NaN weights."""

from __future__ import annotations

import json
from pathlib import Path

import keras
import numpy as np
import pytest
from mlflow.tracking import MlflowClient

from seg.errors import TrainingDiverged
from seg.tracking.tracker import Tracker
from seg.training.callbacks import DivergenceGuard
from seg.training.checkpoints import BEST_STATE
from seg.training.recorder import EpochRecorder, read_training_state, restore_state
from tests.support.cli import run_cli, tracking_uri


def _finite(weights: list[np.ndarray]) -> bool:
    return all(np.isfinite(w).all() for w in weights if w.dtype.kind == "f")


def _h5_arrays(path: Path) -> list[np.ndarray]:
    """Every array in a .weights.h5 file."""
    import h5py

    arrays: list[np.ndarray] = []
    with h5py.File(path, "r") as f:
        f.visititems(
            lambda _, obj: arrays.append(np.asarray(obj)) if isinstance(obj, h5py.Dataset) else None
        )
    assert arrays, path
    return arrays


def test_guard_keeps_a_diverged_epoch_from_the_checkpoints(
    tmp_path: Path, sqlite_store: str
) -> None:
    """Least squares on x = ones(4) by SGD with lr 1 > 2/L (L = 8): the error grows 7-fold per
    step, so the loss overflows float32 after about 23 epochs of one step, deterministically.
    The checkpoint after the guard saves whenever the loss grows (mode max): without the guard
    it would save the infinite epoch's weights."""
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1, use_bias=False)])
    model.compile(optimizer=keras.optimizers.SGD(1.0), loss="mse")
    x, y = np.ones((8, 4), np.float32), np.ones((8, 1), np.float32)
    best = tmp_path / "best.keras"
    uri = sqlite_store
    guard = DivergenceGuard()
    checkpoint = keras.callbacks.ModelCheckpoint(
        str(best), monitor="loss", mode="max", save_best_only=True
    )
    with pytest.raises(TrainingDiverged) as raised, Tracker(uri, "divergence") as tracker:
        recorder = EpochRecorder(tracker, tmp_path / "last", tmp_path / "history.csv", [checkpoint])
        model.fit(
            x, y, batch_size=8, epochs=100, verbose=0, callbacks=[guard, checkpoint, recorder]
        )
    run_id = tracker.run_id
    assert 15 < guard.last_finite < 40  # the epochs before it were trained and saved
    assert str(raised.value).startswith(
        f"training diverged in epoch {guard.last_finite + 2}: training loss inf at batch 1; "
        f"the checkpoints keep epoch {guard.last_finite + 1} and earlier"
    )
    state = read_training_state(tmp_path / "last")
    assert state.epoch == guard.last_finite  # the last resumable epoch is the last finite one
    restore_state(model, state)
    assert _finite(model.get_weights())
    saved = keras.saving.load_model(best, compile=False).get_weights()
    assert _finite(saved)
    np.testing.assert_array_equal(saved[0], model.get_weights()[0])  # best = last finite epoch
    client = MlflowClient(uri)
    run = client.get_run(run_id)
    assert run.info.status == "FAILED" and "TrainingDiverged" in run.data.tags["seg.error"]
    losses = client.get_metric_history(run_id, "loss")
    assert [m.step for m in losses] == list(range(guard.last_finite + 1))
    assert all(np.isfinite(m.value) for m in losses)  # the diverged epoch was never logged


@pytest.mark.slow
def test_seg_train_that_diverges_fails_with_one_line_and_finite_checkpoints(tmp_path: Path) -> None:
    """Decoupled weight decay with lr x decay = 3 multiplies every weight by -2 per step: a
    few finite epochs, then NaN, the same way every time."""
    proc = run_cli(
        "seg-train",
        "debug=fast",
        "stages=[train]",
        "trainer.epochs=30",
        "trainer.optimizer=sgd",
        "trainer.learning_rate=0.01",
        "trainer.weight_decay=300",
        "callbacks.early_stopping=null",
        "callbacks.reduce_lr=null",
        "callbacks.epoch_masks=null",
        cwd=tmp_path,
        check=False,
    )
    assert proc.returncode == 2, proc.stderr[-3000:]
    errors = [line for line in proc.stderr.splitlines() if "training diverged" in line]
    assert len(errors) == 1 and "Traceback" not in proc.stderr, proc.stderr[-3000:]
    assert "Lower trainer.learning_rate" in errors[0]
    client = MlflowClient(tracking_uri(tmp_path))
    (run,) = client.search_runs([client.get_experiment_by_name("demo_cells").experiment_id])
    assert run.info.status == "FAILED"
    assert run.data.tags["seg.error"].startswith("TrainingDiverged: training diverged in epoch")
    out = Path(run.data.tags["seg.output_dir"]) / "checkpoints"
    state = json.loads((out / "last" / "state.json").read_text())
    assert state["epoch"] >= 1  # finite epochs came first
    losses = client.get_metric_history(run.info.run_id, "val_loss")
    assert [m.step for m in losses] == list(range(state["epoch"] + 1))
    assert all(np.isfinite(m.value) for m in losses)
    # The best epoch kept and the model file written from it when the fit failed are finite,
    # and so is the last state (weights and optimizer).
    import seg.models.layers  # noqa: F401  (custom layers)

    best = keras.saving.load_model(out / "best.keras", compile=False)
    assert _finite(best.get_weights())
    assert _finite(_h5_arrays(out / BEST_STATE))  # the kept epoch: weights, optimizer state
    assert _finite(_h5_arrays(out / "last" / state["weights"]))
    assert "error.txt" in {a.path for a in client.list_artifacts(run.info.run_id)}
