"""Test-time augmentation: predict flipped/rotated copies of a batch and average them back.

Every transform is a pixel permutation with an exact inverse, so for a model that is
equivariant to it the average equals the plain prediction; for a real model it smooths out
orientation-dependent errors (nnU-Net's mirroring). The identity is always included.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from seg.config.inference import TTA_OPS, TTA_TRANSFORMS, check_tta
from seg.inference.tiling import Predict

__all__ = ["TTA_OPS", "check_tta", "with_tta"]


def _forward(op: str, batch: np.ndarray) -> np.ndarray:
    turns, axis = TTA_TRANSFORMS[op]
    out = np.flip(batch, axis) if axis is not None else np.rot90(batch, turns, axes=(1, 2))
    return np.ascontiguousarray(out)


def _inverse(op: str, batch: np.ndarray) -> np.ndarray:
    turns, axis = TTA_TRANSFORMS[op]
    out = np.flip(batch, axis) if axis is not None else np.rot90(batch, -turns, axes=(1, 2))
    return np.ascontiguousarray(out)


def with_tta(predict: Predict, ops: Sequence[str]) -> Predict:
    """``predict`` averaged over the identity and each transform in ``ops``."""
    ops = tuple(ops)
    if not ops:
        return predict

    def averaged(batch: np.ndarray) -> np.ndarray:
        total = np.array(predict(batch), np.float32)
        for op in ops:
            total += _inverse(op, np.asarray(predict(_forward(op, batch)), np.float32))
        return total / np.float32(len(ops) + 1)

    return averaged
