"""Polygons to pixels."""

from __future__ import annotations

from collections.abc import Iterable

import cv2
import numpy as np

_SHIFT = 4  # sub-pixel bits: vertices keep 1/16 pixel precision


def fill_polygons(mask: np.ndarray, polygons: Iterable[np.ndarray], value: int) -> np.ndarray:
    """Fill each (N, 2) array of x, y vertices (pixel coordinates, any float) with ``value``,
    in place; parts outside the image are clipped. Overlapping polygons fill their union
    (one fillPoly call with all of them would leave their overlap empty: even-odd rule)."""
    for polygon in polygons:
        scaled = np.rint(np.asarray(polygon, np.float64) * (1 << _SHIFT)).astype(np.int32)
        cv2.fillPoly(mask, [scaled], int(value), lineType=cv2.LINE_8, shift=_SHIFT)
    return mask
