"""Prediction on image files of any size: probabilities at each image's own size.

:class:`Predictor` turns one decoded image into probabilities at its own size, one of two ways:

* **resized** (the images a model was trained like): the image is resized to the model input,
  predicted (images batched together) and the probabilities resized back; a model with free
  spatial dimensions takes the image at its own size, padded to ``pad_multiple``;
* **tiled** (:mod:`seg.inference.tiling`): sliding windows of the model input over the image
  at its own resolution (or rescaled so that ``tile_size`` image pixels fill one model input), tiles
  batched and blended with Gaussian weights. ``tiling=auto`` tiles an image larger than a tile,
  ``on`` every image, ``off`` none (the stages resolve ``auto`` to ``off`` for the images of the
  model's own dataset splits, which training fed whole: seg.runner.stages.infer.build_predictor).
  ``bitwise_blending`` ANDs the tiled mask with the resized whole-image prediction (the legacy
  option; as probabilities, their minimum).

Either way the batch goes through test-time augmentation (:mod:`seg.inference.tta`) when configured.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from seg.config.inference import check_tta
from seg.data.io import decode_image, prepare_image, read_raw, resize
from seg.data.preprocess import ImagePreprocess, check_channels
from seg.errors import ConfigError
from seg.inference.tiling import DEFAULT_SIGMA, sliding_window
from seg.inference.tta import with_tta

log = logging.getLogger(__name__)

Size = tuple[int | None, int | None]


def to_labels(probs: np.ndarray, threshold: float = 0.5) -> np.ndarray:
    """(H,W,1) probabilities -> {0,1} mask; (H,W,K) softmax -> class index map."""
    if probs.shape[-1] == 1:
        return (probs[..., 0] > threshold).astype(np.uint8)
    return np.argmax(probs, axis=-1).astype(np.uint8)


def model_geometry(model) -> tuple[Size, int]:
    """((height, width), channels) the model takes; None for a free spatial dimension."""
    _, height, width, channels = model.input_shape
    height, width = (None if v is None else int(v) for v in (height, width))
    return (height, width), int(channels)


def model_classes(model) -> int:
    """Output channels: 1 (sigmoid, binary) or the number of softmax classes."""
    return int(model.output_shape[-1])


def predict_batch(model, batch: np.ndarray) -> np.ndarray:
    """Probabilities for a batch the model can take (float32 (B,H,W,K)). Keras' compiled
    predict step: on a CPU a batch of one costs about what a batch's share does, while an
    eager call or ``model.predict`` per batch costs several times more."""
    return np.asarray(model.predict_on_batch(batch), np.float32)


@dataclass(frozen=True)
class InferenceSettings:
    """How images become probabilities (the ``inference`` config minus the outputs)."""

    batch_size: int = 8  # images (resized) or tiles per model call
    tiling: str = "auto"  # auto | on | off
    tile_size: tuple[int, int] | None = None  # image pixels per tile; None: the model input
    tile_overlap: float = 0.25
    tile_blending: str = "gaussian"  # gaussian | uniform
    tile_sigma: float = DEFAULT_SIGMA
    bitwise_blending: bool = False
    tta: tuple[str, ...] = ()
    pad_multiple: int = 32

    @classmethod
    def from_config(cls, node: Mapping[str, Any]) -> InferenceSettings:
        """From the plain ``inference`` config mapping (other keys are ignored)."""
        values = {f.name: node[f.name] for f in fields(cls) if f.name in node}
        if values.get("tile_size") is not None:
            values["tile_size"] = tuple(int(v) for v in values["tile_size"])
        values["tta"] = tuple(values.get("tta") or ())
        return cls(**values)

    @property
    def sigma(self) -> float:
        return self.tile_sigma if self.tile_blending == "gaussian" else 0.0


@dataclass
class Prediction:
    path: Path
    image: np.ndarray  # float32 HxWxC in [0, 1] at the original size, before preprocessing
    probs: np.ndarray  # float32 HxWxK at the original size
    tiled: bool = False  # predicted by sliding windows


def _pad_to_multiple(image: np.ndarray, multiple: int) -> np.ndarray:
    h, w = image.shape[:2]
    pad_h, pad_w = -h % multiple, -w % multiple
    if not pad_h and not pad_w:
        return image
    return np.pad(image, ((0, pad_h), (0, pad_w), (0, 0)), mode="symmetric")


class Predictor:
    """Probabilities at each image's own size, for one model and its preprocessing.

    ``training_size`` (the model's training image size) is the tile of a model with free
    spatial dimensions when ``inference.tile_size`` is not set.
    """

    def __init__(
        self,
        model,
        settings: InferenceSettings | None = None,
        preprocess: ImagePreprocess | None = None,
        training_size: Sequence[int] | None = None,
    ) -> None:
        self.model = model
        self.settings = s = settings or InferenceSettings()
        self.spec = preprocess or ImagePreprocess()
        self.input_size, self.channels = model_geometry(model)
        check_channels(self.spec, self.channels)
        self.free = None in self.input_size
        if s.tiling not in ("auto", "on", "off"):
            raise ConfigError(f"inference.tiling: auto, on or off, got {s.tiling!r}")
        if s.bitwise_blending and (classes := model_classes(model)) != 1:
            raise ConfigError(
                "inference.bitwise_blending: ANDs binary masks; this model "
                f"predicts {classes} classes (set it false)"
            )
        self.tile = self._tile(training_size)
        if s.tiling == "on" and self.tile is None:
            raise ConfigError(
                "inference.tile_size: the model takes any image size, so "
                "tiling=on needs the tile size: inference.tile_size=[h,w]"
            )
        self._predict = with_tta(
            lambda batch: predict_batch(model, batch), check_tta(s.tta, self.input_size)
        )
        self._warned = False

    def _tile(self, training_size: Sequence[int] | None) -> tuple[int, int] | None:
        if self.settings.tile_size is not None:
            tile = tuple(int(v) for v in self.settings.tile_size)
        elif not self.free:
            tile = self.input_size
        elif training_size is not None:
            tile = tuple(int(v) for v in training_size)
        else:
            return None
        if len(tile) != 2 or min(tile) < 1:
            raise ConfigError(f"inference.tile_size: [height, width] > 0, got {list(tile)}")
        return tile  # type: ignore[return-value]

    def tiles(self, shape: Sequence[int]) -> bool:
        """Whether an image of this (H, W, ...) shape is predicted by sliding windows."""
        mode = self.settings.tiling
        if mode != "auto":
            return mode == "on"
        return self.tile is not None and (shape[0] > self.tile[0] or shape[1] > self.tile[1])

    def prepare(self, original: np.ndarray) -> np.ndarray:
        """The model input of the resized path (a free-size model: the image, padded)."""
        if self.free:
            native = prepare_image(original, None, self.channels, self.spec)
            return _pad_to_multiple(native, self.settings.pad_multiple)
        return prepare_image(original, self.input_size, self.channels, self.spec)

    def predict_resized(
        self, originals: Sequence[np.ndarray], prepared: Sequence[np.ndarray] | None = None
    ) -> list[np.ndarray]:
        """Probabilities of whole images at their own sizes (fixed-size models: one batch)."""
        prepared = list(prepared) if prepared is not None else [self.prepare(o) for o in originals]
        if self.free:
            probs = [self._predict(x[None])[0] for x in prepared]
        else:
            probs = list(self._predict(np.stack(prepared)))
        return [
            resize(p, *o.shape[:2]) if not self.free else p[: o.shape[0], : o.shape[1]]
            for o, p in zip(originals, probs, strict=True)
        ]

    def predict_tiled(self, original: np.ndarray) -> np.ndarray:
        """Probabilities of one image by sliding windows, at its own size."""
        if self.tile is None:
            raise ConfigError("inference.tile_size: needed to tile a free-size model's input")
        s, (h, w) = self.settings, original.shape[:2]
        model_tile = self.tile if self.free else self.input_size
        work = None
        if model_tile != self.tile:  # tile_size image pixels fill one model input
            work = (
                max(1, round(h * model_tile[0] / self.tile[0])),
                max(1, round(w * model_tile[1] / self.tile[1])),
            )
        image = prepare_image(original, work, self.channels, self.spec)
        probs = sliding_window(
            image, self._predict, model_tile, s.tile_overlap, s.batch_size, s.sigma
        )
        probs = resize(probs, h, w)
        if s.bitwise_blending:
            probs = np.minimum(probs, self.predict_resized([original])[0])
        return probs

    def _note_tiling(self, path: Path, shape: Sequence[int]) -> None:
        if self._warned or self.settings.tiling != "auto":
            return
        self._warned = True
        log.warning(
            "%s (%dx%d) is larger than a tile (%dx%d): predicted by sliding windows at its own "
            "resolution (inference.tiling=auto). If the model was trained on images "
            "downscaled to its input, set inference.tile_size=[h,w] to their size, or "
            "inference.tiling=off to resize whole images as in training",
            path.name,
            shape[0],
            shape[1],
            *self.tile,
        )

    def predict_files(
        self,
        paths: Sequence[Path],
        progress: bool = True,
        read_ahead: int = 4,
        label: str = "inference",
    ) -> Iterator[Prediction]:
        """Yield each file's probabilities, in order. Files are decoded in threads, at most
        ``read_ahead`` ahead, so a folder of large slides never sits in memory at once; images
        on the resized path are batched together, a tiled image batches its own tiles.
        ``label``: the progress bar's (the stage the prediction serves)."""

        def read(path: Path) -> tuple[np.ndarray, np.ndarray | None]:
            original = decode_image(read_raw(path), self.channels, self.spec)
            return original, None if self.tiles(original.shape) else self.prepare(original)

        pending: list[tuple[Path, np.ndarray, np.ndarray]] = []  # resized path, not predicted

        def flush() -> Iterator[Prediction]:
            if pending:
                probs = self.predict_resized([o for _, o, _ in pending], [x for _, _, x in pending])
                yield from (
                    Prediction(path, original, prob)
                    for (path, original, _), prob in zip(pending, probs, strict=True)
                )
                pending.clear()

        bar = tqdm(total=len(paths), desc=label, unit="img", disable=not progress)
        with ThreadPoolExecutor(max_workers=max(1, read_ahead)) as pool:
            queue: deque[tuple[Path, Future]] = deque()
            for path in [*paths, None]:
                if path is not None:
                    queue.append((path, pool.submit(read, path)))
                    if len(queue) <= read_ahead:
                        continue
                while queue and (path is None or len(queue) > read_ahead):
                    current, future = queue.popleft()
                    original, prepared = future.result()
                    if prepared is not None:
                        pending.append((current, original, prepared))
                        if len(pending) < self.settings.batch_size:
                            continue
                    for pred in flush():
                        yield pred
                        bar.update(1)
                    if prepared is None:
                        self._note_tiling(current, original.shape)
                        yield Prediction(current, original, self.predict_tiled(original), True)
                        bar.update(1)
            for pred in flush():
                yield pred
                bar.update(1)
        bar.close()


def predict_files(
    model,
    paths: Sequence[Path],
    batch_size: int,
    progress: bool = True,
    preprocess: ImagePreprocess | None = None,
    settings: InferenceSettings | None = None,
) -> Iterator[Prediction]:
    """:meth:`Predictor.predict_files` with ``batch_size``; by default every image resized to
    the model input (``tiling="off"``): through seg.data.io's decode_image + prepare_image with
    ``preprocess`` (pass the model's: see seg.runner.context.Context.preprocessing), exactly
    as training reads them."""
    settings = replace(settings or InferenceSettings(tiling="off"), batch_size=batch_size)
    yield from Predictor(model, settings, preprocess).predict_files(paths, progress)
