"""The post-processing chain (seg.inference.postprocess): each step on hand-made masks."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from scipy import ndimage

from seg.inference.postprocess import Postprocess, otsu_threshold
from tests.support.data import circle_mask


def _probs(mask: np.ndarray, high: float = 0.9, low: float = 0.1) -> np.ndarray:
    return np.where(mask, high, low).astype(np.float32)[..., None]


def test_default_is_the_plain_threshold() -> None:
    probs = np.random.default_rng(0).random((20, 30, 1)).astype(np.float32)
    np.testing.assert_array_equal(Postprocess().labels(probs), probs[..., 0] > 0.5)
    np.testing.assert_array_equal(Postprocess(threshold=0.2).labels(probs), probs[..., 0] > 0.2)
    softmax = np.random.default_rng(1).random((6, 7, 3)).astype(np.float32)
    np.testing.assert_array_equal(Postprocess().labels(softmax), softmax.argmax(-1))


def test_blur_smooths_probabilities_before_the_threshold() -> None:
    probs = np.zeros((21, 21, 1), np.float32)
    probs[10, 10] = 1.0  # a one-pixel spike
    post = Postprocess(blur_sigma=1.5)
    blurred = post.probabilities(probs)
    reference = ndimage.gaussian_filter(probs[..., 0], 1.5, mode="reflect", truncate=4.0)
    np.testing.assert_allclose(blurred[..., 0], reference, atol=2e-3)
    assert blurred.shape == probs.shape
    assert not post.labels(probs).any()  # the spike falls below 0.5
    assert Postprocess().labels(probs).sum() == 1


def test_otsu_separates_two_populations_the_fixed_threshold_misses() -> None:
    mask = circle_mask(40, 40, (20, 20), 10) > 0
    probs = _probs(mask, high=0.45, low=0.05)  # an under-confident model
    assert not Postprocess().labels(probs).any()
    np.testing.assert_array_equal(Postprocess(method="otsu").labels(probs), mask)
    assert 0.05 < otsu_threshold(probs[..., 0], 0.5) < 0.45
    flat = np.full((8, 8), 0.3, np.float32)  # one population: the fixed threshold decides
    assert otsu_threshold(flat, 0.5) == 0.5


def test_opening_removes_thin_parts_closing_fills_gaps() -> None:
    mask = np.zeros((30, 30), bool)
    mask[5:20, 5:20] = True
    mask[25, 2:28] = True  # a one-pixel line
    opened = Postprocess(open_radius=1).labels(_probs(mask))
    assert not opened[25].any() and opened[8:17, 8:17].all()
    gapped = mask.copy()
    gapped[5:20, 12] = False  # a one-pixel gap through the square
    closed = Postprocess(close_radius=1).labels(_probs(gapped))
    assert closed[6:19, 12].all()
    expected = cv2.morphologyEx(
        gapped.astype(np.uint8),
        cv2.MORPH_CLOSE,
        cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (3, 3)),
    )
    np.testing.assert_array_equal(closed, expected)


def test_min_size_removes_small_objects_only() -> None:
    mask = np.zeros((20, 20), bool)
    mask[1:3, 1:3] = True  # 4 px
    mask[10:13, 10:13] = True  # 9 px
    mask[5, 15] = mask[6, 16] = True  # 2 px, diagonal: one 8-connected object
    out = Postprocess(min_size=4).labels(_probs(mask))
    assert out[1:3, 1:3].all() and out[10:13, 10:13].all() and not out[5:7, 15:17].any()
    assert Postprocess(min_size=5).labels(_probs(mask)).sum() == 9
    assert Postprocess(min_size=2).labels(_probs(mask)).sum() == 15


def test_fill_holes_fills_enclosed_background_only() -> None:
    ring = (circle_mask(30, 30, (12, 12), 9) > 0) & ~(circle_mask(30, 30, (12, 12), 4) > 0)
    notch = np.zeros((30, 30), bool)
    notch[20:30, 20:30] = True
    notch[25:30, 24:26] = False  # a dent open to the image border: not a hole
    out = Postprocess(fill_holes=True).labels(_probs(ring | notch))
    np.testing.assert_array_equal(out[:20, :20], circle_mask(30, 30, (12, 12), 9)[:20, :20] > 0)
    assert not out[25:30, 24:26].any()


def test_keep_largest() -> None:
    mask = np.zeros((20, 20), bool)
    mask[1:4, 1:4] = True
    mask[10:16, 10:16] = True
    out = Postprocess(keep_largest=True).labels(_probs(mask))
    assert out.sum() == 36 and out[10:16, 10:16].all()
    assert not Postprocess(keep_largest=True).labels(_probs(np.zeros((5, 5), bool))).any()


def test_multiclass_steps_per_class_never_take_another_class() -> None:
    labels = np.zeros((20, 20), np.uint8)
    labels[2:10, 2:10] = 1
    labels[5, 5] = 0  # a hole in class 1 ...
    labels[6, 6] = 2  # ... and a pixel of class 2 inside it
    labels[15, 15] = 1  # a speck
    probs = np.eye(3, dtype=np.float32)[labels]
    out = Postprocess(fill_holes=True, min_size=2).labels(probs)
    assert out[5, 5] == 1  # filled from background
    assert out[6, 6] == 0  # the lone class-2 pixel is removed (min_size) and not refilled by 1
    assert out[15, 15] == 0


@pytest.mark.parametrize("field", ["open_radius", "min_size", "fill_holes", "keep_largest"])
def test_from_config(field: str) -> None:
    node = {
        "blur_sigma": 0.0,
        "method": "fixed",
        field: 3 if "radius" in field or field == "min_size" else True,
    }
    post = Postprocess.from_config(0.4, node)
    assert post.threshold == 0.4 and post.morphology
    assert getattr(post, field) == node[field]
