"""Checkpoint files (seg.training.checkpoints): a state round-trips a model and its optimizer,
atomically, another model's is refused, the best epoch is a hard link (nothing written), the
model file is written once, atomically, without the optimizer."""

from __future__ import annotations

import io
import json
import os
import zipfile
from pathlib import Path

import h5py
import keras
import numpy as np
import pytest

from seg.errors import CheckpointError
from seg.training.checkpoints import (
    BEST_STATE,
    BestCheckpoint,
    keep_as_best,
    model_file,
    read_state,
    write_state,
)
from seg.training.recorder import TrainingState, restore_state


def _model(units: int = 3, seed: int = 0) -> keras.Model:
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((4,), name="image")
    x = keras.layers.Dense(units, name="hidden")(inputs)
    x = keras.layers.BatchNormalization(name="norm")(x)
    x = keras.layers.Dropout(0.1, name="drop")(x)
    model = keras.Model(inputs, keras.layers.Dense(1, name="mask")(x))
    model.compile(optimizer=keras.optimizers.Adam(1e-2), loss="mse")
    return model


def _fit(model: keras.Model, epochs: int = 2) -> None:
    rng = np.random.default_rng(0)
    model.fit(rng.random((16, 4)), rng.random((16, 1)), batch_size=4, epochs=epochs, verbose=0)


def test_a_state_round_trips_the_model_and_its_optimizer(tmp_path: Path) -> None:
    trained = _model()
    _fit(trained)
    path = write_state(trained, tmp_path / "epoch_00001.weights.h5")
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # the temporary name is gone
    fresh = _model(seed=1)
    fresh.optimizer.build(fresh.trainable_variables)
    read_state(fresh, path)
    for a, b in zip(trained.get_weights(), fresh.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)  # BatchNorm statistics too
    for a, b in zip(trained.optimizer.variables, fresh.optimizer.variables, strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))  # moments, iterations
    assert int(fresh.optimizer.iterations) == 8


def test_another_models_state_is_refused_naming_the_file(tmp_path: Path) -> None:
    path = write_state(_model(units=3), tmp_path / "state.weights.h5")
    with pytest.raises(CheckpointError, match=r"state\.weights\.h5: not a state of this model"):
        read_state(_model(units=5), path)


def test_the_best_epoch_is_a_second_name_of_its_archive(tmp_path: Path) -> None:
    first = write_state(_model(), tmp_path / "epoch_00000.weights.h5")
    best = keep_as_best(first, tmp_path)
    assert best.name == BEST_STATE and os.stat(best).st_ino == os.stat(first).st_ino
    second = write_state(_model(seed=2), tmp_path / "epoch_00001.weights.h5")
    keep_as_best(second, tmp_path)
    first.unlink()  # the recorder removes older epochs; the best keeps its data
    assert os.stat(best).st_ino == os.stat(second).st_ino
    assert sorted(p.name for p in tmp_path.iterdir()) == [BEST_STATE, "epoch_00001.weights.h5"]


@pytest.mark.parametrize(
    ("mode", "values", "kept"),
    [("min", [3, 2, 2.5, 1], [0, 1, 3]), ("max", [1, 0.5, 2, 2], [0, 2])],
)
def test_the_best_epoch_is_the_first_then_each_improvement(tmp_path, mode, values, kept) -> None:
    best = BestCheckpoint(tmp_path, monitor="val_dice", mode=mode)
    improved = []
    for epoch, value in enumerate(values):
        best.on_epoch_end(epoch, {"val_dice": value})
        if best._improved:
            improved.append(epoch)
    assert improved == kept


def test_an_absent_monitor_keeps_no_best_and_says_so_once(tmp_path: Path, caplog) -> None:
    best = BestCheckpoint(tmp_path, monitor="val_typo")
    for epoch in range(3):
        best.on_epoch_end(epoch, {"val_loss": 1.0})
        best.on_state_saved(epoch, write_state(_model(), tmp_path / f"e{epoch}.weights.h5"))
    assert best.best_state() is None
    assert sum("val_typo" in r.message for r in caplog.records) == 1


def test_the_model_file_is_an_uncompiled_copy_without_the_optimizer(tmp_path: Path) -> None:
    trained = _model()
    _fit(trained)
    copy = model_file(trained, tmp_path / "best.keras")
    assert copy is not trained and not list(tmp_path.glob("tmp.*"))
    loaded = keras.saving.load_model(tmp_path / "best.keras", compile=False)
    for a, b in zip(trained.get_weights(), loaded.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    config = json.loads(zipfile.ZipFile(tmp_path / "best.keras").read("config.json"))
    assert not config.get("compile_config")  # no optimizer, no loss: only the model
    with zipfile.ZipFile(tmp_path / "best.keras") as archive:
        stored = h5py.File(io.BytesIO(archive.read("model.weights.h5")), "r")
        assert "optimizer" not in stored and "layers" in stored  # a third of Adam's file
    weights = model_file(trained, tmp_path / "best.weights.h5", weights_only=True)
    assert weights is not None and (tmp_path / "best.weights.h5").is_file()


def test_a_resumed_run_gets_its_model_and_optimizer_back(tmp_path: Path) -> None:
    trained = _model()
    _fit(trained)
    state = write_state(trained, tmp_path / "epoch_00001.weights.h5")
    (tmp_path / "state.json").write_text(json.dumps({"epoch": 1, "weights": state.name}))
    fresh = _model(seed=1)  # the optimizer not built yet, as a resumed run's
    restore_state(fresh, TrainingState(1, state, []))
    for a, b in zip(trained.get_weights(), fresh.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    assert int(fresh.optimizer.iterations) == 8
