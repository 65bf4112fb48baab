"""tf.data pipelines: parallel decode, cache of decoded tensors, seeded shuffle, augmentation
inside the graph, batching and prefetch.

Decoding goes through :mod:`seg.data.io` (OpenCV, which releases the GIL, so parallel map
calls run on all cores) so that training reads files exactly as evaluation and inference do.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import tensorflow as tf

from seg.data.augment import AugmentationSpec, build_augmenter
from seg.data.io import load_image, load_mask
from seg.data.pairs import Pair
from seg.data.preprocess import (
    ImagePreprocess,
    MaskPreprocess,
    encode_for_model,
    encoding_is_identity,
    working_channels,
)
from seg.data.threads import yielding
from seg.errors import CheckpointError
from seg.machine import cpu_count

AUTOTUNE = tf.data.AUTOTUNE


SPEC_FORMAT = "seg.preprocessing"
SPEC_VERSION = 1


@dataclass(frozen=True)
class Preprocessing:
    """How files become tensors: the same for every split and for inference.

    It travels with a trained model (``to_dict``/``from_dict``, saved as preprocessing.json), so
    evaluation and inference prepare images exactly as training did.
    """

    size: tuple[int, int]  # (height, width)
    channels: int
    num_classes: int
    mask_threshold: float
    image: ImagePreprocess = field(default_factory=ImagePreprocess)
    mask: MaskPreprocess = field(default_factory=MaskPreprocess)

    def load_pair(
        self, image_path: bytes, mask_path: bytes, encode: bool = True
    ) -> tuple[np.ndarray, np.ndarray]:
        """(image, label map) of a pair; the image as the model sees it, or with
        ``encode=False`` the working image (see :meth:`encode_batch`)."""
        image = load_image(
            Path(image_path.decode()), self.size, self.channels, self.image, encode=encode
        )
        mask = load_mask(
            Path(mask_path.decode()), self.size, self.mask_threshold, self.num_classes, self.mask
        )
        return image, mask

    @property
    def working_channels(self) -> int:
        """Channels of the working image: what the cache holds and augmentation sees."""
        return working_channels(self.image, self.channels)

    @property
    def encodes_later(self) -> bool:
        """Colour conversion or normalisation left to do after augmentation."""
        return not encoding_is_identity(self.image, self.channels)

    def encode_batch(self, images: np.ndarray) -> np.ndarray:
        """Working images (B,H,W,c) -> model inputs (B,H,W,channels), image by image with the
        same function inference uses."""
        return np.stack([encode_for_model(x, self.channels, self.image) for x in images])

    @property
    def mask_channels(self) -> int:
        return 1 if self.num_classes == 1 else self.num_classes

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready, versioned: what a model needs to be fed like it was trained."""
        return {
            "format": SPEC_FORMAT,
            "version": SPEC_VERSION,
            "image_size": list(self.size),
            "channels": self.channels,
            "num_classes": self.num_classes,
            "mask_threshold": self.mask_threshold,
            "image": self.image.to_dict(),
            "mask": self.mask.to_dict(),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "preprocessing spec") -> Preprocessing:
        """Inverse of :meth:`to_dict`; a foreign or newer file fails naming ``source``."""
        if data.get("format") != SPEC_FORMAT or data.get("version") != SPEC_VERSION:
            raise CheckpointError(
                f"{source}: not a {SPEC_FORMAT} version {SPEC_VERSION} file (format="
                f"{data.get('format')!r}, version={data.get('version')!r}); it was written by "
                "another version of seg"
            )
        try:
            height, width = data["image_size"]
            return cls(
                size=(int(height), int(width)),
                channels=int(data["channels"]),
                num_classes=int(data["num_classes"]),
                mask_threshold=float(data["mask_threshold"]),
                image=ImagePreprocess.from_dict(data.get("image")),
                mask=MaskPreprocess.from_dict(data.get("mask")),
            )
        except (KeyError, TypeError, ValueError) as err:
            raise CheckpointError(f"{source}: malformed preprocessing spec ({err!r})") from err


