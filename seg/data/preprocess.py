"""Image and mask preprocessing: the one implementation training, evaluation and inference share.

Everything here works on NumPy arrays that :mod:`seg.data.io` has decoded; io calls it from
``load_image``/``prepare_image`` and ``load_mask``, and ``seg.inference.predictor.predict_files``
calls the same ``prepare_image``, so a model never sees pixels prepared another way than it was
trained on.

Image operations run on the decoded image in [0, 1] *after* resizing to the model's size, so
kernels (sharpening sigma, CLAHE tiles) mean the same thing whatever the size of the file, and
in this fixed order::

    invert -> gamma -> contrast -> CLAHE -> sharpen -> colour conversion -> normalisation

Inversion comes first so gamma/contrast act on the image as the model will see it (e.g. bright
nuclei after inverting a bright-field slide); the intensity operations all need values in
[0, 1] (each clips back into it), so they come before the colour conversion (whose channels are
not intensities, e.g. hue) and before normalisation (which leaves [0, 1]). When the model gets
grey input, the intensity operations act on the luma. Training splits the chain there
(:func:`adjust_intensities`, augmentation, then :func:`encode_for_model`) so photometric
augmentation acts on intensities too; evaluation and inference run both halves at once.

Masks: binary masks are thresholded (fixed, Otsu or triangle, optionally after a blur);
multiclass masks are index images, or colour-coded images mapped by a colour map.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from seg.config.dataset import channel_problem, resolve_color
from seg.errors import ConfigError, DatasetError

log = logging.getLogger(__name__)

IMAGENET_MEAN = (0.485, 0.456, 0.406)  # RGB, of images in [0, 1] (torchvision/Keras "torch")
IMAGENET_STD = (0.229, 0.224, 0.225)

COLORS = ("auto", "rgb", "grey", "hsv", "lab")
NORMALIZATIONS = ("unit", "standardize", "imagenet")
BINARIZATIONS = ("fixed", "otsu", "triangle")
UNKNOWN_COLORS = ("error", "background", "nearest")

# Otsu/triangle split any histogram in two, even the compression noise of an all-background
# mask. A mask whose grey levels span less than this fraction of full scale holds one class
# only, so the fixed threshold decides it instead.
MIN_AUTO_THRESHOLD_SPREAD = 0.25


# --------------------------------------------------------------------------- specs


@dataclass(frozen=True)
class Clahe:
    """Contrast-limited adaptive histogram equalisation (OpenCV, on 8-bit levels)."""

    clip_limit: float = 2.0
    tile_grid: tuple[int, int] = (8, 8)  # (rows, columns) of tiles


@dataclass(frozen=True)
class ImagePreprocess:
    """``dataset.preprocess``: what is done to an image after decoding and resizing."""

    invert: bool = False
    gamma: float = 1.0  # x -> x ** gamma
    contrast: float = 1.0  # (x - channel mean) * contrast + channel mean
    clahe: Clahe | None = None
    sharpen: float = 0.0  # unsharp-mask amount: x + sharpen * (x - gaussian(x, sharpen_sigma))
    sharpen_sigma: float = 1.0
    color: str = "auto"  # one of COLORS
    normalize: str = "unit"  # one of NORMALIZATIONS

    def __post_init__(self) -> None:
        # A saved spec is read back without the config schema: check what it names exists.
        _check_choice("color", self.color, COLORS)
        _check_choice("normalize", self.normalize, NORMALIZATIONS)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> ImagePreprocess:
        """From a plain mapping (config container or saved JSON); unknown keys raise TypeError."""
        values = dict(data or {})
        clahe = dict(values.pop("clahe", None) or {})
        grid = clahe.pop("tile_grid", Clahe.tile_grid)
        clip = float(clahe.pop("clip_limit", 0.0))
        if clahe:
            raise TypeError(f"unknown clahe keys {sorted(clahe)}")
        # The config says "off" with clip_limit 0 (settable from the command line); here None.
        spec = Clahe(clip, (int(grid[0]), int(grid[1]))) if clip > 0 else None
        return cls(clahe=spec, **{k: _plain(v) for k, v in values.items()})

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        if self.clahe is not None:
            out["clahe"]["tile_grid"] = list(self.clahe.tile_grid)
        return out


@dataclass(frozen=True)
class MaskPreprocess:
    """``dataset.mask`` (the fixed threshold itself stays ``dataset.mask_threshold``)."""

    binarize: str = "fixed"  # one of BINARIZATIONS
    blur: int = 0  # odd Gaussian kernel size applied before thresholding; 0 = off
    colors: tuple[tuple[tuple[int, int, int], int], ...] = field(default=())  # ((r,g,b), label)
    unknown_colors: str = "error"  # one of UNKNOWN_COLORS
    invert: bool = False  # binary masks: the foreground is the dark class (1 - the binary mask)

    def __post_init__(self) -> None:
        _check_choice("binarize", self.binarize, BINARIZATIONS)
        _check_choice("unknown_colors", self.unknown_colors, UNKNOWN_COLORS)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> MaskPreprocess:
        values = dict(data or {})
        colors = tuple(
            ((int(c["color"][0]), int(c["color"][1]), int(c["color"][2])), int(c["label"]))
            for c in values.pop("colors", None) or ()
        )
        return cls(colors=colors, **{k: _plain(v) for k, v in values.items()})

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["colors"] = [{"color": list(rgb), "label": label} for rgb, label in self.colors]
        return out


def differences(model: Mapping[str, Any], config: Mapping[str, Any]) -> str:
    """'key=model value (this config: value), ...' for the keys whose values differ."""
    return ", ".join(
        f"{key}={model.get(key)!r} (this config: {config.get(key)!r})"
        for key in sorted(set(model) | set(config))
        if model.get(key) != config.get(key)
    )


def _check_choice(key: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ValueError(f"{key}={value!r} is not one of {', '.join(choices)}")


def _plain(value: Any) -> Any:
    """Enum members (from a typed config) -> their string value."""
    return getattr(value, "value", value)


def check_channels(spec: ImagePreprocess, channels: int) -> None:
    """Raise the config error of :func:`channel_problem` (e.g. a model with other channels)."""
    problem = channel_problem(spec.color, spec.normalize, channels)
    if problem is not None:
        raise ConfigError(f"{problem[0]}: {problem[1]}")


def working_channels(spec: ImagePreprocess, channels: int) -> int:
    """Channels to decode to: 1 when the model gets grey (ops then act on luma), else RGB."""
    return 1 if resolve_color(spec.color, channels) == "grey" else 3


# --------------------------------------------------------------------------- image operations


def _keep_channels(out: np.ndarray, like: np.ndarray) -> np.ndarray:
    """OpenCV drops a single channel axis: put it back."""
    return out[:, :, None] if like.ndim == 3 and out.ndim == 2 else out


def invert(image: np.ndarray) -> np.ndarray:
    return 1.0 - image


def adjust_gamma(image: np.ndarray, gamma: float) -> np.ndarray:
    """x -> x ** gamma on [0, 1]: gamma 2 maps mid-grey 0.5 to 0.25."""
    return np.power(np.clip(image, 0.0, 1.0), gamma)


def adjust_contrast(image: np.ndarray, factor: float) -> np.ndarray:
    """Scale each channel's deviation from its mean (as tf.image.adjust_contrast), clipped."""
    mean = image.mean(axis=(0, 1), keepdims=True)
    return np.clip((image - mean) * factor + mean, 0.0, 1.0)


