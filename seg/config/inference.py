"""The inference group: threshold, batching, tiling, test-time augmentation, post-processing
and the files an inference writes; its checks."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum

from omegaconf import DictConfig

from seg.config.bounds import Bound, bounded, check_bounds, require
from seg.errors import ConfigError

#: Test-time augmentation transforms: name -> (k quarter turns, flip axis or None) on
#: (B, H, W, C) batches (seg.inference.tta applies them).
TTA_TRANSFORMS: dict[str, tuple[int, int | None]] = {
    "hflip": (0, 2),
    "vflip": (0, 1),
    "rot90": (1, None),
    "rot180": (2, None),
    "rot270": (3, None),
}
TTA_OPS: tuple[str, ...] = tuple(TTA_TRANSFORMS)
# The transform names as the schema's type (inference.tta): derived from the table above.
TTAOp = StrEnum("TTAOp", {name: name for name in TTA_TRANSFORMS})


class Tiling(StrEnum):
    # sliding windows for an input larger than a tile, resizing otherwise; the dataset's own
    # splits are resized, as training fed them (seg.runner.stages.infer.build_predictor)
    auto = "auto"
    on = "on"  # sliding windows for every image
    off = "off"  # resize every image to the model input (the model's training path)


class TileBlending(StrEnum):
    gaussian = "gaussian"  # weights fall off towards tile edges: no seams (nnU-Net)
    uniform = "uniform"  # plain mean of the overlapping tiles


class ThresholdMethod(StrEnum):
    fixed = "fixed"  # inference.threshold
    otsu = "otsu"  # per image, on the probability map


@dataclass
class PostprocessConfig:
    """seg.inference.postprocess.Postprocess: applied in this order, each off by default."""

    blur_sigma: float = 0.0  # Gaussian blur of the probabilities, pixels; 0 = off
    method: ThresholdMethod = ThresholdMethod.fixed
    open_radius: int = 0  # morphological opening, disk radius in pixels; 0 = off
    close_radius: int = 0  # morphological closing, idem
    min_size: int = 0  # remove objects smaller than this many pixels; 0 = off
    fill_holes: bool = False
    keep_largest: bool = False


@dataclass
class InferenceConfig:
    threshold: float = 0.5
    batch_size: int = 8  # images (resized) or tiles (tiled) per model call
    tiling: Tiling = Tiling.auto
    tile_size: list[int] | None = None  # [h, w] image pixels per tile; null: the model input
    tile_overlap: float = 0.25  # fraction of a tile shared with each neighbour
    tile_blending: TileBlending = TileBlending.gaussian
    tile_sigma: float = 0.125  # Gaussian sigma as a fraction of the tile side
    bitwise_blending: bool = False  # AND the tiled mask with the whole-image prediction
    tta: list[TTAOp] = field(default_factory=list)  # averaged with the plain prediction
    pad_multiple: int = 32  # free-size models: images padded to a multiple of this
    postprocess: PostprocessConfig = field(default_factory=PostprocessConfig)
    save_contours: bool = True  # contours/<stem>.png: outlines drawn on the image
    save_colored_masks: bool = True  # colored_masks/<stem>.png: classes in their colours
    overlay_alpha: float = 0.4
    overlay_color: list[int] = field(default_factory=lambda: [255, 0, 0])
    save_probabilities: bool = False  # 16-bit PNG probability maps beside the masks
    # Multiclass masks and overlays: [r, g, b] per class, index 0 = background. null: the
    # colours of dataset.mask.colors, else seg.data.classes.DEFAULT_PALETTE.
    palette: list[list[int]] | None = None
    log_samples: int = 8  # overlays copied to MLflow (all files stay in the output dir)


_INFERENCE_BOUNDS = bounded(
    "inference",
    Bound("threshold", 0, 1, low_open=True, high_open=True),
    Bound("batch_size", 1),
    Bound("overlay_alpha", 0, 1),
    Bound("tile_overlap", 0, 1, high_open=True),
    Bound("tile_sigma", 0, low_open=True),
    Bound("pad_multiple", 1),
)


_POSTPROCESS_BOUNDS = bounded(
    "inference.postprocess",
    *(
        Bound(name, 0, note="0 = off")
        for name in ("blur_sigma", "open_radius", "close_radius", "min_size")
    ),
)


def _validate_ranges(inf: DictConfig) -> None:
    """inference: tiling and post-processing ranges."""
    size = inf.get("tile_size")
    if size is not None:
        require(
            len(size) == 2 and all(v >= 1 for v in size),
            "inference.tile_size",
            f"[height, width] of positive integers, or null; got {list(size)}",
        )
    check_bounds(inf, "inference", _INFERENCE_BOUNDS)
    check_bounds(inf.postprocess, "inference.postprocess", _POSTPROCESS_BOUNDS)


def _validate_palette(inf: DictConfig, classes: int) -> None:
    palette = inf.get("palette")
    if palette is None:
        return
    key = "inference.palette"
    for color in palette:
        require(
            len(color) == 3 and all(0 <= c <= 255 for c in color),
            key,
            f"expected [[r, g, b], ...] in 0..255 (one per class), got {list(color)}",
        )
    require(
        classes == 1 or len(palette) >= classes,
        key,
        f"one colour per class (index 0 = background): dataset.num_classes={classes}, "
        f"got {len(palette)} colours",
    )


def check_tta(ops: Sequence[str], input_size: tuple[int | None, int | None]) -> tuple[str, ...]:
    """The ops as a tuple, each known and once; quarter turns need a square model input."""
    ops = tuple(str(op) for op in ops)
    unknown = [op for op in ops if op not in TTA_TRANSFORMS]
    if unknown:
        raise ConfigError(
            f"inference.tta: unknown transform(s) {unknown}; choose from {', '.join(TTA_OPS)}"
        )
    if len(set(ops)) != len(ops):
        raise ConfigError(f"inference.tta: each transform once, got {list(ops)}")
    h, w = input_size
    odd_turns = [op for op in ops if TTA_TRANSFORMS[op][0] % 2]
    if odd_turns and h is not None and h != w:
        raise ConfigError(
            f"inference.tta: {', '.join(odd_turns)} turn a {h}x{w} model input into {w}x{h}, "
            "which the model cannot take; use hflip, vflip, rot180 with a non-square model"
        )
    return ops


def validate_inference(
    inf: DictConfig, num_classes: int, trained_size: tuple[int, int] | None = None
) -> None:
    """The inference group; ``trained_size``: the input of a model to be trained here, which
    the test-time augmentation must keep (a quarter turn of a non-square input cannot)."""
    require(
        len(inf.overlay_color) == 3 and all(0 <= c <= 255 for c in inf.overlay_color),
        "inference.overlay_color",
        f"expected [r, g, b] in 0..255, got {list(inf.overlay_color)}",
    )
    _validate_palette(inf, num_classes)
    _validate_ranges(inf)
    if trained_size is not None:
        check_tta([str(getattr(op, "value", op)) for op in inf.tta], trained_size)
