"""Polygon annotations (COCO or LabelMe JSON) -> <dst>/{train,valid,test}/{images,masks}.

* COCO: ``--src`` is an instances JSON (``images``, ``annotations``, ``categories``) or a folder
  of them; ``segmentation`` polygons and RLE (plain or compressed) are drawn. Image files are
  looked up below ``--images-dir`` (default: the JSON's folder, then its ``images/``). A JSON
  whose name says train/val/test keeps that split (e.g. ``instances_val.json``).
* LabelMe: ``--src`` is a folder of per-image JSONs (``shapes`` with ``polygon``,
  ``rectangle`` or ``circle`` shapes, ``imagePath`` relative to the JSON; embedded
  ``imageData`` is used when the image file is absent).

All shapes of an image are merged into one mask. ``--labels`` picks the labels (COCO category
names) that are foreground (default: all); with ``--multiclass`` they become classes 1..K in
the order given. This covers CNSeg-style sets of clustered cells. An unreadable or malformed
JSON fails with one error naming the file.

    python -m datasets_prep.polygons --src CNSeg/annotations.json --dst data/clustered_cells \\
        --size 512 512
"""

from __future__ import annotations

import base64
import json
import logging
import os
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from datasets_prep.cli import convert, parser, run
from datasets_prep.files import binary, read_image, without_alpha
from datasets_prep.raster import fill_polygons
from datasets_prep.splitting import split_named_in
from datasets_prep.writer import Item, Sample
from seg.errors import ConfigError, DatasetError

log = logging.getLogger("datasets_prep")
FORMATS = ("auto", "coco", "labelme")


def read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as err:
        raise DatasetError(f"{path}: unreadable annotation file ({err})") from err


def _field(record: Any, key: str, where: Path | str) -> Any:
    """``record[key]``, or one error naming the file and the record that lacks it."""
    if not isinstance(record, dict) or key not in record:
        raise DatasetError(f"{where}: no '{key}'")
    return record[key]


def _points(value: Any, where: str) -> np.ndarray:
    try:
        points = np.asarray(value, np.float64).reshape(-1, 2)
    except (TypeError, ValueError):
        raise DatasetError(f"{where}: points must be pairs of numbers x, y") from None
    if len(points) < 3:
        raise DatasetError(f"{where}: a polygon needs at least 3 points, found {len(points)}")
    return points


@dataclass(frozen=True)
class Shape:
    """A parsed, validated annotation: drawn once the image's size is known."""

    value: int  # class value (1 for binary masks)
    polygons: tuple[np.ndarray, ...] = ()  # (N, 2) x, y vertices each
    circle: tuple[float, float, float] | None = None  # x, y, radius
    rle: tuple[int, int, list[int]] | None = None  # height, width, run lengths

    def draw(self, mask: np.ndarray, where: str) -> None:
        if self.polygons:
            fill_polygons(mask, self.polygons, self.value)
        if self.circle is not None:
            x, y, r = (round(v) for v in self.circle)
            cv2.circle(mask, (x, y), r, self.value, thickness=-1)
        if self.rle is not None:
            region = rle_decode(*self.rle)
            if region.shape != mask.shape:
                raise DatasetError(
                    f"{where}: RLE size {region.shape} differs from the image's {mask.shape}"
                )
            mask[region] = self.value


class Canvas:
    """Which labels are drawn, with which value, and how the mask is written."""

    def __init__(self, labels: Sequence[str] | None, multiclass: bool) -> None:
        self.labels, self.multiclass = labels, multiclass

    def value(self, label: str) -> int | None:
        """Class value of a label; None for a label that is not drawn."""
        if self.labels is None:
            return 1
        if label not in self.labels:
            return None
        return self.labels.index(label) + 1 if self.multiclass else 1

    def mask(self, shape: tuple[int, int], shapes: list[Shape], where: str) -> np.ndarray:
        mask = np.zeros(shape, np.uint8)
        for s in shapes:
            s.draw(mask, where)
        return mask if self.multiclass else binary(mask)


# --- COCO ---------------------------------------------------------------------------------