def _clahe_8bit(channel: np.ndarray, clahe: Clahe) -> np.ndarray:
    """CLAHE of one [0,1] channel. 8-bit on purpose: with 16-bit OpenCV spreads a tile over
    65536 bins, its clip limit falls to one count per bin and nothing is limited any more."""
    rows, cols = clahe.tile_grid
    op = cv2.createCLAHE(clipLimit=float(clahe.clip_limit), tileGridSize=(int(cols), int(rows)))
    levels = np.rint(np.clip(channel, 0.0, 1.0) * 255.0).astype(np.uint8)
    return op.apply(levels).astype(np.float32) / 255.0


def apply_clahe(image: np.ndarray, clahe: Clahe) -> np.ndarray:
    """CLAHE on grey, or on the lightness of a colour image (so hues are not shifted)."""
    if image.shape[2] == 1:
        return _clahe_8bit(image[:, :, 0], clahe)[:, :, None]
    lab = cv2.cvtColor(image.astype(np.float32), cv2.COLOR_RGB2Lab)  # L in [0, 100]
    lab[:, :, 0] = _clahe_8bit(lab[:, :, 0] / 100.0, clahe) * 100.0
    return np.clip(cv2.cvtColor(lab, cv2.COLOR_Lab2RGB), 0.0, 1.0)


