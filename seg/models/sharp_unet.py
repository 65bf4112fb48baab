"""Sharp U-Net (Zunair & Hamza, 2021): a UNet whose skips are sharpened before fusion.

Each encoder map is convolved depthwise with a fixed (non-trainable) 3x3 high-pass kernel
before it is concatenated with the decoder, which emphasises edges and fine detail and
reduces the semantic gap that makes plain skips blur object boundaries. The kernel is the
published one, the Laplacian ``[[-1,-1,-1],[-1,8,-1],[-1,-1,-1]]``; ``sharpen`` is the classic
sharpening kernel ``[[0,-1,0],[-1,5,-1],[0,-1,0]]`` that keeps the low frequencies too.
"""

from __future__ import annotations

import keras
import numpy as np

from seg.errors import ConfigError
from seg.models.blocks import (
    ConvStyle,
    check_depth,
    check_int,
    check_num_classes,
    image_input,
    output_head,
    unet_skeleton,
)

__all__ = ["SKIP_KERNELS", "build_sharp_unet", "sharpen_skip"]

SKIP_KERNELS = {
    "laplacian": np.array([[-1, -1, -1], [-1, 8, -1], [-1, -1, -1]], "float32"),
    "sharpen": np.array([[0, -1, 0], [-1, 5, -1], [0, -1, 0]], "float32"),
}


def sharpen_skip(x: keras.KerasTensor, kernel: np.ndarray, name: str) -> keras.KerasTensor:
    """The same fixed 3x3 kernel applied to every channel (a frozen DepthwiseConv2D; the
    kernel is stored in the model's weights, so a saved model needs no custom code)."""
    layer = keras.layers.DepthwiseConv2D(
        3, padding="same", use_bias=False, trainable=False, name=name
    )
    out = layer(x)
    channels = x.shape[-1]
    layer.set_weights([np.repeat(kernel[:, :, None, None], channels, axis=2)])
    return out


def build_sharp_unet(
    input_shape: tuple[int, int, int],
    num_classes: int = 1,
    base_filters: int = 16,
    num_layers: int = 5,
    skip_kernel: str = "laplacian",
    dropout_rate: float = 0.0,
    batch_norm: bool = True,
    activation: str = "relu",
    bn_momentum: float = 0.9,
    name: str = "sharp_unet",
) -> keras.Model:
    """Sharp U-Net: ``image`` (H, W, C) -> ``mask`` (H, W, num_classes).

    Args:
        input_shape: (height, width, channels); sides divisible by ``2 ** (num_layers - 1)``.
        num_classes: 1 -> sigmoid, more -> softmax.
        base_filters: filters at the first level, doubled per level down.
        num_layers: levels including the bottleneck.
        skip_kernel: ``laplacian`` (the paper's) or ``sharpen``.
        dropout_rate, batch_norm, activation, bn_momentum: as for the UNet's conv blocks.
    """
    shape = check_depth(input_shape, num_layers)
    num_classes = check_num_classes(num_classes)
    base_filters = check_int(base_filters, "model.base_filters")
    if skip_kernel not in SKIP_KERNELS:
        raise ConfigError(
            f"model.skip_kernel: one of {', '.join(SKIP_KERNELS)}, got {skip_kernel!r}"
        )
    style = ConvStyle.checked(batch_norm, activation, bn_momentum, dropout_rate)

    def sharpen(skip: keras.KerasTensor, coarser: keras.KerasTensor, level: int):
        return sharpen_skip(skip, SKIP_KERNELS[skip_kernel], f"sharpen{level + 1}")

    inputs = image_input(shape)
    x = unet_skeleton(inputs, num_layers, base_filters, style.level_block, sharpen)
    return keras.Model(inputs, output_head(x, num_classes), name=name)
