"""Per-instance masks (Data Science Bowl 2018 layout) -> <dst>/{train,valid,test}/{images,masks}.

Source: ``<src>/<id>/images/<id>.png`` and ``<src>/<id>/masks/*.png``, one mask file per
nucleus (``stage1_train``). The instances of an image are merged into ONE binary mask; images
lose their (opaque) alpha channel. Each image is its own group.

    python -m datasets_prep.instances --src stage1_train --dst data/dsb2018 --size 256 256
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from datasets_prep.cli import convert, parser, run
from datasets_prep.files import binary, read_grey, read_image, without_alpha
from datasets_prep.writer import Item, Sample
from seg.data.pairs import image_files
from seg.errors import DatasetError


def merged_mask(files: list[Path], shape: tuple[int, int]) -> np.ndarray:
    mask = np.zeros(shape, bool)
    for path in files:
        instance = read_grey(path)
        if instance.shape != shape:
            raise DatasetError(
                f"{path}: instance mask {instance.shape[1]}x{instance.shape[0]}"
                f" differs from its image's {shape[1]}x{shape[0]}"
            )
        mask |= instance > 0
    return binary(mask)


def find_items(src: Path) -> list[Item]:
    folders = sorted(p for p in src.iterdir() if p.is_dir()) if src.is_dir() else []
    if not folders:
        raise DatasetError(
            f"--src {src}: no <id>/ folders (expected <id>/images/<id>.png "
            "and <id>/masks/*.png, e.g. stage1_train)"
        )
    items = []
    for folder in folders:
        images = image_files(folder / "images")
        if len(images) != 1:
            raise DatasetError(f"{folder / 'images'}: expected one image, found {len(images)}")
        masks_dir = folder / "masks"
        masks = image_files(masks_dir) if masks_dir.is_dir() else []
        if not masks:
            raise DatasetError(
                f"{masks_dir}: no instance masks (stage1_test has none: convert stage1_train)"
            )
        image = images[0]

        def samples(
            stem: str = folder.name, image: Path = image, masks: list[Path] = masks
        ) -> list[Sample]:
            pixels = without_alpha(read_image(image))
            return [Sample(stem, pixels, merged_mask(masks, pixels.shape[:2]))]

        items.append(Item(str(folder), folder.name, samples, (image, *masks)))
    return items


def main(argv: Sequence[str] | None = None) -> None:
    p = parser("instances", __doc__.split("\n\n")[0])
    args = p.parse_args(argv)
    convert("instances", args, lambda: find_items(args.src.resolve()))


if __name__ == "__main__":
    run(main)
