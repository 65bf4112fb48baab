"""Typed schemas for every config group, registered in Hydra's ConfigStore.

The YAML files in ``conf/`` hold the values; these dataclasses hold the types. Hydra merges each
YAML onto its schema, so a misspelt key (``model.base_filterz``) or a wrong type
(``trainer.epochs=ten``) fails at composition with a message naming the key. Range checks that
a type cannot express (``trainer.epochs=0``) are in :func:`validate`, run before any work.
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from omegaconf import MISSING, DictConfig, OmegaConf

from seg.errors import ConfigError


class Stage(StrEnum):
    train = "train"
    evaluate = "evaluate"
    infer = "infer"


class CacheMode(StrEnum):
    memory = "memory"  # decoded, resized tensors kept in RAM after the first epoch
    disk = "disk"  # the same, in a cache file under the run's output dir
    none = "none"  # decode every epoch: flat memory for datasets larger than RAM


class Optimizer(StrEnum):
    adam = "adam"
    adamw = "adamw"
    sgd = "sgd"
    rmsprop = "rmsprop"
    nadam = "nadam"


class Mode(StrEnum):
    min = "min"
    max = "max"


class DemoTarget(StrEnum):
    nuclei = "nuclei"
    cells = "cells"


@dataclass
class PathsConfig:
    root_dir: str = MISSING  # where the command runs; outputs/ and mlflow.db live here
    log_dir: str = MISSING  # Hydra run and sweep directories
    cache_dir: str = MISSING  # generated demo data
    output_dir: str = MISSING  # this run's directory (set by Hydra)


@dataclass
class SyntheticConfig:
    image_size: int = MISSING
    num_train: int = MISSING
    num_valid: int = MISSING
    num_test: int = MISSING
    target: DemoTarget = MISSING
    seed: int = MISSING


@dataclass
class SplitsConfig:
    train: str = "train"
    valid: str = "valid"
    test: str = "test"


@dataclass
class DatasetConfig:
    name: str = MISSING
    root: str = MISSING
    image_size: list[int] = MISSING  # [height, width] fed to the model
    channels: int = MISSING  # 1 (grey) or 3 (RGB); inputs are converted to this
    num_classes: int = MISSING  # 1 = binary (sigmoid); >1 = index masks, softmax
    mask_threshold: float = MISSING  # in [0, 1] of the mask's full scale (0/1 masks handled)
    images_dir: str = "images"
    masks_dir: str = "masks"
    splits: SplitsConfig = field(default_factory=SplitsConfig)
    cache: CacheMode = CacheMode.memory
    shuffle_buffer: int = 1024
    verify: bool = True  # decode every file before training so a bad file fails now, not later
    limit: int | None = None  # use only the first N pairs (sorted) of each split: quick trials
    synthetic: SyntheticConfig | None = None  # set for the embedded demo dataset


@dataclass
class UNetConfig:
    _target_: str = "seg.models.unet.build_unet"
    base_filters: int = MISSING
    num_layers: int = MISSING
    base_kernels: list[int] = MISSING
    dilation: list[int] = MISSING
    dropout_rate: float = MISSING
    batch_norm: bool = MISSING
    bn_momentum: float = 0.9
    activation: str = MISSING


@dataclass
class LossConfig:
    _target_: str = "seg.losses.SegmentationLoss"
    name: str = MISSING
    bce: float = 0.0
    dice: float = 0.0
    iou: float = 0.0
    smooth: float = 1.0


@dataclass
class AugmentationConfig:
    name: str = MISSING
    hflip: float = 0.0  # probability of a horizontal flip
    vflip: float = 0.0
    rot90: float = 0.0  # probability of a rotation by a random multiple of 90 degrees
    preview: int = 0  # write this many augmented pairs to the run's artifacts


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


@dataclass
class CallbacksConfig:
    checkpoint: CheckpointConfig = field(default_factory=CheckpointConfig)
    early_stopping: EarlyStoppingConfig | None = None
    reduce_lr: ReduceLROnPlateauConfig | None = None
    epoch_masks: EpochMasksConfig | None = None
    curves: bool = True


@dataclass
class TrainerConfig:
    epochs: int = MISSING
    batch_size: int = MISSING
    learning_rate: float = MISSING
    optimizer: Optimizer = MISSING
    weight_decay: float = 0.0  # AdamW / SGD decoupled decay
    momentum: float = 0.0  # SGD / RMSprop
    clipvalue: float | None = None
    clipnorm: float | None = None
    steps_per_epoch: int | None = None
    validation_steps: int | None = None
    verbose: int | None = None  # Keras fit: 1 progress bar, 2 a line per epoch, null: 1 on a tty
    deterministic: bool = False  # TF op determinism: reproducible to the bit, slower


@dataclass
class InferenceConfig:
    threshold: float = 0.5
    batch_size: int = 8
    overlay_alpha: float = 0.4
    overlay_color: list[int] = field(default_factory=lambda: [255, 0, 0])
    save_probabilities: bool = False  # 16-bit PNG probability maps beside the masks
    log_samples: int = 8  # overlays copied to MLflow (all files stay in the output dir)


@dataclass
class MlflowConfig:
    tracking_uri: str = MISSING
    experiment_name: str = MISSING
    run_name: str | None = None
    log_model: bool = True
    tags: dict[str, str] = field(default_factory=dict)


@dataclass
class RunConfig:
    """The primary config of every entry point; groups a task does not use stay null."""

    task_name: str = MISSING
    stages: list[Stage] = MISSING
    seed: int = 42
    checkpoint: str | None = None  # MLflow run id, models:/ or runs:/ URI, or a .keras file
    split: str = "test"  # split evaluated by seg-eval (dataset.splits key or folder name)
    data_dir: str | None = None  # seg-eval: a folder holding images/ and masks/ instead
    input: str | None = None  # seg-infer: a folder, a glob or one image file
    output: str | None = None  # seg-infer: where masks and overlays go (default: run dir)
    optimized_metric: str | None = None  # returned to Hydra sweepers
    paths: PathsConfig = field(default_factory=PathsConfig)
    dataset: DatasetConfig = field(default_factory=DatasetConfig)
    model: Any = None
    loss: LossConfig | None = None
    augmentation: AugmentationConfig | None = None
    callbacks: CallbacksConfig | None = None
    trainer: TrainerConfig | None = None
    inference: InferenceConfig = field(default_factory=InferenceConfig)
    mlflow: MlflowConfig = field(default_factory=MlflowConfig)


def _unique_token() -> str:
    """Random suffix of run directories: unique even for runs started in the same second."""
    return secrets.token_hex(3)


def register() -> None:
    """Register the schemas and resolvers; called by the entry points before composing."""
    from hydra.core.config_store import ConfigStore

    if not OmegaConf.has_resolver("seg_cwd"):
        # The launch directory, usable in hydra.sweep.dir where ${hydra:runtime.cwd} is not
        # available yet; jobs never chdir (hydra.job.chdir=false), so it is the same for all.
        OmegaConf.register_new_resolver("seg_cwd", os.getcwd, use_cache=True)
    if not OmegaConf.has_resolver("seg_uid"):
        # Cached per config, and Hydra copies the cache into each sweep job's config, so one
        # run or sweep directory gets one token however often it is resolved.
        OmegaConf.register_new_resolver("seg_uid", _unique_token, use_cache=True)
    store = ConfigStore.instance()
    store.store(name="run_schema", node=RunConfig)
    for group, name, node in [
        ("dataset", "dataset", DatasetConfig),
        ("model", "unet", UNetConfig),
        ("loss", "loss", LossConfig),
        ("augmentation", "augmentation", AugmentationConfig),
        ("callbacks", "callbacks", CallbacksConfig),
        ("trainer", "trainer", TrainerConfig),
        ("inference", "inference", InferenceConfig),
        ("mlflow", "mlflow", MlflowConfig),
        ("paths", "paths", PathsConfig),
    ]:
        # Kept under schema/ so they are not offered as choices of the group itself; each
        # YAML of the group pulls its schema in with `- /schema/<group>/<name>@_here_`.
        store.store(group=f"schema/{group}", name=name, node=node)


def _require(ok: bool, key: str, message: str) -> None:
    if not ok:
        raise ConfigError(f"{key}: {message}")


def validate(cfg: DictConfig) -> None:
    """Check what the types cannot: ranges and the fields a task needs. Names the key."""
    missing = sorted(OmegaConf.missing_keys(cfg))
    _require(
        not missing,
        ", ".join(missing),
        "mandatory value(s) not set: give them on the command line, e.g. "
        + " ".join(f"{k}=..." for k in missing),
    )
    stages = [Stage(s).value for s in cfg.stages]
    _require(bool(stages), "stages", "list at least one of train, evaluate, infer")
    data = cfg.dataset
    size = list(data.image_size)
    _require(
        len(size) == 2 and all(int(s) > 0 for s in size),
        "dataset.image_size",
        f"expected [height, width] of positive integers, got {size}",
    )
    _require(data.channels in (1, 3), "dataset.channels", f"must be 1 or 3, got {data.channels}")
    _require(data.num_classes >= 1, "dataset.num_classes", f"must be >= 1, got {data.num_classes}")
    _require(
        0.0 <= data.mask_threshold < 1.0,
        "dataset.mask_threshold",
        f"must be in [0, 1) of the mask's full scale, got {data.mask_threshold}",
    )
    _require(data.shuffle_buffer >= 1, "dataset.shuffle_buffer", "must be >= 1")
    _require(data.limit is None or data.limit >= 1, "dataset.limit", "must be null or >= 1")
    if "train" in stages:
        for group in ("model", "loss", "trainer", "callbacks", "augmentation"):
            _require(cfg.get(group) is not None, group, "the train stage needs this group")
        t = cfg.trainer
        _require(t.epochs >= 1, "trainer.epochs", f"must be >= 1, got {t.epochs}")
        _require(t.batch_size >= 1, "trainer.batch_size", f"must be >= 1, got {t.batch_size}")
        _require(
            t.learning_rate > 0, "trainer.learning_rate", f"must be > 0, got {t.learning_rate}"
        )
        for key in ("steps_per_epoch", "validation_steps"):
            value = t.get(key)
            _require(value is None or value >= 1, f"trainer.{key}", "must be null or >= 1")
        for key in ("hflip", "vflip", "rot90"):
            p = cfg.augmentation[key]
            _require(0.0 <= p <= 1.0, f"augmentation.{key}", f"a probability in [0, 1], got {p}")
    else:
        _require(
            cfg.checkpoint is not None,
            "checkpoint",
            "without the train stage, name a model: checkpoint=<run id | models:/... | "
            "runs:/... | path/to/model.keras>",
        )
    if "infer" in stages and "train" not in stages:
        _require(cfg.input is not None, "input", "name a folder, a glob or an image file")
    inf = cfg.inference
    _require(0.0 < inf.threshold < 1.0, "inference.threshold", f"in (0, 1), got {inf.threshold}")
    _require(inf.batch_size >= 1, "inference.batch_size", f"must be >= 1, got {inf.batch_size}")
    _require(0.0 <= inf.overlay_alpha <= 1.0, "inference.overlay_alpha", "must be in [0, 1]")
    _require(
        len(inf.overlay_color) == 3 and all(0 <= c <= 255 for c in inf.overlay_color),
        "inference.overlay_color",
        f"expected [r, g, b] in 0..255, got {list(inf.overlay_color)}",
    )
