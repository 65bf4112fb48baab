"""U²-Net (Qin et al., 2020): a UNet of ReSidual U-blocks (RSU), itself made of UNets.

An RSU-L block is a small L-level UNet (L - 2 poolings, a dilated conv at its bottom)
whose output is added to its input conv: multi-scale features at every stage without
losing resolution. Six encoder stages (RSU-7, 6, 5, 4, then two dilated RSU-4F without
pooling) and five decoder stages; each decoder stage and the last encoder stage give a
side output, and a 1x1 conv fuses the six into the final map. With deep supervision (the
paper's training) every side output and the fused one are supervised (see
:func:`seg.models.blocks.deep_supervision_output`); inference returns the fused map.

Widths follow the paper's small model U²-Net† (``mid_filters=16, out_filters=64``, 1.1 M
parameters); the full U²-Net grows them per stage up to 256/512 (44 M).
"""

from __future__ import annotations

from dataclasses import dataclass

import keras

from seg.models.blocks import (
    ConvStyle,
    check_bool,
    check_input_shape,
    check_int,
    check_momentum,
    check_num_classes,
    deep_supervision_output,
    image_input,
    output_activation,
)

__all__ = ["build_u2net"]

_MULTIPLE = 32  # five 2x poolings between stage 1 and stage 6


def _up(x: keras.KerasTensor, name: str) -> keras.KerasTensor:
    return keras.layers.UpSampling2D(2, interpolation="bilinear", name=name)(x)


def rsu(
    x: keras.KerasTensor,
    levels: int,
    mid: int,
    out: int,
    name: str,
    style: ConvStyle,
    dilated: bool = False,
) -> keras.KerasTensor:
    """RSU-``levels``: input conv, an encoder of ``levels - 1`` convs (pooling between them,
    or increasing dilation 1, 2, 4, ... when ``dilated`` (RSU-4F)), a dilated bottom conv,
    a decoder back up, plus the residual input conv."""
    x_in = style.unit(x, out, f"{name}_in")
    encoder = [style.unit(x_in, mid, f"{name}_e1")]
    for i in range(2, levels):
        below = encoder[-1]
        if not dilated:
            below = keras.layers.MaxPooling2D(2, name=f"{name}_pool{i - 1}")(below)
        encoder.append(
            style.unit(below, mid, f"{name}_e{i}", dilation=2 ** (i - 1) if dilated else 1)
        )
    bottom_rate = 2 ** (levels - 1) if dilated else 2
    x = style.unit(encoder[-1], mid, f"{name}_bottom", dilation=bottom_rate)
    for i in reversed(range(1, levels)):  # decoder: d(levels-1) ... d1
        merged = keras.layers.Concatenate(name=f"{name}_d{i}_concat")([x, encoder[i - 1]])
        x = style.unit(
            merged, out if i == 1 else mid, f"{name}_d{i}", dilation=2 ** (i - 1) if dilated else 1
        )
        if i > 1 and not dilated:
            x = _up(x, f"{name}_d{i}_up")
    return keras.layers.Add(name=f"{name}_residual")([x, x_in])


@dataclass(frozen=True)
class _U2NetArgs:
    """The checked arguments of :func:`build_u2net`."""

    shape: tuple[int, int, int]
    num_classes: int
    mid: int
    out: int
    deep_supervision: bool
    style: ConvStyle


def _checked_args(
    input_shape: tuple[int, int, int],
    num_classes: int,
    mid_filters: int,
    out_filters: int,
    deep_supervision: bool,
    bn_momentum: float,
) -> _U2NetArgs:
    """Check every argument (the input shape first) before any layer is built."""
    shape = check_input_shape(input_shape, _MULTIPLE, "model=u2net (six stages, 5 poolings)")
    num_classes = check_num_classes(num_classes)
    mid = check_int(mid_filters, "model.mid_filters")
    out = check_int(out_filters, "model.out_filters")
    deep_supervision = check_bool(deep_supervision, "model.deep_supervision")
    style = ConvStyle(batch_norm=True, activation="relu", bn_momentum=check_momentum(bn_momentum))
    return _U2NetArgs(shape, num_classes, mid, out, deep_supervision, style)