def rle_counts(counts: list[int] | str) -> list[int]:
    """COCO RLE run lengths; a string is the compressed form (LEB128-like, deltas)."""
    if not isinstance(counts, str):
        return [int(c) for c in counts]
    runs: list[int] = []
    pos = 0
    while pos < len(counts):
        value, shift, more = 0, 0, True
        while more:
            c = ord(counts[pos]) - 48
            value |= (c & 0x1F) << shift
            more = bool(c & 0x20)
            pos += 1
            shift += 5
            if not more and c & 0x10:
                value |= -1 << shift
        if len(runs) > 2:
            value += runs[-2]
        runs.append(value)
    return runs


def rle_runs(rle: dict, where: str) -> tuple[int, int, list[int]]:
    """A COCO RLE record checked: (height, width, run lengths)."""
    try:
        h, w = (int(v) for v in rle["size"])
        runs = rle_counts(rle["counts"])
    except (KeyError, TypeError, ValueError, IndexError):
        raise DatasetError(f"{where}: RLE needs 'size' [h, w] and 'counts'") from None
    if sum(runs) != h * w or min(runs, default=0) < 0:
        raise DatasetError(f"{where}: RLE runs do not cover a {h}x{w} image")
    return h, w, runs


def rle_decode(height: int, width: int, runs: list[int]) -> np.ndarray:
    """Boolean HxW from runs alternating background/foreground, in column-major order."""
    values = np.repeat(np.arange(len(runs)) % 2, runs).astype(bool)
    return values.reshape((width, height)).T


def _coco_shape(seg: Any, value: int, where: str) -> Shape:
    if isinstance(seg, list):
        return Shape(
            value, polygons=tuple(_points(p, where) for p in seg)
        )  # [x1, y1, x2, y2, ...] or pairs
    if isinstance(seg, dict):
        return Shape(value, rle=rle_runs(seg, where))
    raise DatasetError(f"{where}: 'segmentation' must be polygons or RLE")


def coco_items(json_path: Path, images_dir: Path | None, canvas: Canvas) -> list[Item]:
    data = read_json(json_path)
    images = _field(data, "images", json_path)
    categories = {
        _field(c, "id", f"{json_path}: a category"): _field(c, "name", f"{json_path}: a category")
        for c in _field(data, "categories", json_path)
    }
    if canvas.labels is not None and (unknown := set(canvas.labels) - set(categories.values())):
        raise ConfigError(
            f"--labels {' '.join(sorted(unknown))}: not a category of "
            f"{json_path}; it has {', '.join(sorted(categories.values()))}"
        )
    shapes: dict[Any, list[Shape]] = defaultdict(list)
    for n, ann in enumerate(_field(data, "annotations", json_path)):
        where = f"{json_path}: annotation {ann.get('id', n) if isinstance(ann, dict) else n}"
        value = canvas.value(categories.get(_field(ann, "category_id", where), ""))
        if value is not None:
            shape = _coco_shape(_field(ann, "segmentation", where), value, where)
            shapes[_field(ann, "image_id", where)].append(shape)
    roots = [images_dir] if images_dir else [json_path.parent, json_path.parent / "images"]
    split = split_named_in(json_path.stem)
    items = []
    for record in images:
        name = str(_field(record, "file_name", f"{json_path}: an image record"))
        image_id = _field(record, "id", f"{json_path}: image {name}")
        if Path(name).is_absolute() or ".." in Path(name).parts:
            raise DatasetError(
                f"{json_path}: image file_name {name!r} leads outside the "
                f"images folder; COCO file names are relative to it (--images-dir)"
            )
        found = [r / name for r in roots if (r / name).is_file()]
        if not found:
            raise DatasetError(
                f"{json_path}: image {name} not found in "
                f"{' or '.join(str(r) for r in roots)}; set --images-dir"
            )
        image = found[0]

        def samples(image: Path = image, drawn: list[Shape] = shapes[image_id]) -> list[Sample]:
            mask = canvas.mask(read_image(image).shape[:2], drawn, f"{json_path}: {image.name}")
            return [Sample(image.stem, image, mask)]

        items.append(Item(str(image), image.stem, samples, (json_path, image), split))
    return items


# --- LabelMe ------------------------------------------------------------------------------


