"""SipakMed -> <dst>/{train,valid,test}/{images,masks}.

Source layout (as downloaded): ``im_<Category>/im_<Category>/<stem>.bmp`` with one polygon file
per annotated cell, ``<stem>_cyt<NN>.dat`` (cell outline) and ``<stem>_nuc<NN>.dat`` (nucleus),
one ``x,y`` vertex per line; ``CROPPED`` folders (single-cell crops) are skipped.

All cells of an image are merged into ONE mask (the legacy maker wrote one mask per cell, each
copy of the image labelling the other cells as background). Targets: ``cytoplasm`` (the cell
outlines, nucleus included), ``nucleus``, or ``both`` as an index mask (0 background,
1 cytoplasm, 2 nucleus). Outputs are named ``<Category>_<stem>``; each image is its own group.

    python -m datasets_prep.sipakmed --src SIPaKMeD --dst data/sipakmed_metaplastic \\
        --categories Metaplastic --target cytoplasm --size 256 256
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from datasets_prep.cli import convert, parser, run
from datasets_prep.files import binary, read_image, without_alpha
from datasets_prep.raster import fill_polygons
from datasets_prep.writer import Item, Sample
from seg.errors import DatasetError

log = logging.getLogger("datasets_prep")

CATEGORIES = (
    "Dyskeratotic",
    "Koilocytotic",
    "Metaplastic",
    "Parabasal",
    "Superficial-Intermediate",
)
TARGETS = ("cytoplasm", "nucleus", "both")
_POLYGON = re.compile(r"(?P<stem>.+)_(?P<kind>cyt|nuc)\d+\.dat", re.IGNORECASE)


def read_dat(path: Path) -> np.ndarray:
    """A polygon file: (N, 2) vertices from lines ``x,y``; one clear error naming the file."""
    try:
        text = path.read_text(encoding="utf-8", errors="strict")
    except (OSError, UnicodeDecodeError) as err:
        raise DatasetError(f"{path}: unreadable polygon file ({err})") from err
    points = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        parts = [p for p in re.split(r"[,\s]+", line.strip()) if p]
        try:
            x, y = (float(p) for p in parts)
        except ValueError:
            raise DatasetError(
                f"{path}, line {number}: expected 'x,y', got {line.strip()!r}"
            ) from None
        points.append((x, y))
    if len(points) < 3:
        raise DatasetError(f"{path}: a polygon needs at least 3 points, found {len(points)}")
    return np.asarray(points, np.float64)


def cell_mask(
    shape: tuple[int, int], polygons: dict[str, list[np.ndarray]], target: str
) -> np.ndarray:
    """One mask with every cell of the image: cytoplasm outlines, then nuclei on top."""
    mask = np.zeros(shape, np.uint8)
    if target in ("cytoplasm", "both"):
        fill_polygons(mask, polygons["cyt"], 1)
    if target in ("nucleus", "both"):
        fill_polygons(mask, polygons["nuc"], 2 if target == "both" else 1)
    return mask if target == "both" else binary(mask)


def _polygon_files(folder: Path) -> dict[str, dict[str, list[Path]]]:
    """stem -> {"cyt": [...], "nuc": [...]}, sorted, for every polygon file of a folder."""
    found: dict[str, dict[str, list[Path]]] = {}
    for path in sorted(folder.glob("*.dat")):
        match = _POLYGON.fullmatch(path.name)
        if match:
            kinds = found.setdefault(match["stem"], {"cyt": [], "nuc": []})
            kinds[match["kind"].lower()].append(path)
    return found


def find_items(src: Path, categories: Sequence[str] | None, target: str) -> list[Item]:
    """Items of the named categories (each must exist), or of every category present."""
    if categories is None:
        categories = [c for c in CATEGORIES if (src / f"im_{c}").is_dir()]
        if not categories:
            raise DatasetError(f"--src {src}: no im_<Category> folder of {', '.join(CATEGORIES)}")
    items, unannotated = [], []
    for category in categories:
        folder = src / f"im_{category}"
        if not folder.is_dir():
            raise DatasetError(
                f"{folder}: category folder not found; --src must hold "
                f"im_<Category>/ for {', '.join(categories)}"
            )
        bmps = [
            p
            for p in sorted(folder.rglob("*"))
            if p.suffix.lower() == ".bmp"
            and "CROPPED" not in (part.upper() for part in p.relative_to(folder).parts)
        ]
        polygons: dict[Path, dict[str, dict[str, list[Path]]]] = {}
        for bmp in bmps:
            if bmp.parent not in polygons:
                polygons[bmp.parent] = _polygon_files(bmp.parent)
            files = polygons[bmp.parent].get(bmp.stem, {"cyt": [], "nuc": []})
            needed = files["cyt"] + files["nuc"] if target == "both" else files[target[:3]]
            if not needed:
                unannotated.append(bmp)
                continue
            stem = f"{category}_{bmp.stem}"
            # Parsed now, so a bad polygon file stops the conversion before anything is written.
            parsed = {kind: [read_dat(f) for f in paths] for kind, paths in files.items()}
            items.append(
                Item(
                    stem,
                    stem,
                    _sampler(stem, bmp, parsed, target),
                    (bmp, *files["cyt"], *files["nuc"]),
                )
            )
    if unannotated:
        log.warning(
            "skipped %d image(s) without %s polygon files, e.g. %s",
            len(unannotated),
            target,
            unannotated[0],
        )
    if not items:
        raise DatasetError(
            f"--src {src}: no annotated .bmp images in im_<Category> folders "
            f"of {', '.join(categories)}"
        )
    return items


def _sampler(stem: str, bmp: Path, polygons: dict[str, list[np.ndarray]], target: str):
    def samples() -> list[Sample]:
        image = without_alpha(read_image(bmp))
        return [Sample(stem, image, cell_mask(image.shape[:2], polygons, target))]

    return samples


def main(argv: Sequence[str] | None = None) -> None:
    p = parser("sipakmed", __doc__.split("\n\n")[0])
    p.add_argument(
        "--categories",
        nargs="+",
        default=None,
        choices=CATEGORIES,
        help="default: every im_<Category> folder present",
    )
    p.add_argument(
        "--target",
        choices=TARGETS,
        default="cytoplasm",
        help="cytoplasm (cells) | nucleus | both (index mask: 1 cytoplasm, 2 nucleus)",
    )
    args = p.parse_args(argv)
    convert("sipakmed", args, lambda: find_items(args.src, args.categories, args.target))


if __name__ == "__main__":
    run(main)