def _decode(prep: Preprocessing):
    """Files -> (image, mask): the working image when encoding comes after augmentation."""
    h, w = prep.size
    channels = prep.working_channels if prep.encodes_later else prep.channels

    def load(image_path: bytes, mask_path: bytes) -> tuple[np.ndarray, np.ndarray]:
        return prep.load_pair(image_path, mask_path, encode=not prep.encodes_later)

    def decode(image_path: tf.Tensor, mask_path: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        image, labels = tf.numpy_function(
            load, [image_path, mask_path], [tf.float32, tf.uint8], stateful=False
        )
        return tf.ensure_shape(image, (h, w, channels)), tf.ensure_shape(labels, (h, w))

    return decode


def _encode(prep: Preprocessing):
    """Batches of working images -> model inputs (colour conversion, normalisation): after
    augmentation, so photometric ops see intensities in [0, 1] whatever the model gets."""
    h, w = prep.size

    def encode(images: tf.Tensor, masks: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        encoded = tf.numpy_function(prep.encode_batch, [images], tf.float32, stateful=False)
        return tf.ensure_shape(encoded, (None, h, w, prep.channels)), masks

    return encode


def _targets(num_classes: int):
    """uint8 label maps -> what the loss and metrics take: float32 (B,H,W,1) in {0, 1}, or
    one-hot (B,H,W,K). Applied per batch after the cache, which thus holds 1 byte per pixel
    instead of 4K (one-hot: one vectorised op per batch, nothing to measure on the CPU)."""

    def targets(images: tf.Tensor, labels: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        if num_classes == 1:
            return images, tf.cast(labels, tf.float32)[..., None]
        return images, tf.one_hot(tf.cast(labels, tf.int32), num_classes, dtype=tf.float32)

    return targets


def _decoded(
    pairs: list[Pair], prep: Preprocessing, training: bool, cache: str, seed: int
) -> tf.data.Dataset:
    """Decoded (image, labels) pairs; without a cache, training shuffles the file names."""
    images = [str(p.image) for p in pairs]
    masks = [str(p.mask) for p in pairs]
    ds = tf.data.Dataset.from_tensor_slices((images, masks))
    if training and cache == "none":
        # Without a cache, shuffle file names (cheap) so memory stays flat at any dataset size.
        ds = ds.shuffle(len(pairs), seed=seed, reshuffle_each_iteration=True)
    return ds.map(_decode(prep), num_parallel_calls=AUTOTUNE)


def _cached(ds: tf.data.Dataset, cache: str, cache_file: Path | None) -> tf.data.Dataset:
    """``ds`` cached in memory, in ``cache_file`` ("disk"), or not at all ("none")."""
    if cache == "memory":
        ds = ds.cache()
    elif cache == "disk":
        if cache_file is None:
            raise ValueError("cache='disk' needs cache_file")
        cache_file.parent.mkdir(parents=True, exist_ok=True)
        ds = ds.cache(str(cache_file))
    return ds


def _augmented(
    ds: tf.data.Dataset,
    prep: Preprocessing,
    augmentation: AugmentationSpec,
    seed: int,
    input_niceness: int,
) -> tf.data.Dataset:
    """Batches augmented from a seeded stream, so the same seed gives the same batches."""
    augment = build_augmenter(augmentation, (*prep.size, prep.working_channels), seed)
    if not augment.active:
        return ds
    # Whole batches (vectorised, per-image random parameters), each with its own seed
    # from a seeded stream that changes every epoch: the augmenter is stateless, so
    # parallel calls give the same batches whatever order they run in.
    seeds = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True).batch(2)
    return tf.data.Dataset.zip((ds, seeds)).map(
        lambda batch, s: augment(batch[0], batch[1], yielding(s, input_niceness)),
        num_parallel_calls=AUTOTUNE,
    )


def _options(input_niceness: int) -> tf.data.Options:
    """Threading options: input ops off the training step's cores and threads."""
    options = tf.data.Options()
    # Each input op runs on one thread; parallelism comes from the parallel map calls. Left to
    # themselves, input ops take intra-op threads from the cores the training step is using.
    options.threading.max_intra_op_parallelism = 1
    if input_niceness > 0:  # renice threads of the dataset's own, not the training step's
        options.threading.private_threadpool_size = cpu_count()
    return options


def make_dataset(
    pairs: list[Pair],
    prep: Preprocessing,
    batch_size: int,
    *,
    training: bool = False,
    augmentation: AugmentationSpec | None = None,
    seed: int = 0,
    cache: str = "memory",
    cache_file: Path | None = None,
    shuffle_buffer: int = 1024,
    repeat: bool = False,
    input_niceness: int = 0,
) -> tf.data.Dataset:
    """Batches of (image, mask): float32 (B,H,W,C) in [0,1] and (B,H,W,K) in {0,1}.

    With ``training``, the order is reshuffled every epoch from ``seed`` and ``augmentation``
    (an augmentation config, see :func:`seg.data.augment.build_augmenter`) applies to each batch
    with random numbers from a seeded stream, so the same seed gives the same batches.
    ``input_niceness`` > 0 runs the dataset's threads at that niceness (see
    :mod:`seg.data.threads`).
    """
    ds = _cached(_decoded(pairs, prep, training, cache, seed), cache, cache_file)
    if training and cache != "none":
        ds = ds.shuffle(min(shuffle_buffer, len(pairs)), seed=seed, reshuffle_each_iteration=True)
    if repeat:
        ds = ds.repeat()
    ds = ds.batch(batch_size).map(_targets(prep.num_classes), num_parallel_calls=AUTOTUNE)
    if training and augmentation is not None:
        ds = _augmented(ds, prep, augmentation, seed, input_niceness)
    if prep.encodes_later:
        ds = ds.map(_encode(prep), num_parallel_calls=AUTOTUNE)
    return ds.with_options(_options(input_niceness)).prefetch(AUTOTUNE)
