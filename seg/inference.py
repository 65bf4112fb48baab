"""Batched prediction on image files of any size, thresholding, and writing masks/overlays."""

from __future__ import annotations

import glob
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm import tqdm

from seg.classes import palette
from seg.data.io import IMAGE_SUFFIXES, decode_image, prepare_image, read_raw, resize, write_png
from seg.data.pairs import image_files
from seg.data.preprocess import ImagePreprocess, check_channels
from seg.errors import DatasetError
from seg.visualize import colorize, overlay, overlay_labels


def to_labels(probs: np.ndarray, threshold: float = 0.5) -> np.ndarray:
    """(H,W,1) probabilities -> {0,1} mask; (H,W,K) softmax -> class index map."""
    if probs.shape[-1] == 1:
        return (probs[..., 0] > threshold).astype(np.uint8)
    return np.argmax(probs, axis=-1).astype(np.uint8)


def model_geometry(model) -> tuple[tuple[int, int], int]:
    """((height, width), channels) the model takes."""
    _, height, width, channels = model.input_shape
    return (int(height), int(width)), int(channels)


def model_classes(model) -> int:
    """Output channels: 1 (sigmoid, binary) or the number of softmax classes."""
    return int(model.output_shape[-1])


def predict_batch(model, batch: np.ndarray) -> np.ndarray:
    """Probabilities for a batch already at the model's size (float32 (B,H,W,K))."""
    import keras

    return keras.ops.convert_to_numpy(model(batch, training=False)).astype(np.float32)


@dataclass
class Prediction:
    path: Path
    image: np.ndarray  # float32 HxWxC in [0, 1] at the original size, before preprocessing
    probs: np.ndarray  # float32 HxWxK at the original size


def predict_files(
    model,
    paths: Sequence[Path],
    batch_size: int,
    progress: bool = True,
    preprocess: ImagePreprocess | None = None,
) -> Iterator[Prediction]:
    """Read (in threads), prepare, predict in batches, resize probabilities back to each file's
    own size. Images go through seg.data.io's decode_image + prepare_image with ``preprocess``
    (pass the model's: see seg.run.Context.preprocessing), exactly as training reads them."""
    size, channels = model_geometry(model)
    spec = preprocess or ImagePreprocess()
    check_channels(spec, channels)

    def read(path: Path) -> tuple[np.ndarray, np.ndarray]:
        original = decode_image(read_raw(path), channels, spec)
        return original, prepare_image(original, size, channels, spec)

    bar = tqdm(total=len(paths), desc="inference", unit="img", disable=not progress)
    with ThreadPoolExecutor(max_workers=4) as pool:
        for start in range(0, len(paths), batch_size):
            chunk = list(paths[start : start + batch_size])
            read_chunk = list(pool.map(read, chunk))
            originals = [original for original, _ in read_chunk]
            batch = np.stack([prepared for _, prepared in read_chunk])
            probs = predict_batch(model, batch)
            for path, image, prob in zip(chunk, originals, probs, strict=True):
                h, w = image.shape[:2]
                yield Prediction(path, image, resize(prob, h, w))
            bar.update(len(chunk))
    bar.close()


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
    return files


@dataclass(frozen=True)
class OutputStyle:
    threshold: float = 0.5
    overlay_alpha: float = 0.4
    overlay_color: tuple[int, int, int] = (255, 0, 0)  # binary overlays
    save_probabilities: bool = False
    # Multiclass: one (r, g, b) per class (an array or a sequence); None: the default palette
    palette: Sequence[Sequence[int]] | np.ndarray | None = field(default=None, compare=False)


def write_outputs(pred: Prediction, out_dir: Path, style: OutputStyle) -> dict[str, Path]:
    """masks/<stem>.png at the original size (binary: 0/255; multiclass: the class index, an
    index PNG as datasets store them), overlays/<stem>.png, for multiclass colored_masks/
    <stem>.png (each class in its palette colour), optional probabilities/<stem>.png (16-bit
    foreground probability). Names come from the input's stem only, so no input name can
    write outside ``out_dir``."""
    stem = Path(pred.path.name).stem
    labels = to_labels(pred.probs, style.threshold)
    classes = pred.probs.shape[-1]
    binary = classes == 1
    written = {
        "mask": out_dir / "masks" / f"{stem}.png",
        "overlay": out_dir / "overlays" / f"{stem}.png",
    }
    write_png(written["mask"], labels * 255 if binary else labels)
    if binary:
        shown = overlay(pred.image, labels, style.overlay_color, style.overlay_alpha)
    else:
        colors = palette(classes, style.palette)
        shown = overlay_labels(pred.image, labels, colors, style.overlay_alpha)
        written["colored_mask"] = out_dir / "colored_masks" / f"{stem}.png"
        write_png(written["colored_mask"], colorize(labels, colors))
    write_png(written["overlay"], shown)
    if style.save_probabilities:
        written["probabilities"] = out_dir / "probabilities" / f"{stem}.png"
        foreground = pred.probs[..., 0] if binary else 1.0 - pred.probs[..., 0]
        write_png(
            written["probabilities"],
            np.rint(np.clip(foreground, 0.0, 1.0) * 65535).astype(np.uint16),
        )
    return written
