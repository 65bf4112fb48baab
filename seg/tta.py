"""Test-time augmentation: predict flipped/rotated copies of a batch and average them back.

Every transform is a pixel permutation with an exact inverse, so for a model that is
equivariant to it the average equals the plain prediction; for a real model it smooths out
orientation-dependent errors (nnU-Net's mirroring). The identity is always included.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from seg.errors import ConfigError
from seg.tiling import Predict

__all__ = ["TTA_OPS", "check_tta", "with_tta"]

#: name -> (k quarter turns, flip axis or None), on (B, H, W, C) batches.
_OPS: dict[str, tuple[int, int | None]] = {
    "hflip": (0, 2),
    "vflip": (0, 1),
    "rot90": (1, None),
    "rot180": (2, None),
    "rot270": (3, None),
}
TTA_OPS: tuple[str, ...] = tuple(_OPS)


def _forward(op: str, batch: np.ndarray) -> np.ndarray:
    turns, axis = _OPS[op]
    out = np.flip(batch, axis) if axis is not None else np.rot90(batch, turns, axes=(1, 2))
    return np.ascontiguousarray(out)


def _inverse(op: str, batch: np.ndarray) -> np.ndarray:
    turns, axis = _OPS[op]
    out = np.flip(batch, axis) if axis is not None else np.rot90(batch, -turns, axes=(1, 2))
    return np.ascontiguousarray(out)


def check_tta(ops: Sequence[str], input_size: tuple[int | None, int | None]) -> tuple[str, ...]:
    """The ops as a tuple, each known and once; quarter turns need a square model input."""
    ops = tuple(str(op) for op in ops)
    unknown = [op for op in ops if op not in _OPS]
    if unknown:
        raise ConfigError(f"inference.tta: unknown transform(s) {unknown}; choose from "
                          f"{', '.join(TTA_OPS)}")
    if len(set(ops)) != len(ops):
        raise ConfigError(f"inference.tta: each transform once, got {list(ops)}")
    h, w = input_size
    odd_turns = [op for op in ops if _OPS[op][0] % 2]
    if odd_turns and h is not None and h != w:
        raise ConfigError(
            f"inference.tta: {', '.join(odd_turns)} turn a {h}x{w} model input into {w}x{h}, "
            "which the model cannot take; use hflip, vflip, rot180 with a non-square model"
        )
    return ops


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
