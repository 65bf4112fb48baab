"""MultiResUNet (Ibtehaz & Rahman, 2020): MultiRes blocks and ResPaths.

A MultiRes block replaces the UNet's two 3x3 convs by a chain of three 3x3 convs whose
outputs (receptive fields 3, 5 and 7) are concatenated, plus a 1x1 residual shortcut: the
multi-scale view of an Inception block at the cost of a few 3x3 convs. A ResPath replaces
the plain skip by a chain of residual 3x3 convs (longer for shallower levels), narrowing the
semantic gap between encoder and decoder features.
"""

from __future__ import annotations

import keras

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
from seg.models.fused_norm import FusedBatchNorm

__all__ = ["build_multires_unet"]


def _residual(
    x: keras.KerasTensor, shortcut: keras.KerasTensor, name: str, style: ConvStyle
) -> keras.KerasTensor:
    """activation(x + shortcut), then BN, as in the paper's blocks."""
    x = keras.layers.Add(name=f"{name}_add")([shortcut, x])
    x = keras.layers.Activation(style.activation, name=f"{name}_act")(x)
    if style.batch_norm:
        x = FusedBatchNorm(momentum=style.bn_momentum, name=f"{name}_bn")(x)
    return x


def multires_block(
    x: keras.KerasTensor, filters: int, alpha: float, name: str, style: ConvStyle
) -> keras.KerasTensor:
    """``W = alpha * filters`` split as W/6, W/3, W/2 over three chained 3x3 convs."""
    width = alpha * filters
    split = [max(1, int(width * f)) for f in (1 / 6, 1 / 3, 1 / 2)]
    shortcut = style.unit(x, sum(split), f"{name}_shortcut", kernel=1, activate=False)
    branches = []
    for i, part in enumerate(split, 1):
        x = style.unit(x, part, f"{name}_{i}")
        branches.append(x)
    x = keras.layers.Concatenate(name=f"{name}_branches")(branches)
    if style.batch_norm:
        x = FusedBatchNorm(momentum=style.bn_momentum, name=f"{name}_bn")(x)
    return _residual(x, shortcut, f"{name}_out", style)


def res_path(
    x: keras.KerasTensor, filters: int, length: int, name: str, style: ConvStyle
) -> keras.KerasTensor:
    """``length`` residual units, each a 3x3 conv with a 1x1 conv shortcut."""
    for i in range(1, length + 1):
        shortcut = style.unit(x, filters, f"{name}_{i}_shortcut", kernel=1, activate=False)
        x = style.unit(x, filters, f"{name}_{i}")
        x = _residual(x, shortcut, f"{name}_{i}_out", style)
    return x


def build_multires_unet(
    input_shape: tuple[int, int, int],
    num_classes: int = 1,
    base_filters: int = 16,
    num_layers: int = 5,
    alpha: float = 1.67,
    batch_norm: bool = True,
    activation: str = "relu",
    bn_momentum: float = 0.9,
    name: str = "multires_unet",
) -> keras.Model:
    """MultiResUNet: ``image`` (H, W, C) -> ``mask`` (H, W, num_classes).

    Args:
        input_shape: (height, width, channels); sides divisible by ``2 ** (num_layers - 1)``.
        num_classes: 1 -> sigmoid, more -> softmax.
        base_filters: the paper's U at level 0 (32 there), doubled per level down.
        num_layers: levels including the bottleneck; the ResPath of level ``i`` has
            ``num_layers - 1 - i`` units (4, 3, 2, 1 for 5 levels).
        alpha: width multiplier of the MultiRes blocks (1.67 in the paper, matching a
            UNet's parameter count).
        batch_norm, activation, bn_momentum: as for the UNet's conv units.
    """
    shape = check_depth(input_shape, num_layers)
    num_classes = check_num_classes(num_classes)
    base_filters = check_int(base_filters, "model.base_filters")
    if isinstance(alpha, bool) or not isinstance(alpha, int | float) or alpha <= 0:
        raise ConfigError(f"model.alpha: must be a number > 0, got {alpha!r}")
    style = ConvStyle.checked(batch_norm, activation, bn_momentum)

    def block(x: keras.KerasTensor, filters: int, name: str, level: int) -> keras.KerasTensor:
        return multires_block(x, filters, alpha, name, style)

    def path(skip: keras.KerasTensor, coarser: keras.KerasTensor, level: int):
        length = num_layers - 1 - level  # shallower levels bridge a wider semantic gap
        return res_path(skip, base_filters * 2**level, length, f"respath{level + 1}", style)

    inputs = image_input(shape)
    x = unet_skeleton(inputs, num_layers, base_filters, block, path)
    return keras.Model(inputs, output_head(x, num_classes), name=name)
