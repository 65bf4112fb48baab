"""Typed schemas for every config group, registered in Hydra's ConfigStore.

The YAML files in ``conf/`` hold the values; these dataclasses hold the types. Hydra merges each
YAML onto its schema, so a misspelt key (``model.base_filterz``) or a wrong type
(``trainer.epochs=ten``) fails at composition with a message naming the key. Range checks that
a type cannot express (``trainer.epochs=0``) are in :func:`validate`, run before any work.
"""

from __future__ import annotations

import math
import os
import re
import secrets
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from omegaconf import MISSING, DictConfig, OmegaConf

from seg.bounds import Bound, check_bounds, range_text, require_in
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


class Direction(StrEnum):
    """Whether a sweep looks for the largest or the smallest ``optimized_metric``."""

    maximize = "maximize"
    minimize = "minimize"


class Strategy(StrEnum):
    """tf.distribute strategy of the train stage (seg.distribute)."""

    default = "default"  # one device (TF places ops; a GPU if there is one)
    mirrored = "mirrored"  # synchronous data parallelism over this machine's GPUs (or CPUs)
    multi_worker = "multi_worker"  # over machines: refused, Keras 3 cannot (seg.distribute)


class MixedDtype(StrEnum):
    """Compute dtype of ``trainer.mixed_precision``: float16 suits GPUs (tensor cores), bfloat16
    CPUs with AVX512-BF16/AMX (float16 arithmetic is emulated on most CPUs: slower than float32)."""

    auto = "auto"  # float16 with a GPU, bfloat16 without
    float16 = "float16"
    bfloat16 = "bfloat16"


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
    verify: bool = True  # decode every file before the run opens (seg.preflight), not mid-training
    limit: int | None = None  # use only the first N pairs (sorted) of each split: quick trials
    synthetic: SyntheticConfig | None = None  # set for the embedded demo dataset
    # Shared by training, evaluation and inference, and saved with the model.
    preprocess: PreprocessConfig = field(default_factory=PreprocessConfig)
    mask: MaskConfig = field(default_factory=MaskConfig)


@dataclass
class UNetFamilyConfig:
    """What the UNet-like models share: width, depth and the conv blocks' style."""

    base_filters: int = MISSING  # filters at full resolution, doubled per level down
    num_layers: int = MISSING  # levels incl. the bottleneck; sides multiples of 2**(n-1)
    dropout_rate: float = 0.0
    batch_norm: bool = True
    bn_momentum: float = 0.9
    activation: str = "relu"


@dataclass
class UNetConfig(UNetFamilyConfig):
    _target_: str = "seg.models.unet.build_unet"
    base_kernels: list[int] = MISSING  # first-level kernel, shrinking by 2 per level to 3
    dilation: list[int] = MISSING  # first-level dilation, decreasing per level to 1


@dataclass
class AttentionUNetConfig(UNetFamilyConfig):
    _target_: str = "seg.models.attention_unet.build_attention_unet"


@dataclass
class UNetPlusPlusConfig(UNetFamilyConfig):
    _target_: str = "seg.models.unet_plus_plus.build_unet_plus_plus"
    deep_supervision: bool = False


@dataclass
class UNet3PlusConfig(UNetFamilyConfig):
    _target_: str = "seg.models.unet3plus.build_unet3plus"
    deep_supervision: bool = False


class SkipKernel(StrEnum):
    laplacian = "laplacian"  # the Sharp U-Net paper's [[-1,-1,-1],[-1,8,-1],[-1,-1,-1]]
    sharpen = "sharpen"  # [[0,-1,0],[-1,5,-1],[0,-1,0]]


@dataclass
class SharpUNetConfig(UNetFamilyConfig):
    _target_: str = "seg.models.sharp_unet.build_sharp_unet"
    skip_kernel: SkipKernel = SkipKernel.laplacian


@dataclass
class MultiResUNetConfig:
    _target_: str = "seg.models.multires_unet.build_multires_unet"
    base_filters: int = MISSING
    num_layers: int = MISSING
    alpha: float = 1.67
    batch_norm: bool = True
    bn_momentum: float = 0.9
    activation: str = "relu"


@dataclass
class U2NetConfig:
    _target_: str = "seg.models.u2net.build_u2net"
    mid_filters: int = MISSING
    out_filters: int = MISSING
    deep_supervision: bool = True
    bn_momentum: float = 0.9


@dataclass
class PretrainedEncoderConfig:
    """Models with a keras.applications encoder (see seg/models/encoders.py)."""

    weights: str | None = None  # null, or the path of a local ImageNet .h5 / .weights.h5 file
    freeze_encoder: bool = False


