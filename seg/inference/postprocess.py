"""From probabilities to the final mask: the post-processing chain of ``inference.postprocess``.

Steps, in this fixed order, each off by default:

1. ``blur_sigma``: Gaussian blur of the probabilities (pixels), smoothing ragged edges;
2. threshold: ``inference.threshold``, or ``method=otsu`` per image (a nearly constant map,
   whose Otsu split would be noise, falls back to the fixed threshold); softmax: argmax;
3. ``open_radius`` / ``close_radius``: morphological opening then closing with a disk;
4. ``min_size``: remove connected objects (8-connected) smaller than this many pixels;
5. ``fill_holes``: fill background regions enclosed by an object;
6. ``keep_largest``: keep the largest object only (one organ, one lesion).

Multiclass label maps get steps 3-6 per foreground class: pixels a step removes become
background; pixels it adds are taken from background only, never from another class.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

import cv2
import numpy as np
from scipy import ndimage

__all__ = ["Postprocess"]

# An Otsu split needs two populations; probabilities spanning less than this are one.
_MIN_OTSU_SPREAD = 0.25


def _disk(radius: int) -> np.ndarray:
    return cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))


def otsu_threshold(foreground: np.ndarray, fallback: float) -> float:
    """Otsu's threshold of an (H, W) probability map in [0, 1] (on 8-bit levels)."""
    if foreground.size == 0 or float(foreground.max() - foreground.min()) < _MIN_OTSU_SPREAD:
        return fallback
    levels = np.clip(np.rint(foreground * 255.0), 0, 255).astype(np.uint8)
    value, _ = cv2.threshold(levels, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    # cv2 keeps pixels > value: as a probability threshold, the level itself (+0.5 rounding)
    return (float(value) + 0.5) / 255.0


def remove_small(mask: np.ndarray, min_size: int) -> np.ndarray:
    count, labels, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), 8)
    keep = np.zeros(count, bool)
    keep[1:] = stats[1:, cv2.CC_STAT_AREA] >= min_size
    return keep[labels]


def keep_largest(mask: np.ndarray) -> np.ndarray:
    count, labels, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), 8)
    if count <= 2:  # background only, or one object
        return mask.astype(bool)
    return labels == 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))


@dataclass(frozen=True)
class Postprocess:
    threshold: float = 0.5
    method: str = "fixed"  # fixed | otsu
    blur_sigma: float = 0.0
    open_radius: int = 0
    close_radius: int = 0
    min_size: int = 0
    fill_holes: bool = False
    keep_largest: bool = False

    @classmethod
    def from_config(cls, threshold: float, node: Mapping[str, Any] | None) -> Postprocess:
        """From ``inference.threshold`` and the plain ``inference.postprocess`` mapping."""
        names = {f.name for f in fields(cls)} - {"threshold"}
        values = {k: v for k, v in dict(node or {}).items() if k in names}
        return cls(threshold=float(threshold), **values)

    @property
    def morphology(self) -> bool:
        return bool(
            self.open_radius
            or self.close_radius
            or self.min_size
            or self.fill_holes
            or self.keep_largest
        )

    def probabilities(self, probs: np.ndarray) -> np.ndarray:
        """(H, W, K) probabilities after the blur (step 1)."""
        if self.blur_sigma <= 0:
            return probs
        blurred = cv2.GaussianBlur(probs, (0, 0), self.blur_sigma, borderType=cv2.BORDER_REFLECT)
        return blurred.reshape(probs.shape)

    def labels(self, probs: np.ndarray) -> np.ndarray:
        """(H, W) uint8: {0, 1} for one sigmoid channel, class indices for a softmax."""
        probs = self.probabilities(probs)
        if probs.shape[-1] == 1:
            threshold = self.threshold
            if self.method == "otsu":
                threshold = otsu_threshold(probs[..., 0], self.threshold)
            labels = (probs[..., 0] > threshold).astype(np.uint8)
        else:
            labels = np.argmax(probs, axis=-1).astype(np.uint8)
        if not self.morphology:
            return labels
        for k in range(1, max(2, probs.shape[-1])):
            before = labels == k
            after = self.mask(before)
            labels[before & ~after] = 0
            labels[after & ~before & (labels == 0)] = k
        return labels

    def mask(self, mask: np.ndarray) -> np.ndarray:
        """Steps 3-6 on one boolean mask."""
        out = mask.astype(np.uint8)
        if self.open_radius > 0:
            out = cv2.morphologyEx(out, cv2.MORPH_OPEN, _disk(self.open_radius))
        if self.close_radius > 0:
            out = cv2.morphologyEx(out, cv2.MORPH_CLOSE, _disk(self.close_radius))
        result = out.astype(bool)
        if self.min_size > 0:
            result = remove_small(result, self.min_size)
        if self.fill_holes:
            result = ndimage.binary_fill_holes(result)
        if self.keep_largest:
            result = keep_largest(result)
        return result
