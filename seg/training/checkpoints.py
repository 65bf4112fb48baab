"""Checkpoint files: a fit's state as one archive, the best epoch's state kept by a hard link,
and the run's model file written once, when training ends.

A state archive (``.npz``, uncompressed) holds every variable of the model and of its
optimizer, in their order, with their paths: written from NumPy copies in about a second for
the 31 M-parameter UNet of ``pap_smear_herlev_128`` (Keras' ``save_weights`` took 3-6 s and
the best ``.keras`` another 3-6 s, every epoch the validation improved). The best epoch's state
is a second name of that epoch's archive (a hard link: nothing is written), and the model
file a user evaluates, infers with or logs (``best.keras``, or ``best.weights.h5`` with
``callbacks.checkpoint.save_weights_only=true``) is written from it when the fit ends, however
it ends: finished, stopped early, diverged or interrupted. Every file goes to a temporary name
first and is renamed when complete, so an interruption leaves the previous good file or none.
"""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path

import keras
import numpy as np

from seg.errors import CheckpointError

log = logging.getLogger(__name__)

BEST_STATE = "best_state.npz"  # in checkpoints/: the best epoch's state archive
_PATHS_KEY = "paths"


def _variables(model: keras.Model) -> list[tuple[str, keras.Variable]]:
    """The model's weights (BatchNorm statistics included; not the random generators' states,
    whose names are counters of the process) and its optimizer's variables, each named."""
    found = [(f"model/{v.path}", v) for v in model.weights]
    optimizer = getattr(model, "optimizer", None)  # None, or absent, before compile
    if optimizer is not None and optimizer.built:
        # without the optimizer's own name, a counter of the process (adam, adam_1, ...)
        found += [(f"optimizer/{v.path.partition('/')[2]}", v) for v in optimizer.variables]
    return found


def write_state(model: keras.Model, path: Path) -> Path:
    """The model's and optimizer's variables as ``path`` (.npz), atomically."""
    named = _variables(model)
    arrays = {f"v{i:05d}": keras.ops.convert_to_numpy(v) for i, (_, v) in enumerate(named)}
    arrays[_PATHS_KEY] = np.array([name for name, _ in named])
    tmp = path.with_name(f"{path.name}.tmp")
    with tmp.open("wb") as f:
        np.savez(f, **arrays)
    os.replace(tmp, path)
    return path


def read_state(model: keras.Model, path: Path, *, optimizer: bool = True) -> None:
    """Assign the variables saved in ``path`` to ``model``, and to its optimizer (which must
    be built) unless ``optimizer=False``; a CheckpointError when they are not this model's.
    Variables are matched by position and checked by name (names may repeat)."""
    current = _variables(model)
    if not optimizer:
        current = current[: len(model.weights)]
    with np.load(path, allow_pickle=False) as saved:
        names = [str(n) for n in saved[_PATHS_KEY]]
        matches = names[: len(current)] == [name for name, _ in current] and (
            not optimizer or len(names) == len(current)
        )
        arrays = [saved[f"v{i:05d}"] for i in range(len(current))] if matches else []
        shapes = [tuple(v.shape) for _, v in current]
        if not matches or [a.shape for a in arrays] != shapes:
            raise CheckpointError(
                f"{path}: holds {len(names)} variables that are not this model's "
                f"({len(current)} expected); it was saved by another model or config"
            )
    for array, (_, variable) in zip(arrays, current, strict=True):
        variable.assign(array)


def keep_as_best(state: Path, folder: Path) -> Path:
    """``folder/best_state.npz`` as a second name of ``state`` (a copy where the file system
    has no hard links), replacing the previous best atomically."""
    best = folder / BEST_STATE
    tmp = folder / f"{BEST_STATE}.tmp"
    tmp.unlink(missing_ok=True)
    try:
        os.link(state, tmp)
    except OSError:
        shutil.copyfile(state, tmp)
    os.replace(tmp, best)
    return best


def model_file(model: keras.Model, path: Path, weights_only: bool = False) -> keras.Model:
    """An uncompiled copy of ``model`` (no optimizer: a third of the file) written as
    ``path`` atomically (``.keras``, or only its weights for a ``.weights.h5`` path); the copy
    is returned, for the stages after training."""
    copy = keras.models.clone_model(model)
    copy.set_weights(model.get_weights())
    tmp = path.with_name(f"tmp.{path.name}")  # the suffix tells Keras the format
    if weights_only:
        copy.save_weights(tmp)
    else:
        copy.save(tmp)
    os.replace(tmp, path)
    return copy


class BestCheckpoint(keras.callbacks.Callback):
    """Which epoch is the best by ``monitor`` (Keras' ModelCheckpoint's rule: the first epoch,
    then any improvement); its state archive is kept as ``best_state.npz`` once the
    :class:`~seg.training.recorder.EpochRecorder` has written it (:meth:`on_state_saved`)."""

    def __init__(self, folder: Path, monitor: str = "val_loss", mode: str = "min") -> None:
        super().__init__()
        self.folder, self.monitor, self.mode = Path(folder), monitor, mode
        self.best = np.inf if mode == "min" else -np.inf
        self._improved = False
        self._warned = False

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        value = (logs or {}).get(self.monitor)
        self._improved = False
        if value is None:
            if not self._warned:
                log.warning(
                    "callbacks.checkpoint.monitor=%s is not among the epoch's values "
                    "(%s): no best checkpoint",
                    self.monitor,
                    ", ".join(logs or {}),
                )
                self._warned = True
            return
        value = float(value)
        better = value < self.best if self.mode == "min" else value > self.best
        if better and np.isfinite(value):
            self.best, self._improved = value, True

    def on_state_saved(self, epoch: int, state: Path) -> None:
        if self._improved:
            keep_as_best(state, self.folder)

    def best_state(self) -> Path | None:
        path = self.folder / BEST_STATE
        return path if path.is_file() else None