@dataclass
class DeepLabV3PlusConfig(PretrainedEncoderConfig):
    _target_: str = "seg.models.deeplabv3plus.build_deeplabv3plus"
    aspp_filters: int = 256
    aspp_rates: list[int] = field(default_factory=lambda: [6, 12, 18])
    low_level_filters: int = 48
    decoder_filters: int = 256
    dropout_rate: float = 0.1
    bn_momentum: float = 0.9


class EfficientNetVariant(StrEnum):
    b0 = "b0"
    b1 = "b1"
    b2 = "b2"
    b3 = "b3"
    b4 = "b4"
    b5 = "b5"
    b6 = "b6"
    b7 = "b7"


@dataclass
class EfficientUNetConfig(PretrainedEncoderConfig):
    _target_: str = "seg.models.efficient_unet.build_efficient_unet"
    variant: EfficientNetVariant = EfficientNetVariant.b0
    decoder_filters: int = 16
    dropout_rate: float = 0.0
    activation: str = "relu"
    bn_momentum: float = 0.9


@dataclass
class SwinUNetConfig:
    _target_: str = "seg.models.swin_unet.build_swin_unet"
    patch_size: int = 4
    embed_dim: int = MISSING
    depths: list[int] = MISSING
    num_heads: list[int] = MISSING
    window_size: int = 4
    mlp_ratio: float = 4.0


@dataclass
class TransUNetConfig(PretrainedEncoderConfig):
    _target_: str = "seg.models.transunet.build_transunet"
    hidden_size: int = MISSING
    transformer_layers: int = MISSING
    num_heads: int = MISSING
    mlp_dim: int = MISSING
    decoder_filters: list[int] = field(default_factory=lambda: [256, 128, 64, 16])
    dropout_rate: float = 0.1
    bn_momentum: float = 0.9


# model=<name> -> its schema; every conf/model/<name>.yaml pulls in schema/model/<name>.
MODEL_SCHEMAS: dict[str, type] = {
    "unet": UNetConfig,
    "attention_unet": AttentionUNetConfig,
    "unet_plus_plus": UNetPlusPlusConfig,
    "unet3plus": UNet3PlusConfig,
    "multires_unet": MultiResUNetConfig,
    "sharp_unet": SharpUNetConfig,
    "u2net": U2NetConfig,
    "deeplabv3plus": DeepLabV3PlusConfig,
    "efficient_unet": EfficientUNetConfig,
    "swin_unet": SwinUNetConfig,
    "transunet": TransUNetConfig,
}


@dataclass
class LossConfig:
    """Binary losses (one sigmoid channel, dataset.num_classes=1): seg.losses.SegmentationLoss."""

    _target_: str = "seg.losses.SegmentationLoss"
    name: str = MISSING
    bce: float = 0.0
    dice: float = 0.0
    iou: float = 0.0
    smooth: float = 1.0


class LossTerm(StrEnum):
    """The terms of seg.losses.CompoundLoss (seg.loss_terms documents each)."""

    bce = "bce"
    dice = "dice"
    iou = "iou"
    ssim = "ssim"
    focal = "focal"
    tversky = "tversky"
    focal_tversky = "focal_tversky"


@dataclass
class LossTermConfig:
    """One weighted term; a parameter left null takes the term's default, and a parameter the
    term does not take fails validation (loss.terms[i].<param>)."""

    name: LossTerm = MISSING
    weight: float = 1.0
    smooth: float | None = None  # dice, iou, tversky, focal_tversky
    alpha: float | None = None  # tversky: FP weight; focal: foreground weight
    beta: float | None = None  # tversky: FN weight
    gamma: float | None = None  # focal: focusing; focal_tversky: exponent
    window: int | None = None  # ssim: Gaussian window side (odd)
    sigma: float | None = None  # ssim: its standard deviation


@dataclass
class CompoundLossConfig:
    """Any weighted sum of binary loss terms: seg.losses.CompoundLoss (dataset.num_classes=1)."""

    _target_: str = "seg.losses.CompoundLoss"
    name: str = MISSING
    terms: list[LossTermConfig] = MISSING


@dataclass
class CategoricalLossConfig:
    """Softmax losses (dataset.num_classes > 1): seg.losses.CategoricalLoss."""

    _target_: str = "seg.losses.CategoricalLoss"
    name: str = MISSING
    ce: float = 0.0  # categorical crossentropy
    dice: float = 0.0  # 1 - soft dice, per image, mean over classes
    focal: float = 0.0  # focal loss (Lin et al. 2017)
    gamma: float = 2.0  # focal focusing parameter; 0 = (weighted) crossentropy
    class_weights: list[float] | None = None  # per class, for ce and focal (focal's alpha)
    include_background: bool = False  # class 0 in the dice mean
    smooth: float = 1.0


class FillMode(StrEnum):
    """What geometric ops show where the image has no source pixel (masks: the same pixels)."""

    reflect = "reflect"  # mirror the image at its border
    constant = "constant"  # augmentation.fill.value for images; background for masks
    nearest = "nearest"  # repeat the border pixel


