"""The dataset group: where pairs are, how images are preprocessed and masks read; its checks."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from omegaconf import MISSING, DictConfig

from seg.config.bounds import Bound, bounded, check_bounds, require, require_in


class CacheMode(StrEnum):
    memory = "memory"  # decoded, resized tensors kept in RAM after the first epoch
    disk = "disk"  # the same, in a cache file under the run's output dir
    none = "none"  # decode every epoch: flat memory for datasets larger than RAM


class DemoTarget(StrEnum):
    nuclei = "nuclei"
    cells = "cells"


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


class ColorSpace(StrEnum):
    """What the model receives (seg.data.preprocess.convert_color); all in [0, 1]."""

    auto = "auto"  # rgb for dataset.channels=3, grey for 1 (what models got before this key)
    rgb = "rgb"
    grey = "grey"  # BT.601 luma; repeated to 3 channels when dataset.channels=3
    hsv = "hsv"  # H/360, S, V
    lab = "lab"  # L/100, (a+128)/255, (b+128)/255


class Normalization(StrEnum):
    unit = "unit"  # [0, 1] as decoded
    standardize = "standardize"  # per image: zero mean, unit variance (all pixels and channels)
    imagenet = "imagenet"  # (x - ImageNet mean) / std per RGB channel: pretrained encoders


class Binarization(StrEnum):
    fixed = "fixed"  # dataset.mask_threshold
    otsu = "otsu"  # per mask; the fixed threshold decides a nearly constant mask
    triangle = "triangle"  # idem, for a small foreground on a dominant background


class UnknownColors(StrEnum):
    error = "error"  # a mask colour not in dataset.mask.colors fails, naming file and colours
    background = "background"  # ... becomes class 0 (warned once per file)
    nearest = "nearest"  # ... becomes the class of the nearest listed colour (JPEG masks)


@dataclass
class ClaheConfig:
    # 0 = off. Not a nullable group: Hydra cannot set a key inside a null node from the command
    # line, and dataset.preprocess.clahe.clip_limit=2 is what a user wants to type.
    clip_limit: float = 0.0
    tile_grid: list[int] = field(default_factory=lambda: [8, 8])  # [rows, columns] of tiles


@dataclass
class PreprocessConfig:
    """Image preprocessing after resizing, in this order; every default leaves images as is."""

    invert: bool = False  # x -> 1 - x
    gamma: float = 1.0  # x -> x ** gamma (> 1 darkens mid-tones)
    contrast: float = 1.0  # linear, around each channel's mean (> 1 more contrast)
    clahe: ClaheConfig = field(default_factory=ClaheConfig)  # adaptive equalisation (lightness)
    sharpen: float = 0.0  # unsharp-mask amount; 0 = off
    sharpen_sigma: float = 1.0  # its Gaussian sigma, in pixels at dataset.image_size
    color: ColorSpace = ColorSpace.auto
    normalize: Normalization = Normalization.unit


@dataclass
class MaskColorConfig:
    color: list[int] = MISSING  # [r, g, b] in 0..255
    label: int = MISSING  # class index


@dataclass
class MaskConfig:
    """How mask files become labels (the fixed threshold is dataset.mask_threshold)."""

    binarize: Binarization = Binarization.fixed  # binary masks only
    blur: int = 0  # odd Gaussian kernel before thresholding (binary masks); 0 = off
    colors: list[MaskColorConfig] = field(default_factory=list)  # colour-coded masks
    unknown_colors: UnknownColors = UnknownColors.error
    # Binary grey masks whose foreground is the dark class (black objects on white): read as
    # 1 - the thresholded mask.
    invert: bool = False


@dataclass
class DatasetConfig:
    name: str = MISSING
    root: str = MISSING
    image_size: list[int] = MISSING  # [height, width] fed to the model
    channels: int = MISSING  # 1 (grey) or 3 (RGB); inputs are converted to this
    num_classes: int = MISSING  # 1 = binary (sigmoid); >1 = index masks, softmax
    # One name per class (index 0 = background) for metric keys and reports (val_dice_<name>);
    # null: class0, class1, ...
    class_names: list[str] | None = None
    mask_threshold: float = MISSING  # in [0, 1] of the mask's full scale (0/1 masks handled)
    images_dir: str = "images"
    masks_dir: str = "masks"
    splits: SplitsConfig = field(default_factory=SplitsConfig)
    cache: CacheMode = CacheMode.memory
    shuffle_buffer: int = 1024
    # Niceness (0-19, 0 = off) of the training input threads, so that augmentation runs in the
    # moments the training step leaves idle instead of preempting it (seg/data/input_priority.py)
    input_niceness: int = 19
    verify: bool = (
        True  # decode every file before the run opens (seg.runner.preflight), not mid-training
    )
    limit: int | None = None  # use only the first N pairs (sorted) of each split: quick trials
    synthetic: SyntheticConfig | None = None  # set for the embedded demo dataset
    # Shared by training, evaluation and inference, and saved with the model.
    preprocess: PreprocessConfig = field(default_factory=PreprocessConfig)
    mask: MaskConfig = field(default_factory=MaskConfig)


def resolve_color(color: str, channels: int) -> str:
    """``auto`` is what the model got before colour conversion existed: RGB or grey."""
    if color == "auto":
        return "grey" if channels == 1 else "rgb"
    return color


def channel_problem(color: str, normalize: str, channels: int) -> tuple[str, str] | None:
    """(key, message) when a colour/normalisation cannot feed a model of ``channels``."""
    color = resolve_color(color, channels)
    if color in ("rgb", "hsv", "lab") and channels != 3:
        return "dataset.preprocess.color", (
            f"'{color}' gives 3 channels but dataset.channels={channels}; use color=grey "
            "(or auto) for 1 channel, or dataset.channels=3"
        )
    if normalize == "imagenet" and (channels != 3 or color not in ("rgb", "grey")):
        return "dataset.preprocess.normalize", (
            f"'imagenet' needs RGB (or grey repeated) on 3 channels, got color={color}, "
            f"channels={channels}; use normalize=unit or standardize"
        )
    return None


def validate_colors(colors: Sequence[Mapping[str, Any]], num_classes: int) -> str | None:
    """Message for the first bad ``dataset.mask.colors`` entry, None when all are fine."""
    labels = max(num_classes, 2)  # binary masks may be colour-coded too: labels 0 and 1
    seen: dict[tuple[int, ...], int] = {}
    for i, entry in enumerate(colors):
        rgb = tuple(int(c) for c in entry["color"])
        if len(rgb) != 3 or not all(0 <= c <= 255 for c in rgb):
            return f"entry {i}: color must be [r, g, b] in 0..255, got {list(rgb)}"
        if not 0 <= int(entry["label"]) < labels:
            return f"entry {i}: label {entry['label']} is not a class index 0..{labels - 1}"
        if rgb in seen:
            return f"entry {i}: color {list(rgb)} is already mapped (entry {seen[rgb]})"
        seen[rgb] = i
    return None


_PREPROCESS_BOUNDS = bounded(
    "dataset.preprocess",
    Bound("gamma", 0, low_open=True, note="1 = off"),
    Bound("contrast", 0, low_open=True, note="1 = off"),
    Bound("sharpen", 0, note="0 = off"),
    Bound("sharpen_sigma", 0, low_open=True),
)


def _validate_preprocess(data: DictConfig) -> None:
    """dataset.preprocess: ranges, and a colour/normalisation the channels can carry."""
    pre, key = data.preprocess, "dataset.preprocess"
    check_bounds(pre, key, _PREPROCESS_BOUNDS)
    require_in(pre.clahe.clip_limit, f"{key}.clahe.clip_limit", 0, note="0 = off")
    grid = list(pre.clahe.tile_grid)
    require(
        len(grid) == 2 and all(g >= 1 for g in grid),
        f"{key}.clahe.tile_grid",
        f"expected [rows, columns] of positive integers, got {grid}",
    )
    problem = channel_problem(str(pre.color), str(pre.normalize), int(data.channels))
    if problem is not None:
        require(False, *problem)


_CLASS_NAME = re.compile(r"^[A-Za-z0-9_.-]+$")  # usable in metric keys, CSV columns, file names


def _validate_classes(data: DictConfig) -> None:
    """dataset.class_names: one usable, distinct name per class."""
    names = data.get("class_names")
    if names is None:
        return
    names = [str(n) for n in names]
    key = "dataset.class_names"
    require(
        len(names) == data.num_classes,
        key,
        f"give one name per class (index 0 = background): dataset.num_classes="
        f"{data.num_classes}, got {len(names)} names {names}",
    )
    bad = [n for n in names if not _CLASS_NAME.match(n)]
    require(
        not bad,
        key,
        f"names may hold letters, digits, _ - . only (they become metric "
        f"keys such as val_dice_<name>); got {bad}",
    )
    require(len(set(names)) == len(names), key, f"names must be distinct, got {names}")


def _validate_mask(data: DictConfig) -> None:
    """dataset.mask: blur kernel, colour map entries, options that apply to binary masks only."""
    mask, key = data.mask, "dataset.mask"
    require(
        mask.blur == 0 or (mask.blur >= 3 and mask.blur % 2 == 1),
        f"{key}.blur",
        f"an odd Gaussian kernel size >= 3, or 0 for none; got {mask.blur}",
    )
    problem = validate_colors(list(mask.colors), int(data.num_classes))
    require(problem is None, f"{key}.colors", str(problem))
    if mask.colors or data.num_classes > 1:
        what = "colour-coded" if mask.colors else "multiclass index"
        require(
            str(mask.binarize) == "fixed",
            f"{key}.binarize",
            f"thresholds binary grey masks only; these are {what} masks (leave it fixed)",
        )
        require(
            not mask.get("invert", False),
            f"{key}.invert",
            f"inverts binary grey masks only; these are {what} masks (leave it false)",
        )
        require(
            mask.blur == 0,
            f"{key}.blur",
            f"blurs binary grey masks only; these are {what} masks (leave it 0)",
        )


_DATASET_BOUNDS = bounded(
    "dataset",
    Bound("num_classes", 1),
    Bound("mask_threshold", 0, 1, high_open=True, note="of the mask's full scale"),
    Bound("shuffle_buffer", 1),
    Bound("input_niceness", 0, 19, note="0 = off"),
    Bound("limit", 1, nullable=True),
)


def validate_dataset(data: DictConfig) -> None:
    """The dataset group: size and channels, ranges, preprocessing, masks, class names."""
    size = list(data.image_size)
    require(
        len(size) == 2 and all(int(s) > 0 for s in size),
        "dataset.image_size",
        f"expected [height, width] of positive integers, got {size}",
    )
    require(data.channels in (1, 3), "dataset.channels", f"must be 1 or 3, got {data.channels}")
    check_bounds(data, "dataset", _DATASET_BOUNDS)
    _validate_preprocess(data)
    _validate_mask(data)
    _validate_classes(data)
