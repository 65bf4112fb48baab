"""UNet++ (Zhou et al., 2018): nested, dense skip pathways between encoder and decoder.

Node ``X[i][j]`` (level ``i``, column ``j``) is a conv block on the concatenation of every
earlier node of its level, ``X[i][0..j-1]``, and the upsampled ``X[i+1][j-1]``, so the
semantic gap between an encoder map and the decoder it joins is bridged step by step.
With deep supervision, every top node ``X[0][1..L-1]`` has a head (see
:func:`seg.models.blocks.deep_supervision_output`); inference uses the deepest one.
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
    output_head,
    upsample,
)

__all__ = ["build_unet_plus_plus"]


def build_unet_plus_plus(
    input_shape: tuple[int, int, int],
    num_classes: int = 1,
    base_filters: int = 16,
    num_layers: int = 5,
    deep_supervision: bool = False,
    dropout_rate: float = 0.0,
    batch_norm: bool = True,
    activation: str = "relu",
    bn_momentum: float = 0.9,
    name: str = "unet_plus_plus",
) -> keras.Model:
    """UNet++: ``image`` (H, W, C) -> ``mask`` (H, W, num_classes).

    Args:
        input_shape: (height, width, channels); sides divisible by ``2 ** (num_layers - 1)``.
        num_classes: 1 -> sigmoid, more -> softmax.
        base_filters: filters of level 0, doubled per level down (every node of a level
            has its level's filters).
        num_layers: levels including the bottleneck (5 in the paper: X[0..4]).
        deep_supervision: a head on every top node ``X[0][1..]``, trained together.
        dropout_rate, batch_norm, activation, bn_momentum: as for the UNet's conv blocks.
    """
    shape = check_depth(input_shape, num_layers)
    num_classes = check_num_classes(num_classes)
    base_filters = check_int(base_filters, "model.base_filters")
    deep_supervision = check_bool(deep_supervision, "model.deep_supervision")
    style = ConvStyle.checked(batch_norm, activation, bn_momentum, dropout_rate)

    inputs = image_input(shape)
    nodes: list[list[keras.KerasTensor]] = [[] for _ in range(num_layers)]
    x = inputs
    for level in range(num_layers):  # the backbone column X[i][0]
        if level:
            x = keras.layers.MaxPooling2D(2, name=f"x{level - 1}0_pool")(x)
        x = style.block(x, base_filters * 2**level, f"x{level}0")
        nodes[level].append(x)
    for column in range(1, num_layers):  # X[i][j], i + j <= num_layers - 1
        for level in range(num_layers - column):
            filters = base_filters * 2**level
            up = upsample(nodes[level + 1][column - 1], filters, f"x{level}{column}_up")
            merged = keras.layers.Concatenate(name=f"x{level}{column}_concat")([*nodes[level], up])
            nodes[level].append(style.block(merged, filters, f"x{level}{column}"))

    top = nodes[0][1:]
    if not deep_supervision:
        return keras.Model(inputs, output_head(top[-1], num_classes), name=name)
    heads = [output_head(x, num_classes, f"head_x0{j + 1}") for j, x in enumerate(top)]
    return keras.Model(inputs, deep_supervision_output(heads), name=name)
