"""ISIC 2017 lesion segmentation (Part 1) -> <dst>/{train,valid,test}/{images,masks}.

Source: the challenge folders as downloaded, e.g. ``ISIC-2017_Training_Data/ISIC_<id>.jpg`` and
``ISIC-2017_Training_Part1_GroundTruth/ISIC_<id>_segmentation.png`` (likewise Validation and
Test_v2). The official split is kept: a folder name containing Training/Validation/Test decides
it; images found outside such folders are split by ``--fractions``. Superpixel files are
ignored. Masks are written as 0/255 PNGs; images are copied unchanged unless ``--size``.

    python -m datasets_prep.isic2017 --src ISIC2017 --dst data/isic2017 --size 512 512
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

from datasets_prep.cli import convert, parser, run
from datasets_prep.files import binary, read_grey
from datasets_prep.splitting import split_named_in
from datasets_prep.writer import Item, Sample
from seg.errors import DatasetError

_IMAGE = re.compile(r"ISIC_(\d+)\.jpe?g", re.IGNORECASE)
_MASK = re.compile(r"ISIC_(\d+)_segmentation\.png", re.IGNORECASE)


def official_split(path: Path, src: Path) -> str | None:
    """The split named by a word of the first folder of ``path`` (below ``src``) naming one:
    ISIC-2017_Training_Data -> train, ISIC-2017_Test_v2_Data -> test, val -> valid."""
    for part in path.relative_to(src).parts[:-1]:
        if split := split_named_in(part):
            return split
    return None


def find_items(src: Path) -> list[Item]:
    files = sorted(p for p in src.rglob("ISIC_*") if p.is_file())
    masks = {}
    for path in files:
        if match := _MASK.fullmatch(path.name):
            if match[1] in masks:
                raise DatasetError(f"two masks for ISIC_{match[1]}: {masks[match[1]]}, {path}")
            masks[match[1]] = path
    images = [(m[1], p) for p in files if (m := _IMAGE.fullmatch(p.name))]
    if not images:
        raise DatasetError(f"--src {src}: no ISIC_<id>.jpg images found")
    missing = [p for key, p in images if key not in masks]
    if missing:
        raise DatasetError(
            f"{len(missing)} image(s) have no ISIC_<id>_segmentation.png mask: "
            f"{', '.join(str(p) for p in missing[:5])}"
        )
    items = []
    for key, image in images:
        mask = masks[key]

        def samples(stem: str = image.stem, image: Path = image, mask: Path = mask) -> list[Sample]:
            return [Sample(stem, image, binary(read_grey(mask) > 127))]

        items.append(
            Item(str(image), image.stem, samples, (image, mask), official_split(image, src))
        )
    return items


def main(argv: Sequence[str] | None = None) -> None:
    p = parser("isic2017", __doc__.split("\n\n")[0])
    args = p.parse_args(argv)
    convert("isic2017", args, lambda: find_items(args.src.resolve()))


if __name__ == "__main__":
    run(main)
