"""Reading images and masks into the one representation every stage uses.

Training, evaluation and inference all read through :func:`load_image` and :func:`load_mask`,
so colour order (RGB), bit depth normalisation and resizing are identical everywhere.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from seg.errors import DatasetError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")


def read_raw(path: Path) -> np.ndarray:
    """Decode a file as stored (any depth, 1-4 channels, BGR order); one clear error if not."""
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"{path}: file not found")
    if path.stat().st_size == 0:
        raise DatasetError(f"{path}: empty file (0 bytes): replace or remove it")
    # imdecode from bytes handles non-ASCII paths and never prints to stderr for a bad file.
    data = np.fromfile(str(path), dtype=np.uint8)
    array = cv2.imdecode(data, cv2.IMREAD_UNCHANGED)
    if array is None or array.size == 0:
        raise DatasetError(
            f"{path}: not a readable image (corrupt, truncated or unsupported format): "
            "replace or remove it"
        )
    return array


def _full_scale(array: np.ndarray) -> float:
    """The value that means "white" for this dtype (16-bit PNG/TIFF: 65535)."""
    if array.dtype == np.uint8:
        return 255.0
    if np.issubdtype(array.dtype, np.integer):
        return float(np.iinfo(array.dtype).max)
    return 1.0  # float images are taken to be in [0, 1] already


def to_rgb_float(array: np.ndarray, channels: int) -> np.ndarray:
    """Raw decoded array -> float32 HxWxC in [0, 1], RGB (C=3) or grey (C=1)."""
    scaled = array.astype(np.float32) / _full_scale(array)
    if scaled.ndim == 3 and scaled.shape[2] == 4:
        # Composite RGBA on white so transparent regions do not become black (background).
        alpha = scaled[:, :, 3:4]
        scaled = scaled[:, :, :3] * alpha + (1.0 - alpha)
    if scaled.ndim == 3 and scaled.shape[2] == 1:
        scaled = scaled[:, :, 0]
    if scaled.ndim == 2:
        grey = scaled
        out = grey[:, :, None] if channels == 1 else np.repeat(grey[:, :, None], 3, axis=2)
        return np.ascontiguousarray(np.clip(out, 0.0, 1.0))
    rgb = cv2.cvtColor(scaled, cv2.COLOR_BGR2RGB)
    if channels == 1:
        return np.clip(cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)[:, :, None], 0.0, 1.0)
    return np.clip(rgb, 0.0, 1.0)


def resize(array: np.ndarray, height: int, width: int, *, nearest: bool = False) -> np.ndarray:
    """Resize HxW(xC) keeping the channel axis; area when shrinking, linear when enlarging."""
    if array.shape[0] == height and array.shape[1] == width:
        return array
    if nearest:
        interpolation = cv2.INTER_NEAREST
    elif height < array.shape[0] and width < array.shape[1]:
        interpolation = cv2.INTER_AREA
    else:
        interpolation = cv2.INTER_LINEAR
    out = cv2.resize(array, (width, height), interpolation=interpolation)
    if array.ndim == 3 and out.ndim == 2:
        out = out[:, :, None]
    return out


def load_image(path: Path, size: tuple[int, int] | None, channels: int) -> np.ndarray:
    """An image as the model sees it: float32 HxWxC in [0, 1], RGB, resized to (h, w)."""
    image = to_rgb_float(read_raw(path), channels)
    if size is not None:
        image = resize(image, *size)
    return image.astype(np.float32, copy=False)


def mask_to_labels(raw: np.ndarray, threshold: float, num_classes: int) -> np.ndarray:
    """Raw mask -> HxW uint8 labels: {0,1} for binary, class indices for multiclass.

    Binary masks may be stored 0/255 (noisy JPEG included) or 0/1; colour masks are converted
    to grey first. Multiclass masks are index images (pixel value = class).
    """
    if raw.ndim == 3:
        raw = cv2.cvtColor(raw[:, :, :3], cv2.COLOR_BGR2GRAY) if raw.shape[2] >= 3 else raw[..., 0]
    if num_classes > 1:
        return raw.astype(np.uint8)
    scale = _full_scale(raw)
    if np.issubdtype(raw.dtype, np.integer) and raw.max() <= 1:
        scale = 1.0  # a 0/1 label image: its foreground is 1, not 255
    return (raw.astype(np.float32) > threshold * scale).astype(np.uint8)


def _listing_values(values: np.ndarray, shown: int = 5) -> str:
    head = ", ".join(str(int(v)) for v in values[:shown])
    return head + (f" ... ({len(values)} distinct)" if len(values) > shown else "")


def load_mask(
    path: Path, size: tuple[int, int] | None, threshold: float, num_classes: int = 1
) -> np.ndarray:
    """A mask as the loss sees it: HxW uint8 labels, resized to (h, w).

    Binary masks are resized as grey levels and thresholded afterwards, which keeps edges
    smooth and the mask binary; index masks are resized with nearest neighbour.
    """
    raw = read_raw(path)
    if num_classes > 1:
        labels = mask_to_labels(raw, threshold, num_classes)
        if labels.max(initial=0) >= num_classes:
            # one_hot would silently turn such pixels into all-zero vectors (no class at all).
            bad = np.unique(labels[labels >= num_classes])
            raise DatasetError(
                f"{path}: mask values {_listing_values(bad)} are not class indices "
                f"0..{num_classes - 1}: multiclass masks must be index images (pixel value = "
                "class); check dataset.num_classes"
            )
        return labels if size is None else resize(labels, *size, nearest=True)
    labels = mask_to_labels(raw, threshold, num_classes).astype(np.float32)
    if size is not None:
        labels = resize(labels, *size)
    return (labels >= 0.5).astype(np.uint8)


def write_png(path: Path, rgb_or_grey: np.ndarray) -> None:
    """Write uint8/uint16 RGB or grey as PNG (converting RGB to OpenCV's BGR)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    array = rgb_or_grey
    if array.ndim == 3 and array.shape[2] == 3:
        array = cv2.cvtColor(array, cv2.COLOR_RGB2BGR)
    if not cv2.imwrite(str(path), array):
        raise DatasetError(f"{path}: could not write the image (check the folder is writable)")
