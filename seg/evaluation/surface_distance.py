"""Boundary distances between two masks: Hausdorff 95 and average surface distance, in pixels.

The surface of a mask is its pixels with a 4-neighbour outside it (the image border counts as
outside), as in MedPy. Distances are exact Euclidean (``scipy.ndimage.distance_transform_edt``)
from every surface pixel of one mask to the nearest surface pixel of the other, both ways:

* ``hd95``: the larger of the two directed 95th percentiles (MedPy's ``hd95``, MONAI's
  ``compute_hausdorff_distance(percentile=95)``): robust to a few stray pixels, unlike the max;
* ``asd``: the mean of all distances of both directions (the symmetric average surface
  distance, MedPy's ``assd``).

Empty masks: both empty is a perfect match (0, 0). Exactly one empty has no distance to
measure; it scores the image diagonal, the worst distance an image of that size allows, so
it is finite, ranks below every real miss, and means and plots stay usable (never NaN/inf).
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

__all__ = ["hd95_asd", "surface"]

_CROSS = ndimage.generate_binary_structure(2, 1)


def surface(mask: np.ndarray) -> np.ndarray:
    """Boolean (H, W): mask pixels with a 4-neighbour outside the mask or the image."""
    mask = np.asarray(mask, bool)
    return mask & ~ndimage.binary_erosion(mask, _CROSS, border_value=0)


def hd95_asd(truth: np.ndarray, pred: np.ndarray) -> tuple[float, float]:
    """(hd95, asd) in pixels between two (H, W) masks (see the module docstring)."""
    truth, pred = np.asarray(truth, bool), np.asarray(pred, bool)
    if truth.shape != pred.shape:
        raise ValueError(f"truth shape {truth.shape} != pred shape {pred.shape}")
    has_truth, has_pred = truth.any(), pred.any()
    if not has_truth and not has_pred:
        return 0.0, 0.0
    if not has_truth or not has_pred:
        diagonal = float(np.hypot(*truth.shape))
        return diagonal, diagonal
    surf_t, surf_p = surface(truth), surface(pred)
    to_truth = ndimage.distance_transform_edt(~surf_t)[surf_p]
    to_pred = ndimage.distance_transform_edt(~surf_p)[surf_t]
    hd95 = max(np.percentile(to_truth, 95), np.percentile(to_pred, 95))
    asd = np.concatenate([to_truth, to_pred]).mean()
    return float(hd95), float(asd)
