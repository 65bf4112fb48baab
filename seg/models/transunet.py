"""TransUNet (Chen et al., 2021): a CNN-Transformer hybrid encoder with a cascaded upsampler.

A ResNet50 (keras.applications, its conv1-conv4 stages) encodes the image to stride 16;
its feature map becomes tokens (one per position, a 1x1 conv to ``hidden_size``) with
learned position embeddings, goes through a ViT encoder (pre-norm multi-head attention and
MLP blocks) for global context, and is reshaped back to a map. The cascaded upsampler
(CUP) then doubles the resolution four times, concatenating the ResNet's stride-8, 4 and 2
features on the way (conv-BN-ReLU blocks), and a 3x3 conv head gives the mask.

Defaults are a CPU-sized transformer (4 layers of 256); the paper's R50-ViT-B/16 has 12
layers of 768, 12 heads, MLP 3072 (``model.transformer_layers=12 model.hidden_size=768
model.num_heads=12 model.mlp_dim=3072``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

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
from seg.models.layers import PositionEmbedding

__all__ = ["build_transunet", "transformer_layer"]

_MULTIPLE = 16  # output stride of the CNN encoder
_MINIMUM = 32  # keras.applications' smallest ResNet input


def transformer_layer(
    x: keras.KerasTensor, num_heads: int, mlp_dim: int, dropout_rate: float, name: str
) -> keras.KerasTensor:
    """Pre-norm ViT block: x + MHA(LN(x)), then x + MLP(LN(x)) with GELU."""
    hidden = x.shape[-1]
    y = keras.layers.LayerNormalization(epsilon=1e-6, name=f"{name}_norm1")(x)
    y = keras.layers.MultiHeadAttention(
        num_heads, hidden // num_heads, dropout=dropout_rate, name=f"{name}_attention"
    )(y, y)
    x = keras.layers.Add(name=f"{name}_add1")([x, y])
    y = keras.layers.LayerNormalization(epsilon=1e-6, name=f"{name}_norm2")(x)
    y = keras.layers.Dense(mlp_dim, activation="gelu", name=f"{name}_mlp1")(y)
    if dropout_rate:
        y = keras.layers.Dropout(dropout_rate, name=f"{name}_dropout")(y)
    y = keras.layers.Dense(hidden, name=f"{name}_mlp2")(y)
    return keras.layers.Add(name=f"{name}_add2")([x, y])


@dataclass(frozen=True)
class _TransUNetArgs:
    """The checked arguments of :func:`build_transunet`."""

    shape: tuple[int, int, int]
    num_classes: int
    hidden_size: int
    layers: int
    num_heads: int
    mlp_dim: int
    filters: tuple[int, ...]
    dropout_rate: float
    style: ConvStyle


def _checked_args(
    input_shape: tuple[int, int, int],
    num_classes: int,
    hidden_size: int,
    transformer_layers: int,
    num_heads: int,
    mlp_dim: int,
    decoder_filters: Sequence[int],
    dropout_rate: float,
    bn_momentum: float,
) -> _TransUNetArgs:
    """Check every argument (the input shape first) before any layer is built."""
    shape = check_input_shape(
        input_shape, _MULTIPLE, "model=transunet (ResNet50, output stride 16)", minimum=_MINIMUM
    )
    num_classes = check_num_classes(num_classes)
    hidden_size = check_int(hidden_size, "model.hidden_size")
    layers = check_int(transformer_layers, "model.transformer_layers", minimum=0)
    num_heads = check_int(num_heads, "model.num_heads")
    if hidden_size % num_heads:
        raise ConfigError(
            f"model.num_heads={num_heads} must divide model.hidden_size={hidden_size}"
        )
    mlp_dim = check_int(mlp_dim, "model.mlp_dim")
    filters = [check_int(f, "model.decoder_filters") for f in decoder_filters]
    if len(filters) != 4:
        raise ConfigError(f"model.decoder_filters: four stages, got {list(decoder_filters)}")
    dropout_rate = check_rate(dropout_rate, "model.dropout_rate")
    style = ConvStyle(bn_momentum=check_momentum(bn_momentum))
    return _TransUNetArgs(
        shape,
        num_classes,
        hidden_size,
        layers,
        num_heads,
        mlp_dim,
        tuple(filters),
        dropout_rate,
        style,
    )


def _transformer_encoder(x: keras.KerasTensor, args: _TransUNetArgs) -> keras.KerasTensor:
    """Stride-16 CNN map -> tokens -> ViT encoder -> map again, for global context."""
    height, width = x.shape[1], x.shape[2]
    x = keras.layers.Conv2D(args.hidden_size, 1, name="patch_embed")(x)
    x = keras.layers.Reshape((height * width, args.hidden_size), name="tokens")(x)
    x = PositionEmbedding(name="position_embedding")(x)
    if args.dropout_rate:
        x = keras.layers.Dropout(args.dropout_rate, name="embedding_dropout")(x)
    for i in range(args.layers):
        x = transformer_layer(
            x, args.num_heads, args.mlp_dim, args.dropout_rate, f"transformer{i + 1}"
        )
    x = keras.layers.LayerNormalization(epsilon=1e-6, name="transformer_norm")(x)
    return keras.layers.Reshape((height, width, args.hidden_size), name="token_map")(x)


def _cascaded_upsampler(
    x: keras.KerasTensor, skips: Sequence[keras.KerasTensor], args: _TransUNetArgs
) -> keras.KerasTensor:
    """CUP: the token map back to full resolution, with the CNN's stride-8, 4, 2 skips."""
    style, filters = args.style, args.filters
    # The paper's 3x3 "conv_more" (512 channels, twice its first decoder stage).
    x = style.unit(x, 2 * filters[0], "conv_more")

    for stage, stage_filters in enumerate(filters):  # strides 8, 4, 2, 1
        x = keras.layers.UpSampling2D(2, interpolation="bilinear", name=f"cup{stage + 1}_up")(x)
        if stage < len(skips):
            skip = skips[len(skips) - 1 - stage]
            x = keras.layers.Concatenate(name=f"cup{stage + 1}_concat")([x, skip])
        x = style.block(x, stage_filters, f"cup{stage + 1}")
    return x


