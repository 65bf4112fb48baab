"""The callbacks of a fit, in the order they must run, built from the ``callbacks`` group.

seg's own come first and last (the divergence guard, the best epoch, the per-epoch record and
resume state, the masks per epoch); Keras' early stopping and learning-rate reduction are
configured by their keys; ``callbacks.extra`` adds any allow-listed callback by ``_target_``
(``keras.callbacks.TensorBoard``, ``keras.callbacks.CSVLogger``, a class of one's own package:
see :mod:`seg.config.targets`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import keras
from omegaconf import DictConfig

from seg.errors import ConfigError
from seg.training.callbacks import DivergenceGuard, RunLog
from seg.training.checkpoints import BestCheckpoint
from seg.training.factory import instantiate, plain
from seg.training.recorder import EpochRecorder, TrainingState

log = logging.getLogger(__name__)

# The keys of the callbacks group that configure a Keras callback: their fields are its
# arguments, one to one.
KERAS_CALLBACKS: dict[str, type[keras.callbacks.Callback]] = {
    "early_stopping": keras.callbacks.EarlyStopping,
    "reduce_lr": keras.callbacks.ReduceLROnPlateau,
}


@dataclass(frozen=True)
class CheckpointFiles:
    """Where a fit keeps its checkpoints and its history."""

    best: Path  # the run's model file: the best epoch by callbacks.checkpoint.monitor
    last_dir: Path  # the state an interrupted run resumes from (seg.training.recorder)
    history_csv: Path


def best_checkpoint(node: DictConfig, folder: Path) -> BestCheckpoint:
    """callbacks.checkpoint: which epoch is the best by ``monitor``; its state is kept in
    ``folder`` (seg.training.checkpoints)."""
    return BestCheckpoint(folder, monitor=node.monitor, mode=str(node.mode))


def extra_callbacks(node: DictConfig) -> list[keras.callbacks.Callback]:
    """callbacks.extra: ``{name: {_target_: ..., <its arguments>}}``, built through the
    allow-list in the order given."""
    built = []
    for name, spec in (node.get("extra") or {}).items():
        key = f"callbacks.extra.{name}"
        callback = instantiate(spec, key)
        if not isinstance(callback, keras.callbacks.Callback):
            raise ConfigError(
                f"{key}._target_={spec.get('_target_')}: built a "
                f"{type(callback).__name__}, not a keras.callbacks.Callback"
            )
        built.append(callback)
    return built


def build_callbacks(
    node: DictConfig,
    run: RunLog,
    files: CheckpointFiles,
    resumed: TrainingState | None = None,
    before_record: tuple[keras.callbacks.Callback, ...] = (),
    after_record: tuple[keras.callbacks.Callback, ...] = (),
    schedule: str = "constant",
) -> tuple[list[keras.callbacks.Callback], EpochRecorder]:
    """The divergence guard first (no NaN epoch reaches a checkpoint), the best checkpoint,
    Keras' callbacks of the group, ``before_record``, the user's extra ones, then the
    :class:`EpochRecorder` (after the callbacks whose progress it saves), then
    ``after_record`` (e.g. masks per epoch: after the checkpoint, so that a resumed run never
    logs an epoch twice). ``schedule`` (trainer.schedule.name): any but constant sets the
    rate itself, so ``reduce_lr`` (the constant schedule's plateau rule) is left out.
    Returns the list and the recorder."""
    callbacks: list[keras.callbacks.Callback] = [
        DivergenceGuard(resumed.epoch if resumed else None),
        best_checkpoint(node.checkpoint, files.best.parent),
    ]
    keys = [key for key in KERAS_CALLBACKS if node.get(key) is not None]
    if schedule != "constant" and "reduce_lr" in keys:
        keys.remove("reduce_lr")
        log.info("callbacks.reduce_lr not used: trainer.schedule.name=%s sets the rate", schedule)
    callbacks += [KERAS_CALLBACKS[key](**plain(node[key])) for key in keys]
    callbacks += [*before_record, *extra_callbacks(node)]
    recorder = EpochRecorder(run, files.last_dir, files.history_csv, callbacks, resumed=resumed)
    return [*callbacks, recorder, *after_record], recorder