@dataclass
class FillConfig:
    mode: FillMode = FillMode.reflect
    value: float = 0.0  # image value in [0, 1] for mode=constant


# One dataclass per augmentation op. `p` is the probability that it applies to an image; an op is
# off with p=0 (every default) or null. Defaults are sensible parameters, so that
# `augmentation.elastic.p=0.5` is all it takes to switch one on (Hydra cannot set a key inside a
# null node from the command line). Two-element lists are [lo, hi], sampled uniformly per image;
# `range` is a symmetric bound [-range, range].


@dataclass
class FlipConfig:
    p: float = 0.0


@dataclass
class RotationConfig:
    p: float = 0.0
    # degrees, counter-clockwise, one chosen per image; quarter turns are exact pixel permutations
    angles: list[float] = field(default_factory=lambda: [90.0, 180.0, 270.0])
    range: float = 0.0  # plus a uniform angle in [-range, range] degrees


@dataclass
class ZoomConfig:
    p: float = 0.0
    min_scale: float = 0.9  # < 1 zooms out: the image shrinks onto the fill background
    max_scale: float = 1.1  # > 1 zooms in


@dataclass
class ShearConfig:
    p: float = 0.0
    range: float = 10.0  # degrees, x and y drawn independently, about the image centre


@dataclass
class TranslationConfig:
    p: float = 0.0
    range: float = 0.1  # fraction of the width (x) and of the height (y)


@dataclass
class ElasticConfig:
    # Simard et al. 2003: displacement = alpha * Gaussian(sigma)-smoothed uniform noise in
    # [-1, 1]. Both in pixels of a 512-pixel image (shorter side): at size S the field is scaled
    # geometrically (sigma * S/512, alpha * (S/512)^2) and looks the same at any resolution.
    # The legacy alpha 1300 (sigma 8) is ~110 here: its filter also ran across the colour
    # channels, which damped the field ~12x.
    p: float = 0.0
    alpha: float = 110.0
    sigma: float = 8.0


@dataclass
class SmoothDistortionConfig:
    p: float = 0.0
    grid: int = 4  # cells per side; inner grid nodes move, the border stays
    magnitude: float = 0.02  # largest node displacement, a fraction of the shorter side


@dataclass
class RadialDistortionConfig:
    # Local radial distortion in a disk (legacy formula): a source radius r * sin(pi/2 r/R)^a.
    p: float = 0.0
    amount: list[float] = field(default_factory=lambda: [0.1, 0.3])  # a in [0, 1)
    radius: float = 0.3  # R, a fraction of the shorter side
    # [x, y] fractions of width and height, one picked per image; [] = anywhere
    # list[list[Any]]: OmegaConf does not turn the ints of a nested list into floats, so with
    # list[list[float]] centres=[[0,1]] failed to compose; check_augmentation checks the numbers.
    centres: list[list[Any]] = field(default_factory=lambda: [[0.5, 0.5]])


@dataclass
class BrightnessConfig:
    p: float = 0.0
    range: float = 0.1  # added to every channel, in [0, 1] units


@dataclass
class ContrastConfig:
    p: float = 0.0
    range: float = 0.2  # factor in [1 - range, 1 + range] around each channel's mean


@dataclass
class GammaConfig:
    p: float = 0.0
    gamma: list[float] = field(default_factory=lambda: [0.8, 1.25])  # x -> x ** gamma


@dataclass
class HueConfig:
    p: float = 0.0
    range: float = 0.02  # shift as a fraction of the colour wheel (0.5 = 180 degrees); RGB only


@dataclass
class SaturationConfig:
    p: float = 0.0
    factor: list[float] = field(default_factory=lambda: [0.8, 1.2])  # 1 = unchanged; RGB only


@dataclass
class BlurConfig:
    p: float = 0.0
    sigma: list[float] = field(default_factory=lambda: [0.3, 1.0])  # pixels


@dataclass
class NoiseConfig:
    p: float = 0.0
    std: list[float] = field(default_factory=lambda: [0.0, 0.03])  # per image, in [0, 1] units


@dataclass
class SharpenConfig:
    p: float = 0.0
    amount: list[float] = field(default_factory=lambda: [0.2, 0.6])  # x + amount * (x - smooth x)


