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

import keras

from seg.models.blocks import (
    ConvStyle,
    check_bool,
    check_input_shape,
    check_int,
    check_momentum,
    check_num_classes,
    deep_supervision_output,
    output_activation,
)

__all__ = ["build_u2net"]

_MULTIPLE = 32  # five 2x poolings between stage 1 and stage 6


def _up(x: keras.KerasTensor, name: str) -> keras.KerasTensor:
    return keras.layers.UpSampling2D(2, interpolation="bilinear", name=name)(x)


def rsu(
    x: keras.KerasTensor, levels: int, mid: int, out: int, name: str, style: ConvStyle,
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
        encoder.append(style.unit(below, mid, f"{name}_e{i}", dilation=2 ** (i - 1) if dilated
                                  else 1))
    bottom_rate = 2 ** (levels - 1) if dilated else 2
    x = style.unit(encoder[-1], mid, f"{name}_bottom", dilation=bottom_rate)
    for i in reversed(range(1, levels)):  # decoder: d(levels-1) ... d1
        merged = keras.layers.Concatenate(name=f"{name}_d{i}_concat")([x, encoder[i - 1]])
        x = style.unit(merged, out if i == 1 else mid, f"{name}_d{i}",
                       dilation=2 ** (i - 1) if dilated else 1)
        if i > 1 and not dilated:
            x = _up(x, f"{name}_d{i}_up")
    return keras.layers.Add(name=f"{name}_residual")([x, x_in])


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
    shape = check_input_shape(input_shape, _MULTIPLE, "model=u2net (six stages, 5 poolings)")
    num_classes = check_num_classes(num_classes)
    mid = check_int(mid_filters, "model.mid_filters")
    out = check_int(out_filters, "model.out_filters")
    deep_supervision = check_bool(deep_supervision, "model.deep_supervision")
    style = ConvStyle(batch_norm=True, activation="relu", bn_momentum=check_momentum(bn_momentum))

    inputs = keras.Input(shape=shape, name="image")
    x, encoder = inputs, []
    for stage, levels in enumerate((7, 6, 5, 4), 1):
        x = rsu(x, levels, mid, out, f"en{stage}", style)
        encoder.append(x)
        x = keras.layers.MaxPooling2D(2, name=f"en{stage}_pool")(x)
    x = rsu(x, 4, mid, out, "en5", style, dilated=True)
    encoder.append(x)
    x = keras.layers.MaxPooling2D(2, name="en5_pool")(x)
    x = rsu(x, 4, mid, out, "en6", style, dilated=True)

    sides = [x]  # the deepest first: en6, de5, de4, ..., de1
    for stage, levels in zip((5, 4, 3, 2, 1), (4, 4, 5, 6, 7), strict=True):
        merged = keras.layers.Concatenate(name=f"de{stage}_concat")(
            [_up(x, f"de{stage}_up"), encoder[stage - 1]]
        )
        x = rsu(merged, levels, mid, out, f"de{stage}", style, dilated=stage == 5)
        sides.append(x)

    # Side outputs: 3x3 conv to class logits, upsampled to full resolution; the fuse is a
    # 1x1 conv over all six (as logits, so softmax/sigmoid apply once at the end).
    logits = []
    for depth, feature in zip(range(5, -1, -1), sides, strict=True):
        side = f"side{depth + 1}"
        y = keras.layers.Conv2D(num_classes, 3, padding="same", name=f"{side}_conv")(feature)
        if depth:
            y = keras.layers.UpSampling2D(2**depth, interpolation="bilinear",
                                          name=f"{side}_up")(y)
        logits.append(y)
    fused = keras.layers.Conv2D(num_classes, 1, name="fuse")(
        keras.layers.Concatenate(name="fuse_concat")(logits[::-1])
    )
    activation = output_activation(num_classes)
    if not deep_supervision:
        mask = keras.layers.Activation(activation, dtype="float32", name="mask")(fused)
        return keras.Model(inputs, mask, name=name)
    heads = [
        keras.layers.Activation(activation, dtype="float32", name=f"head_{n}")(y)
        for n, y in zip([f"side{d + 1}" for d in range(5, -1, -1)] + ["fused"],
                        [*logits, fused], strict=True)
    ]
    return keras.Model(inputs, deep_supervision_output(heads), name=name)
