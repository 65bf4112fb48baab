"""Swin-Unet (Cao et al., 2021): a pure-transformer UNet of Swin Transformer blocks.

The image is cut into ``patch_size`` patches, embedded linearly, and goes through an encoder
of Swin stages (pairs of window / shifted-window attention blocks, patch merging halving
the resolution between stages); the deepest stage is the bottleneck. The decoder mirrors it
with patch expanding (a linear layer and a depth-to-space rearrangement doubling the
resolution), skip concatenation and a linear projection, then Swin blocks; a final patch
expanding returns to full resolution for a 1x1 output head.

Windows: a stage uses ``min(window_size, side)`` per axis, and shifts only along an axis
that is larger than its window (as Swin does when a stage is as small as its window).
Stochastic depth (drop path) of the paper is not included.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import keras

from seg.errors import ConfigError
from seg.models.blocks import (
    check_input_shape,
    check_int,
    check_num_classes,
    image_input,
    output_head,
)
from seg.models.layers import WindowAttention

__all__ = ["build_swin_unet"]


def _norm(x: keras.KerasTensor, name: str) -> keras.KerasTensor:
    return keras.layers.LayerNormalization(epsilon=1e-5, name=name)(x)


def _space_to_depth(x: keras.KerasTensor, factor: int, name: str) -> keras.KerasTensor:
    """(H, W, C) -> (H/f, W/f, f*f*C): each f x f neighbourhood becomes one position."""
    height, width, channels = x.shape[1:]
    x = keras.layers.Reshape(
        (height // factor, factor, width // factor, factor, channels), name=f"{name}_split"
    )(x)
    x = keras.layers.Permute((1, 3, 2, 4, 5), name=f"{name}_permute")(x)
    return keras.layers.Reshape(
        (height // factor, width // factor, factor * factor * channels), name=f"{name}_merge"
    )(x)


def _depth_to_space(x: keras.KerasTensor, factor: int, name: str) -> keras.KerasTensor:
    """(H, W, f*f*C) -> (H*f, W*f, C), the inverse of :func:`_space_to_depth`."""
    height, width, channels = x.shape[1:]
    channels //= factor * factor
    x = keras.layers.Reshape((height, width, factor, factor, channels), name=f"{name}_split")(x)
    x = keras.layers.Permute((1, 3, 2, 4, 5), name=f"{name}_permute")(x)
    return keras.layers.Reshape((height * factor, width * factor, channels), name=f"{name}_merge")(
        x
    )


def swin_block(
    x: keras.KerasTensor,
    num_heads: int,
    window_size: int,
    shifted: bool,
    mlp_ratio: float,
    name: str,
) -> keras.KerasTensor:
    """x + W-MSA(LN(x)), then x + MLP(LN(x)); the window is shifted by half when asked."""
    height, width, channels = x.shape[1:]
    window = (min(window_size, height), min(window_size, width))
    shift = tuple(
        w // 2 if shifted and side > w else 0
        for w, side in zip(window, (height, width), strict=True)
    )
    y = WindowAttention(num_heads, window, shift, name=f"{name}_attention")(
        _norm(x, f"{name}_norm1")
    )
    x = keras.layers.Add(name=f"{name}_add1")([x, y])
    y = keras.layers.Dense(int(channels * mlp_ratio), activation="gelu", name=f"{name}_mlp1")(
        _norm(x, f"{name}_norm2")
    )
    y = keras.layers.Dense(channels, name=f"{name}_mlp2")(y)
    return keras.layers.Add(name=f"{name}_add2")([x, y])


def _stage(x, depth: int, heads: int, window_size: int, mlp_ratio: float, name: str):
    for i in range(depth):
        x = swin_block(x, heads, window_size, i % 2 == 1, mlp_ratio, f"{name}_block{i + 1}")
    return x


def _check(
    shape: tuple[int, int, int],
    patch_size: int,
    depths: list[int],
    heads: list[int],
    embed_dim: int,
    window_size: int,
) -> None:
    stages = len(depths)
    if len(heads) != stages:
        raise ConfigError(
            f"model.num_heads: one per stage, {stages} like model.depths, got {heads}"
        )
    for i, h in enumerate(heads):
        if (embed_dim * 2**i) % h:
            raise ConfigError(
                f"model.num_heads: stage {i + 1} has {embed_dim * 2**i} channels "
                f"(embed_dim * 2**{i}), not divisible by {h} heads"
            )
    for i in range(stages):  # each stage's sides must be multiples of its windows
        for side in (s // (patch_size * 2**i) for s in shape[:2]):
            if side % min(window_size, side):
                multiple = patch_size * 2 ** (stages - 1) * window_size
                raise ConfigError(
                    f"model=swin_unet: stage {i + 1} is {shape[0] // (patch_size * 2**i)}x"
                    f"{shape[1] // (patch_size * 2**i)}, not tiled by model.window_size="
                    f"{window_size}; use dataset.image_size multiples of {multiple} "
                    "(patch_size * 2**(stages-1) * window_size) or a smaller window"
                )


@dataclass(frozen=True)
class _SwinUnetArgs:
    """The checked arguments of :func:`build_swin_unet`."""

    shape: tuple[int, int, int]
    num_classes: int
    patch_size: int
    embed_dim: int
    depths: tuple[int, ...]
    heads: tuple[int, ...]
    window_size: int
    mlp_ratio: float

    @property
    def stages(self) -> int:
        """Number of stages, the last being the bottleneck."""
        return len(self.depths)


def _checked_args(
    input_shape: tuple[int, int, int],
    num_classes: int,
    patch_size: int,
    embed_dim: int,
    depths: Sequence[int],
    num_heads: Sequence[int],
    window_size: int,
    mlp_ratio: float,
) -> _SwinUnetArgs:
    """Check every argument before any layer is built (depths and patch size first: the input
    shape's rule depends on them)."""
    stages = len(depths) if not isinstance(depths, str) else 0
    depths = [check_int(d, "model.depths") for d in depths] if stages else []
    if not depths:
        raise ConfigError(f"model.depths: a list of blocks per stage, got {depths!r}")
    patch_size = check_int(patch_size, "model.patch_size")
    shape = check_input_shape(
        input_shape,
        patch_size * 2 ** (stages - 1),
        f"model=swin_unet (patch_size={patch_size}, {stages} stages)",
    )
    num_classes = check_num_classes(num_classes)
    embed_dim = check_int(embed_dim, "model.embed_dim")
    window_size = check_int(window_size, "model.window_size")
    heads = [check_int(h, "model.num_heads") for h in num_heads]
    if isinstance(mlp_ratio, bool) or not isinstance(mlp_ratio, int | float) or mlp_ratio <= 0:
        raise ConfigError(f"model.mlp_ratio: must be a number > 0, got {mlp_ratio!r}")
    _check(shape, patch_size, depths, heads, embed_dim, window_size)
    return _SwinUnetArgs(
        shape,
        num_classes,
        patch_size,
        embed_dim,
        tuple(depths),
        tuple(heads),
        window_size,
        mlp_ratio,
    )


def _encoder(
    inputs: keras.KerasTensor, args: _SwinUnetArgs
) -> tuple[keras.KerasTensor, list[keras.KerasTensor]]:
    """Patch embedding, then Swin stages with patch merging between them: the deepest map
    and every stage's output (the skips)."""
    embed_dim = args.embed_dim
    x = keras.layers.Conv2D(
        embed_dim, args.patch_size, strides=args.patch_size, name="patch_embed"
    )(inputs)
    x = _norm(x, "patch_embed_norm")
    skips = []
    for i in range(args.stages):
        if i:  # patch merging: 2x2 neighbours -> one token, 4C -> 2C channels
            x = _norm(_space_to_depth(x, 2, f"merge{i}"), f"merge{i}_norm")
            x = keras.layers.Dense(embed_dim * 2**i, use_bias=False, name=f"merge{i}_reduce")(x)
        x = _stage(
            x, args.depths[i], args.heads[i], args.window_size, args.mlp_ratio, f"enc{i + 1}"
        )
        skips.append(x)
    return x, skips


def _decoder(
    x: keras.KerasTensor, skips: list[keras.KerasTensor], args: _SwinUnetArgs
) -> keras.KerasTensor:
    """The bottleneck back up: patch expanding, skip concatenation and Swin stages, then a
    final patch expanding to full resolution."""
    embed_dim = args.embed_dim
    x = _norm(x, "bottleneck_norm")
    for i in reversed(range(args.stages - 1)):
        channels = embed_dim * 2**i
        # patch expanding: 2C channels -> 4C by a linear layer, rearranged to 2x resolution.
        x = keras.layers.Dense(4 * channels, use_bias=False, name=f"expand{i + 1}")(x)
        x = _norm(_depth_to_space(x, 2, f"expand{i + 1}"), f"expand{i + 1}_norm")
        x = keras.layers.Concatenate(name=f"dec{i + 1}_concat")([x, skips[i]])
        x = keras.layers.Dense(channels, name=f"dec{i + 1}_project")(x)
        x = _stage(
            x, args.depths[i], args.heads[i], args.window_size, args.mlp_ratio, f"dec{i + 1}"
        )
    x = _norm(x, "decoder_norm")
    # final patch expanding: back to full resolution with embed_dim channels.
    x = keras.layers.Dense(args.patch_size**2 * embed_dim, use_bias=False, name="final_expand")(x)
    return _norm(_depth_to_space(x, args.patch_size, "final_expand"), "final_expand_norm")


def build_swin_unet(
    input_shape: tuple[int, int, int],
    num_classes: int = 1,
    patch_size: int = 4,
    embed_dim: int = 48,
    depths: Sequence[int] = (2, 2, 2, 2),
    num_heads: Sequence[int] = (3, 6, 12, 24),
    window_size: int = 4,
    mlp_ratio: float = 4.0,
    name: str = "swin_unet",
) -> keras.Model:
    """Swin-Unet: ``image`` (H, W, C) -> ``mask`` (H, W, num_classes).

    Args:
        input_shape: (height, width, channels); sides divisible by
            ``patch_size * 2 ** (len(depths) - 1)`` and every stage tiled by its windows.
        num_classes: 1 -> sigmoid, more -> softmax.
        patch_size: side of the patches embedded as tokens (4 in the paper).
        embed_dim: channels of the first stage, doubled per stage (96 in the paper).
        depths: Swin blocks per stage, the last stage being the bottleneck; the decoder
            mirrors them (the paper: 2, 2, 2, 2).
        num_heads: attention heads per stage (3, 6, 12, 24).
        window_size: attention window side (7 in the paper at 224 px; 4 suits 128 px
            inputs, whose stages are 32, 16, 8 and 4 tokens wide).
        mlp_ratio: hidden width of each block's MLP relative to its channels.
    """
    args = _checked_args(
        input_shape,
        num_classes,
        patch_size,
        embed_dim,
        depths,
        num_heads,
        window_size,
        mlp_ratio,
    )
    inputs = image_input(args.shape)
    x, skips = _encoder(inputs, args)
    x = _decoder(x, skips, args)
    return keras.Model(inputs, output_head(x, args.num_classes), name=name)
