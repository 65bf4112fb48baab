"""Attention U-Net (Oktay et al., 2018): a UNet whose skips pass through attention gates.

Each gate scores every skip pixel from the skip itself and the coarser decoder features
(the gating signal), with additive attention: ``alpha = sigmoid(psi(relu(theta(x) +
phi(g))))``, and multiplies the skip by ``alpha``, so the decoder receives the regions the
coarser level found relevant and less of the background clutter.
"""

from __future__ import annotations

import keras

from seg.models.blocks import (
    ConvStyle,
    check_depth,
    check_int,
    check_num_classes,
    image_input,
    output_head,
    unet_skeleton,
)

__all__ = ["attention_gate", "build_attention_unet"]


def attention_gate(
    skip: keras.KerasTensor,
    gate: keras.KerasTensor,
    inter_filters: int,
    name: str,
    style: ConvStyle,
) -> keras.KerasTensor:
    """Gate ``skip`` (H x W) with ``gate`` (H/2 x W/2), as in the paper: theta is a 2x2
    stride-2 conv on the skip, phi a 1x1 conv on the gate, the coefficients are upsampled
    back to H x W, and a 1x1 conv + BN recombines the gated skip."""
    theta = keras.layers.Conv2D(inter_filters, 2, strides=2, name=f"{name}_theta")(skip)
    phi = keras.layers.Conv2D(inter_filters, 1, name=f"{name}_phi")(gate)
    joint = keras.layers.Activation("relu", name=f"{name}_relu")(
        keras.layers.Add(name=f"{name}_add")([theta, phi])
    )
    alpha = keras.layers.Conv2D(1, 1, activation="sigmoid", name=f"{name}_psi")(joint)
    alpha = keras.layers.UpSampling2D(2, interpolation="bilinear", name=f"{name}_up")(alpha)
    gated = keras.layers.Multiply(name=f"{name}_multiply")([skip, alpha])
    filters = skip.shape[-1]
    return style.unit(gated, filters, f"{name}_out", kernel=1, activate=False)


def build_attention_unet(
    input_shape: tuple[int, int, int],
    num_classes: int = 1,
    base_filters: int = 16,
    num_layers: int = 5,
    dropout_rate: float = 0.0,
    batch_norm: bool = True,
    activation: str = "relu",
    bn_momentum: float = 0.9,
    name: str = "attention_unet",
) -> keras.Model:
    """Attention U-Net: ``image`` (H, W, C) -> ``mask`` (H, W, num_classes).

    Args:
        input_shape: (height, width, channels); sides divisible by ``2 ** (num_layers - 1)``.
        num_classes: 1 -> sigmoid, more -> softmax.
        base_filters: filters at the first level, doubled per level down.
        num_layers: levels including the bottleneck.
        dropout_rate, batch_norm, activation, bn_momentum: as for the UNet's conv blocks.
    """
    shape = check_depth(input_shape, num_layers)
    num_classes = check_num_classes(num_classes)
    base_filters = check_int(base_filters, "model.base_filters")
    style = ConvStyle.checked(batch_norm, activation, bn_momentum, dropout_rate)

    def gate(skip: keras.KerasTensor, coarser: keras.KerasTensor, level: int):
        return attention_gate(skip, coarser, max(1, skip.shape[-1] // 2), f"gate{level + 1}", style)

    inputs = image_input(shape)
    x = unet_skeleton(inputs, num_layers, base_filters, style.level_block, gate)
    return keras.Model(inputs, output_head(x, num_classes), name=name)
