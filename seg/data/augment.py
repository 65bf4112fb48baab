"""Online augmentation inside the tf.data graph, built from an ``augmentation`` config.

    augment = build_augmenter(cfg.augmentation, (height, width, channels), seed)
    images, masks = augment(images, masks, batch_seed)  # batches, in a tf.data map

Geometric ops (flips, rotation, zoom, shear, translation, elastic, smooth distortion, barrel,
pincushion) are one :class:`RandomWarp`: one random transform per image moves image and mask
together, masks stay binary (or one-hot). Photometric ops touch images only and keep them in
[0, 1]: Keras' ``RandomBrightness``, ``RandomContrast``, ``RandomHue``, ``RandomSaturation``
where they do the job, ours (gamma, blur, sharpen, noise) where they do not; each applies to an
image with its own probability (:class:`RandomApply`).

Reproducibility: the augmenter is a pure function of its inputs and a per-batch seed. The Keras
layers keep their random state in a SeedGenerator variable, whose draws would depend on the
order in which parallel map calls run; inside a ``keras.StatelessScope`` every generator reads
a state derived from the batch seed instead, and nothing is written back. So batches can be
augmented in parallel and the same seed stream gives the same batches.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping
from typing import Any

import keras
import tensorflow as tf
from omegaconf import DictConfig, OmegaConf

from seg.config.augmentation import (
    GEOMETRIC_OPS,
    OP_NAMES,
    PHOTOMETRIC_OPS,
    AugmentationConfig,
    RotationConfig,
    check_augmentation,
)
from seg.data.augment_layers import (
    RandomApply,
    RandomBlur,
    RandomGamma,
    RandomGaussianNoise,
    RandomSharpen,
    RandomWarp,
    is_active,
)

log = logging.getLogger(__name__)

COLOUR_OPS = ("hue", "saturation")  # meaningful for RGB images only

# An `augmentation` config: the schema's dataclass, the composed DictConfig, or a plain dict.
AugmentationSpec = AugmentationConfig | DictConfig | Mapping[str, Any]


def as_spec(spec: AugmentationSpec) -> AugmentationConfig:
    """The typed config: a dataclass as is; a DictConfig or dict merged onto the schema, so a
    misspelt key or a wrong type fails here as it would at composition."""
    if isinstance(spec, AugmentationConfig):
        return spec
    base = OmegaConf.structured(AugmentationConfig(name="custom"))
    return OmegaConf.to_object(OmegaConf.merge(base, spec))  # type: ignore[return-value]


def active_ops(spec: AugmentationConfig) -> list[str]:
    return [op for op in OP_NAMES if is_active(getattr(spec, op))]


def _shape_preserving(rotation: RotationConfig, height: int, width: int) -> RotationConfig | None:
    """On a non-square image a quarter turn would crop it and fill the rest: listed angles that
    are odd multiples of 90 degrees are dropped (half turns stay), with a warning."""
    if height == width:
        return rotation
    angles = [a for a in rotation.angles if float(a) % 180 != 90]
    if len(angles) == len(rotation.angles):
        return rotation
    log.warning(
        "augmentation.rotation: %dx%d images are not square; quarter turns %s are left out",
        height,
        width,
        sorted(set(rotation.angles) - set(angles)),
    )
    if not angles and rotation.range == 0:
        return None
    return dataclasses.replace(rotation, angles=angles)


def _photometric_layer(op: str, cfg: Any, seed: int) -> keras.layers.Layer:
    unit = (0.0, 1.0)
    if op == "brightness":
        return keras.layers.RandomBrightness(cfg.range, value_range=unit, seed=seed)
    if op == "contrast":
        return keras.layers.RandomContrast(cfg.range, value_range=unit, seed=seed)
    if op == "hue":
        # Keras shifts by +-uniform(factor) / 2 turns of the colour wheel.
        return keras.layers.RandomHue((0.0, 2 * cfg.range), value_range=unit, seed=seed)
    if op == "saturation":
        # Keras multiplies saturation by f / (1 - f): f = m / (1 + m) gives the factor m.
        low, high = (m / (1.0 + m) for m in cfg.factor)
        return keras.layers.RandomSaturation((low, high), value_range=unit, seed=seed)
    if op == "gamma":
        return RandomGamma(cfg.gamma, seed=seed)
    if op == "blur":
        return RandomBlur(cfg.sigma, seed=seed)
    if op == "sharpen":
        return RandomSharpen(cfg.amount, seed=seed)
    if op == "noise":
        return RandomGaussianNoise(cfg.std, seed=seed)
    raise ValueError(f"not a photometric op: {op}")


class Augmenter:
    """Callable ``(images, masks, seed) -> (images, masks)``: batches (B,H,W,C)/(B,H,W,K) or
    single images, ``seed`` a shape-(2,) integer tensor (one per batch, from a seeded stream)."""

    def __init__(self, layers: list[keras.layers.Layer], ops: list[str], seed: int) -> None:
        self.layers, self.ops, self.seed = layers, ops, int(seed)
        # Every SeedGenerator, a wrapped layer's too: each gets its own state per batch.
        self._generators = [layer.generator for layer in layers]
        self._generators += [
            layer.layer.generator for layer in layers if isinstance(layer, RandomApply)
        ]

    @property
    def active(self) -> bool:
        return bool(self.layers)

    def __call__(
        self, images: tf.Tensor, masks: tf.Tensor, seed: tf.Tensor
    ) -> tuple[tf.Tensor, tf.Tensor]:
        images, masks = tf.convert_to_tensor(images), tf.convert_to_tensor(masks)
        if not self.layers:
            return images, masks
        single = images.shape.rank == 3
        if single:
            images, masks = images[None], masks[None]
        base = tf.random.experimental.stateless_fold_in(tf.cast(seed, tf.int64), self.seed)
        states = [
            (g.state, tf.cast(tf.random.experimental.stateless_fold_in(base, i), g.state.dtype))
            for i, g in enumerate(self._generators)
        ]
        data = {"images": images, "segmentation_masks": masks}
        with keras.StatelessScope(states):
            for layer in self.layers:
                data = layer(data)
        # No clip here: the warp interpolates between source values (and the fill), so it keeps
        # their range, whatever it is; photometric layers clip to [0, 1] themselves.
        images, masks = data["images"], data["segmentation_masks"]
        return (images[0], masks[0]) if single else (images, masks)


def build_augmenter(
    spec: AugmentationSpec,
    image_shape: tuple[int, int, int],
    seed: int = 0,
) -> Augmenter:
    """The augmenter of ``spec`` for images of ``image_shape`` (height, width, channels).

    Ops with p=0 or null are left out; an augmenter without ops is the identity (``active`` is
    False). Raises ConfigError naming the key for an out-of-range value.
    """
    spec = as_spec(spec)
    check_augmentation(spec)
    height, width, channels = (int(v) for v in image_shape)
    if is_active(spec.rotation):
        spec = dataclasses.replace(spec, rotation=_shape_preserving(spec.rotation, height, width))
    ops = active_ops(spec)
    if channels != 3 and any(op in COLOUR_OPS for op in ops):
        log.warning(
            "augmentation: hue and saturation need RGB images; left out (channels=%d)", channels
        )
        ops = [op for op in ops if op not in COLOUR_OPS]
    layers: list[keras.layers.Layer] = []
    if any(op in GEOMETRIC_OPS for op in ops):
        layers.append(RandomWarp(spec, seed=seed))
    for i, op in enumerate(o for o in ops if o in PHOTOMETRIC_OPS):
        cfg = getattr(spec, op)
        inner = _photometric_layer(op, cfg, seed + 2 * i + 1)
        layers.append(RandomApply(inner, cfg.p, seed=seed + 2 * i + 2))
    return Augmenter(layers, ops, seed)