@dataclass
class AugmentationConfig:
    """Online augmentation (seg.data.augment): geometric ops in this order, composed into one
    warp of image and mask, then photometric ops on the image only."""

    name: str = MISSING
    fill: FillConfig = field(default_factory=FillConfig)
    hflip: FlipConfig | None = field(default_factory=FlipConfig)
    vflip: FlipConfig | None = field(default_factory=FlipConfig)
    rotation: RotationConfig | None = field(default_factory=RotationConfig)
    zoom: ZoomConfig | None = field(default_factory=ZoomConfig)
    shear: ShearConfig | None = field(default_factory=ShearConfig)
    translation: TranslationConfig | None = field(default_factory=TranslationConfig)
    elastic: ElasticConfig | None = field(default_factory=ElasticConfig)
    smooth_distortion: SmoothDistortionConfig | None = field(default_factory=SmoothDistortionConfig)
    # barrel magnifies the centre of its disk, pincushion shrinks it (the same amounts, inverted)
    barrel: RadialDistortionConfig | None = field(default_factory=RadialDistortionConfig)
    pincushion: RadialDistortionConfig | None = field(default_factory=RadialDistortionConfig)
    brightness: BrightnessConfig | None = field(default_factory=BrightnessConfig)
    contrast: ContrastConfig | None = field(default_factory=ContrastConfig)
    gamma: GammaConfig | None = field(default_factory=GammaConfig)
    hue: HueConfig | None = field(default_factory=HueConfig)
    saturation: SaturationConfig | None = field(default_factory=SaturationConfig)
    blur: BlurConfig | None = field(default_factory=BlurConfig)
    sharpen: SharpenConfig | None = field(default_factory=SharpenConfig)
    noise: NoiseConfig | None = field(default_factory=NoiseConfig)
    preview: int = 0  # write this many augmented pairs to the run's artifacts


# Ranges of the augmentation ops' scalar fields, and of their [lo, hi] fields
# (_check_interval), by op.
_AUGMENTATION_BOUNDS: dict[str, tuple[Bound, ...]] = {
    "rotation": (Bound("range", 0, 180),),
    "shear": (Bound("range", 0, 45),),
    "translation": (Bound("range", 0, 1),),
    "elastic": (Bound("alpha", 0), Bound("sigma", 0, low_open=True)),
    "smooth_distortion": (Bound("grid", 2), Bound("magnitude", 0, 0.5)),
    "barrel": (Bound("radius", 0, low_open=True),),
    "pincushion": (Bound("radius", 0, low_open=True),),
    "brightness": (Bound("range", 0, 1),),
    "contrast": (Bound("range", 0, 1),),
    "hue": (Bound("range", 0, 0.5),),
}
_AUGMENTATION_INTERVALS: dict[str, tuple[str, float, float]] = {
    "barrel": ("amount", 0, 0.99),
    "pincushion": ("amount", 0, 0.99),
    "gamma": ("gamma", 0.05, 20),
    "saturation": ("factor", 0, 100),
    "blur": ("sigma", 0, 10),
    "sharpen": ("amount", 0, 4),
    "noise": ("std", 0, 1),
}


def _check_interval(value: Any, key: str, low: float, high: float) -> None:
    """A [lo, hi] pair with lo <= hi, both in [low, high]."""
    values = list(value)
    _require(len(values) == 2 and values[0] <= values[1], key,
             f"expected [lo, hi] with lo <= hi, got {values}")
    _require(low <= values[0] and values[1] <= high, key,
             f"must lie in {range_text(low, high)}, got {values}")


def check_augmentation(aug: Any, key: str = "augmentation") -> None:
    """Ranges of an augmentation config (dataclass or DictConfig); the error names the key."""
    _require_finite(aug, key)
    require_in(aug.preview, f"{key}.preview", 0)
    require_in(aug.fill.value, f"{key}.fill.value", 0, 1)
    for op in OP_NAMES:
        c = getattr(aug, op)
        if c is None:
            continue
        k = f"{key}.{op}"
        require_in(c.p, f"{k}.p", 0, 1)
        check_bounds(c, k, _AUGMENTATION_BOUNDS.get(op, ()))
        if op in _AUGMENTATION_INTERVALS:
            name, low, high = _AUGMENTATION_INTERVALS[op]
            _check_interval(getattr(c, name), f"{k}.{name}", low, high)
    if (c := aug.rotation) is not None:
        _require(len(c.angles) > 0 or c.range > 0, f"{key}.rotation",
                 "give angles (a list, degrees) or a range > 0")
    if (c := aug.zoom) is not None:
        _require(0 < c.min_scale <= c.max_scale, f"{key}.zoom.min_scale",
                 f"need 0 < min_scale <= max_scale, got {c.min_scale}, {c.max_scale}")
    for op in ("barrel", "pincushion"):
        if (c := getattr(aug, op)) is not None:
            for i, centre in enumerate(c.centres):
                k = f"{key}.{op}.centres[{i}]"
                _require(len(centre) == 2, k, f"expected [x, y] fractions, got {list(centre)}")
                for v in centre:
                    require_in(v, k, 0, 1)


