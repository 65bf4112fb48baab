"""Online augmentation inside the tf.data graph.

Geometric ops act on image and mask concatenated along channels, so both always move with the
same random transform; flips and 90-degree rotations permute pixels, so masks stay binary.
"""

from __future__ import annotations

from dataclasses import dataclass

import tensorflow as tf


@dataclass(frozen=True)
class Augmentation:
    hflip: float = 0.0
    vflip: float = 0.0
    rot90: float = 0.0

    @property
    def active(self) -> bool:
        return any(p > 0 for p in (self.hflip, self.vflip, self.rot90))


def _maybe(prob: float, seed: tf.Tensor, op, x: tf.Tensor) -> tf.Tensor:
    if prob <= 0:
        return x
    draw = tf.random.stateless_uniform([], seed=seed)
    return tf.cond(draw < prob, lambda: op(x), lambda: x)


def augment_pair(
    image: tf.Tensor, mask: tf.Tensor, seed: tf.Tensor, aug: Augmentation
) -> tuple[tf.Tensor, tf.Tensor]:
    """Apply the configured random ops to one (image, mask) pair with a stateless ``seed``."""
    seeds = tf.random.experimental.stateless_split(tf.cast(seed, tf.int64), num=4)
    channels = image.shape[-1]
    both = tf.concat([image, mask], axis=-1)
    both = _maybe(aug.hflip, seeds[0], tf.image.flip_left_right, both)
    both = _maybe(aug.vflip, seeds[1], tf.image.flip_up_down, both)
    if aug.rot90 > 0:
        square = both.shape[0] == both.shape[1]
        # A quarter turn swaps height and width: only half turns keep a non-square shape.
        k = tf.random.stateless_uniform([], seeds[3], minval=1, maxval=4, dtype=tf.int32)
        k = k if square else tf.constant(2)
        both = _maybe(aug.rot90, seeds[2], lambda x: tf.image.rot90(x, k), both)
        both = tf.ensure_shape(both, [*image.shape[:-1], both.shape[-1]])
    return both[..., :channels], both[..., channels:]
