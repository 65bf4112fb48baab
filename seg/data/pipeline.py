"""tf.data pipelines: parallel decode, cache of decoded tensors, seeded shuffle, augmentation
inside the graph, batching and prefetch.

Decoding goes through :mod:`seg.data.io` (OpenCV, which releases the GIL, so parallel map
calls run on all cores) so that training reads files exactly as evaluation and inference do.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import tensorflow as tf

from seg.data.augment import Augmentation, augment_pair
from seg.data.io import load_image, load_mask
from seg.data.pairs import Pair

AUTOTUNE = tf.data.AUTOTUNE


@dataclass(frozen=True)
class Preprocessing:
    """How files become tensors: the same for every split and for inference."""

    size: tuple[int, int]  # (height, width)
    channels: int
    num_classes: int
    mask_threshold: float

    def load_pair(self, image_path: bytes, mask_path: bytes) -> tuple[np.ndarray, np.ndarray]:
        image = load_image(Path(image_path.decode()), self.size, self.channels)
        mask = load_mask(Path(mask_path.decode()), self.size, self.mask_threshold, self.num_classes)
        return image, mask

    @property
    def mask_channels(self) -> int:
        return 1 if self.num_classes == 1 else self.num_classes


def _decode(prep: Preprocessing):
    h, w = prep.size

    def decode(image_path: tf.Tensor, mask_path: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        image, labels = tf.numpy_function(
            prep.load_pair, [image_path, mask_path], [tf.float32, tf.uint8], stateful=False
        )
        image = tf.ensure_shape(image, (h, w, prep.channels))
        labels = tf.ensure_shape(labels, (h, w))
        if prep.num_classes == 1:
            mask = tf.cast(labels, tf.float32)[..., None]
        else:
            mask = tf.one_hot(tf.cast(labels, tf.int32), prep.num_classes, dtype=tf.float32)
        return image, mask

    return decode


def make_dataset(
    pairs: list[Pair],
    prep: Preprocessing,
    batch_size: int,
    *,
    training: bool = False,
    augmentation: Augmentation | None = None,
    seed: int = 0,
    cache: str = "memory",
    cache_file: Path | None = None,
    shuffle_buffer: int = 1024,
    repeat: bool = False,
) -> tf.data.Dataset:
    """Batches of (image, mask): float32 (B,H,W,C) in [0,1] and (B,H,W,K) in {0,1}.

    With ``training``, the order is reshuffled every epoch from ``seed`` and augmentation
    draws its random numbers from a seeded stream, so the same seed gives the same batches.
    """
    images = [str(p.image) for p in pairs]
    masks = [str(p.mask) for p in pairs]
    ds = tf.data.Dataset.from_tensor_slices((images, masks))
    if training and cache == "none":
        # Without a cache, shuffle file names (cheap) so memory stays flat at any dataset size.
        ds = ds.shuffle(len(pairs), seed=seed, reshuffle_each_iteration=True)
    ds = ds.map(_decode(prep), num_parallel_calls=AUTOTUNE)
    if cache == "memory":
        ds = ds.cache()
    elif cache == "disk":
        if cache_file is None:
            raise ValueError("cache='disk' needs cache_file")
        cache_file.parent.mkdir(parents=True, exist_ok=True)
        ds = ds.cache(str(cache_file))
    if training and cache != "none":
        ds = ds.shuffle(min(shuffle_buffer, len(pairs)), seed=seed, reshuffle_each_iteration=True)
    if repeat:
        ds = ds.repeat()
    if training and augmentation is not None and augmentation.active:
        # One seed pair per sample from a seeded stream that changes every epoch: stateless ops
        # make the result independent of how parallel calls are scheduled.
        seeds = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True).batch(2)
        ds = tf.data.Dataset.zip((ds, seeds)).map(
            lambda pair, s: augment_pair(pair[0], pair[1], s, augmentation),
            num_parallel_calls=AUTOTUNE,
        )
    return ds.batch(batch_size).prefetch(AUTOTUNE)
