"""The augmentation group: one schema per op, the order they apply in, and their ranges."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from omegaconf import MISSING

from seg.config.bounds import (
    Bound,
    bounded,
    check_bounds,
    range_text,
    require,
    require_finite,
    require_in,
)


class FillMode(StrEnum):
    """What geometric ops show where the image has no source pixel (masks: the same pixels)."""

    reflect = "reflect"  # mirror the image at its border
    constant = "constant"  # augmentation.fill.value for images; background for masks
    nearest = "nearest"  # repeat the border pixel


@dataclass
class FillConfig:
    mode: FillMode = FillMode.reflect
    value: float = 0.0  # image value in [0, 1] for mode=constant


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


# The op fields of AugmentationConfig, in the order the ops apply.
GEOMETRIC_OPS = (
    "hflip",
    "vflip",
    "rotation",
    "zoom",
    "shear",
    "translation",
    "elastic",
    "smooth_distortion",
    "barrel",
    "pincushion",
)


PHOTOMETRIC_OPS = (
    "brightness",
    "contrast",
    "gamma",
    "hue",
    "saturation",
    "blur",
    "sharpen",
    "noise",
)


OP_NAMES = GEOMETRIC_OPS + PHOTOMETRIC_OPS


# Ranges of the augmentation ops' scalar fields, and of their [lo, hi] fields
# (_check_interval), by op.
_AUGMENTATION_BOUNDS: dict[str, tuple[Bound, ...]] = {
    op: bounded(f"augmentation.{op}", *bounds)
    for op, bounds in {
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
    }.items()
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
    require(
        len(values) == 2 and values[0] <= values[1],
        key,
        f"expected [lo, hi] with lo <= hi, got {values}",
    )
    require(
        low <= values[0] and values[1] <= high,
        key,
        f"must lie {range_text(low, high)}, got {values}",
    )


def check_augmentation(aug: Any, key: str = "augmentation") -> None:
    """Ranges of an augmentation config (dataclass or DictConfig); the error names the key."""
    require_finite(aug, key)
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
        require(
            len(c.angles) > 0 or c.range > 0,
            f"{key}.rotation",
            "give angles (a list, degrees) or a range > 0",
        )
    if (c := aug.zoom) is not None:
        require(
            0 < c.min_scale <= c.max_scale,
            f"{key}.zoom.min_scale",
            f"need 0 < min_scale <= max_scale, got {c.min_scale}, {c.max_scale}",
        )
    for op in ("barrel", "pincushion"):
        if (c := getattr(aug, op)) is not None:
            for i, centre in enumerate(c.centres):
                k = f"{key}.{op}.centres[{i}]"
                require(len(centre) == 2, k, f"expected [x, y] fractions, got {list(centre)}")
                for v in centre:
                    require_in(v, k, 0, 1)