def _labelme_shape(shape: dict, value: int, where: str) -> Shape | None:
    kind = shape.get("shape_type") or "polygon"
    points = _field(shape, "points", where)
    if kind == "polygon":
        return Shape(value, polygons=(_points(points, where),))
    if kind not in ("rectangle", "circle"):
        return None  # lines and points enclose no area
    try:
        (x0, y0), (x1, y1) = np.asarray(points, np.float64)
    except (TypeError, ValueError):
        raise DatasetError(f"{where}: a {kind} needs two points") from None
    if kind == "rectangle":
        return Shape(value, polygons=(np.asarray([[x0, y0], [x1, y0], [x1, y1], [x0, y1]]),))
    return Shape(value, circle=(x0, y0, float(np.hypot(x1 - x0, y1 - y0))))


def _labelme_image(json_path: Path, data: dict, root: Path) -> Path | np.ndarray:
    """The image a LabelMe JSON names (its ``imagePath``, relative to the JSON, must stay
    inside ``root``, the --src folder), else its embedded ``imageData``."""
    name = str(data.get("imagePath") or "")
    image_path = Path(os.path.normpath(json_path.parent / name))
    if name and not image_path.is_relative_to(root):
        raise DatasetError(
            f"{json_path}: imagePath {name!r} leads outside --src {root}; "
            "keep the images inside the source folder"
        )
    if name and image_path.is_file():
        return image_path
    if data.get("imageData"):
        try:
            raw = np.frombuffer(base64.b64decode(data["imageData"]), np.uint8)
        except ValueError:
            raw = np.zeros(0, np.uint8)
        image = cv2.imdecode(raw, cv2.IMREAD_UNCHANGED) if raw.size else None
        if image is None:
            raise DatasetError(f"{json_path}: embedded imageData is not a readable image")
        return without_alpha(image)
    raise DatasetError(f"{json_path}: image {image_path} not found and no imageData embedded")


def labelme_items(files: list[Path], canvas: Canvas, root: Path) -> list[Item]:
    items, skipped = [], 0
    for path in files:
        data = read_json(path)
        shapes = []
        for n, raw in enumerate(_field(data, "shapes", path)):
            where = f"{path}: shape #{n}"
            value = canvas.value(_field(raw, "label", where))
            shape = None if value is None else _labelme_shape(raw, value, where)
            skipped += value is not None and shape is None
            if shape is not None:
                shapes.append(shape)
        source = _labelme_image(path, data, root)
        stem = source.stem if isinstance(source, Path) else path.stem

        def samples(
            path: Path = path, shapes: list[Shape] = shapes, source=source, stem: str = stem
        ) -> list[Sample]:
            image = source if isinstance(source, np.ndarray) else read_image(source)
            return [Sample(stem, source, canvas.mask(image.shape[:2], shapes, str(path)))]

        sources = (path, source) if isinstance(source, Path) else (path,)
        items.append(Item(str(path), stem, samples, sources))
    if skipped:
        log.warning("ignored %d line/point shape(s): they enclose no area", skipped)
    return items


# --- command ------------------------------------------------------------------------------


def _is_coco(data: Any) -> bool:
    return isinstance(data, dict) and "annotations" in data and "images" in data


def find_items(src: Path, fmt: str, images_dir: Path | None, canvas: Canvas) -> list[Item]:
    files = [src] if src.is_file() else sorted(src.rglob("*.json"))
    if not files:
        raise DatasetError(f"--src {src}: no .json annotation files")
    if fmt == "auto":
        fmt = "coco" if _is_coco(read_json(files[0])) else "labelme"
    if fmt == "labelme":
        return labelme_items(files, canvas, src if src.is_dir() else src.parent)
    if not src.is_file():
        files = [f for f in files if _is_coco(read_json(f))]
    return [item for f in files for item in coco_items(f, images_dir, canvas)]


def main(argv: Sequence[str] | None = None) -> None:
    p = parser("polygons", __doc__.split("\n\n")[0])
    p.add_argument("--format", choices=FORMATS, default="auto")
    p.add_argument("--images-dir", type=Path, default=None, help="COCO: where file_name is")
    p.add_argument("--labels", nargs="+", default=None, help="foreground labels (default: all)")
    p.add_argument(
        "--multiclass",
        action="store_true",
        help="index masks: --labels become classes 1..K in the order given",
    )
    args = p.parse_args(argv)
    if args.multiclass and not args.labels:
        raise ConfigError("--multiclass: list the classes in order with --labels")
    canvas = Canvas(args.labels, args.multiclass)
    convert(
        "polygons",
        args,
        lambda: find_items(args.src.resolve(), args.format, args.images_dir, canvas),
    )


if __name__ == "__main__":
    run(main)