def unsharp_mask(image: np.ndarray, amount: float, sigma: float) -> np.ndarray:
    """x + amount * (x - gaussian(x)): boosts detail finer than ``sigma`` pixels, clipped."""
    blurred = _keep_channels(cv2.GaussianBlur(image, (0, 0), sigma), image)
    return np.clip(image + amount * (image - blurred), 0.0, 1.0)


def convert_color(image: np.ndarray, color: str, channels: int) -> np.ndarray:
    """Working image (grey HxWx1 or RGB HxWx3, [0,1]) -> what the model gets, in [0, 1]:

    rgb: R, G, B.  grey: BT.601 luma (repeated when ``channels`` is 3).
    hsv: H/360, S, V (hue is circular: 0 and 1 are both red).
    lab: L/100, (a+128)/255, (b+128)/255 (CIE L*a*b*, D65).
    """
    color = resolve_color(color, channels)
    if color == "grey":
        grey = image if image.shape[2] == 1 else cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)[..., None]
        return grey if channels == 1 else np.repeat(grey, 3, axis=2)
    rgb = image if image.shape[2] == 3 else np.repeat(image, 3, axis=2)
    if color == "rgb":
        return rgb
    if color == "hsv":
        hsv = cv2.cvtColor(rgb.astype(np.float32), cv2.COLOR_RGB2HSV)  # H in [0, 360)
        return hsv * np.array([1 / 360.0, 1.0, 1.0], np.float32)
    if color == "lab":
        lab = cv2.cvtColor(rgb.astype(np.float32), cv2.COLOR_RGB2Lab)
        return (lab + np.array([0.0, 128.0, 128.0], np.float32)) / np.array(
            [100.0, 255.0, 255.0], np.float32
        )
    raise ValueError(f"unknown colour conversion {color!r}; expected one of {COLORS}")


def normalize(image: np.ndarray, mode: str) -> np.ndarray:
    """unit: unchanged [0, 1]. standardize: per image, over all pixels and channels, like
    tf.image.per_image_standardization (std floored at 1/sqrt(N): a flat image becomes 0).
    imagenet: per channel (x - mean) / std with ImageNet's RGB statistics."""
    if mode == "unit":
        return image
    if mode == "standardize":
        # Statistics in float64: float32 sums leave a flat image slightly off 0.
        mean = float(image.mean(dtype=np.float64))
        std = max(float(image.std(dtype=np.float64)), 1.0 / np.sqrt(image.size))
        return (image - mean) / std
    if mode == "imagenet":
        return (image - np.array(IMAGENET_MEAN, np.float32)) / np.array(IMAGENET_STD, np.float32)
    raise ValueError(f"unknown normalisation {mode!r}; expected one of {NORMALIZATIONS}")


def adjust_intensities(image: np.ndarray, spec: ImagePreprocess) -> np.ndarray:
    """The intensity steps (invert, gamma, contrast, CLAHE, sharpen): a working image (grey or
    RGB in [0, 1]) stays one. Photometric augmentation runs after these, on such an image."""
    x = image.astype(np.float32, copy=False)
    if spec.invert:
        x = invert(x)
    if spec.gamma != 1.0:
        x = adjust_gamma(x, spec.gamma)
    if spec.contrast != 1.0:
        x = adjust_contrast(x, spec.contrast)
    if spec.clahe is not None:
        x = apply_clahe(x, spec.clahe)
    if spec.sharpen > 0.0:
        x = unsharp_mask(x, spec.sharpen, spec.sharpen_sigma)
    return x


def encode_for_model(image: np.ndarray, channels: int, spec: ImagePreprocess) -> np.ndarray:
    """The encoding steps (colour conversion, normalisation): a working image -> the model's
    float32 HxWx``channels``. Training applies them after augmentation, inference right away."""
    x = normalize(convert_color(image, spec.color, channels), spec.normalize)
    return np.ascontiguousarray(x, dtype=np.float32)


def encoding_is_identity(spec: ImagePreprocess, channels: int) -> bool:
    """The working image already is the model input: RGB or grey as decoded, unit range."""
    color = resolve_color(spec.color, channels)
    kept = color == "rgb" or (color == "grey" and channels == 1)
    return kept and spec.normalize == "unit"


