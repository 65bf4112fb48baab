"""Herlev Pap smear (smear2005) -> <dst>/{train,valid,test}/{images,masks}.

Source layout: class folders (``carcinoma_in_situ``, ``severe_dysplastic``, ...) holding cell
images ``<id>.BMP`` and colour-coded annotations ``<id>-d.bmp``. The nucleus and cytoplasm
colours are options (defaults: nucleus blue, cytoplasm red; a pixel within ``--tolerance`` of a
colour on every channel has that label). An annotation with neither colour fails, listing the
colours it does have, so the right ``--nucleus-color``/``--cytoplasm-color`` are easy to find.

Targets: ``nucleus``, ``cytoplasm`` (the whole cell: cytoplasm and nucleus) or ``both`` (index
mask: 1 cytoplasm, 2 nucleus). Each image is one cell and its own group.

    python -m datasets_prep.herlev --src smear2005 --dst data/pap_smear_512 \\
        --target nucleus --size 512 512
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from datasets_prep.cli import convert, parser, run
from datasets_prep.files import binary, read_image, without_alpha
from datasets_prep.writer import Item, Sample
from seg.errors import DatasetError

TARGETS = ("nucleus", "cytoplasm", "both")
NUCLEUS_RGB = (0, 0, 255)
CYTOPLASM_RGB = (255, 0, 0)
_SUFFIX = "-d"


def colour_labels(
    annotation: np.ndarray, nucleus: Sequence[int], cytoplasm: Sequence[int], tolerance: int
) -> tuple[np.ndarray, np.ndarray]:
    """Boolean nucleus and cytoplasm maps of a BGR annotation image."""
    rgb = cv2.cvtColor(without_alpha(annotation), cv2.COLOR_BGR2RGB).astype(np.int16)

    def near(colour: Sequence[int]) -> np.ndarray:
        return (np.abs(rgb - np.asarray(colour, np.int16)) <= tolerance).all(axis=2)

    return near(nucleus), near(cytoplasm)


def _colours_present(annotation: np.ndarray, shown: int = 6) -> str:
    rgb = cv2.cvtColor(without_alpha(annotation), cv2.COLOR_BGR2RGB).reshape(-1, 3)
    colours, counts = np.unique(rgb, axis=0, return_counts=True)
    top = np.argsort(-counts)[:shown]
    return ", ".join(
        f"{tuple(int(v) for v in colours[i])} ({counts[i] / len(rgb):.0%})" for i in top
    )


def cell_mask(
    annotation_path: Path,
    nucleus: Sequence[int],
    cytoplasm: Sequence[int],
    tolerance: int,
    target: str,
) -> np.ndarray:
    annotation = read_image(annotation_path)
    if annotation.ndim != 3:
        raise DatasetError(f"{annotation_path}: a colour-coded annotation must be RGB")
    is_nucleus, is_cytoplasm = colour_labels(annotation, nucleus, cytoplasm, tolerance)
    if not is_nucleus.any() and not is_cytoplasm.any():
        raise DatasetError(
            f"{annotation_path}: no pixel near the nucleus colour {tuple(nucleus)} or the "
            f"cytoplasm colour {tuple(cytoplasm)} (tolerance {tolerance}); colours present: "
            f"{_colours_present(annotation)}; set --nucleus-color / --cytoplasm-color"
        )
    if target == "nucleus":
        return binary(is_nucleus)
    if target == "cytoplasm":
        return binary(is_nucleus | is_cytoplasm)
    labels = np.zeros(is_nucleus.shape, np.uint8)
    labels[is_cytoplasm] = 1
    labels[is_nucleus] = 2
    return labels


def find_items(src: Path, classes: Sequence[str] | None, sample_mask) -> list[Item]:
    files = [p for p in sorted(src.rglob("*")) if p.is_file() and p.suffix.lower() == ".bmp"]
    annotations = {
        (p.parent, p.stem[: -len(_SUFFIX)].lower()): p
        for p in files
        if p.stem.lower().endswith(_SUFFIX)
    }
    images = [
        p
        for p in files
        if not p.stem.lower().endswith(_SUFFIX) and (classes is None or p.parent.name in classes)
    ]
    if classes is not None:
        found = {p.parent.name for p in files}
        unknown = sorted(set(classes) - found)
        if unknown:
            raise DatasetError(
                f"--classes {' '.join(unknown)}: no such class folder under "
                f"{src}; found {', '.join(sorted(found)) or 'none'}"
            )
    missing = [p for p in images if (p.parent, p.stem.lower()) not in annotations]
    if missing:
        names = ", ".join(str(p) for p in missing[:5])
        raise DatasetError(
            f"{len(missing)} image(s) have no <id>{_SUFFIX}.bmp annotation beside them: {names}"
        )
    if not images:
        raise DatasetError(f"--src {src}: no .bmp cell images with {_SUFFIX}.bmp annotations")
    items = []
    for image in images:
        annotation = annotations[(image.parent, image.stem.lower())]

        def samples(image: Path = image, annotation: Path = annotation) -> list[Sample]:
            return [Sample(image.stem, without_alpha(read_image(image)), sample_mask(annotation))]

        items.append(Item(str(image), image.stem, samples, (image, annotation)))
    return items


def main(argv: Sequence[str] | None = None) -> None:
    p = parser("herlev", __doc__.split("\n\n")[0])
    p.add_argument(
        "--target",
        choices=TARGETS,
        default="nucleus",
        help="nucleus | cytoplasm (whole cell) | both (1 cytoplasm, 2 nucleus)",
    )
    p.add_argument(
        "--classes",
        nargs="+",
        default=None,
        help="class folders to convert (default: all), e.g. severe_dysplastic",
    )
    p.add_argument(
        "--nucleus-color", type=int, nargs=3, default=list(NUCLEUS_RGB), metavar=("R", "G", "B")
    )
    p.add_argument(
        "--cytoplasm-color", type=int, nargs=3, default=list(CYTOPLASM_RGB), metavar=("R", "G", "B")
    )
    p.add_argument(
        "--tolerance",
        type=int,
        default=60,
        help="largest difference per channel from a label colour",
    )
    args = p.parse_args(argv)

    def mask(annotation: Path) -> np.ndarray:
        return cell_mask(
            annotation, args.nucleus_color, args.cytoplasm_color, args.tolerance, args.target
        )

    convert("herlev", args, lambda: find_items(args.src, args.classes, mask))


if __name__ == "__main__":
    run(main)
