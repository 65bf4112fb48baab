"""Finding image/mask pairs on disk (their files are checked by :mod:`seg.data.check`)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from seg.data.io import IMAGE_SUFFIXES
from seg.errors import DatasetError

_SHOWN = 10  # names listed in an error before "... and N more"


@dataclass(frozen=True)
class Pair:
    image: Path
    mask: Path

    @property
    def name(self) -> str:
        return self.image.stem


def _listing(names: Iterable[str]) -> str:
    names = sorted(names)
    shown = ", ".join(names[:_SHOWN])
    more = len(names) - _SHOWN
    return shown + (f" ... and {more} more" if more > 0 else "")


def image_files(folder: Path) -> list[Path]:
    """Image files of a folder, sorted by name (hidden files and other suffixes ignored)."""
    if not folder.is_dir():
        raise DatasetError(f"{folder}: folder not found")
    return sorted(
        p
        for p in folder.iterdir()
        if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in IMAGE_SUFFIXES
    )


def _by_stem(files: list[Path], folder: Path) -> dict[str, Path]:
    stems: dict[str, Path] = {}
    clashes = []
    for f in files:
        if f.stem in stems:
            clashes.append(f"{stems[f.stem].name} / {f.name}")
        stems[f.stem] = f
    if clashes:
        raise DatasetError(
            f"{folder}: several files share a name stem, so pairs are ambiguous: "
            f"{_listing(clashes)}; keep one file per stem"
        )
    return stems


def find_pairs(images_dir: Path, masks_dir: Path) -> list[Pair]:
    """Match images to masks by file stem (a.jpg <-> a.png), sorted by name.

    Every image needs a mask and every mask an image; all mismatches are reported at once.
    """
    for folder in (images_dir, masks_dir):
        if not folder.is_dir():
            raise DatasetError(
                f"{folder}: folder not found; create it or check dataset.root, "
                "dataset.images_dir and dataset.masks_dir"
            )
    images = _by_stem(image_files(images_dir), images_dir)
    masks = _by_stem(image_files(masks_dir), masks_dir)
    if not images:
        raise DatasetError(
            f"{images_dir}: no images ({', '.join(IMAGE_SUFFIXES)}): check dataset.root and "
            "the layout <root>/<split>/images"
        )
    no_mask = images.keys() - masks.keys()
    no_image = masks.keys() - images.keys()
    if no_mask or no_image:
        parts = []
        if no_mask:
            parts.append(
                f"{len(no_mask)} image(s) in {images_dir} have no mask in {masks_dir}: "
                f"{_listing(images[s].name for s in no_mask)}"
            )
        if no_image:
            parts.append(
                f"{len(no_image)} mask(s) in {masks_dir} have no image: "
                f"{_listing(masks[s].name for s in no_image)}"
            )
        raise DatasetError("; ".join(parts) + ". A mask must have its image's file stem.")
    return [Pair(images[s], masks[s]) for s in sorted(images)]


def split_pairs(root: Path, split: str, images_dir: str, masks_dir: str) -> list[Pair]:
    """Pairs of one split folder <root>/<split>/{images,masks}."""
    folder = root / split
    if not folder.is_dir():
        raise DatasetError(
            f"{folder}: split folder not found; expected <root>/{split}/{images_dir} and "
            f"<root>/{split}/{masks_dir}: check dataset.root and dataset.splits"
        )
    return find_pairs(folder / images_dir, folder / masks_dir)
