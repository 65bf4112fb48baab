"""Pixel steps shared by the converters: resize, offline augmentation, upscaling.

Image and mask always move together; masks are resampled with nearest neighbour so binary masks
stay binary and index masks keep their classes.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import cv2
import numpy as np

from seg.data.io import resize
from seg.errors import ConfigError

Pair = tuple[np.ndarray, np.ndarray]  # image, mask (same height and width)

_ROTATION = re.compile(r"rot(\d{1,3})")
AUGMENTATION_HELP = (
    "hflip (mirror left-right), vflip (top-bottom), rot<degrees> (counter-clockwise, e.g. rot90, "
    "rot30; quarter turns are exact, other angles interpolate the image and reflect at borders)"
)


def resize_pair(image: np.ndarray, mask: np.ndarray, size: tuple[int, int]) -> Pair:
    """Both to (height, width): the image area-averaged when shrinking (linear when
    enlarging), the mask nearest."""
    h, w = size
    return resize(image, h, w), resize(mask, h, w, nearest=True)


def check_augmentations(names: list[str] | tuple[str, ...]) -> tuple[str, ...]:
    """Validate ``--augment`` names; the error lists what exists."""
    for name in names:
        match = _ROTATION.fullmatch(name)
        if name in ("hflip", "vflip") or (match and 0 < int(match.group(1)) < 360):
            continue
        raise ConfigError(f"--augment {name}: unknown; use {AUGMENTATION_HELP}")
    if len(set(names)) != len(names):
        raise ConfigError(f"--augment {' '.join(names)}: an operation is listed twice")
    return tuple(names)


def _rotate(array: np.ndarray, degrees: int, nearest: bool) -> np.ndarray:
    if degrees % 90 == 0:
        return np.ascontiguousarray(np.rot90(array, degrees // 90))  # exact pixel permutation
    h, w = array.shape[:2]
    matrix = cv2.getRotationMatrix2D((w / 2 - 0.5, h / 2 - 0.5), degrees, 1.0)
    flags = cv2.INTER_NEAREST if nearest else cv2.INTER_LINEAR
    return cv2.warpAffine(array, matrix, (w, h), flags=flags, borderMode=cv2.BORDER_REFLECT_101)


def augment_pair(image: np.ndarray, mask: np.ndarray, name: str) -> Pair:
    """One named operation (see :data:`AUGMENTATION_HELP`) applied to image and mask alike."""
    if name == "hflip":
        return np.ascontiguousarray(image[:, ::-1]), np.ascontiguousarray(mask[:, ::-1])
    if name == "vflip":
        return np.ascontiguousarray(image[::-1]), np.ascontiguousarray(mask[::-1])
    degrees = int(name[3:])
    return _rotate(image, degrees, nearest=False), _rotate(mask, degrees, nearest=True)


def augment_offline(
    image: np.ndarray, mask: np.ndarray, names: tuple[str, ...]
) -> Iterator[tuple[str, np.ndarray, np.ndarray]]:
    """Each operation's copy of a pair, named; the original is not repeated.

    Offline augmentation runs after the split (datasets_prep.writer): copies of a training image
    stay in train, so no rotated twin of a test image is ever trained on.
    """
    for name in names:
        yield (name, *augment_pair(image, mask, name))


def upscale_pair(image: np.ndarray, mask: np.ndarray, longest: int) -> Pair:
    """Enlarge so the longer side is ``longest`` (aspect kept): the image bicubic, the mask
    nearest. For demos of tiled inference on very large images."""
    h, w = image.shape[:2]
    scale = longest / max(h, w)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    big = cv2.resize(image, size, interpolation=cv2.INTER_CUBIC)
    return big, cv2.resize(mask, size, interpolation=cv2.INTER_NEAREST_EXACT)
