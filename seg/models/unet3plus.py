"""UNet 3+ (Huang et al., 2020): full-scale skip connections.

Every decoder stage sees every scale: the shallower encoder maps max-pooled down to it, the
encoder map of its own level, and the deeper decoder maps (the bottleneck included)
bilinearly upsampled to it; each of the ``num_layers`` inputs goes through a 3x3 conv to
``base_filters`` channels, and their concatenation through one more 3x3 conv. With deep
supervision each decoder stage and the bottleneck get a 3x3 conv head upsampled to full
resolution (see :func:`seg.models.blocks.deep_supervision_output`). The paper's optional
classification-guided module (organ present or not) is not included.
"""

from __future__ import annotations

import keras

from seg.models.blocks import (
    ConvStyle,
    check_bool,
    check_depth,
    check_int,
    check_num_classes,
    deep_supervision_output,
    image_input,
    output_activation,
    output_head,
)

__all__ = ["build_unet3plus"]


def _rescale(x: keras.KerasTensor, levels: int, name: str) -> keras.KerasTensor:
    """From ``levels`` levels deeper (> 0: bilinear upsampling) or shallower (< 0: max
    pooling) to the current level."""
    if levels > 0:
        return keras.layers.UpSampling2D(2**levels, interpolation="bilinear", name=name)(x)
    if levels < 0:
        return keras.layers.MaxPooling2D(2**-levels, name=name)(x)
    return x


def _side_head(x: keras.KerasTensor, num_classes: int, scale: int, name: str) -> keras.KerasTensor:
    """3x3 conv to classes at the stage's resolution, bilinear upsampling, activation."""
    x = keras.layers.Conv2D(num_classes, 3, padding="same", name=f"{name}_conv")(x)
    if scale > 1:
        x = keras.layers.UpSampling2D(scale, interpolation="bilinear", name=f"{name}_up")(x)
    return keras.layers.Activation(output_activation(num_classes), dtype="float32", name=name)(x)


def build_unet3plus(
    input_shape: tuple[int, int, int],
    num_classes: int = 1,
    base_filters: int = 16,
    num_layers: int = 5,
    deep_supervision: bool = False,
    dropout_rate: float = 0.0,
    batch_norm: bool = True,
    activation: str = "relu",
    bn_momentum: float = 0.9,
    name: str = "unet3plus",
) -> keras.Model:
    """UNet 3+: ``image`` (H, W, C) -> ``mask`` (H, W, num_classes).

    Args:
        input_shape: (height, width, channels); sides divisible by ``2 ** (num_layers - 1)``.
        num_classes: 1 -> sigmoid, more -> softmax.
        base_filters: encoder filters at level 0, doubled per level down; also the
            channels of each full-scale branch (the paper's 64 "CatChannels"), so a decoder
            stage has ``num_layers * base_filters`` channels.
        num_layers: levels including the bottleneck (5 in the paper).
        deep_supervision: heads on every decoder stage and the bottleneck.
        dropout_rate, batch_norm, activation, bn_momentum: as for the UNet's conv blocks.
    """
    shape = check_depth(input_shape, num_layers)
    num_classes = check_num_classes(num_classes)
    base_filters = check_int(base_filters, "model.base_filters")
    deep_supervision = check_bool(deep_supervision, "model.deep_supervision")
    style = ConvStyle.checked(batch_norm, activation, bn_momentum, dropout_rate)

    inputs = image_input(shape)
    encoder: list[keras.KerasTensor] = []
    x = inputs
    for level in range(num_layers):
        if level:
            x = keras.layers.MaxPooling2D(2, name=f"enc{level}_pool")(x)
        x = style.block(x, base_filters * 2**level, f"enc{level + 1}")
        encoder.append(x)

    bottom = num_layers - 1
    decoder: dict[int, keras.KerasTensor] = {bottom: encoder[bottom]}
    for stage in reversed(range(bottom)):
        branches = []
        for source in range(num_layers):
            feature = encoder[source] if source <= stage else decoder[source]
            prefix = f"dec{stage + 1}_from{source + 1}"
            feature = _rescale(feature, source - stage, f"{prefix}_rescale")
            branches.append(style.unit(feature, base_filters, prefix))
        merged = keras.layers.Concatenate(name=f"dec{stage + 1}_concat")(branches)
        decoder[stage] = style.block(merged, num_layers * base_filters, f"dec{stage + 1}", convs=1)

    if not deep_supervision:
        return keras.Model(inputs, output_head(decoder[0], num_classes, kernel=3), name=name)
    # Heads from the bottleneck up to the final stage, the final one last.
    heads = [
        _side_head(decoder[stage], num_classes, 2**stage, f"head_dec{stage + 1}")
        for stage in reversed(range(num_layers))
    ]
    return keras.Model(inputs, deep_supervision_output(heads), name=name)
