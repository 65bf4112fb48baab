"""Building blocks shared by every architecture: argument checks that name the config key,
conv blocks, output heads and deep supervision.

Every check raises :class:`~seg.errors.ConfigError` before any layer is built, so a bad
config fails in a second with one line naming the key to change.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from numbers import Integral

import keras

from seg.config.bounds import require_in
from seg.errors import ConfigError
from seg.models.fused_norm import FusedBatchNorm
from seg.models.layers import DeepSupervision

__all__ = [
    "ConvStyle",
    "InputShapeChecked",
    "arguments_checked",
    "check_activation",
    "check_bool",
    "check_depth",
    "check_input_shape",
    "check_int",
    "check_momentum",
    "check_num_classes",
    "check_rate",
    "deep_supervision_output",
    "image_input",
    "input_shape_only",
    "int_pair",
    "is_int",
    "output_activation",
    "output_head",
    "unet_skeleton",
    "upsample",
]


def is_int(value: object) -> bool:
    return isinstance(value, Integral) and not isinstance(value, bool)


def int_pair(value: int | Sequence[int], key: str) -> tuple[int, int]:
    """Accept an int or a 2-sequence of ints (Hydra passes lists as ListConfig)."""
    if is_int(value):
        return int(value), int(value)
    if isinstance(value, str) or not isinstance(value, Sequence) or len(value) != 2:
        raise ConfigError(f"{key}: expected an integer or [height, width], got {value!r}")
    if not all(is_int(v) for v in value):
        raise ConfigError(f"{key}: expected integers, got {list(value)!r}")
    return int(value[0]), int(value[1])


def check_int(value: object, key: str, minimum: int = 1) -> int:
    if not is_int(value) or value < minimum:
        raise ConfigError(f"{key}: must be an integer >= {minimum}, got {value!r}")
    return int(value)


def check_rate(value: object, key: str) -> float:
    """A dropout-like rate (or a BatchNorm momentum) in [0, 1)."""
    require_in(value, key, 0, 1, high_open=True)
    return float(value)


def check_momentum(value: object, key: str = "model.bn_momentum") -> float:
    return check_rate(value, key)


def check_num_classes(num_classes: object) -> int:
    if not is_int(num_classes) or num_classes < 1:
        raise ConfigError(f"dataset.num_classes: must be an integer >= 1, got {num_classes!r}")
    return int(num_classes)


def check_bool(value: object, key: str) -> bool:
    if not isinstance(value, bool):
        raise ConfigError(f"{key}: must be true or false, got {value!r}")
    return value


def check_activation(activation: object, key: str = "model.activation") -> str:
    unknown = f"{key}: unknown Keras activation {activation!r}"
    if not isinstance(activation, str) or not activation:
        raise ConfigError(f"{unknown}; use a name such as relu, elu, gelu, mish")
    try:
        keras.activations.get(activation)
    except ValueError:
        raise ConfigError(f"{unknown}; use a name such as relu, elu, gelu, mish") from None
    return activation


_SHAPE_ONLY: ContextVar[bool] = ContextVar("seg_input_shape_only", default=False)


class InputShapeChecked(Exception):
    """Raised by :func:`arguments_checked` under :func:`input_shape_only` once the shape and
    every other argument passed: the builder stops there, before any layer is built."""


@contextmanager
def input_shape_only() -> Iterator[None]:
    """Builders called inside stop once their arguments are checked, before their first layer
    (:func:`image_input`, :func:`arguments_checked`), so a run can check the size rule and
    every argument of any architecture before it opens
    (:func:`seg.training.factory.check_model_input_shape`) without building the model."""
    token = _SHAPE_ONLY.set(True)
    try:
        yield
    finally:
        _SHAPE_ONLY.reset(token)


def check_input_shape(
    input_shape: Sequence[int],
    multiple: int = 1,
    reason: str = "",
    advice: str = "",
    minimum: int = 1,
) -> tuple[int, int, int]:
    """(height, width, channels) of positive ints, height and width multiples of ``multiple``
    and at least ``minimum``.

    ``reason`` says what imposes the multiple (e.g. ``model.num_layers=5``), ``advice`` how
    else to satisfy it (e.g. ``or fewer layers``); both go into the error message.
    """
    if (
        isinstance(input_shape, str)
        or not isinstance(input_shape, Sequence)
        or len(input_shape) != 3
        or not all(is_int(v) and v >= 1 for v in input_shape)
    ):
        raise ConfigError(
            "dataset.image_size/dataset.channels: the model input shape must be "
            f"(height, width, channels) of positive integers, got {input_shape!r}"
        )
    height, width, channels = (int(v) for v in input_shape)
    if height % multiple or width % multiple:
        raise ConfigError(
            f"{reason} needs image height and width divisible by {multiple}; got "
            f"{height}x{width}: use dataset.image_size multiples of {multiple}"
            + (f" {advice}" if advice else "")
        )
    if min(height, width) < minimum:
        raise ConfigError(
            f"{reason} needs images of at least {minimum}x{minimum}, got {height}x{width}: "
            "use a larger dataset.image_size"
        )
    return height, width, channels


def arguments_checked() -> None:
    """Called by a builder once every argument is checked, before its first layer: under
    :func:`input_shape_only` the builder stops here (:class:`InputShapeChecked`)."""
    if _SHAPE_ONLY.get():
        raise InputShapeChecked


def image_input(shape: Sequence[int]) -> keras.KerasTensor:
    """The model's input ``image``, made once every argument is checked (see
    :func:`arguments_checked`)."""
    arguments_checked()
    return keras.Input(shape=tuple(shape), name="image")


def check_depth(input_shape: Sequence[int], num_layers: object) -> tuple[int, int, int]:
    """The input shape, checked against ``model.num_layers`` (levels incl. the bottleneck,
    so ``num_layers - 1`` poolings): the size rule of the UNet family."""
    if not is_int(num_layers) or num_layers < 2:
        raise ConfigError(
            f"model.num_layers: must be an integer >= 2 (one pooling level plus the "
            f"bottleneck), got {num_layers!r}"
        )
    return check_input_shape(
        input_shape, 2 ** (num_layers - 1), f"model.num_layers={num_layers}", "or fewer layers"
    )


@dataclass(frozen=True)
class ConvStyle:
    """How every conv unit of a model is built: conv -> [BN] -> activation.

    With BN the conv bias is dropped: BN's beta already provides the shift.
    ``bn_momentum`` is 0.9 rather than Keras' 0.99: with the few hundred steps of a small
    medical dataset, 0.99 leaves the initial statistics dominant and validation masks empty
    for many epochs.
    """

    batch_norm: bool = True
    activation: str = "relu"
    bn_momentum: float = 0.9
    dropout_rate: float = 0.0

    @classmethod
    def checked(
        cls,
        batch_norm: bool = True,
        activation: str = "relu",
        bn_momentum: float = 0.9,
        dropout_rate: float = 0.0,
    ) -> ConvStyle:
        return cls(
            check_bool(batch_norm, "model.batch_norm"),
            check_activation(activation),
            check_momentum(bn_momentum),
            check_rate(dropout_rate, "model.dropout_rate"),
        )

    def unit(
        self,
        x: keras.KerasTensor,
        filters: int,
        name: str,
        kernel: int | tuple[int, int] = 3,
        dilation: int | tuple[int, int] = 1,
        activate: bool = True,
        suffix: str = "",
    ) -> keras.KerasTensor:
        """One conv -> [BN] -> [activation]; layers named ``{name}_conv{suffix}`` etc."""
        x = keras.layers.Conv2D(
            filters,
            kernel,
            dilation_rate=dilation,
            padding="same",
            use_bias=not self.batch_norm,
            kernel_initializer="he_normal",
            name=f"{name}_conv{suffix}",
        )(x)
        if self.batch_norm:
            x = FusedBatchNorm(momentum=self.bn_momentum, name=f"{name}_bn{suffix}")(x)
        if activate:
            x = keras.layers.Activation(self.activation, name=f"{name}_act{suffix}")(x)
        return x

    def block(
        self,
        x: keras.KerasTensor,
        filters: int,
        name: str,
        kernel: int | tuple[int, int] = 3,
        dilation: int | tuple[int, int] = 1,
        convs: int = 2,
    ) -> keras.KerasTensor:
        """``convs`` conv units, then SpatialDropout2D if ``dropout_rate`` > 0.

        SpatialDropout2D (whole feature maps) rather than Dropout (single pixels):
        neighbouring activations of a conv map are strongly correlated, so element-wise
        dropout is largely undone by the neighbours and barely regularises.
        """
        for i in range(1, convs + 1):
            x = self.unit(x, filters, name, kernel, dilation, suffix=str(i))
        if self.dropout_rate > 0:
            x = keras.layers.SpatialDropout2D(self.dropout_rate, name=f"{name}_dropout")(x)
        return x

    def level_block(
        self, x: keras.KerasTensor, filters: int, name: str, level: int
    ) -> keras.KerasTensor:
        """:meth:`block` with 3x3 kernels at every level (a :data:`Block` for
        :func:`unet_skeleton`)."""
        return self.block(x, filters, name)


def upsample(x: keras.KerasTensor, filters: int, name: str) -> keras.KerasTensor:
    """Learned 2x upsampling: a 2x2/stride-2 transpose conv tiles the output exactly, so it
    has none of the checkerboard overlap of larger transpose kernels."""
    return keras.layers.Conv2DTranspose(filters, 2, strides=2, padding="same", name=name)(x)


Block = Callable[[keras.KerasTensor, int, str, int], keras.KerasTensor]
Bridge = Callable[[keras.KerasTensor, keras.KerasTensor, int], keras.KerasTensor]


def unet_skeleton(
    inputs: keras.KerasTensor,
    num_layers: int,
    base_filters: int,
    block: Block,
    bridge: Bridge | None = None,
) -> keras.KerasTensor:
    """The UNet layout that UNet, Attention U-Net, Sharp U-Net and MultiResUNet share.

    ``block(x, filters, name, level)`` is a level's conv block (encoder ``enc<k>``,
    ``bottleneck``, decoder ``dec<k>``, k = level + 1); filters double per level down.
    ``bridge(skip, coarser, level)`` turns an encoder map into what the decoder
    concatenates, given the coarser decoder features (attention gates, sharpening,
    ResPaths); ``None`` passes skips as they are. Returns the last decoder map.
    """
    x, skips = inputs, []
    for level in range(num_layers - 1):
        x = block(x, base_filters * 2**level, f"enc{level + 1}", level)
        skips.append(x)
        x = keras.layers.MaxPooling2D(2, name=f"enc{level + 1}_pool")(x)
    bottom = num_layers - 1
    x = block(x, base_filters * 2**bottom, "bottleneck", bottom)
    for level in reversed(range(num_layers - 1)):
        filters = base_filters * 2**level
        skip = skips[level] if bridge is None else bridge(skips[level], x, level)
        x = upsample(x, filters, f"dec{level + 1}_up")
        x = keras.layers.Concatenate(name=f"dec{level + 1}_concat")([x, skip])
        x = block(x, filters, f"dec{level + 1}", level)
    return x


def output_activation(num_classes: int) -> str:
    return "sigmoid" if num_classes == 1 else "softmax"


def output_head(
    x: keras.KerasTensor, num_classes: int, name: str = "mask", kernel: int = 1
) -> keras.KerasTensor:
    """Conv to ``num_classes`` channels with sigmoid (1 class) or softmax (more).

    It computes in float32 so that a mixed-precision policy never runs a float16
    sigmoid/softmax (saturation, and losses computed on rounded probabilities).
    """
    return keras.layers.Conv2D(
        num_classes,
        kernel,
        padding="same",
        activation=output_activation(num_classes),
        dtype="float32",
        name=name,
    )(x)


def deep_supervision_output(heads: Sequence[keras.KerasTensor]) -> keras.KerasTensor:
    """The model output ``mask`` from full-resolution probability heads, the final head last.

    A :class:`~seg.models.layers.DeepSupervision` layer scores each training image on one
    head drawn at random (so the one configured loss supervises every head: in expectation
    their mean loss) and returns the final head in inference, so the rest of the pipeline
    sees one output either way.
    """
    return DeepSupervision(dtype="float32", name="mask")(list(heads))
