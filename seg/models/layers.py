"""The few custom Keras layers the architectures need, all serializable.

Registered under the package name ``seg``, so a saved ``.keras`` model loads with
``keras.saving.load_model(path)`` (``safe_mode=True``) once this module is imported;
:func:`seg.tracking.tracker` imports it before loading. Everything else is built from Keras' own
layers.
"""

from __future__ import annotations

import math
from typing import Any

import keras
import numpy as np
from keras import ops

__all__ = ["DeepSupervision", "ImageNetInput", "PositionEmbedding", "WindowAttention"]


@keras.saving.register_keras_serializable(package="seg")
class DeepSupervision(keras.layers.Layer):
    """One output from several full-resolution probability heads (the final head last).

    Training: every image of the batch is scored on one head drawn uniformly at random, so
    the single loss the train stage compiles supervises every head, and its expectation is
    the mean of the per-head losses (the equal-weight deep supervision of UNet++, UNet3+
    and U²-Net). Inference (``training=False``: validation, evaluation, prediction): the
    final head alone, so validation metrics measure exactly what inference returns.
    """

    def __init__(self, seed: int | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def call(self, heads: list, training: bool | None = None):
        final = heads[-1]
        if not training:
            return final
        count = len(heads)
        batch = ops.shape(final)[0]
        logits = ops.zeros((batch, count))  # uniform over heads
        choice = keras.random.categorical(logits, 1, seed=self.seed_generator)[:, 0]
        weights = ops.one_hot(choice, count, dtype=final.dtype)  # (batch, heads)
        stacked = ops.stack(heads, axis=1)  # (batch, heads, H, W, C)
        return ops.sum(stacked * weights[:, :, None, None, None], axis=1)

    def compute_output_shape(self, input_shape: list) -> tuple:
        return tuple(input_shape[-1])

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "seed": self.seed}


# Caffe-style ImageNet means (BGR, 0..255) of keras.applications' ResNet weights.
_CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)


@keras.saving.register_keras_serializable(package="seg")
class ImageNetInput(keras.layers.Layer):
    """Pipeline images (RGB or grey in [0, 1]) -> what a keras.applications encoder expects.

    Grey images are repeated to three channels, so one encoder (and its ImageNet weights)
    serves grey and colour datasets. Then ``mode="caffe"`` (ResNet): RGB -> BGR, x 255,
    minus the ImageNet mean; ``mode="raw"`` (EfficientNet, which normalises inside): x 255.
    """

    MODES = ("caffe", "raw")

    def __init__(self, mode: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if mode not in self.MODES:
            raise ValueError(f"mode must be one of {self.MODES}, got {mode!r}")
        self.mode = mode

    def call(self, images):
        if images.shape[-1] == 1:
            images = ops.repeat(images, 3, axis=-1)
        images = images * 255.0
        if self.mode == "caffe":
            mean = ops.convert_to_tensor(_CAFFE_MEAN_BGR, dtype=images.dtype)
            images = ops.flip(images, axis=-1) - mean
        return images

    def compute_output_shape(self, input_shape: tuple) -> tuple:
        return (*input_shape[:-1], 3)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "mode": self.mode}


@keras.saving.register_keras_serializable(package="seg")
class PositionEmbedding(keras.layers.Layer):
    """Adds a learned embedding per token position (ViT, TransUNet): (B, N, D) -> (B, N, D)."""

    def build(self, input_shape: tuple) -> None:
        self.embedding = self.add_weight(
            shape=(input_shape[1], input_shape[2]),
            initializer=keras.initializers.TruncatedNormal(stddev=0.02),
            name="embedding",
        )

    def call(self, tokens):
        return tokens + ops.cast(self.embedding, tokens.dtype)[None]


def _relative_position_index(window: tuple[int, int]) -> np.ndarray:
    """(N, N) index into the (2h-1)(2w-1) bias table for every pair of window positions."""
    wh, ww = window
    coords = np.stack(np.meshgrid(np.arange(wh), np.arange(ww), indexing="ij")).reshape(2, -1)
    relative = (coords[:, :, None] - coords[:, None, :]).transpose(1, 2, 0)  # (N, N, 2)
    relative[..., 0] += wh - 1
    relative[..., 1] += ww - 1
    return (relative[..., 0] * (2 * ww - 1) + relative[..., 1]).astype("int32")