def build_transunet(
    input_shape: tuple[int, int, int],
    num_classes: int = 1,
    weights: str | None = None,
    freeze_encoder: bool = False,
    hidden_size: int = 256,
    transformer_layers: int = 4,
    num_heads: int = 8,
    mlp_dim: int = 1024,
    decoder_filters: Sequence[int] = (256, 128, 64, 16),
    dropout_rate: float = 0.1,
    bn_momentum: float = 0.9,
    name: str = "transunet",
) -> keras.Model:
    """TransUNet: ``image`` (H, W, C) -> ``mask`` (H, W, num_classes).

    Args:
        input_shape: (height, width, channels); sides divisible by 16 and at least 32.
            Grey input is repeated to RGB inside the model.
        num_classes: 1 -> sigmoid, more -> softmax.
        weights: ``None`` (random) or the path of a local ImageNet ResNet50 file
            (``resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5``) for the CNN part;
            see :mod:`seg.models.encoders`.
        freeze_encoder: keep the ResNet's weights (and BN statistics) fixed; the
            transformer always trains.
        hidden_size: token width of the transformer.
        transformer_layers: number of transformer blocks.
        num_heads: attention heads (must divide ``hidden_size``).
        mlp_dim: hidden width of each block's MLP.
        decoder_filters: channels of the four CUP stages, stride 8 to full resolution
            (the paper: 256, 128, 64, 16); the conv between transformer and CUP has
            twice the first.
        dropout_rate: attention and MLP dropout in the transformer.
        bn_momentum: BatchNormalization momentum of the CNN encoder and the decoder.
    """
    args = _checked_args(
        input_shape,
        num_classes,
        hidden_size,
        transformer_layers,
        num_heads,
        mlp_dim,
        decoder_filters,
        dropout_rate,
        bn_momentum,
    )
    inputs, features, _ = build_encoder(
        "resnet50", args.shape, weights, freeze_encoder, args.style.bn_momentum
    )
    *skips, x = features  # strides 2, 4, 8; stride 16 goes to the transformer
    x = _transformer_encoder(x, args)
    x = _cascaded_upsampler(x, skips, args)
    return keras.Model(inputs, output_head(x, args.num_classes, kernel=3), name=name)