def _encoder(
    inputs: keras.KerasTensor, args: _U2NetArgs
) -> tuple[keras.KerasTensor, list[keras.KerasTensor]]:
    """Six RSU stages (the last two dilated RSU-4F): the deepest map and stages 1-5's."""
    mid, out, style = args.mid, args.out, args.style
    x, encoder = inputs, []
    for stage, levels in enumerate((7, 6, 5, 4), 1):
        x = rsu(x, levels, mid, out, f"en{stage}", style)
        encoder.append(x)
        x = keras.layers.MaxPooling2D(2, name=f"en{stage}_pool")(x)
    x = rsu(x, 4, mid, out, "en5", style, dilated=True)
    encoder.append(x)
    x = keras.layers.MaxPooling2D(2, name="en5_pool")(x)
    x = rsu(x, 4, mid, out, "en6", style, dilated=True)
    return x, encoder


def _decoder(
    x: keras.KerasTensor, encoder: list[keras.KerasTensor], args: _U2NetArgs
) -> list[keras.KerasTensor]:
    """Five RSU stages back up with the encoder's skips: the six side features, deepest first."""
    sides = [x]  # the deepest first: en6, de5, de4, ..., de1
    for stage, levels in zip((5, 4, 3, 2, 1), (4, 4, 5, 6, 7), strict=True):
        merged = keras.layers.Concatenate(name=f"de{stage}_concat")(
            [_up(x, f"de{stage}_up"), encoder[stage - 1]]
        )
        x = rsu(merged, levels, args.mid, args.out, f"de{stage}", args.style, dilated=stage == 5)
        sides.append(x)
    return sides


def _side_logits(
    sides: list[keras.KerasTensor], num_classes: int
) -> tuple[list[keras.KerasTensor], keras.KerasTensor]:
    """Full-resolution class logits of the six side features, and their 1x1-conv fusion."""
    # Side outputs: 3x3 conv to class logits, upsampled to full resolution; the fuse is a
    # 1x1 conv over all six (as logits, so softmax/sigmoid apply once at the end).
    logits = []
    for depth, feature in zip(range(5, -1, -1), sides, strict=True):
        side = f"side{depth + 1}"
        y = keras.layers.Conv2D(num_classes, 3, padding="same", name=f"{side}_conv")(feature)
        if depth:
            y = keras.layers.UpSampling2D(2**depth, interpolation="bilinear", name=f"{side}_up")(y)
        logits.append(y)
    fused = keras.layers.Conv2D(num_classes, 1, name="fuse")(
        keras.layers.Concatenate(name="fuse_concat")(logits[::-1])
    )
    return logits, fused


def _output(
    logits: list[keras.KerasTensor], fused: keras.KerasTensor, args: _U2NetArgs
) -> keras.KerasTensor:
    """The model's output: the fused mask alone, or all seven heads for deep supervision."""
    activation = output_activation(args.num_classes)
    if not args.deep_supervision:
        return keras.layers.Activation(activation, dtype="float32", name="mask")(fused)
    heads = [
        keras.layers.Activation(activation, dtype="float32", name=f"head_{n}")(y)
        for n, y in zip(
            [f"side{d + 1}" for d in range(5, -1, -1)] + ["fused"], [*logits, fused], strict=True
        )
    ]
    return deep_supervision_output(heads)


def build_u2net(
    input_shape: tuple[int, int, int],
    num_classes: int = 1,
    mid_filters: int = 16,
    out_filters: int = 64,
    deep_supervision: bool = True,
    bn_momentum: float = 0.9,
    name: str = "u2net",
) -> keras.Model:
    """U²-Net: ``image`` (H, W, C) -> ``mask`` (H, W, num_classes).

    Args:
        input_shape: (height, width, channels); sides divisible by 32.
        num_classes: 1 -> sigmoid, more -> softmax.
        mid_filters: channels inside every RSU block (16 in U²-Net†).
        out_filters: channels of every RSU block's output (64 in U²-Net†).
        deep_supervision: supervise the six side outputs and the fused one (the paper's
            loss); off trains the fused output alone.
        bn_momentum: BatchNormalization momentum (every conv is conv-BN-ReLU).
    """
    args = _checked_args(
        input_shape, num_classes, mid_filters, out_filters, deep_supervision, bn_momentum
    )
    inputs = image_input(args.shape)
    x, encoder = _encoder(inputs, args)
    logits, fused = _side_logits(_decoder(x, encoder, args), args.num_classes)
    return keras.Model(inputs, _output(logits, fused, args), name=name)
