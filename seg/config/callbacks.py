"""The callbacks group: best checkpoint, early stopping, learning-rate reduction, masks per
epoch, extra callbacks by ``_target_``; its checks."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from omegaconf import DictConfig

from seg.config.bounds import Bound, bounded, check_bounds, require
from seg.config.targets import check_target


class Mode(StrEnum):
    min = "min"
    max = "max"


@dataclass
class EarlyStoppingConfig:
    monitor: str = "val_loss"
    mode: Mode = Mode.min
    patience: int = 10
    min_delta: float = 0.0
    restore_best_weights: bool = False


@dataclass
class ReduceLROnPlateauConfig:
    monitor: str = "val_loss"
    mode: Mode = Mode.min
    factor: float = 0.5
    patience: int = 4
    min_lr: float = 1e-6


@dataclass
class CheckpointConfig:
    monitor: str = "val_loss"
    mode: Mode = Mode.min
    save_weights_only: bool = False


@dataclass
class EpochMasksConfig:
    num_images: int = 4  # the first N validation images (sorted), the same every epoch
    every: int = 1  # epochs between two logs
    # One large image (any size) predicted like seg-infer (tiled when larger than a tile, as
    # inference.* says) at the same epochs, logged as val_large_<stem>; null: none.
    large_image: str | None = None
    large_image_max_side: int = 1024  # the logged picture is shrunk to this many pixels


@dataclass
class CallbacksConfig:
    checkpoint: CheckpointConfig = field(default_factory=CheckpointConfig)
    early_stopping: EarlyStoppingConfig | None = None
    reduce_lr: ReduceLROnPlateauConfig | None = None
    epoch_masks: EpochMasksConfig | None = None
    curves: bool = True
    # More callbacks by _target_ (allow-listed: keras.callbacks.*, seg.training.callbacks, a
    # module of an installed package's seg.targets entry point), {name: {_target_, args}}.
    extra: dict[str, Any] = field(default_factory=dict)


_CALLBACK_BOUNDS = {
    "early_stopping": bounded(
        "callbacks.early_stopping", Bound("patience", 0, note="epochs"), Bound("min_delta", 0)
    ),
    "reduce_lr": bounded(
        "callbacks.reduce_lr",
        Bound(
            "factor",
            0,
            1,
            low_open=True,
            high_open=True,
            note="the learning rate is multiplied by it",
        ),
        Bound("patience", 0, note="epochs"),
        Bound("min_lr", 0),
    ),
}


def validate_callbacks(callbacks: DictConfig) -> None:
    """The callbacks group: the ranges of early stopping and learning-rate reduction, and a
    ``_target_`` the allow-list admits for each extra callback."""
    for name, bounds in _CALLBACK_BOUNDS.items():
        if (node := callbacks.get(name)) is not None:
            check_bounds(node, f"callbacks.{name}", bounds)
    for name, spec in (callbacks.get("extra") or {}).items():
        key = f"callbacks.extra.{name}"
        target = spec.get("_target_") if isinstance(spec, DictConfig) else None
        require(
            bool(target),
            key,
            f"give the callback's _target_, e.g. {key}._target_=keras.callbacks.CSVLogger",
        )
        check_target(target, key)
