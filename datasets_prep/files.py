"""Image and mask files as converters read and write them.

Arrays stay in OpenCV's channel order (BGR/BGRA or grey) and their own bit depth from reading to
writing, so nothing is converted twice. A source that needs no change is copied byte for byte
(no JPEG recompression); anything else is written as a lossless PNG.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import cv2
import numpy as np

from seg.data.io import read_raw
from seg.errors import DatasetError

# An unchanged file with one of these suffixes is copied as is; other formats (BMP, TIFF, ...)
# are rewritten as PNG, which the project's loader reads everywhere and stores compactly.
COPY_SUFFIXES = (".png", ".jpg", ".jpeg")

Source = Path | np.ndarray  # a file to copy or decode, or pixels already in memory


def read_image(path: Path) -> np.ndarray:
    """A file's pixels as stored (one clear error naming the file if unreadable)."""
    return read_raw(Path(path))


def read_mask(path: Path) -> np.ndarray:
    """A mask file as stored, but a palette PNG gives its class indices, not their colours
    (as seg reads masks: seg.data.io.read_mask)."""
    return read_raw(Path(path), palette_indices=True)


def read_grey(path: Path) -> np.ndarray:
    """A mask file as one channel: grey (or palette indices) kept, colour reduced to its
    luma."""
    array = read_mask(path)
    if array.ndim == 3:
        code = cv2.COLOR_BGRA2GRAY if array.shape[2] == 4 else cv2.COLOR_BGR2GRAY
        array = cv2.cvtColor(array, code)
    return array


def without_alpha(array: np.ndarray) -> np.ndarray:
    """BGRA -> BGR (dataset images carry an opaque alpha channel at most)."""
    if array.ndim == 3 and array.shape[2] == 4:
        return cv2.cvtColor(array, cv2.COLOR_BGRA2BGR)
    return array


def load(source: Source) -> np.ndarray:
    return source if isinstance(source, np.ndarray) else read_image(source)


def load_mask(source: Source) -> np.ndarray:
    return source if isinstance(source, np.ndarray) else read_mask(source)


def binary(mask: np.ndarray) -> np.ndarray:
    """A boolean (or 0/1) mask as the 0/255 uint8 the project's binary masks are."""
    return np.where(mask > 0, 255, 0).astype(np.uint8)


def write(source: Source, folder: Path, stem: str) -> Path:
    """Write ``folder/<stem><suffix>``: a copy of an unchanged file, else a PNG."""
    folder.mkdir(parents=True, exist_ok=True)
    if isinstance(source, Path) and source.suffix.lower() in COPY_SUFFIXES:
        out = folder / f"{stem}{source.suffix.lower()}"
        shutil.copyfile(source, out)
        return out
    out = folder / f"{stem}.png"
    pixels = load(source)
    if pixels.dtype.kind == "f":  # [0, 1] floats (TIFF): PNG has no floats, 16 bits keep them
        pixels = np.rint(np.clip(pixels, 0.0, 1.0) * 65535).astype(np.uint16)
    if not cv2.imwrite(str(out), pixels):
        raise DatasetError(f"{out}: could not write the image (check the folder is writable)")
    return out
