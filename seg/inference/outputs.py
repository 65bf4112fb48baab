"""What an inference reads and writes: the input files (a folder, a glob or one image), and per
image its mask, overlay, contours, colour mask and probability map, named after its stem."""

from __future__ import annotations

import glob
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from seg.data.classes import palette
from seg.data.io import IMAGE_SUFFIXES, write_png
from seg.data.pairs import image_files
from seg.errors import DatasetError
from seg.inference.postprocess import Postprocess
from seg.inference.predictor import Prediction, to_labels
from seg.inference.visualize import colorize, contours, overlay_labels


def collect_inputs(spec: str) -> list[Path]:
    """input=<folder | glob | file> -> sorted image files; one clear error if none."""
    path = Path(spec).expanduser()
    if path.is_dir():
        files = image_files(path)
    elif path.is_file():
        files = [path]
    else:
        files = sorted(
            Path(p)
            for p in glob.glob(str(path))
            if Path(p).suffix.lower() in IMAGE_SUFFIXES and Path(p).is_file()
        )
    if not files:
        raise DatasetError(
            f"input={spec}: no image files ({', '.join(IMAGE_SUFFIXES)}) found; "
            "name a folder, a glob such as 'dir/*.png', or one image"
        )
    check_unique_stems(files, f"input={spec}")
    return files


def check_unique_stems(files: list[Path], key: str) -> None:
    """Outputs are named after their input's stem alone (so no input name can point outside
    the output folder): two inputs with one stem (a.png and a.jpg, or dir1/a.png and
    dir2/a.png from a glob) would overwrite each other's outputs."""
    first: dict[str, Path] = {}
    for path in files:
        other = first.setdefault(path.stem, path)
        if other != path:
            raise DatasetError(
                f"{key}: {other} and {path} have the same name stem "
                f"'{path.stem}' and would write the same output files; rename "
                "one, or infer them separately"
            )


@dataclass(frozen=True)
class OutputStyle:
    threshold: float = 0.5
    overlay_alpha: float = 0.4
    overlay_color: tuple[int, int, int] = (255, 0, 0)  # binary overlays, contours, colour masks
    save_probabilities: bool = False
    # Multiclass: one (r, g, b) per class (an array or a sequence); None: the default palette.
    # Binary: [background, foreground] of the colour masks; None: black and overlay_color.
    palette: Sequence[Sequence[int]] | np.ndarray | None = field(default=None, compare=False)
    save_contours: bool = True
    save_colored_masks: bool = True
    postprocess: Postprocess | None = None  # None: threshold (binary) or argmax only

    def labels(self, probs: np.ndarray) -> np.ndarray:
        """The final label map of one image: the post-processing chain (or the threshold)."""
        if self.postprocess is None:
            return to_labels(probs, self.threshold)
        return self.postprocess.labels(probs)

    def colors(self, classes: int) -> np.ndarray:
        if classes == 1 and self.palette is None:
            return np.array([(0, 0, 0), tuple(self.overlay_color)], np.uint8)
        return palette(max(2, classes), self.palette)


def write_outputs(pred: Prediction, out_dir: Path, style: OutputStyle) -> dict[str, Path]:
    """For an input ``<stem>.<ext>``, at the original size: masks/<stem>.png (binary: 0/255;
    multiclass: the class index, an index PNG as datasets store them), overlays/ (mask blended
    over the image), contours/ (object outlines drawn on the image), colored_masks/ (each
    class in its colour), optional probabilities/ (16-bit foreground probability). Names come
    from the input's stem only, so no input name can write outside ``out_dir``."""
    stem = Path(pred.path.name).stem
    labels = style.labels(pred.probs)
    classes = pred.probs.shape[-1]
    binary = classes == 1
    colors = style.colors(classes)
    pictures = {
        "mask": ("masks", labels * 255 if binary else labels),
        "overlay": ("overlays", overlay_labels(pred.image, labels, colors, style.overlay_alpha)),
    }
    if style.save_contours:
        pictures["contours"] = ("contours", contours(pred.image, labels, colors))
    if style.save_colored_masks:
        pictures["colored_mask"] = ("colored_masks", colorize(labels, colors))
    if style.save_probabilities:
        foreground = pred.probs[..., 0] if binary else 1.0 - pred.probs[..., 0]
        pictures["probabilities"] = (
            "probabilities",
            np.rint(np.clip(foreground, 0.0, 1.0) * 65535).astype(np.uint16),
        )
    written = {}
    for key, (folder, array) in pictures.items():
        written[key] = out_dir / folder / f"{stem}.png"
        write_png(written[key], array)
    return written
