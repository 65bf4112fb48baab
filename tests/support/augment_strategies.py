"""Hypothesis strategies for augmentation property tests: configs drawn from the ranges that
seg.config.augmentation.check_augmentation allows, and small image/mask batches.

Every op's parameters are drawn over the whole range the schema documents (p included), so a
value that passes validation but breaks the augmenter is found here rather than in a run.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from hypothesis import strategies as st

from seg.config.augmentation import GEOMETRIC_OPS, PHOTOMETRIC_OPS, FillMode


def floats(low: float, high: float) -> st.SearchStrategy[float]:
    """Finite floats in [low, high], the bounds themselves drawn often."""
    return st.sampled_from([low, high]) | st.floats(low, high, allow_subnormal=False)


def interval(low: float, high: float) -> st.SearchStrategy[list[float]]:
    """[lo, hi] with low <= lo <= hi <= high (lo == hi included)."""
    return st.tuples(floats(low, high), floats(low, high)).map(sorted)


PROBABILITY = st.sampled_from([1.0, 0.0]) | st.floats(0.0, 1.0)  # 1 first: ops apply
CENTRES = st.lists(st.tuples(floats(0, 1), floats(0, 1)).map(list), max_size=3)
ANGLES = st.lists(st.sampled_from([0.0, 90.0, 180.0, 270.0, -90.0]) | floats(-360, 360), max_size=4)

# The parameters of each op besides p, over their valid ranges
# (seg.config.augmentation.check_augmentation; open-ended ranges are cut at values far beyond any
# sensible setting).
PARAMETERS: dict[str, dict[str, st.SearchStrategy[Any]]] = {
    "hflip": {},
    "vflip": {},
    "rotation": {"angles": ANGLES, "range": floats(0, 180)},
    "zoom": {"scales": interval(0.05, 4.0)},  # min_scale, max_scale
    "shear": {"range": floats(0, 45)},
    "translation": {"range": floats(0, 1)},
    "elastic": {"alpha": floats(0, 5000), "sigma": floats(1e-3, 64)},
    "smooth_distortion": {"grid": st.integers(2, 12), "magnitude": floats(0, 0.5)},
    "barrel": {"amount": interval(0, 0.99), "radius": floats(1e-3, 2), "centres": CENTRES},
    "pincushion": {"amount": interval(0, 0.99), "radius": floats(1e-3, 2), "centres": CENTRES},
    "brightness": {"range": floats(0, 1)},
    "contrast": {"range": floats(0, 1)},
    "gamma": {"gamma": interval(0.05, 20)},
    "hue": {"range": floats(0, 0.5)},
    "saturation": {"factor": interval(0, 100)},
    "blur": {"sigma": interval(0, 10)},
    "sharpen": {"amount": interval(0, 4)},
    "noise": {"std": interval(0, 1)},
}
assert set(PARAMETERS) == set(GEOMETRIC_OPS + PHOTOMETRIC_OPS)


@st.composite
def op_config(draw: st.DrawFn, op: str) -> dict[str, Any]:
    params = {
        name: draw(strategy, label=f"{op}.{name}") for name, strategy in PARAMETERS[op].items()
    }
    if op == "zoom":
        params["min_scale"], params["max_scale"] = params.pop("scales")
    if op == "rotation" and not params["angles"] and params["range"] == 0:
        params["range"] = draw(floats(1e-3, 180), label="rotation.range")  # one is required
    return {"p": draw(PROBABILITY, label=f"{op}.p"), **params}


@st.composite
def augmentation_specs(
    draw: st.DrawFn, ops: tuple[str, ...], fill_value: float | None = None
) -> dict[str, Any]:
    """An ``augmentation`` config (a plain dict, as build_augmenter takes) switching on a
    non-empty subset of ``ops``; ``fill_value`` fixes augmentation.fill.value."""
    chosen = draw(st.lists(st.sampled_from(ops), min_size=1, unique=True), label="ops")
    spec: dict[str, Any] = {op: draw(op_config(op)) for op in chosen}
    value = draw(floats(0, 1)) if fill_value is None else fill_value
    spec["fill"] = {"mode": draw(st.sampled_from([m.value for m in FillMode])), "value": value}
    return spec


SIDES = st.integers(2, 40)


@st.composite
def batches(draw: st.DrawFn, classes: int | None = None, channels: int | None = None):
    """(images, masks): float32 (B,H,W,C) textured images in [0, 1] with exact 0 and 1 pixels,
    and (B,H,W,1) binary masks or (B,H,W,K) one-hot masks (``classes`` K, or drawn 1 or 3)."""
    batch, height, width = draw(st.integers(1, 4)), draw(SIDES), draw(SIDES)
    channels = channels or draw(st.sampled_from([1, 3]), label="channels")
    classes = classes or draw(st.sampled_from([1, 3]), label="classes")
    rng = np.random.default_rng(draw(st.integers(0, 2**16), label="data seed"))
    labels = blobs(rng, batch, height, width, classes)
    images = rng.random((batch, height, width, channels)).astype(np.float32)
    images = np.clip(0.5 * images + 0.4 * (labels[..., None] > 0), 0.0, 1.0)
    images.reshape(-1)[:2] = (0.0, 1.0)
    return images.astype(np.float32), as_masks(labels, classes)


def blobs(
    rng: np.random.Generator, batch: int, height: int, width: int, classes: int
) -> np.ndarray:
    """(B,H,W) int labels: smooth random regions (a coarse random grid upsampled), so masks
    have objects with edges, not salt and pepper."""
    coarse = rng.integers(0, max(classes, 2), (batch, 4, 4))
    rows = np.arange(height) * 4 // height
    cols = np.arange(width) * 4 // width
    return coarse[:, rows][:, :, cols]


def as_masks(labels: np.ndarray, classes: int) -> np.ndarray:
    if classes == 1:
        return (labels > 0).astype(np.float32)[..., None]
    return np.eye(classes, dtype=np.float32)[labels]