# The op fields of AugmentationConfig, in the order the ops apply.
GEOMETRIC_OPS = (
    "hflip", "vflip", "rotation", "zoom", "shear", "translation", "elastic", "smooth_distortion",
    "barrel", "pincushion",
)
PHOTOMETRIC_OPS = (
    "brightness", "contrast", "gamma", "hue", "saturation", "blur", "sharpen", "noise",
)
OP_NAMES = GEOMETRIC_OPS + PHOTOMETRIC_OPS


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
    mixed_precision: bool = False  # Keras mixed_<dtype> policy for the model (outputs float32)
    mixed_precision_dtype: MixedDtype = MixedDtype.auto
    jit_compile: bool | None = None  # XLA; null: Keras' auto (on with a GPU, off on CPU)
    strategy: Strategy = Strategy.default
    # false: batch_size is the global batch, images per step summed over replicas (each replica
    # gets batch_size / replicas); true: batch_size is per replica (a step sees batch_size x
    # replicas images). Same thing on one device.
    batch_size_per_replica: bool = False
    # TensorFlow intra- and inter-op threads; null: this machine's cores divided by the jobs a
    # parallel launcher runs at once (hydra.launcher.n_jobs), so parallel jobs share the cores.
    threads: int | None = None
    # Split the CPU into this many logical devices before TensorFlow starts (null: one), so that
    # trainer.strategy=mirrored runs several replicas on a machine without GPUs (tests, demos).
    logical_cpus: int | None = None
    # Continue an interrupted run from its last epoch: true (the latest unfinished run of this
    # same config in the experiment) or an MLflow run id. The same MLflow run goes on.
    resume: str | None = None


class Tiling(StrEnum):
    # sliding windows for an input larger than a tile, resizing otherwise; the dataset's own
    # splits are resized, as training fed them (seg.stages.infer.build_predictor)
    auto = "auto"
    on = "on"  # sliding windows for every image
    off = "off"  # resize every image to the model input (the model's training path)


class TileBlending(StrEnum):
    gaussian = "gaussian"  # weights fall off towards tile edges: no seams (nnU-Net)
    uniform = "uniform"  # plain mean of the overlapping tiles


class TTAOp(StrEnum):
    hflip = "hflip"
    vflip = "vflip"
    rot90 = "rot90"
    rot180 = "rot180"
    rot270 = "rot270"


class ThresholdMethod(StrEnum):
    fixed = "fixed"  # inference.threshold
    otsu = "otsu"  # per image, on the probability map


@dataclass
class PostprocessConfig:
    """seg.postprocess.Postprocess: applied in this order, each off by default."""

    blur_sigma: float = 0.0  # Gaussian blur of the probabilities, pixels; 0 = off
    method: ThresholdMethod = ThresholdMethod.fixed
    open_radius: int = 0  # morphological opening, disk radius in pixels; 0 = off
    close_radius: int = 0  # morphological closing, idem
    min_size: int = 0  # remove objects smaller than this many pixels; 0 = off
    fill_holes: bool = False
    keep_largest: bool = False


@dataclass
class InferenceConfig:
    threshold: float = 0.5
    batch_size: int = 8  # images (resized) or tiles (tiled) per model call
    tiling: Tiling = Tiling.auto
    tile_size: list[int] | None = None  # [h, w] image pixels per tile; null: the model input
    tile_overlap: float = 0.25  # fraction of a tile shared with each neighbour
    tile_blending: TileBlending = TileBlending.gaussian
    tile_sigma: float = 0.125  # Gaussian sigma as a fraction of the tile side
    bitwise_blending: bool = False  # AND the tiled mask with the whole-image prediction
    tta: list[TTAOp] = field(default_factory=list)  # averaged with the plain prediction
    pad_multiple: int = 32  # free-size models: images padded to a multiple of this
    postprocess: PostprocessConfig = field(default_factory=PostprocessConfig)
    save_contours: bool = True  # contours/<stem>.png: outlines drawn on the image
    save_colored_masks: bool = True  # colored_masks/<stem>.png: classes in their colours
    overlay_alpha: float = 0.4
    overlay_color: list[int] = field(default_factory=lambda: [255, 0, 0])
    save_probabilities: bool = False  # 16-bit PNG probability maps beside the masks
    # Multiclass masks and overlays: [r, g, b] per class, index 0 = background. null: the
    # colours of dataset.mask.colors, else seg.classes.DEFAULT_PALETTE.
    palette: list[list[int]] | None = None
    log_samples: int = 8  # overlays copied to MLflow (all files stay in the output dir)


@dataclass
class MlflowConfig:
    tracking_uri: str = MISSING
    experiment_name: str = MISSING
    run_name: str | None = None
    log_model: bool = True
    tags: dict[str, str] = field(default_factory=dict)
    outage_wait: float = 60.0  # s to wait at a run's end for an unreachable store (seg.spool)


