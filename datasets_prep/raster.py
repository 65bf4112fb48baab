"""Polygons to pixels."""

from __future__ import annotations

from collections.abc import Iterable

import cv2
import numpy as np

_SHIFT = 4  # sub-pixel bits: vertices keep 1/16 pixel precision


def fill_polygons(mask: np.ndarray, polygons: Iterable[np.ndarray], value: int) -> np.ndarray:
    """Fill each (N, 2) array of x, y vertices (pixel coordinates, any float) with ``value``,
    in place; parts outside the image are clipped."""
    scaled = [np.rint(np.asarray(p, np.float64) * (1 << _SHIFT)).astype(np.int32)
              for p in polygons]
    if scaled:
        cv2.fillPoly(mask, scaled, int(value), lineType=cv2.LINE_8, shift=_SHIFT)
    return mask


def flat_to_points(flat: list[float]) -> np.ndarray:
    """[x1, y1, x2, y2, ...] (COCO) -> (N, 2)."""
    return np.asarray(flat, np.float64).reshape(-1, 2)
