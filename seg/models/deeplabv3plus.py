"""DeepLabV3+ (Chen et al., 2018) with a ResNet50 encoder from keras.applications.

The encoder runs to ResNet50's conv4 stage (output stride 16, as in the keras.io
DeepLabV3+ example); Atrous Spatial Pyramid Pooling (a 1x1 conv, three 3x3 convs at rates
6, 12, 18 and image-level pooling) sees several context sizes at once; the decoder
upsamples x4, fuses the stride-4 low-level features (reduced to 48 channels so they do not
drown the semantic ones), refines with two 3x3 convs and upsamples x4 to the input size.
"""

from __future__ import annotations

from collections.abc import Sequence

import keras

from seg.errors import ConfigError
from seg.models.blocks import (
    ConvStyle,
    check_input_shape,
    check_int,
    check_momentum,
    check_num_classes,
    check_rate,
    output_head,
)
from seg.models.encoders import build_encoder

__all__ = ["aspp", "build_deeplabv3plus"]

_MULTIPLE = 16  # output stride of the encoder
_MINIMUM = 32  # keras.applications' smallest ResNet input


def aspp(
    x: keras.KerasTensor,
    filters: int,
    rates: Sequence[int],
    style: ConvStyle,
    name: str = "aspp",
) -> keras.KerasTensor:
    """Atrous Spatial Pyramid Pooling: parallel 1x1, dilated 3x3 and image-pooling branches,
    concatenated and projected by a 1x1 conv."""
    height, width = x.shape[1], x.shape[2]
    pooled = keras.layers.GlobalAveragePooling2D(keepdims=True, name=f"{name}_pool")(x)
    pooled = style.unit(pooled, filters, f"{name}_pool", kernel=1)
    pooled = keras.layers.UpSampling2D((height, width), name=f"{name}_pool_up")(pooled)
    branches = [pooled, style.unit(x, filters, f"{name}_1x1", kernel=1)]
    branches += [style.unit(x, filters, f"{name}_rate{r}", dilation=r) for r in rates]
    merged = keras.layers.Concatenate(name=f"{name}_concat")(branches)
    x = style.unit(merged, filters, f"{name}_project", kernel=1)
    if style.dropout_rate:
        x = keras.layers.Dropout(style.dropout_rate, name=f"{name}_dropout")(x)
    return x


def build_deeplabv3plus(
    input_shape: tuple[int, int, int],
    num_classes: int = 1,
    weights: str | None = None,
    freeze_encoder: bool = False,
    aspp_filters: int = 256,
    aspp_rates: Sequence[int] = (6, 12, 18),
    low_level_filters: int = 48,
    decoder_filters: int = 256,
    dropout_rate: float = 0.1,
    bn_momentum: float = 0.9,
    name: str = "deeplabv3plus",
) -> keras.Model:
    """DeepLabV3+: ``image`` (H, W, C) -> ``mask`` (H, W, num_classes).

    Args:
        input_shape: (height, width, channels); sides divisible by 16 and at least 32.
            Grey input is repeated to RGB inside the model.
        num_classes: 1 -> sigmoid, more -> softmax.
        weights: ``None`` (random) or the path of a local ImageNet ResNet50 file
            (``resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5``); see
            :mod:`seg.models.encoders`.
        freeze_encoder: keep the encoder's weights (and BN statistics) fixed.
        aspp_filters: channels of every ASPP branch and of its projection (256 in the paper).
        aspp_rates: dilation rates of the 3x3 ASPP branches (6, 12, 18 for stride 16).
        low_level_filters: channels the stride-4 features are reduced to (48).
        decoder_filters: channels of the decoder's two 3x3 convs (256).
        dropout_rate: dropout after the ASPP projection (0 adds no layer).
        bn_momentum: BatchNormalization momentum of the whole model, encoder included.
    """
    shape = check_input_shape(
        input_shape, _MULTIPLE, "model=deeplabv3plus (ResNet50, output stride 16)", minimum=_MINIMUM
    )
    num_classes = check_num_classes(num_classes)
    aspp_filters = check_int(aspp_filters, "model.aspp_filters")
    low_level_filters = check_int(low_level_filters, "model.low_level_filters")
    decoder_filters = check_int(decoder_filters, "model.decoder_filters")
    rates = list(aspp_rates) if not isinstance(aspp_rates, str) else []
    if not rates or not all(isinstance(r, int) and r >= 1 for r in rates):
        raise ConfigError(f"model.aspp_rates: a list of integers >= 1, got {aspp_rates!r}")
    style = ConvStyle(
        bn_momentum=check_momentum(bn_momentum),
        dropout_rate=check_rate(dropout_rate, "model.dropout_rate"),
    )

    inputs, features, _ = build_encoder(
        "resnet50", shape, weights, freeze_encoder, style.bn_momentum
    )
    low_level, high_level = features[1], features[3]  # strides 4 and 16
    x = aspp(high_level, aspp_filters, rates, style)
    x = keras.layers.UpSampling2D(4, interpolation="bilinear", name="decoder_up")(x)
    low = style.unit(low_level, low_level_filters, "low_level", kernel=1)
    x = keras.layers.Concatenate(name="decoder_concat")([x, low])
    x = style.unit(x, decoder_filters, "decoder", suffix="1")
    x = style.unit(x, decoder_filters, "decoder", suffix="2")
    x = keras.layers.UpSampling2D(4, interpolation="bilinear", name="output_up")(x)
    return keras.Model(inputs, output_head(x, num_classes), name=name)
