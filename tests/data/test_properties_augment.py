"""Property tests of online augmentation (seg.data.augment), with Hypothesis.

Configs are drawn over the ranges the schema allows (tests/support/augment_strategies.py), images
and masks of random sizes, channels and batch sizes. The augmenter runs eagerly: every drawn config
is a different graph, and tracing one per example would cost more than running it. The image/mask
alignment property is in tests/test_augment.py beside its fixed-case version.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf
from hypothesis import given, settings
from hypothesis import strategies as st

from seg.config.augmentation import OP_NAMES, PHOTOMETRIC_OPS
from seg.data.augment import build_augmenter
from tests.support.augment_strategies import augmentation_specs, batches
from tests.support.properties import examples

SEEDS = st.tuples(st.integers(0, 2**31 - 1), st.integers(0, 2**31 - 1))


def augment(
    spec: dict, images: np.ndarray, masks: np.ndarray, seed: tuple[int, int], build_seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    augmenter = build_augmenter(spec, images.shape[1:], seed=build_seed)
    x, y = augmenter(images, masks, tf.constant(seed, tf.int64))
    return x.numpy(), y.numpy()


def assert_valid_masks(masks: np.ndarray, like: np.ndarray) -> None:
    """Binary (one channel) or one-hot (K channels) float masks of the input's shape."""
    assert masks.shape == like.shape and masks.dtype == like.dtype
    assert set(np.unique(masks)) <= {0.0, 1.0}
    if masks.shape[-1] > 1:
        np.testing.assert_array_equal(masks.sum(-1), 1.0)


def assert_unit_images(images: np.ndarray, like: np.ndarray) -> None:
    assert images.shape == like.shape and images.dtype == np.float32
    assert np.isfinite(images).all()
    assert images.min() >= 0.0 and images.max() <= 1.0, (images.min(), images.max())


@settings(max_examples=examples(12))
@given(spec=augmentation_specs(OP_NAMES), data=batches(), seed=SEEDS)
def test_any_valid_config_keeps_shapes_ranges_and_masks(spec, data, seed) -> None:
    images, masks = data
    x, y = augment(spec, images, masks, seed)
    assert_unit_images(x, images)
    assert_valid_masks(y, masks)


@settings(max_examples=examples(8))
@given(spec=augmentation_specs(PHOTOMETRIC_OPS), data=batches(), seed=SEEDS)
def test_photometric_ops_never_change_masks(spec, data, seed) -> None:
    images, masks = data
    x, y = augment(spec, images, masks, seed)
    assert_unit_images(x, images)
    np.testing.assert_array_equal(y, masks)


@settings(max_examples=examples(5))
@given(
    spec=augmentation_specs(OP_NAMES), data=batches(), seed=SEEDS, build_seed=st.integers(0, 1000)
)
def test_same_seeds_same_output(spec, data, seed, build_seed) -> None:
    """The augmenter is a pure function of (config, build seed, batch seed): two augmenters
    built alike give bit-identical batches (tf.data may run them in any order)."""
    images, masks = data
    first = augment(spec, images, masks, seed, build_seed)
    again = augment(spec, images, masks, seed, build_seed)
    for a, b in zip(first, again, strict=True):
        np.testing.assert_array_equal(a, b)


@settings(max_examples=examples(5))
@given(spec=augmentation_specs(OP_NAMES), data=batches(), seed=SEEDS)
def test_all_ops_at_p0_are_the_identity(spec, data, seed) -> None:
    off = {op: ({**cfg, "p": 0.0} if op in OP_NAMES else cfg) for op, cfg in spec.items()}
    images, masks = data
    augmenter = build_augmenter(off, images.shape[1:])
    assert not augmenter.active
    x, y = augmenter(images, masks, tf.constant(seed, tf.int64))
    np.testing.assert_array_equal(x.numpy(), images)
    np.testing.assert_array_equal(y.numpy(), masks)
