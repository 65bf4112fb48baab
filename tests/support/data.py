"""Generated data for tests: masks, images written the way datasets store them, and where the
real datasets shared between checkouts live (../shared/data; tests using them skip without)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

# Real datasets shared between checkouts (../shared/data next to the project); tests using them
# skip when they are absent.
SHARED_DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"

SPLITS = ("train", "valid", "test")


def circle_mask(height: int, width: int, center: tuple[int, int], radius: int) -> np.ndarray:
    """HxW uint8 mask, 255 inside the filled circle centred at (x, y), 0 elsewhere."""
    mask = np.zeros((height, width), np.uint8)
    cv2.circle(mask, (int(center[0]), int(center[1])), int(radius), 255, thickness=-1)
    return mask


def image_from_mask(mask: np.ndarray, rng: np.random.Generator, noise: float = 20.0) -> np.ndarray:
    """HxWx3 uint8 RGB image whose intensity follows ``mask`` (bright foreground) plus noise."""
    base = np.where(mask > 0, 200.0, 60.0)[..., None] * np.array([1.0, 0.8, 0.6])
    noisy = base + rng.normal(0.0, noise, (*mask.shape, 3))
    return np.clip(np.rint(noisy), 0, 255).astype(np.uint8)


def write_image(path: Path, array: np.ndarray, **params: int) -> Path:
    """Write an RGB (HxWx3, converted to OpenCV's BGR), RGBA or grey array with OpenCV.

    ``params`` are OpenCV imwrite flags by name:
    ``write_image(path, array, IMWRITE_JPEG_QUALITY=50)``.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    if array.ndim == 3 and array.shape[2] == 3:
        array = cv2.cvtColor(array, cv2.COLOR_RGB2BGR)
    elif array.ndim == 3 and array.shape[2] == 4:
        array = cv2.cvtColor(array, cv2.COLOR_RGBA2BGRA)
    flags = [v for name, value in params.items() for v in (getattr(cv2, name), value)]
    assert cv2.imwrite(str(path), array, flags), path
    return path