@dataclass
class RunConfig:
    """The primary config of every entry point; groups a task does not use stay null."""

    task_name: str = MISSING
    stages: list[Stage] = MISSING
    seed: int = 42
    checkpoint: str | None = None  # MLflow run id, models:/ or runs:/ URI, or a .keras file
    # Load model files with Keras' safe mode off (they may hold Python code, e.g. a Lambda
    # layer, which then runs): only for files whose source you trust (seg/model_files.py).
    trust_checkpoint: bool = False
    split: str = "test"  # split evaluated by seg-eval (dataset.splits key or folder name)
    data_dir: str | None = None  # seg-eval: a folder holding images/ and masks/ instead
    input: str | None = None  # seg-infer: a folder, a glob or one image file
    output: str | None = None  # seg-infer: where masks and overlays go (default: run dir)
    optimized_metric: str | None = None  # returned to Hydra sweepers
    optimized_direction: Direction = Direction.maximize  # how a sweep picks its best job
    paths: PathsConfig = field(default_factory=PathsConfig)
    dataset: DatasetConfig = field(default_factory=DatasetConfig)
    model: Any = None
    # LossConfig or CompoundLossConfig (binary), CategoricalLossConfig: chosen by the loss YAML
    loss: Any = None
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
        ("loss", "loss", LossConfig),
        ("loss", "categorical", CategoricalLossConfig),
        ("loss", "compound", CompoundLossConfig),
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
    for name, node in MODEL_SCHEMAS.items():
        store.store(group="schema/model", name=name, node=node)


def _require(ok: bool, key: str, message: str) -> None:
    if not ok:
        raise ConfigError(f"{key}: {message}")


def _require_finite(node: Any, key: str = "") -> None:
    """No NaN or infinity anywhere in ``node`` (a config or a schema dataclass): OmegaConf takes
    ``inf`` and ``nan`` for a float, and they slip through range checks (``inf > 0`` holds,
    ``nan`` compared to anything is False)."""

    def walk(value: Any, path: str) -> None:
        if isinstance(value, float):
            _require(math.isfinite(value), path, f"must be a finite number, got {value}")
        elif isinstance(value, dict):
            for k, v in value.items():
                walk(v, f"{path}.{k}" if path else str(k))
        elif isinstance(value, list):
            for i, v in enumerate(value):
                walk(v, f"{path}[{i}]")

    walk(OmegaConf.to_container(OmegaConf.create(node), resolve=False), key)


_PREPROCESS_BOUNDS = (
    Bound("gamma", 0, low_open=True, note="1 = off"),
    Bound("contrast", 0, low_open=True, note="1 = off"),
    Bound("sharpen", 0, note="0 = off"),
    Bound("sharpen_sigma", 0, low_open=True),
)


def _validate_preprocess(data: DictConfig) -> None:
    """dataset.preprocess: ranges, and a colour/normalisation the channels can carry."""
    from seg.data.preprocess import channel_problem

    pre, key = data.preprocess, "dataset.preprocess"
    check_bounds(pre, key, _PREPROCESS_BOUNDS)
    require_in(pre.clahe.clip_limit, f"{key}.clahe.clip_limit", 0, note="0 = off")
    grid = list(pre.clahe.tile_grid)
    _require(
        len(grid) == 2 and all(g >= 1 for g in grid),
        f"{key}.clahe.tile_grid",
        f"expected [rows, columns] of positive integers, got {grid}",
    )
    problem = channel_problem(str(pre.color), str(pre.normalize), int(data.channels))
    if problem is not None:
        _require(False, *problem)


#: The loss options (conf/loss) for softmax models, named in the error for a mismatched loss.
CATEGORICAL_LOSSES = ("cce_dice", "cce", "categorical_dice", "focal")
BINARY_LOSSES = ("bce_dice", "bce", "dice", "iou", "bce_iou", "ssim", "bce_ssim_iou",
                 "binary_focal", "tversky", "focal_tversky", "combo")
_CLASS_NAME = re.compile(r"^[A-Za-z0-9_.-]+$")  # usable in metric keys, CSV columns, file names


def _validate_classes(data: DictConfig) -> None:
    """dataset.class_names: one usable, distinct name per class."""
    names = data.get("class_names")
    if names is None:
        return
    names = [str(n) for n in names]
    key = "dataset.class_names"
    _require(len(names) == data.num_classes, key,
             f"give one name per class (index 0 = background): dataset.num_classes="
             f"{data.num_classes}, got {len(names)} names {names}")
    bad = [n for n in names if not _CLASS_NAME.match(n)]
    _require(not bad, key, f"names may hold letters, digits, _ - . only (they become metric "
             f"keys such as val_dice_<name>); got {bad}")
    _require(len(set(names)) == len(names), key, f"names must be distinct, got {names}")


