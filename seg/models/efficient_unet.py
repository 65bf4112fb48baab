"""EfficientUNet: an EfficientNet (B0-B7, keras.applications) encoder with a UNet decoder.

The encoder's feature maps at strides 2, 4, 8 and 16 are the skips and its stride-32 map
the bottleneck; each decoder stage upsamples x2, concatenates the skip of that stride and
applies a UNet conv block; a last stage without skip returns to full resolution.
"""

from __future__ import annotations

import keras

from seg.errors import ConfigError
from seg.models.blocks import (
    ConvStyle,
    check_input_shape,
    check_int,
    check_num_classes,
    output_head,
)
from seg.models.encoders import build_encoder

__all__ = ["VARIANTS", "build_efficient_unet"]

VARIANTS = tuple(f"b{v}" for v in range(8))
_MULTIPLE = 32  # output stride of the encoder


def build_efficient_unet(
    input_shape: tuple[int, int, int],
    num_classes: int = 1,
    variant: str = "b0",
    weights: str | None = None,
    freeze_encoder: bool = False,
    decoder_filters: int = 16,
    dropout_rate: float = 0.0,
    activation: str = "relu",
    bn_momentum: float = 0.9,
    name: str = "efficient_unet",
) -> keras.Model:
    """EfficientUNet: ``image`` (H, W, C) -> ``mask`` (H, W, num_classes).

    Args:
        input_shape: (height, width, channels); sides divisible by 32. Grey input is
            repeated to RGB inside the model.
        num_classes: 1 -> sigmoid, more -> softmax.
        variant: ``b0`` ... ``b7`` (EfficientNetB0 ... B7).
        weights: ``None`` (random) or the path of a local ImageNet file
            (``efficientnet<variant>_notop.h5``); see :mod:`seg.models.encoders`.
        freeze_encoder: keep the encoder's weights (and BN statistics) fixed.
        decoder_filters: filters of the full-resolution decoder stage, doubled per stage
            down (16 -> 16, 32, 64, 128, 256 from full resolution to stride 16).
        dropout_rate, activation: as for the UNet's conv blocks (with BN).
        bn_momentum: BatchNormalization momentum of the whole model, encoder included.
    """
    shape = check_input_shape(input_shape, _MULTIPLE, "model=efficient_unet (output stride 32)")
    num_classes = check_num_classes(num_classes)
    if variant not in VARIANTS:
        raise ConfigError(f"model.variant: one of {', '.join(VARIANTS)}, got {variant!r}")
    decoder_filters = check_int(decoder_filters, "model.decoder_filters")
    style = ConvStyle.checked(True, activation, bn_momentum, dropout_rate)

    inputs, features, _ = build_encoder(
        f"efficientnet_{variant}", shape, weights, freeze_encoder, style.bn_momentum
    )
    *skips, x = features  # strides 2, 4, 8, 16; the stride-32 bottleneck
    for stage in reversed(range(len(skips) + 1)):  # stride 16, 8, 4, 2, then full size
        x = keras.layers.UpSampling2D(2, interpolation="bilinear", name=f"dec{stage}_up")(x)
        if stage:
            x = keras.layers.Concatenate(name=f"dec{stage}_concat")([x, skips[stage - 1]])
        x = style.block(x, decoder_filters * 2**stage, f"dec{stage}")
    return keras.Model(inputs, output_head(x, num_classes), name=name)
