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
from numbers import Integral, Real

import keras

from seg.errors import ConfigError

__all__ = ["build_unet"]


def _is_int(value: object) -> bool:
    return isinstance(value, Integral) and not isinstance(value, bool)


def _int_pair(value: int | Sequence[int], key: str) -> tuple[int, int]:
    """Accept an int or a 2-sequence of ints (Hydra passes lists as ListConfig)."""
    if _is_int(value):
        return int(value), int(value)
    if isinstance(value, str) or not isinstance(value, Sequence) or len(value) != 2:
        raise ConfigError(f"{key}: expected an integer or [height, width], got {value!r}")
    if not all(_is_int(v) for v in value):
        raise ConfigError(f"{key}: expected integers, got {list(value)!r}")
    return int(value[0]), int(value[1])


def _level_kernel(base: tuple[int, int], level: int) -> tuple[int, int]:
    """Kernel of encoder ``level`` (0 = full resolution): shrink by 2 per level, floor at 3.

    A base kernel already below 3 (i.e. 1) is kept as is rather than grown.
    """
    return max(min(base[0], 3), base[0] - 2 * level), max(min(base[1], 3), base[1] - 2 * level)


def _level_dilation(base: tuple[int, int], level: int) -> tuple[int, int]:
    """Dilation of encoder ``level``: decrease by 1 per level, floor at 1."""
    return max(1, base[0] - level), max(1, base[1] - level)


def _validate(
    input_shape: Sequence[int],
    num_classes: int,
    base_filters: int,
    num_layers: int,
    base_kernels: int | Sequence[int],
    dilation: int | Sequence[int],
    dropout_rate: float,
    batch_norm: bool,
    activation: str,
) -> tuple[tuple[int, int, int], tuple[int, int], tuple[int, int]]:
    """Check every argument up front so a bad config fails before any layer is built.

    Returns the normalised input shape, base kernel and base dilation.
    """
    if (
        isinstance(input_shape, str)
        or not isinstance(input_shape, Sequence)
        or len(input_shape) != 3
        or not all(_is_int(v) and v >= 1 for v in input_shape)
    ):
        raise ConfigError(
            "dataset.image_size/dataset.channels: the model input shape must be "
            f"(height, width, channels) of positive integers, got {input_shape!r}"
        )
    height, width, channels = (int(v) for v in input_shape)
    if not _is_int(num_layers) or num_layers < 2:
        raise ConfigError(
            f"model.num_layers: must be an integer >= 2 (one pooling level plus the "
            f"bottleneck), got {num_layers!r}"
        )
    multiple = 2 ** (num_layers - 1)
    if height % multiple or width % multiple:
        raise ConfigError(
            f"model.num_layers={num_layers} needs image height and width divisible by "
            f"{multiple}; got {height}x{width}: use dataset.image_size multiples of {multiple} "
            "or fewer layers"
        )
    if not _is_int(num_classes) or num_classes < 1:
        raise ConfigError(f"dataset.num_classes: must be an integer >= 1, got {num_classes!r}")
    if not _is_int(base_filters) or base_filters < 1:
        raise ConfigError(f"model.base_filters: must be an integer >= 1, got {base_filters!r}")
    kernels = _int_pair(base_kernels, "model.base_kernels")
    if any(k < 1 or k % 2 == 0 for k in kernels):
        raise ConfigError(
            f"model.base_kernels: kernel sizes must be odd and >= 1 (so 'same' padding is "
            f"symmetric), got {list(kernels)}"
        )
    dilations = _int_pair(dilation, "model.dilation")
    if any(d < 1 for d in dilations):
        raise ConfigError(f"model.dilation: must be >= 1, got {list(dilations)}")
    if (
        isinstance(dropout_rate, bool)
        or not isinstance(dropout_rate, Real)
        or not 0.0 <= dropout_rate < 1.0
    ):
        raise ConfigError(f"model.dropout_rate: must be in [0, 1), got {dropout_rate!r}")
    if not isinstance(batch_norm, bool):
        raise ConfigError(f"model.batch_norm: must be true or false, got {batch_norm!r}")
    unknown = f"model.activation: unknown Keras activation {activation!r}"
    if not isinstance(activation, str) or not activation:
        raise ConfigError(f"{unknown}; use a name such as relu, elu, gelu, mish")
    try:
        keras.activations.get(activation)
    except ValueError:
        raise ConfigError(f"{unknown}; use a name such as relu, elu, gelu, mish") from None
    return (height, width, channels), kernels, dilations


