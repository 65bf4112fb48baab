"""The "slightly flexible" UNet of the legacy scripts, as a Keras 3 functional builder.

Flexible in three ways the classic UNet is not: the first level may use a large kernel that
shrinks by 2 per level (down to 3), a dilation rate that decreases by 1 per level (down to 1),
and any Keras activation. Large kernels/dilations are only worth their cost at full resolution,
where the receptive field is smallest; deeper levels already see wide context through pooling.

Only built-in layers are used, so a saved ``.keras`` file loads with
``keras.saving.load_model(path)`` under the default ``safe_mode=True`` and no custom objects.
"""

from __future__ import annotations

from collections.abc import Sequence

import keras

from seg.errors import ConfigError
from seg.models.blocks import (
    ConvStyle,
    check_depth,
    check_int,
    check_num_classes,
    image_input,
    int_pair,
    output_head,
    unet_skeleton,
)

__all__ = ["build_unet"]


def _level_kernel(base: tuple[int, int], level: int) -> tuple[int, int]:
    """Kernel of encoder ``level`` (0 = full resolution): shrink by 2 per level, floor at 3.

    A base kernel already below 3 (i.e. 1) is kept as is rather than grown.
    """
    return max(min(base[0], 3), base[0] - 2 * level), max(min(base[1], 3), base[1] - 2 * level)


def _level_dilation(base: tuple[int, int], level: int) -> tuple[int, int]:
    """Dilation of encoder ``level``: decrease by 1 per level, floor at 1."""
    return max(1, base[0] - level), max(1, base[1] - level)


def _kernels_and_dilations(
    base_kernels: int | Sequence[int], dilation: int | Sequence[int]
) -> tuple[tuple[int, int], tuple[int, int]]:
    kernels = int_pair(base_kernels, "model.base_kernels")
    if any(k < 1 or k % 2 == 0 for k in kernels):
        raise ConfigError(
            f"model.base_kernels: kernel sizes must be odd and >= 1 (so 'same' padding is "
            f"symmetric), got {list(kernels)}"
        )
    dilations = int_pair(dilation, "model.dilation")
    if any(d < 1 for d in dilations):
        raise ConfigError(f"model.dilation: must be >= 1, got {list(dilations)}")
    return kernels, dilations


def build_unet(
    input_shape: tuple[int, int, int],
    num_classes: int = 1,
    base_filters: int = 16,
    num_layers: int = 5,
    base_kernels: tuple[int, int] | list[int] = (3, 3),
    dilation: tuple[int, int] | list[int] | int = 1,
    dropout_rate: float = 0.0,
    batch_norm: bool = True,
    activation: str = "relu",
    bn_momentum: float = 0.9,
    name: str = "unet",
) -> keras.Model:
    """Build a UNet mapping ``image`` (H, W, C) to ``mask`` (H, W, num_classes).

    The input is expected as float32 already scaled to [0, 1] by the data pipeline; the
    model does not rescale, so the same model serves training, evaluation and inference.

    Args:
        input_shape: (height, width, channels); height and width must be divisible by
            ``2 ** (num_layers - 1)``. Non-square is fine.
        num_classes: 1 gives one sigmoid channel (binary); more gives a softmax over classes.
        base_filters: filters at the first level; doubled at each level down.
        num_layers: levels including the bottleneck, so ``num_layers - 1`` poolings.
        base_kernels: first-level kernel (odd); shrinks by 2 per level, not below 3
            (e.g. 9, 7, 5, 3, 3). The decoder mirrors the encoder level's kernel.
        dilation: first-level dilation rate; decreases by 1 per level, not below 1.
        dropout_rate: SpatialDropout2D rate after each conv block; 0 adds no layer.
        batch_norm: BatchNormalization between each conv and its activation.
        activation: any Keras activation name ("relu", "elu", "gelu", "mish", ...).
        bn_momentum: momentum of BatchNormalization's moving statistics. 0.9 rather than
            Keras' 0.99: with the few hundred steps of a small medical dataset, 0.99 leaves
            the initial statistics dominant and validation masks empty for many epochs.
        name: the model's name.

    Returns:
        An uncompiled ``keras.Model``; its output layer "mask" computes in float32 so that a
        mixed-precision policy can be enabled without a float16 sigmoid/softmax.

    Raises:
        ConfigError: an argument is invalid; the message names the config key to change.
    """
    shape = check_depth(input_shape, num_layers)
    num_classes = check_num_classes(num_classes)
    base_filters = check_int(base_filters, "model.base_filters")
    kernels, dilations = _kernels_and_dilations(base_kernels, dilation)
    style = ConvStyle.checked(batch_norm, activation, bn_momentum, dropout_rate)

    def block(x: keras.KerasTensor, filters: int, name: str, level: int) -> keras.KerasTensor:
        kernel, rate = _level_kernel(kernels, level), _level_dilation(dilations, level)
        return style.block(x, filters, name, kernel, rate)  # the decoder mirrors its level

    inputs = image_input(shape)
    x = unet_skeleton(inputs, num_layers, base_filters, block)
    return keras.Model(inputs, output_head(x, num_classes), name=name)
