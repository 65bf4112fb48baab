"""The model group: one schema per architecture, and the table of architectures."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from omegaconf import MISSING


@dataclass
class UNetFamilyConfig:
    """What the UNet-like models share: width, depth and the conv blocks' style."""

    base_filters: int = MISSING  # filters at full resolution, doubled per level down
    num_layers: int = MISSING  # levels incl. the bottleneck; sides multiples of 2**(n-1)
    dropout_rate: float = 0.0
    batch_norm: bool = True
    bn_momentum: float = 0.9
    activation: str = "relu"


@dataclass
class UNetConfig(UNetFamilyConfig):
    _target_: str = "seg.models.unet.build_unet"
    base_kernels: list[int] = MISSING  # first-level kernel, shrinking by 2 per level to 3
    dilation: list[int] = MISSING  # first-level dilation, decreasing per level to 1


@dataclass
class AttentionUNetConfig(UNetFamilyConfig):
    _target_: str = "seg.models.attention_unet.build_attention_unet"


@dataclass
class UNetPlusPlusConfig(UNetFamilyConfig):
    _target_: str = "seg.models.unet_plus_plus.build_unet_plus_plus"
    deep_supervision: bool = False


@dataclass
class UNet3PlusConfig(UNetFamilyConfig):
    _target_: str = "seg.models.unet3plus.build_unet3plus"
    deep_supervision: bool = False


class SkipKernel(StrEnum):
    laplacian = "laplacian"  # the Sharp U-Net paper's [[-1,-1,-1],[-1,8,-1],[-1,-1,-1]]
    sharpen = "sharpen"  # [[0,-1,0],[-1,5,-1],[0,-1,0]]


@dataclass
class SharpUNetConfig(UNetFamilyConfig):
    _target_: str = "seg.models.sharp_unet.build_sharp_unet"
    skip_kernel: SkipKernel = SkipKernel.laplacian


@dataclass
class MultiResUNetConfig:
    _target_: str = "seg.models.multires_unet.build_multires_unet"
    base_filters: int = MISSING
    num_layers: int = MISSING
    alpha: float = 1.67
    batch_norm: bool = True
    bn_momentum: float = 0.9
    activation: str = "relu"


@dataclass
class U2NetConfig:
    _target_: str = "seg.models.u2net.build_u2net"
    mid_filters: int = MISSING
    out_filters: int = MISSING
    deep_supervision: bool = True
    bn_momentum: float = 0.9


@dataclass
class PretrainedEncoderConfig:
    """Models with a keras.applications encoder (see seg/models/encoders.py)."""

    weights: str | None = None  # null, or the path of a local ImageNet .h5 / .weights.h5 file
    freeze_encoder: bool = False


@dataclass
class DeepLabV3PlusConfig(PretrainedEncoderConfig):
    _target_: str = "seg.models.deeplabv3plus.build_deeplabv3plus"
    aspp_filters: int = 256
    aspp_rates: list[int] = field(default_factory=lambda: [6, 12, 18])
    low_level_filters: int = 48
    decoder_filters: int = 256
    dropout_rate: float = 0.1
    bn_momentum: float = 0.9


class EfficientNetVariant(StrEnum):
    b0 = "b0"
    b1 = "b1"
    b2 = "b2"
    b3 = "b3"
    b4 = "b4"
    b5 = "b5"
    b6 = "b6"
    b7 = "b7"


@dataclass
class EfficientUNetConfig(PretrainedEncoderConfig):
    _target_: str = "seg.models.efficient_unet.build_efficient_unet"
    variant: EfficientNetVariant = EfficientNetVariant.b0
    decoder_filters: int = 16
    dropout_rate: float = 0.0
    activation: str = "relu"
    bn_momentum: float = 0.9


@dataclass
class SwinUNetConfig:
    _target_: str = "seg.models.swin_unet.build_swin_unet"
    patch_size: int = 4
    embed_dim: int = MISSING
    depths: list[int] = MISSING
    num_heads: list[int] = MISSING
    window_size: int = 4
    mlp_ratio: float = 4.0


@dataclass
class TransUNetConfig(PretrainedEncoderConfig):
    _target_: str = "seg.models.transunet.build_transunet"
    hidden_size: int = MISSING
    transformer_layers: int = MISSING
    num_heads: int = MISSING
    mlp_dim: int = MISSING
    decoder_filters: list[int] = field(default_factory=lambda: [256, 128, 64, 16])
    dropout_rate: float = 0.1
    bn_momentum: float = 0.9


# model=<name> -> its schema; every conf/model/<name>.yaml pulls in schema/model/<name>.
MODEL_SCHEMAS: dict[str, type] = {
    "unet": UNetConfig,
    "attention_unet": AttentionUNetConfig,
    "unet_plus_plus": UNetPlusPlusConfig,
    "unet3plus": UNet3PlusConfig,
    "multires_unet": MultiResUNetConfig,
    "sharp_unet": SharpUNetConfig,
    "u2net": U2NetConfig,
    "deeplabv3plus": DeepLabV3PlusConfig,
    "efficient_unet": EfficientUNetConfig,
    "swin_unet": SwinUNetConfig,
    "transunet": TransUNetConfig,
}
