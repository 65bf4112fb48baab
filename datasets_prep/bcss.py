"""BCSS breast cancer histology -> tiles in <dst>/{train,valid,test}/{images,masks}.

Source: large RGB regions ``<images-dir>/<name>.png`` (BCSS: ``rgbs_colorNormalized``) with
class-index masks of the same name in ``<masks-dir>`` (BCSS: 0 outside the region of
interest, 1 tumor, 2 stroma, 3 lymphocytic infiltrate, 4 necrosis, ...).

``--classes 1`` makes binary masks (those classes are foreground); ``--multiclass`` keeps the
listed classes as 1..K in the order given (the rest 0). Regions are cut into ``--tile`` patches
every ``--stride`` pixels (the last row/column aligned to the border, so all of a region is
covered); tiles with less than ``--min-foreground`` of their pixels in the listed classes are
dropped. Tiles are named ``<name>_y<row>_x<col>``. The split groups tiles by slide (the
``--group-regex`` match in the region's name, by default its TCGA patient id), so no slide
is cut between train and test.

    python -m datasets_prep.bcss --src BCSS --dst data/bcss_tumor_512 --classes 1 \\
        --tile 512 --stride 512 --min-foreground 0.05
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from datasets_prep.cli import convert, parser, run
from datasets_prep.files import binary, read_image, read_mask, without_alpha
from datasets_prep.splitting import group_of, group_pattern
from datasets_prep.writer import Item, Sample
from seg.data.pairs import find_pairs
from seg.errors import ConfigError, DatasetError

DEFAULT_GROUP = r"^(TCGA-[A-Z0-9]{2}-[A-Z0-9]{4})|^(.+)$"


def tile_origins(length: int, tile: int, stride: int) -> list[int]:
    """Start offsets covering ``length``: every ``stride``, the last one flush with the end."""
    if length < tile:
        return []
    origins = list(range(0, length - tile + 1, stride))
    if origins[-1] != length - tile:
        origins.append(length - tile)
    return origins


def class_mask(labels: np.ndarray, classes: Sequence[int], multiclass: bool) -> np.ndarray:
    """Index mask -> binary 0/255 (any listed class) or 1..K in the listed order."""
    if not multiclass:
        return binary(np.isin(labels, classes))
    out = np.zeros(labels.shape, np.uint8)
    for k, c in enumerate(classes, start=1):
        out[labels == c] = k
    return out


def tiles(
    name: str, image: np.ndarray, mask: np.ndarray, tile: int, stride: int, min_foreground: float
) -> list[Sample]:
    kept = []
    for y in tile_origins(mask.shape[0], tile, stride):
        for x in tile_origins(mask.shape[1], tile, stride):
            patch = mask[y : y + tile, x : x + tile]
            if np.count_nonzero(patch) >= min_foreground * patch.size:
                crop = np.ascontiguousarray(image[y : y + tile, x : x + tile])
                kept.append(Sample(f"{name}_y{y}_x{x}", crop, np.ascontiguousarray(patch)))
    return kept


def find_items(src: Path, args) -> list[Item]:
    pattern = group_pattern(args.group_regex)
    pairs = find_pairs(src / args.images_dir, src / args.masks_dir)
    items = []
    for pair in pairs:

        def samples(pair=pair) -> list[Sample]:
            image = without_alpha(read_image(pair.image))
            labels = read_mask(pair.mask)
            if labels.ndim != 2:
                raise DatasetError(f"{pair.mask}: expected a one-channel class-index mask")
            if image.shape[:2] != labels.shape:
                raise DatasetError(f"{pair.image}: image and mask {pair.mask.name} differ in size")
            mask = class_mask(labels, args.classes, args.multiclass)
            return tiles(pair.name, image, mask, args.tile, args.stride, args.min_foreground)

        group = group_of(pair.name, pattern)
        items.append(Item(str(pair.image), group, samples, (pair.image, pair.mask)))
    return items


def main(argv: Sequence[str] | None = None) -> None:
    p = parser("bcss", __doc__.split("\n\n")[0])
    p.add_argument("--images-dir", default="rgbs_colorNormalized", help="below --src")
    p.add_argument("--masks-dir", default="masks", help="below --src")
    p.add_argument(
        "--classes",
        type=int,
        nargs="+",
        default=[1],
        help="mask values that are foreground (BCSS: 1 tumor, 2 stroma, ...)",
    )
    p.add_argument(
        "--multiclass",
        action="store_true",
        help="index masks 1..K for the listed classes instead of binary",
    )
    p.add_argument("--tile", type=int, default=512, help="tile side in pixels")
    p.add_argument("--stride", type=int, default=None, help="default: --tile (no overlap)")
    p.add_argument(
        "--min-foreground",
        type=float,
        default=0.01,
        help="drop tiles with a smaller fraction of foreground pixels",
    )
    p.add_argument(
        "--group-regex",
        default=DEFAULT_GROUP,
        help="group id in a region's file name (its first group that matched)",
    )
    args = p.parse_args(argv)
    args.stride = args.stride or args.tile
    if args.tile < 1 or args.stride < 1:
        raise ConfigError(f"--tile {args.tile} --stride {args.stride}: must be positive")
    if not 0 <= args.min_foreground <= 1:
        raise ConfigError(f"--min-foreground {args.min_foreground}: must be in [0, 1]")
    convert("bcss", args, lambda: find_items(args.src.resolve(), args))


if __name__ == "__main__":
    run(main)
