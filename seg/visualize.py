"""Pictures of masks: overlays and side-by-side panels (NumPy/OpenCV, uint8 RGB out)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def to_uint8_rgb(image: np.ndarray) -> np.ndarray:
    """Float [0,1] or uint8, grey or RGB -> uint8 HxWx3 (rounded and clipped, never wrapped)."""
    array = np.asarray(image)
    if array.dtype != np.uint8:
        array = np.clip(np.rint(array.astype(np.float32) * 255.0), 0, 255).astype(np.uint8)
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[:, :, 0]
    if array.ndim == 2:
        array = np.repeat(array[:, :, None], 3, axis=2)
    return array


def overlay(
    image: np.ndarray, mask: np.ndarray, color: Sequence[int] = (255, 0, 0), alpha: float = 0.4
) -> np.ndarray:
    """Alpha-blend ``color`` where ``mask`` is set, in float, so bright pixels cannot wrap."""
    base = to_uint8_rgb(image).astype(np.float32)
    selected = np.asarray(mask).astype(bool)
    if selected.ndim == 3:
        selected = selected[..., 0]
    tint = np.asarray(color, dtype=np.float32)
    base[selected] = (1.0 - alpha) * base[selected] + alpha * tint
    return np.clip(np.rint(base), 0, 255).astype(np.uint8)


def _stack(tiles: Sequence[np.ndarray], axis: int, gap: int) -> np.ndarray:
    """Tiles joined along ``axis`` (1: side by side, 0: one under the other), white gaps."""
    tiles = [to_uint8_rgb(t) for t in tiles]
    shape = list(tiles[0].shape)
    shape[axis] = gap
    spacer = np.full(shape, 255, np.uint8)
    parts: list[np.ndarray] = []
    for i, tile in enumerate(tiles):
        parts.extend([spacer, tile] if i else [tile])
    return np.concatenate(parts, axis=axis)


def hstack(tiles: Sequence[np.ndarray], gap: int = 2) -> np.ndarray:
    """Tiles of equal height side by side."""
    return _stack(tiles, 1, gap)


def vstack(rows: Sequence[np.ndarray], gap: int = 2) -> np.ndarray:
    """Rows of equal width one under the other."""
    return _stack(rows, 0, gap)


def comparison(
    image: np.ndarray, truth: np.ndarray | None, prediction: np.ndarray, alpha: float = 0.4
) -> np.ndarray:
    """[image | truth (green) | prediction (red)]: what a reviewer wants to see per case."""
    tiles = [image]
    if truth is not None:
        tiles.append(overlay(image, truth, (0, 200, 0), alpha))
    tiles.append(overlay(image, prediction, (255, 0, 0), alpha))
    return hstack(tiles)