def _conv_block(
    x: keras.KerasTensor,
    filters: int,
    kernel: tuple[int, int],
    dilation: tuple[int, int],
    dropout_rate: float,
    batch_norm: bool,
    activation: str,
    prefix: str,
    bn_momentum: float = 0.9,
) -> keras.KerasTensor:
    """Two (conv -> [BN] -> activation) units, then optional SpatialDropout2D.

    With BN the conv bias is dropped: BN's beta already provides the shift.
    SpatialDropout2D (whole feature maps) rather than Dropout (single pixels): neighbouring
    activations of a conv map are strongly correlated, so element-wise dropout is largely
    undone by the neighbours and barely regularises.
    """
    for i in (1, 2):
        x = keras.layers.Conv2D(
            filters,
            kernel,
            dilation_rate=dilation,
            padding="same",
            use_bias=not batch_norm,
            kernel_initializer="he_normal",
            name=f"{prefix}_conv{i}",
        )(x)
        if batch_norm:
            x = keras.layers.BatchNormalization(momentum=bn_momentum, name=f"{prefix}_bn{i}")(x)
        x = keras.layers.Activation(activation, name=f"{prefix}_act{i}")(x)
    if dropout_rate > 0:
        x = keras.layers.SpatialDropout2D(dropout_rate, name=f"{prefix}_dropout")(x)
    return x


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
    shape, kernels, dilations = _validate(
        input_shape,
        num_classes,
        base_filters,
        num_layers,
        base_kernels,
        dilation,
        dropout_rate,
        batch_norm,
        activation,
    )
    if not 0.0 <= float(bn_momentum) < 1.0:
        raise ConfigError(f"model.bn_momentum must be in [0, 1), got {bn_momentum}")
    block = {
        "bn_momentum": float(bn_momentum),
        "dropout_rate": float(dropout_rate),
        "batch_norm": batch_norm,
        "activation": activation,
    }

    inputs = keras.Input(shape=shape, name="image")
    x = inputs
    skips: list[keras.KerasTensor] = []
    for level in range(num_layers - 1):
        x = _conv_block(
            x,
            base_filters * 2**level,
            _level_kernel(kernels, level),
            _level_dilation(dilations, level),
            prefix=f"enc{level + 1}",
            **block,
        )
        skips.append(x)
        x = keras.layers.MaxPooling2D(2, name=f"enc{level + 1}_pool")(x)

    bottom = num_layers - 1
    x = _conv_block(
        x,
        base_filters * 2**bottom,
        _level_kernel(kernels, bottom),
        _level_dilation(dilations, bottom),
        prefix="bottleneck",
        **block,
    )

    for level in reversed(range(num_layers - 1)):
        filters = base_filters * 2**level
        # Learned 2x upsampling: a 2x2/stride-2 transpose conv tiles the output exactly, so
        # it has none of the checkerboard overlap of larger transpose kernels.
        x = keras.layers.Conv2DTranspose(
            filters, 2, strides=2, padding="same", name=f"dec{level + 1}_up"
        )(x)
        x = keras.layers.Concatenate(name=f"dec{level + 1}_concat")([x, skips[level]])
        x = _conv_block(
            x,
            filters,
            _level_kernel(kernels, level),
            _level_dilation(dilations, level),
            prefix=f"dec{level + 1}",
            **block,
        )

    outputs = keras.layers.Conv2D(
        num_classes,
        1,
        activation="sigmoid" if num_classes == 1 else "softmax",
        dtype="float32",
        name="mask",
    )(x)
    return keras.Model(inputs, outputs, name=name)