def preprocess_image(image: np.ndarray, channels: int, spec: ImagePreprocess) -> np.ndarray:
    """Decoded (and resized) working image in [0, 1] -> the model's float32 HxWx``channels``.

    The default spec returns the input unchanged (as float32): RGB or grey in [0, 1].
    """
    return encode_for_model(adjust_intensities(image, spec), channels, spec)


def for_display(image: np.ndarray) -> np.ndarray:
    """A model input shown to a person: kept if in [0, 1], else each channel stretched to it
    (standardised or ImageNet-normalised inputs would otherwise show clipped to black/white)."""
    if image.size == 0 or (image.min() >= 0.0 and image.max() <= 1.0):
        return image
    low = image.min(axis=(-3, -2), keepdims=True)
    span = np.maximum(image.max(axis=(-3, -2), keepdims=True) - low, 1e-6)
    return ((image - low) / span).astype(np.float32)


# --------------------------------------------------------------------------- masks


def full_scale(array: np.ndarray) -> float:
    """The value that means "white" for this dtype (16-bit PNG/TIFF: 65535)."""
    if array.dtype == np.uint8:
        return 255.0
    if np.issubdtype(array.dtype, np.integer):
        return float(np.iinfo(array.dtype).max)
    return 1.0  # float images are taken to be in [0, 1] already


# A 0/1 label mask's foreground is 1, not full scale; saved as JPEG, the pixels along its edges
# stray a level or two. A mask peaking at most this high whose non-zero pixels are mostly
# exactly 1 is read as labels 0/1. A grey-level mask (0/255, 0/65535) with any foreground peaks
# far above it, and the compression noise of an all-background one spreads over several levels.
LABEL_MASK_PEAK = 8


def _is_label_mask(grey: np.ndarray, peak: int) -> bool:
    if peak > LABEL_MASK_PEAK:
        return False
    return 2 * int(np.count_nonzero(grey == 1)) >= int(np.count_nonzero(grey))


def mask_scale(grey: np.ndarray) -> float:
    """The value that means "foreground" in full for a grey mask: 1 for 0/1 labels (JPEG noise
    included), 255 for 8-bit levels stored in a 16-bit file, else the dtype's full scale."""
    if not np.issubdtype(grey.dtype, np.integer):
        return full_scale(grey)
    peak = int(grey.max(initial=0))
    if _is_label_mask(grey, peak):
        return 1.0
    if grey.dtype != np.uint8 and peak <= 255:
        return 255.0
    return full_scale(grey)


def mask_grey(raw: np.ndarray) -> np.ndarray:
    """Decoded mask (OpenCV's BGR order) -> HxW grey in its own dtype."""
    if raw.ndim == 3:
        return cv2.cvtColor(raw[:, :, :3], cv2.COLOR_BGR2GRAY) if raw.shape[2] >= 3 else raw[..., 0]
    return raw


def binarize(raw: np.ndarray, threshold: float, spec: MaskPreprocess) -> np.ndarray:
    """Grey or colour mask of any depth -> HxW uint8 {0, 1} (inverted with ``spec.invert``).

    ``threshold`` is a fraction of the mask's scale (:func:`mask_scale`: 0/1 label masks, even
    noisy JPEG ones, count 1 as full). Otsu/triangle choose a threshold per mask on 8-bit levels
    (16-bit masks are scaled down), except on a nearly constant mask (see
    MIN_AUTO_THRESHOLD_SPREAD), where ``threshold`` is used.
    """
    grey = mask_grey(raw)
    scale = mask_scale(grey)
    values = grey.astype(np.float32)
    if spec.blur > 0:
        values = cv2.GaussianBlur(values, (spec.blur, spec.blur), 0)
    if spec.binarize != "fixed":
        levels = np.rint(np.clip(values / scale, 0.0, 1.0) * 255.0).astype(np.uint8)
        spread = (int(levels.max()) - int(levels.min())) / 255.0
        if spread >= MIN_AUTO_THRESHOLD_SPREAD:
            method = cv2.THRESH_OTSU if spec.binarize == "otsu" else cv2.THRESH_TRIANGLE
            level, _ = cv2.threshold(levels, 0, 1, cv2.THRESH_BINARY | method)
            return _inverted((levels > level).astype(np.uint8), spec)
    return _inverted((values > threshold * scale).astype(np.uint8), spec)


