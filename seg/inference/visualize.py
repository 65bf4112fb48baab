"""Pictures of masks: overlays and side-by-side panels (NumPy/OpenCV, uint8 RGB out)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import cv2
import numpy as np

# Binary comparisons: truth green, prediction red (index 0, background, is never painted).
_BINARY_TRUTH = np.array([(0, 0, 0), (0, 200, 0)], np.uint8)
_BINARY_PRED = np.array([(0, 0, 0), (255, 0, 0)], np.uint8)


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


def _plane(labels: np.ndarray) -> np.ndarray:
    """HxW of a HxW or HxWx1 mask/label array."""
    array = np.asarray(labels)
    return array[..., 0] if array.ndim == 3 else array


def colorize(labels: np.ndarray, palette: np.ndarray) -> np.ndarray:
    """Class index map -> uint8 HxWx3, each class in its ``palette`` colour (a colour mask)."""
    colors = np.asarray(palette, np.uint8)
    index = _plane(labels).astype(np.intp)
    if index.size and index.max() >= len(colors):
        raise ValueError(f"label {index.max()} has no colour in a palette of {len(colors)}")
    return colors[index]


def overlay_labels(
    image: np.ndarray, labels: np.ndarray, palette: np.ndarray, alpha: float = 0.4
) -> np.ndarray:
    """Alpha-blend each class's ``palette`` colour over its pixels (class 0, background, is
    left as is), in float, so bright pixels cannot wrap."""
    base = to_uint8_rgb(image).astype(np.float32)
    index = _plane(labels).astype(np.intp)
    selected = index > 0
    tint = colorize(index, palette)[selected].astype(np.float32)
    base[selected] = (1.0 - alpha) * base[selected] + alpha * tint
    return np.clip(np.rint(base), 0, 255).astype(np.uint8)


def overlay(
    image: np.ndarray, mask: np.ndarray, color: Sequence[int] = (255, 0, 0), alpha: float = 0.4
) -> np.ndarray:
    """Alpha-blend ``color`` where ``mask`` is set (a binary :func:`overlay_labels`)."""
    binary = _plane(mask).astype(bool).astype(np.uint8)
    return overlay_labels(image, binary, np.array([(0, 0, 0), tuple(color)]), alpha)


# Error maps: correct foreground green, false positive red, false negative blue, wrong class
# (multiclass: both foreground, different classes) yellow.
ERROR_COLORS = {
    "correct": (0, 200, 0),
    "false_positive": (255, 0, 0),
    "false_negative": (0, 90, 255),
    "wrong_class": (255, 220, 0),
}


def error_overlay(
    image: np.ndarray, truth: np.ndarray, prediction: np.ndarray, alpha: float = 0.5
) -> np.ndarray:
    """Where the prediction is right and how it is wrong, over the image (ERROR_COLORS)."""
    truth, pred = _plane(truth).astype(np.intp), _plane(prediction).astype(np.intp)
    kinds = np.zeros(truth.shape, np.intp)
    kinds[(truth > 0) & (pred == truth)] = 1
    kinds[(truth == 0) & (pred > 0)] = 2
    kinds[(truth > 0) & (pred == 0)] = 3
    kinds[(truth > 0) & (pred > 0) & (pred != truth)] = 4
    colors = np.array([(0, 0, 0), *ERROR_COLORS.values()], np.uint8)
    return overlay_labels(image, kinds, colors, alpha)


def contours(
    image: np.ndarray, labels: np.ndarray, palette: np.ndarray, thickness: int | None = None
) -> np.ndarray:
    """The image with each object's outline drawn in its class's ``palette`` colour (class 0,
    background, has none); ``thickness`` defaults to ~1/300 of the shorter side, >= 1 px."""
    out = np.ascontiguousarray(to_uint8_rgb(image).copy())
    index = _plane(labels)
    if thickness is None:
        thickness = max(1, round(min(index.shape) / 300))
    for k in np.unique(index):
        if k == 0:
            continue
        found, _ = cv2.findContours(
            (index == k).astype(np.uint8), cv2.RETR_LIST, cv2.CHAIN_APPROX_NONE
        )
        color = tuple(int(c) for c in np.asarray(palette)[k])
        cv2.drawContours(out, found, -1, color, thickness)
    return out


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
    image: np.ndarray,
    truth: np.ndarray | None,
    prediction: np.ndarray,
    alpha: float = 0.4,
    palette: np.ndarray | None = None,
) -> np.ndarray:
    """[image | truth | prediction]: what a reviewer wants to see per case. Binary masks:
    truth green, prediction red; label maps with a ``palette``: both in the class colours."""
    if palette is None:
        truth_colors, pred_colors = _BINARY_TRUTH, _BINARY_PRED
        truth = None if truth is None else _plane(truth).astype(bool)
        prediction = _plane(prediction).astype(bool)
    else:
        truth_colors = pred_colors = palette
    tiles = [image]
    if truth is not None:
        tiles.append(overlay_labels(image, truth, truth_colors, alpha))
    tiles.append(overlay_labels(image, prediction, pred_colors, alpha))
    return hstack(tiles)


GRID_MIN_SIDE, GRID_MIN_WIDTH = 512, 768  # pixels: a mask is judged at this size
_LABEL_HEIGHT = 30  # pixels of the band holding a grid's labels


def _text(band: np.ndarray, text: str, x: int, scale: float = 0.6) -> None:
    cv2.putText(band, text, (x, 21), cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), 1, cv2.LINE_AA)


def labelled_grid(
    rows: Sequence[np.ndarray], columns: Sequence[str], caption: str, gap: int = 2
) -> np.ndarray:
    """``rows`` of equal tiles (one per column) one under the other, enlarged (whole
    multiples, nearest: pixels stay sharp) to at least GRID_MIN_SIDE on its short side and
    GRID_MIN_WIDTH wide, under a band naming each column and saying ``caption`` (the epoch):
    readable where the MLflow UI shows it, its card's thumbnail and its dialog."""
    grid = vstack(rows, gap)
    height, width = grid.shape[:2]
    scale = max(1, math.ceil(max(GRID_MIN_SIDE / min(height, width), GRID_MIN_WIDTH / width)))
    grid = cv2.resize(grid, (width * scale, height * scale), interpolation=cv2.INTER_NEAREST)
    band = np.full((_LABEL_HEIGHT, grid.shape[1], 3), 255, np.uint8)
    column = (width * scale) / len(columns)
    for i, name in enumerate(columns):
        size = cv2.getTextSize(name, cv2.FONT_HERSHEY_SIMPLEX, 0.6, 1)[0][0]
        _text(band, name, int(column * (i + 0.5) - size / 2))
    caption_band = np.full((_LABEL_HEIGHT, grid.shape[1], 3), 255, np.uint8)
    _text(caption_band, caption, 6, 0.7)
    return np.concatenate([caption_band, band, grid], axis=0)