def _validate_loss(cfg: DictConfig) -> None:
    """The loss fits the output: binary losses for one sigmoid channel, categorical losses for
    a softmax over dataset.num_classes > 1 (no silent reinterpretation of either)."""
    loss = cfg.get("loss")
    if loss is None:
        return
    from seg.targets import check_target

    check_target(loss._target_, "loss")
    classes = cfg.dataset.num_classes
    kind = OmegaConf.get_type(loss)
    if kind is CompoundLossConfig:
        from seg.loss_terms import normalize_terms

        normalize_terms(OmegaConf.to_container(loss.terms, enum_to_str=True))
    if kind in (LossConfig, CompoundLossConfig):
        _require(classes == 1, "loss", (
            f"{loss.name} is a binary (sigmoid) loss but dataset.num_classes={classes} "
            f"(softmax): use a categorical loss, loss={' | '.join(CATEGORICAL_LOSSES)}"))
    if kind is not CategoricalLossConfig:
        return
    _require(classes > 1, "loss", (
        f"{loss.name} is a categorical (softmax) loss but dataset.num_classes=1 (one "
        f"sigmoid channel): use a binary loss, loss={' | '.join(BINARY_LOSSES)}, or set "
        "dataset.num_classes"))
    require_in(loss.gamma, "loss.gamma", 0)
    weights = loss.get("class_weights")
    if weights is not None:
        weights = list(weights)
        _require(len(weights) == classes and all(w >= 0 for w in weights), "loss.class_weights",
                 f"one weight >= 0 per class (dataset.num_classes={classes}), got {weights}")


def _validate_palette(cfg: DictConfig) -> None:
    palette = cfg.inference.get("palette")
    if palette is None:
        return
    key = "inference.palette"
    for color in palette:
        _require(len(color) == 3 and all(0 <= c <= 255 for c in color), key,
                 f"expected [[r, g, b], ...] in 0..255 (one per class), got {list(color)}")
    classes = cfg.dataset.num_classes
    _require(classes == 1 or len(palette) >= classes, key,
             f"one colour per class (index 0 = background): dataset.num_classes={classes}, "
             f"got {len(palette)} colours")


def _validate_mask(data: DictConfig) -> None:
    """dataset.mask: blur kernel, colour map entries, options that apply to binary masks only."""
    from seg.data.preprocess import validate_colors

    mask, key = data.mask, "dataset.mask"
    _require(
        mask.blur == 0 or (mask.blur >= 3 and mask.blur % 2 == 1),
        f"{key}.blur",
        f"an odd Gaussian kernel size >= 3, or 0 for none; got {mask.blur}",
    )
    problem = validate_colors(list(mask.colors), int(data.num_classes))
    _require(problem is None, f"{key}.colors", str(problem))
    if mask.colors or data.num_classes > 1:
        what = "colour-coded" if mask.colors else "multiclass index"
        _require(str(mask.binarize) == "fixed", f"{key}.binarize",
                 f"thresholds binary grey masks only; these are {what} masks (leave it fixed)")
        _require(mask.blur == 0, f"{key}.blur",
                 f"blurs binary grey masks only; these are {what} masks (leave it 0)")


_INFERENCE_BOUNDS = (
    Bound("threshold", 0, 1, low_open=True, high_open=True),
    Bound("batch_size", 1),
    Bound("overlay_alpha", 0, 1),
    Bound("tile_overlap", 0, 1, high_open=True),
    Bound("tile_sigma", 0, low_open=True),
    Bound("pad_multiple", 1),
)


def _validate_inference(inf: DictConfig) -> None:
    """inference: tiling and post-processing ranges."""
    size = inf.get("tile_size")
    if size is not None:
        _require(len(size) == 2 and all(v >= 1 for v in size), "inference.tile_size",
                 f"[height, width] of positive integers, or null; got {list(size)}")
    check_bounds(inf, "inference", _INFERENCE_BOUNDS)
    check_bounds(inf.postprocess, "inference.postprocess", tuple(
        Bound(name, 0, note="0 = off")
        for name in ("blur_sigma", "open_radius", "close_radius", "min_size")))


def resume_target(value: str | None) -> str | None:
    """trainer.resume as given: None, "latest" (for true/latest) or an MLflow run id."""
    if value is None:
        return None
    text = str(value).strip()
    if text.lower() in ("true", "latest"):
        return "latest"
    if text.lower() in ("false", ""):
        return None
    return text


def _validate_resume(value: str | None) -> None:
    target = resume_target(value)
    _require(
        target in (None, "latest") or bool(re.fullmatch(r"[0-9a-f]{32}", target)),
        "trainer.resume",
        f"true (the latest interrupted run of this config) or an MLflow run id, got {value!r}",
    )