def _inverted(mask: np.ndarray, spec: MaskPreprocess) -> np.ndarray:
    """``dataset.mask.invert``: the dark class is the foreground."""
    return 1 - mask if spec.invert else mask


_warned_unknown: set[str] = set()  # files already reported (tf.data reads a file every epoch)


def _rgb_codes(raw: np.ndarray, path: Path) -> np.ndarray:
    """8-bit mask -> HxW int32 codes r<<16 | g<<8 | b (grey v counts as (v, v, v))."""
    if raw.dtype != np.uint8:
        raise DatasetError(
            f"{path}: a {raw.dtype} mask cannot be matched against dataset.mask.colors "
            "(8-bit [r, g, b] values); save colour-coded masks as 8-bit PNG or BMP"
        )
    if raw.ndim == 2 or raw.shape[2] == 1:
        grey = raw.reshape(raw.shape[0], raw.shape[1]).astype(np.int32)
        return grey << 16 | grey << 8 | grey
    bgr = raw[:, :, :3].astype(np.int32)
    return bgr[:, :, 2] << 16 | bgr[:, :, 1] << 8 | bgr[:, :, 0]


def _code_rgb(code: int) -> tuple[int, int, int]:
    return (code >> 16) & 255, (code >> 8) & 255, code & 255


def _unknown_listing(codes: np.ndarray, counts: np.ndarray, shown: int = 8) -> str:
    order = np.argsort(-counts)
    parts = [f"{list(_code_rgb(int(codes[i])))} ({int(counts[i])} px)" for i in order[:shown]]
    more = len(codes) - shown
    return ", ".join(parts) + (f" ... and {more} more colours" if more > 0 else "")


def _nearest_labels(codes: np.ndarray, spec: MaskPreprocess) -> np.ndarray:
    """Label of the palette colour nearest (RGB Euclidean) to each code."""
    palette = np.array([rgb for rgb, _ in spec.colors], np.float32)
    rgb = np.array([_code_rgb(int(c)) for c in codes], np.float32)
    nearest = np.argmin(((rgb[:, None, :] - palette[None]) ** 2).sum(-1), axis=1)
    return np.array([label for _, label in spec.colors], np.int64)[nearest]


def color_labels(raw: np.ndarray, spec: MaskPreprocess, path: Path) -> np.ndarray:
    """Colour-coded mask -> HxW uint8 class indices through ``spec.colors``.

    Colours outside the map: ``error`` (default) raises naming the file and the colours, since
    a mistyped map entry would otherwise erase a class without anyone noticing; ``background``
    maps them to class 0 (warning once per file); ``nearest`` to the closest mapped colour
    (for JPEG or anti-aliased colour masks).
    """
    codes = _rgb_codes(raw, path)
    uniques, inverse, counts = np.unique(codes, return_inverse=True, return_counts=True)
    mapping = {r << 16 | g << 8 | b: label for (r, g, b), label in spec.colors}
    labels = np.array([mapping.get(int(c), -1) for c in uniques], np.int64)
    unknown = labels < 0
    if unknown.any():
        listing = _unknown_listing(uniques[unknown], counts[unknown])
        if spec.unknown_colors == "error":
            raise DatasetError(
                f"{path}: mask colours not in dataset.mask.colors: {listing}; add them to "
                "dataset.mask.colors, or set dataset.mask.unknown_colors=background|nearest"
            )
        if spec.unknown_colors == "nearest":
            labels[unknown] = _nearest_labels(uniques[unknown], spec)
        else:
            labels[unknown] = 0
            if str(path) not in _warned_unknown:
                _warned_unknown.add(str(path))
                log.warning(
                    "%s: colours not in dataset.mask.colors mapped to background: %s", path, listing
                )
    return labels[inverse.reshape(codes.shape)].astype(np.uint8)


def mask_labels(
    raw: np.ndarray, threshold: float, num_classes: int, spec: MaskPreprocess, path: Path
) -> np.ndarray:
    """Decoded mask -> HxW labels at the file's size: uint8 {0,1} for binary (thresholded),
    class indices for multiclass (colour map when ``spec.colors`` is set: uint8; else the
    index image in its own dtype, so that a 16-bit value cannot wrap into a valid class)."""
    if spec.colors:
        return color_labels(raw, spec, path)
    if num_classes > 1:
        return mask_grey(raw)
    return binarize(raw, threshold, spec)
