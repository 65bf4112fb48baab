"""Sliding-window (tiled) inference: an image of any size predicted as overlapping tiles.

The shape of MONAI's ``sliding_window_inference`` and nnU-Net's blending: tiles of the model's
input size cover the image with at least ``overlap`` (a fraction of the tile) between
neighbours, the first flush with the top/left border and the last flush with the bottom/right
one (so no tile hangs over the image unless the image is smaller than a tile, which is then
padded by reflection). Tiles are predicted ``batch_size`` at a time and every output pixel is
the weighted mean of the tiles covering it; Gaussian weights (centre 1, falling towards the
edges, where a tile lacks context) make the transitions between tiles invisible.

Pure NumPy around a ``predict`` callable ((B, h, w, C) -> (B, h, w, K)), so the same code serves
the model, test-time augmentation around it, and tests with hand-made functions.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator

import numpy as np

__all__ = ["Predict", "gaussian_weights", "sliding_window", "tile_grid", "tile_starts"]

Predict = Callable[[np.ndarray], np.ndarray]

#: nnU-Net's choice: sigma = 1/8 of the tile side.
DEFAULT_SIGMA = 0.125


def tile_starts(length: int, tile: int, overlap: float) -> list[int]:
    """Offsets of tiles of size ``tile`` covering ``[0, length)``, neighbours overlapping by at
    least ``overlap * tile`` pixels, spread evenly from 0 to ``length - tile``."""
    if not 0.0 <= overlap < 1.0:
        raise ValueError(f"overlap must be in [0, 1), got {overlap}")
    if length <= tile:
        return [0]
    stride = max(1, int(tile * (1.0 - overlap)))
    count = math.ceil((length - tile) / stride) + 1
    step = (length - tile) / (count - 1)
    return [round(i * step) for i in range(count)]


def tile_grid(
    shape: tuple[int, int], tile: tuple[int, int], overlap: float
) -> list[tuple[int, int]]:
    """(y, x) of every tile's top-left corner, row by row."""
    ys = tile_starts(shape[0], tile[0], overlap)
    xs = tile_starts(shape[1], tile[1], overlap)
    return [(y, x) for y in ys for x in xs]


def gaussian_weights(tile: tuple[int, int], sigma: float = DEFAULT_SIGMA) -> np.ndarray:
    """(h, w) float32 weights, 1 at the centre, Gaussian with standard deviation
    ``sigma * side`` along each axis. ``sigma <= 0`` gives uniform weights (plain averaging).
    The smallest weight is kept well above 0, so a border pixel covered by one tile edge
    only still gets that tile's prediction (not 0/0)."""
    h, w = tile
    if sigma <= 0:
        return np.ones((h, w), np.float32)

    def axis(n: int) -> np.ndarray:
        d = np.arange(n, dtype=np.float64) - (n - 1) / 2.0
        return np.exp(-0.5 * (d / (sigma * n)) ** 2)

    weights = np.outer(axis(h), axis(w))
    weights /= weights.max()
    return np.maximum(weights, 1e-6).astype(np.float32)


def _pad_to(image: np.ndarray, tile: tuple[int, int]) -> np.ndarray:
    """Reflect-pad the bottom/right of an image smaller than a tile up to the tile's size."""
    pad_h = max(0, tile[0] - image.shape[0])
    pad_w = max(0, tile[1] - image.shape[1])
    if not pad_h and not pad_w:
        return image
    # numpy reflects repeatedly when the pad is larger than the image itself
    return np.pad(image, ((0, pad_h), (0, pad_w), (0, 0)), mode="symmetric")


def _batches(corners: list[tuple[int, int]], batch_size: int) -> Iterator[list[tuple[int, int]]]:
    for start in range(0, len(corners), batch_size):
        yield corners[start : start + batch_size]


def sliding_window(
    image: np.ndarray,
    predict: Predict,
    tile: tuple[int, int],
    overlap: float = 0.25,
    batch_size: int = 8,
    sigma: float = DEFAULT_SIGMA,
) -> np.ndarray:
    """Probabilities (H, W, K) float32 for an (H, W, C) image prepared for the model.

    ``predict`` maps a batch of tiles (B, h, w, C) to (B, h, w, K); ``tile`` is (h, w).
    """
    if image.ndim != 3:
        raise ValueError(f"expected an (H, W, C) image, got shape {image.shape}")
    height, width = image.shape[:2]
    padded = _pad_to(image, tile)
    corners = tile_grid(padded.shape[:2], tile, overlap)
    weights = gaussian_weights(tile, sigma)
    th, tw = tile
    total: np.ndarray | None = None
    norm = np.zeros(padded.shape[:2], np.float32)
    for chunk in _batches(corners, max(1, batch_size)):
        batch = np.stack([padded[y : y + th, x : x + tw] for y, x in chunk])
        probs = np.asarray(predict(batch), np.float32)
        if total is None:
            total = np.zeros((*padded.shape[:2], probs.shape[-1]), np.float32)
        for (y, x), prob in zip(chunk, probs, strict=True):
            total[y : y + th, x : x + tw] += prob * weights[..., None]
            norm[y : y + th, x : x + tw] += weights
    assert total is not None  # at least one tile always exists
    total /= norm[..., None]
    return total[:height, :width]