def _validate_pretrained(model: DictConfig, data: DictConfig) -> None:
    """model.weights: a local file that exists (nothing downloads), fed images it expects."""
    from seg.models.pretrained import check_model_weights

    check_model_weights(model)
    if model.get("weights") is not None:
        _require(
            str(data.preprocess.normalize) == "unit",
            "dataset.preprocess.normalize",
            f"must be unit with pretrained weights (model.weights): the model applies the "
            f"ImageNet normalisation its encoder expects itself, got "
            f"{data.preprocess.normalize}",
        )


# Checked here, before the run opens: Keras would refuse some only when it builds the optimizer
# or a callback, after the run opened.
_TRAINER_BOUNDS = (
    Bound("epochs", 1),
    Bound("batch_size", 1),
    Bound("learning_rate", 0, low_open=True),
    *(Bound(name, 1, nullable=True)
      for name in ("steps_per_epoch", "validation_steps", "threads", "logical_cpus")),
    Bound("weight_decay", 0),
    Bound("momentum", 0, 1, high_open=True),
    Bound("clipvalue", 0, low_open=True, nullable=True, note="null = no clipping"),
    Bound("clipnorm", 0, low_open=True, nullable=True, note="null = no clipping"),
)
_CALLBACK_BOUNDS = {
    "early_stopping": (Bound("patience", 0, note="epochs"), Bound("min_delta", 0)),
    "reduce_lr": (
        Bound("factor", 0, 1, low_open=True, high_open=True,
              note="the learning rate is multiplied by it"),
        Bound("patience", 0, note="epochs"),
        Bound("min_lr", 0),
    ),
}


def _validate_callbacks(callbacks: DictConfig) -> None:
    for name, bounds in _CALLBACK_BOUNDS.items():
        if (node := callbacks.get(name)) is not None:
            check_bounds(node, f"callbacks.{name}", bounds)


_DATASET_BOUNDS = (
    Bound("num_classes", 1),
    Bound("mask_threshold", 0, 1, high_open=True, note="of the mask's full scale"),
    Bound("shuffle_buffer", 1),
    Bound("input_niceness", 0, 19, note="0 = off"),
    Bound("limit", 1, nullable=True),
)


def validate(cfg: DictConfig) -> None:
    """Check what the types cannot: ranges and the fields a task needs. Names the key."""
    missing = sorted(OmegaConf.missing_keys(cfg))
    _require(
        not missing,
        ", ".join(missing),
        "mandatory value(s) not set: give them on the command line, e.g. "
        + " ".join(f"{k}=..." for k in missing),
    )
    _require_finite(cfg)
    # NumPy's seed (keras.utils.set_random_seed) takes 0..2**32-1 only: fail here, not at start.
    require_in(cfg.seed, "seed", 0, 2**32 - 1)
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
    check_bounds(data, "dataset", _DATASET_BOUNDS)
    require_in(cfg.mlflow.get("outage_wait", 0.0), "mlflow.outage_wait", 0, note="seconds")
    _validate_preprocess(data)
    _validate_mask(data)
    _validate_classes(data)
    _validate_loss(cfg)
    if "train" in stages:
        for group in ("model", "loss", "trainer", "callbacks", "augmentation"):
            _require(cfg.get(group) is not None, group, "the train stage needs this group")
        from seg.targets import check_target

        check_target(cfg.model._target_, "model")
        _validate_pretrained(cfg.model, data)
        t = cfg.trainer
        check_bounds(t, "trainer", _TRAINER_BOUNDS)
        _validate_callbacks(cfg.callbacks)
        _validate_resume(t.resume)
        if str(t.strategy) == "multi_worker":
            from seg.distribute import MULTI_WORKER_UNSUPPORTED

            raise ConfigError(MULTI_WORKER_UNSUPPORTED)
        check_augmentation(cfg.augmentation)
    else:
        _require(
            cfg.checkpoint is not None,
            "checkpoint",
            "without the train stage, name a model: checkpoint=<run id | models:/... | "
            "runs:/... | path/to/model.keras>",
        )
    if "infer" in stages and "train" not in stages:
        _require(cfg.input is not None, "input", "name a folder, a glob or an image file")
    metric = cfg.get("optimized_metric")
    if metric and "loss" in metric:
        _require(str(cfg.optimized_direction) == "minimize", "optimized_direction",
                 f"optimized_metric={metric} is a loss: set optimized_direction=minimize")
    inf = cfg.inference
    _require(
        len(inf.overlay_color) == 3 and all(0 <= c <= 255 for c in inf.overlay_color),
        "inference.overlay_color",
        f"expected [r, g, b] in 0..255, got {list(inf.overlay_color)}",
    )
    _validate_palette(cfg)
    _validate_inference(inf)
    if "train" in stages:  # the model to be trained takes dataset.image_size: fail before fit
        from seg.tta import check_tta

        check_tta([str(getattr(op, "value", op)) for op in inf.tta], tuple(size))