def _partition(x, size: tuple[int, int], window: tuple[int, int]):
    """(B, H, W, C) -> (B * windows, wh * ww, C)."""
    (height, width), (wh, ww) = size, window
    channels = x.shape[-1]
    x = ops.reshape(x, (-1, height // wh, wh, width // ww, ww, channels))
    x = ops.transpose(x, (0, 1, 3, 2, 4, 5))
    return ops.reshape(x, (-1, wh * ww, channels))


def _merge(windows, size: tuple[int, int], window: tuple[int, int]):
    """Inverse of :func:`_partition`."""
    (height, width), (wh, ww) = size, window
    channels = windows.shape[-1]
    x = ops.reshape(windows, (-1, height // wh, width // ww, wh, ww, channels))
    x = ops.transpose(x, (0, 1, 3, 2, 4, 5))
    return ops.reshape(x, (-1, height, width, channels))


def _shift_mask(size: tuple[int, int], window: tuple[int, int], shift: tuple[int, int]):
    """(windows, N, N) additive mask: -100 between positions that the cyclic shift brought
    together from opposite borders of the map, 0 elsewhere (Swin's SW-MSA mask)."""
    height, width = size
    regions = np.zeros((height, width), "float32")
    label = 0
    for rows in _shift_slices(height, window[0], shift[0]):
        for cols in _shift_slices(width, window[1], shift[1]):
            regions[rows, cols] = label
            label += 1
    wh, ww = window
    ids = regions.reshape(height // wh, wh, width // ww, ww).transpose(0, 2, 1, 3)
    ids = ids.reshape(-1, wh * ww)  # (windows, N), windows in _partition's order
    return np.where(ids[:, :, None] != ids[:, None, :], -100.0, 0.0).astype("float32")


def _shift_slices(length: int, window: int, shift: int) -> list[slice]:
    if shift == 0:
        return [slice(0, length)]
    return [
        slice(0, length - window),
        slice(length - window, length - shift),
        slice(length - shift, length),
    ]


@keras.saving.register_keras_serializable(package="seg")
class WindowAttention(keras.layers.Layer):
    """Swin's (shifted) window multi-head self-attention on (B, H, W, C) feature maps.

    The map is cut into non-overlapping ``window`` tiles (optionally after a cyclic
    ``shift``, with a mask so that tiles do not attend across the wrap-around); attention
    runs inside each tile with a learned relative position bias; the tiles are put back.
    H and W must be multiples of the window (the builder checks it).
    """

    def __init__(
        self,
        num_heads: int,
        window: tuple[int, int],
        shift: tuple[int, int] = (0, 0),
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.num_heads = int(num_heads)
        self.window = (int(window[0]), int(window[1]))
        self.shift = (int(shift[0]), int(shift[1]))

    def build(self, input_shape: tuple) -> None:
        _, height, width, channels = input_shape
        self.size = (int(height), int(width))
        self.qkv = keras.layers.Dense(3 * channels, name="qkv")
        self.qkv.build((None, None, channels))
        self.proj = keras.layers.Dense(channels, name="proj")
        self.proj.build((None, None, channels))
        wh, ww = self.window
        self.bias_table = self.add_weight(
            shape=((2 * wh - 1) * (2 * ww - 1), self.num_heads),
            initializer=keras.initializers.TruncatedNormal(stddev=0.02),
            name="relative_position_bias",
        )
        # Constants derived from the config, recomputed on load rather than saved.
        self.position_index = _relative_position_index(self.window).reshape(-1)
        self.mask = _shift_mask(self.size, self.window, self.shift) if any(self.shift) else None

    def call(self, x):
        channels = x.shape[-1]
        heads, tokens = self.num_heads, self.window[0] * self.window[1]
        depth = channels // heads
        if any(self.shift):
            x = ops.roll(x, (-self.shift[0], -self.shift[1]), axis=(1, 2))
        windows = _partition(x, self.size, self.window)  # (BW, N, C)
        qkv = ops.reshape(self.qkv(windows), (-1, tokens, 3, heads, depth))
        qkv = ops.transpose(qkv, (2, 0, 3, 1, 4))  # (3, BW, heads, N, depth)
        query, key, value = qkv[0], qkv[1], qkv[2]
        scores = ops.matmul(query * (1.0 / math.sqrt(depth)), ops.transpose(key, (0, 1, 3, 2)))
        bias = ops.take(self.bias_table, self.position_index, axis=0)  # (N*N, heads)
        bias = ops.transpose(ops.reshape(bias, (tokens, tokens, heads)), (2, 0, 1))
        scores = scores + ops.cast(bias, scores.dtype)[None]
        if self.mask is not None:
            count = self.mask.shape[0]
            scores = ops.reshape(scores, (-1, count, heads, tokens, tokens))
            scores = scores + ops.cast(self.mask, scores.dtype)[None, :, None]
            scores = ops.reshape(scores, (-1, heads, tokens, tokens))
        attention = ops.softmax(scores, axis=-1)
        out = ops.transpose(ops.matmul(attention, value), (0, 2, 1, 3))  # (BW, N, heads, d)
        out = self.proj(ops.reshape(out, (-1, tokens, channels)))
        x = _merge(out, self.size, self.window)
        if any(self.shift):
            x = ops.roll(x, self.shift, axis=(1, 2))
        return x

    def compute_output_shape(self, input_shape: tuple) -> tuple:
        return tuple(input_shape)

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            "num_heads": self.num_heads,
            "window": list(self.window),
            "shift": list(self.shift),
        }
