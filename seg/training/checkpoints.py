"""Checkpoint files: a fit's state after every epoch, the best epoch's state kept by a hard
link, and the run's model file written once, when training ends.

The state after an epoch is Keras' ``save_weights`` file (``.weights.h5``: the model's weights
and its optimizer's variables), half a second for the 31 M-parameter UNet of
``pap_smear_herlev_128`` on this machine. The best epoch's state is a second name of that
epoch's file (a hard link: nothing is written; Keras' ModelCheckpoint wrote a whole ``.keras``
file, 3-3.5 s, at every improvement), and the model file a user evaluates, infers with or
logs (``best.keras``, or ``best.weights.h5`` with ``callbacks.checkpoint.save_weights_only``)
is written from it once the fit ends, however it ends: finished, stopped early, diverged or
interrupted. Every file goes to a temporary name first and is renamed when complete, so an
interruption leaves the previous good file or none.
"""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path

import keras
import numpy as np

from seg.errors import CheckpointError
from seg.files import require_space, written_whole
from seg.models.fused_norm import with_keras_batch_norm

log = logging.getLogger(__name__)

BEST_STATE = "best_state.weights.h5"  # in checkpoints/: the best epoch's state


def write_state(model: keras.Model, path: Path) -> Path:
    """The model's weights and its optimizer's variables as ``path`` (``.weights.h5``),
    atomically."""
    require_space(path, _variable_bytes(model))
    with written_whole(path) as tmp:  # ends in .weights.h5: Keras reads the format from it
        model.save_weights(tmp)
    return path


def _variable_bytes(model: keras.Model) -> int:
    """What the model's weights and its optimizer's variables take (what a state holds)."""
    optimizer = getattr(model, "optimizer", None)
    variables = [*model.weights, *(optimizer.variables if optimizer is not None else [])]
    return sum(int(np.prod(v.shape)) * np.dtype(v.dtype).itemsize for v in variables)


def read_state(model: keras.Model, path: Path) -> None:
    """The weights (and, for a compiled model with a built optimizer, the optimizer's
    variables) saved in ``path``; a CheckpointError when they are not this model's."""
    try:
        model.load_weights(path)
    except ValueError as err:
        raise CheckpointError(
            f"{path}: not a state of this model ({err}); it was saved by another model or config"
        ) from err


def keep_as_best(state: Path, folder: Path) -> Path:
    """``folder/best_state.npz`` as a second name of ``state`` (a copy where the file system
    has no hard links), replacing the previous best atomically."""
    best = folder / BEST_STATE
    with written_whole(best) as tmp:
        try:
            os.link(state, tmp)
        except OSError:
            shutil.copyfile(state, tmp)
    return best


def model_file(model: keras.Model, path: Path, weights_only: bool = False) -> keras.Model:
    """An uncompiled copy of ``model`` (no optimizer: a third of the file) written as
    ``path`` atomically (``.keras``, or only its weights for a ``.weights.h5`` path); the copy
    is returned, for the stages after training."""
    # From the architecture alone (keras.models.clone_model would compile the copy like the
    # model, and its file would carry a (fresh) optimizer state twice the weights' size), with
    # Keras' BatchNormalization for seg's fused one: the file loads without seg.
    copy = with_keras_batch_norm(model)
    require_space(path, _variable_bytes(copy))
    with written_whole(path) as tmp:  # ends like path: the suffix tells Keras the format
        if weights_only:
            copy.save_weights(tmp)
        else:
            copy.save(tmp)
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
