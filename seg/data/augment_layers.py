"""Our augmentation layers, in the style of Keras' image preprocessing layers: dict inputs
``{"images": (B,H,W,C), "segmentation_masks": (B,H,W,K)}``, randomness drawn from a
``keras.random.SeedGenerator`` in ``self.generator``, per-image random parameters.

- :class:`RandomWarp`: every geometric op, composed into one warp of image and mask
  (:mod:`seg.data.warps`).
- :class:`RandomGamma`, :class:`RandomGaussianNoise`, :class:`RandomBlur`,
  :class:`RandomSharpen`: photometric, images only, results clipped to [0, 1].
- :class:`RandomApply`: applies a photometric layer (Keras' or ours) to each image with
  probability ``p``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import keras
import tensorflow as tf

from seg.config.augmentation import GEOMETRIC_OPS, AugmentationConfig, RotationConfig
from seg.data import warps

Data = dict[str, tf.Tensor]


def is_active(op: Any) -> bool:
    """An op's config is on: present (not null) with p > 0."""
    return op is not None and op.p > 0


class SeededLayer(keras.layers.Layer):
    """A Keras layer with the preprocessing layers' seed convention."""

    def __init__(self, seed: int | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.seed = seed
        self.generator = keras.random.SeedGenerator(seed)

    def uniform(self, shape: Any, low: float = 0.0, high: float = 1.0) -> tf.Tensor:
        return keras.random.uniform(shape, low, high, seed=self.generator)

    def chance(self, batch: tf.Tensor, p: float) -> tf.Tensor:
        """(B,) booleans, each True with probability ``p``."""
        return self.uniform([batch]) < p


class RandomApply(SeededLayer):
    """An image-only (photometric) ``layer`` applied to each image with probability ``p``
    (Keras' own layers apply to every image). Only the chosen images are computed; the others,
    and the masks, come out bit-identical."""

    def __init__(
        self, layer: keras.layers.Layer, p: float, seed: int | None = None, **kwargs: Any
    ) -> None:
        super().__init__(seed, **kwargs)
        self.layer, self.p = layer, float(p)

    def call(self, data: Data) -> Data:
        images = data["images"]
        chosen = tf.where(self.chance(tf.shape(images)[0], self.p))  # (n, 1) indices

        def transform() -> tf.Tensor:
            changed = self.layer({"images": tf.gather_nd(images, chosen)})["images"]
            return tf.tensor_scatter_nd_update(images, chosen, tf.cast(changed, images.dtype))

        out = dict(data)
        out["images"] = tf.cond(tf.size(chosen) > 0, transform, lambda: images)
        return out


class ImageOnlyLayer(SeededLayer):
    """Photometric: transforms ``images``, passes masks through untouched, clips to [0, 1]."""

    def transform_images(self, images: tf.Tensor) -> tf.Tensor:
        raise NotImplementedError

    def call(self, data: Data) -> Data:
        out = dict(data)
        out["images"] = tf.clip_by_value(self.transform_images(data["images"]), 0.0, 1.0)
        return out

    def per_image(self, images: tf.Tensor, interval: list[float]) -> tf.Tensor:
        """One value per image, uniform in ``interval``, shaped (B, 1, 1, 1)."""
        low, high = interval
        return self.uniform([tf.shape(images)[0], 1, 1, 1], low, high)


class RandomGamma(ImageOnlyLayer):
    def __init__(self, gamma: list[float], seed: int | None = None, **kwargs: Any) -> None:
        super().__init__(seed, **kwargs)
        self.gamma = list(gamma)

    def transform_images(self, images: tf.Tensor) -> tf.Tensor:
        return tf.pow(tf.maximum(images, 0.0), self.per_image(images, self.gamma))


class RandomGaussianNoise(ImageOnlyLayer):
    def __init__(self, std: list[float], seed: int | None = None, **kwargs: Any) -> None:
        super().__init__(seed, **kwargs)
        self.std = list(std)

    def transform_images(self, images: tf.Tensor) -> tf.Tensor:
        std = self.per_image(images, self.std)
        return images + keras.random.normal(tf.shape(images), seed=self.generator) * std


def _depthwise(images: tf.Tensor, kernel_y: tf.Tensor, kernel_x: tf.Tensor) -> tf.Tensor:
    """Separable filter, a different kernel per image: (B, K) taps along y then x, with the
    border mirrored. The batch is folded into channels so one depthwise conv does every image."""
    height, width, channels = images.shape[1], images.shape[2], images.shape[3]
    radius = kernel_y.shape[1] // 2
    folded = tf.reshape(tf.transpose(images, [1, 2, 0, 3]), [1, height, width, -1])
    taps_y = tf.repeat(kernel_y, channels, axis=0)  # (B*C, K): per image, per channel
    taps_x = tf.repeat(kernel_x, channels, axis=0)
    folded = tf.pad(folded, [[0, 0], [radius, radius], [radius, radius], [0, 0]], "REFLECT")
    folded = tf.nn.depthwise_conv2d(
        folded, tf.transpose(taps_y)[:, None, :, None], [1, 1, 1, 1], "VALID"
    )
    folded = tf.nn.depthwise_conv2d(
        folded, tf.transpose(taps_x)[None, :, :, None], [1, 1, 1, 1], "VALID"
    )
    return tf.transpose(tf.reshape(folded, [height, width, -1, channels]), [2, 0, 1, 3])


class RandomBlur(ImageOnlyLayer):
    """Gaussian blur, isotropic, a sigma (pixels) per image. Keras' RandomGaussianBlur draws
    one sigma pair per batch, capped at 1 pixel."""

    def __init__(self, sigma: list[float], seed: int | None = None, **kwargs: Any) -> None:
        super().__init__(seed, **kwargs)
        self.sigma = list(sigma)

    def transform_images(self, images: tf.Tensor) -> tf.Tensor:
        # 3 sigma, and short of the image size (a mirrored border must fit in the image).
        radius = min(max(1, math.ceil(3 * self.sigma[1])), min(images.shape[1:3]) - 1)
        sigma = tf.maximum(self.uniform([tf.shape(images)[0], 1], *self.sigma), 1e-3)
        taps = tf.exp(-0.5 * (tf.range(-radius, radius + 1, dtype=tf.float32) / sigma) ** 2)
        taps /= tf.reduce_sum(taps, axis=1, keepdims=True)
        return _depthwise(images, taps, taps)


class RandomSharpen(ImageOnlyLayer):
    """x + amount * (x - smooth(x)), smooth = PIL's 3x3 SMOOTH kernel, border mirrored.
    (Keras' RandomSharpness zero-pads: it brightens a one-pixel frame.)"""

    def __init__(self, amount: list[float], seed: int | None = None, **kwargs: Any) -> None:
        super().__init__(seed, **kwargs)
        self.amount = list(amount)

    def transform_images(self, images: tf.Tensor) -> tf.Tensor:
        amount = self.per_image(images, self.amount)
        channels = images.shape[-1]
        kernel = tf.constant([[1.0, 1.0, 1.0], [1.0, 5.0, 1.0], [1.0, 1.0, 1.0]]) / 13.0
        kernel = tf.tile(kernel[:, :, None, None], [1, 1, channels, 1])
        padded = tf.pad(images, [[0, 0], [1, 1], [1, 1], [0, 0]], "REFLECT")
        smooth = tf.nn.depthwise_conv2d(padded, kernel, [1, 1, 1, 1], "VALID")
        return images + amount * (images - smooth)


class RandomWarp(SeededLayer):
    """The geometric ops of ``spec`` (flips, rotation, zoom, shear, translation, elastic, smooth
    distortion, barrel, pincushion), each applied per image with its own probability, composed
    into one sampling grid (see :mod:`seg.data.warps`).

    The image and the mask are sampled together, bilinearly, at the same points; the mask is
    then thresholded at 0.5 (one channel) or argmax-ed back to one-hot (several), so it stays
    binary and a thresholded copy of the image is exactly the mask. Where the source falls
    outside the image, ``spec.fill`` decides; a constant fill gives masks background (class 0).
    Listed rotation angles that are multiples of 90 degrees are exact pixel permutations.
    """

    def __init__(self, spec: AugmentationConfig, seed: int | None = None, **kwargs: Any) -> None:
        super().__init__(seed, **kwargs)
        self.spec = spec

    def call(self, data: Data) -> Data:
        images, masks = data["images"], data.get("segmentation_masks")
        channels = images.shape[-1]
        fill = [float(self.spec.fill.value)] * channels
        stacked = images
        if masks is not None:
            classes = masks.shape[-1]
            fill += [1.0 if classes > 1 and k == 0 else 0.0 for k in range(classes)]
            stacked = tf.concat([images, tf.cast(masks, images.dtype)], axis=-1)
        src_x, src_y = self.source_coordinates(tf.shape(images)[0], *images.shape[1:3])
        warped = warps.resample(
            stacked,
            src_x,
            src_y,
            str(self.spec.fill.mode),
            tf.constant(fill),
            exact=self.permutes_pixels(*images.shape[1:3]),
        )
        out = dict(data)
        out["images"] = warped[..., :channels]
        if masks is not None:
            soft = warped[..., channels:]
            if soft.shape[-1] == 1:
                hard = tf.cast(soft > 0.5, masks.dtype)
            else:
                hard = tf.one_hot(tf.argmax(soft, axis=-1), soft.shape[-1], dtype=masks.dtype)
            out["segmentation_masks"] = hard
        return out

    def permutes_pixels(self, height: int, width: int) -> bool:
        """Only flips and quarter/half turns: every source coordinate is an integer."""
        s = self.spec
        others = [op for op in GEOMETRIC_OPS if op not in ("hflip", "vflip", "rotation")]
        if any(is_active(getattr(s, op)) for op in others):
            return False
        if not is_active(s.rotation):
            return True
        turn = 90 if height == width else 180
        return s.rotation.range == 0 and all(float(a) % turn == 0 for a in s.rotation.angles)

    def source_coordinates(
        self, batch: tf.Tensor, height: int, width: int
    ) -> tuple[tf.Tensor, tf.Tensor]:
        """(B, H, W) source x and y of every output pixel."""
        s = self.spec
        x, y = warps.centred_grid(height, width)
        dx, dy = self.displacement(batch, x, y)
        qx, qy = x + dx, y + dy
        m = warps.identity(batch)
        if is_active(s.hflip) or is_active(s.vflip):
            no = tf.zeros([batch], tf.bool)
            flip_x = self.chance(batch, s.hflip.p) if is_active(s.hflip) else no
            flip_y = self.chance(batch, s.vflip.p) if is_active(s.vflip) else no
            m = warps.compose(m, warps.flip_inverse(flip_x, flip_y))
        if is_active(s.rotation):
            m = warps.compose(m, self.rotation(batch, s.rotation))
        if is_active(s.zoom):
            scale = self.uniform([batch], s.zoom.min_scale, s.zoom.max_scale)
            scale = tf.where(self.chance(batch, s.zoom.p), scale, 1.0)
            m = warps.compose(m, warps.zoom_inverse(scale))
        if is_active(s.shear):
            apply = self.chance(batch, s.shear.p)
            angles = [
                tf.where(apply, self.uniform([batch], -s.shear.range, s.shear.range), 0.0)
                for _ in range(2)
            ]
            m = warps.compose(m, warps.shear_inverse(*angles))
        if is_active(s.translation):  # applied first when inverting: the last forward op
            apply = self.chance(batch, s.translation.p)
            r = s.translation.range
            qx -= tf.where(apply, self.uniform([batch], -r, r) * width, 0.0)[:, None, None]
            qy -= tf.where(apply, self.uniform([batch], -r, r) * height, 0.0)[:, None, None]
        a, b, c, d = (v[:, None, None] for v in m)
        src_x = a * qx + b * qy + (width - 1) / 2
        src_y = c * qx + d * qy + (height - 1) / 2
        return src_x, src_y

    def rotation(self, batch: tf.Tensor, op: RotationConfig) -> warps.Linear:
        angles = list(op.angles) or [0.0]
        table = tf.constant([warps.exact_cos_sin(a) for a in angles])
        pick = keras.random.randint([batch], 0, len(angles), seed=self.generator)
        cos_sin = tf.gather(table, pick)
        m = warps.rotation_inverse(cos_sin[:, 0], cos_sin[:, 1])
        if op.range > 0:
            jitter = self.uniform([batch], -op.range, op.range) * (math.pi / 180)
            m = warps.compose(m, warps.rotation_inverse(tf.cos(jitter), tf.sin(jitter)))
        return warps.select(self.chance(batch, op.p), m, warps.identity(batch))

    def displacement(
        self, batch: tf.Tensor, x: tf.Tensor, y: tf.Tensor
    ) -> tuple[tf.Tensor, tf.Tensor]:
        """Sum of the displacement fields (B, H, W) of the non-linear ops, in output space.

        Each field is computed only for the images that draw its op (about p of the batch):
        fields are most of the warp's cost, and most images do not get most of them."""
        s = self.spec
        height, width = x.shape[1], x.shape[2]
        size = min(height, width)
        dx = dy = tf.zeros([batch, height, width])
        if is_active(s.elastic):
            alpha, sigma = s.elastic.alpha, s.elastic.sigma

            def elastic(chosen: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
                shape = [tf.size(chosen), height, width, 2]
                noise = tf.random.stateless_uniform(shape, seed, -1.0, 1.0)
                return warps.elastic_field(noise, alpha, sigma, size)

            dx, dy = self.add_field(dx, dy, s.elastic.p, elastic)
        if is_active(s.smooth_distortion):
            g = s.smooth_distortion.grid + 1
            reach = s.smooth_distortion.magnitude * size

            def smooth(chosen: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
                nodes = tf.random.stateless_uniform([tf.size(chosen), g, g, 2], seed, -1.0, 1.0)
                return warps.smooth_field(nodes * reach, height, width)

            dx, dy = self.add_field(dx, dy, s.smooth_distortion.p, smooth)
        for op, sign in ((s.barrel, 1.0), (s.pincushion, -1.0)):
            if is_active(op):
                cx, cy = self.centres(batch, op.centres, height, width)
                amount = self.uniform([batch], *op.amount) * sign

                def radial(
                    chosen: tf.Tensor,
                    _seed: tf.Tensor,
                    cx=cx,
                    cy=cy,
                    amount=amount,
                    radius=op.radius * size,
                ) -> tf.Tensor:
                    at_x, at_y, at_amount = (tf.gather(v, chosen) for v in (cx, cy, amount))
                    return tf.stack(warps.radial_field(x, y, at_x, at_y, radius, at_amount), -1)

                dx, dy = self.add_field(dx, dy, op.p, radial)
        return dx, dy

    def add_field(
        self,
        dx: tf.Tensor,
        dy: tf.Tensor,
        p: float,
        make: Callable[[tf.Tensor, tf.Tensor], tf.Tensor],
    ) -> tuple[tf.Tensor, ...]:
        """``dx``/``dy`` plus the (n, H, W, 2) field ``make(chosen, seed)`` of the images chosen
        with probability ``p`` (indices ``chosen``); ``seed`` is drawn here, outside the branch,
        because a SeedGenerator must not advance inside a ``tf.cond``."""
        chosen = tf.where(self.chance(tf.shape(dx)[0], p))
        seed = keras.random.randint([2], 0, 2**31 - 1, seed=self.generator)

        def added() -> tuple[tf.Tensor, tf.Tensor]:
            shape = tf.concat([tf.shape(dx, out_type=tf.int64), [2]], 0)
            field = tf.scatter_nd(chosen, make(chosen[:, 0], seed), shape)
            return dx + field[..., 0], dy + field[..., 1]

        return tf.cond(tf.size(chosen) > 0, added, lambda: (dx, dy))

    def centres(
        self, batch: tf.Tensor, centres: list[list[float]], height: int, width: int
    ) -> tuple[tf.Tensor, tf.Tensor]:
        """A centre per image from the list, or anywhere if it is empty; centred pixels."""
        if centres:
            table = tf.constant([[float(v) for v in c] for c in centres])
            pick = keras.random.randint([batch], 0, len(centres), seed=self.generator)
            fx, fy = tf.unstack(tf.gather(table, pick), axis=1)
        else:
            fx, fy = self.uniform([batch]), self.uniform([batch])
        return (fx - 0.5) * width, (fy - 0.5) * height
