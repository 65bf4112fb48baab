"""seg's Keras callbacks: the divergence guard, and the masks inferred after every epoch (a
fixed sample of validation images, and one large image) logged to the run."""

from __future__ import annotations

import logging
import sys
import time
from typing import Any, Protocol

import keras
import numpy as np
from tqdm import tqdm

from seg.data.io import resize
from seg.data.preprocess import ImagePreprocess
from seg.errors import TrainingDiverged
from seg.inference.predictor import InferenceSettings, Predictor, to_labels
from seg.inference.visualize import comparison, labelled_grid, overlay_labels

log = logging.getLogger(__name__)


class RunLog(Protocol):
    """What the callbacks need of a run (seg.tracking.tracker.Tracker provides it)."""

    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None: ...
    def log_image(self, image: np.ndarray, key: str, step: int) -> None: ...
    def set_tags(self, tags: dict[str, str]) -> None: ...


def current_lr(model: keras.Model) -> float:
    return float(keras.ops.convert_to_numpy(model.optimizer.learning_rate))


def non_finite_weights(model: keras.Model) -> list[str]:
    """Names of the model's variables (weights, batch-norm statistics) holding NaN or inf:
    one flag per variable computed where the variables live (copying 31 M weights to NumPy
    every epoch took 0.3 s)."""
    flags = keras.ops.convert_to_numpy(
        keras.ops.stack([keras.ops.all(keras.ops.isfinite(v)) for v in model.weights])
    )
    return [v.path for v, finite in zip(model.weights, flags, strict=True) if not finite]


class DivergenceGuard(keras.callbacks.TerminateOnNaN):
    """TerminateOnNaN that stops at once instead of at the end of the epoch: a NaN or infinite
    training loss (at the batch it appears), validation loss or weight (at the epoch's end)
    raises :class:`TrainingDiverged`. First in the callback list, it keeps such an epoch from
    every callback after it, so neither the best checkpoint nor the last (resumable) one is
    ever written from NaN weights; the run ends FAILED with the message."""

    def __init__(self, last_finite: int | None = None) -> None:
        super().__init__()
        self.epoch = 0
        self.last_finite = last_finite  # the last epoch that ended finite (0-based)

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        self.epoch = epoch

    def on_batch_end(self, batch: int, logs: dict | None = None) -> None:
        loss = (logs or {}).get("loss")
        if loss is not None and not np.isfinite(loss):
            self._stop(f"training loss {float(loss)} at batch {batch + 1}")

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        bad = [
            f"{k} {float(v)}"
            for k, v in (logs or {}).items()
            if k in ("loss", "val_loss") and not np.isfinite(v)
        ]
        variables = non_finite_weights(self.model)
        if variables:
            bad.append(f"{len(variables)} non-finite variables ({', '.join(variables[:3])})")
        if bad:
            self._stop(", ".join(bad))
        self.last_finite = epoch

    def _stop(self, what: str) -> None:
        kept = (
            "nothing was saved: no epoch ended finite"
            if self.last_finite is None
            else f"the checkpoints keep epoch {self.last_finite + 1} and earlier"
        )
        raise TrainingDiverged(
            f"training diverged in epoch {self.epoch + 1}: {what}; {kept}. Lower "
            "trainer.learning_rate, or set trainer.clipnorm"
        )


class EpochMasks(keras.callbacks.Callback):
    """Masks inferred on a fixed set of validation images after every ``every`` epochs.

    Each image is logged under its own key (the MLflow UI's step slider then shows the mask
    improving), and all of them as one grid per epoch: image | truth | prediction, binary
    masks in green/red, multiclass label maps in the class colours of ``palette``.
    """

    def __init__(
        self,
        run: RunLog,
        images: np.ndarray,
        truths: np.ndarray,
        names: list[str],
        threshold: float = 0.5,
        every: int = 1,
        display: np.ndarray | None = None,
        palette: np.ndarray | None = None,
    ) -> None:
        super().__init__()
        # truths: label maps (N,H,W), binary {0,1} or class indices
        self.run, self.images, self.truths, self.names = run, images, truths, names
        self.threshold, self.every, self.palette = threshold, max(1, every), palette
        # What is shown under the masks: the model inputs unless they are not viewable as they
        # are (normalised); see seg.data.preprocess.for_display.
        self.display = images if display is None else display

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        if epoch % self.every:
            return
        probs = keras.ops.convert_to_numpy(self.model(self.images, training=False))
        rows = []
        for image, truth, prob, name in zip(
            self.display, self.truths, probs, self.names, strict=True
        ):
            row = comparison(image, truth, to_labels(prob, self.threshold), palette=self.palette)
            self.run.log_image(row, key=f"val_mask_{name}", step=epoch)
            rows.append(row)
        columns = ("image", "truth", "prediction")
        grid = labelled_grid(rows, columns, f"epoch {epoch + 1}: validation masks")
        self.run.log_image(grid, key="val_masks", step=epoch)


class LargeImageMask(keras.callbacks.Callback):
    """The mask of one large image (a whole slide, a dermoscopy photo) after every ``every``
    epochs, predicted as seg-infer would (sliding windows when it is larger than a tile),
    logged as ``val_large_<name>``: the mask over the image, shrunk to ``max_side`` pixels."""

    def __init__(
        self,
        run: RunLog,
        image: np.ndarray,
        name: str,
        settings: InferenceSettings,
        preprocess: ImagePreprocess,
        palette: np.ndarray,
        threshold: float = 0.5,
        every: int = 1,
        max_side: int = 1024,
    ) -> None:
        super().__init__()
        # image: decoded, at its own size; palette: a colour per class (binary: 2)
        self.run, self.image, self.name = run, image, name
        self.settings, self.preprocess, self.threshold = settings, preprocess, threshold
        self.every, self.max_side = max(1, every), max_side
        self.palette = palette

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        if epoch % self.every:
            return
        predictor = Predictor(self.model, self.settings, self.preprocess)
        if predictor.tiles(self.image.shape):
            probs = predictor.predict_tiled(self.image)
        else:
            probs = predictor.predict_resized([self.image])[0]
        labels = to_labels(probs, self.threshold)
        shown = overlay_labels(self.image, labels, self.palette)
        h, w = shown.shape[:2]
        scale = min(1.0, self.max_side / max(h, w))
        shown = resize(shown, max(1, round(h * scale)), max(1, round(w * scale)))
        self.run.log_image(shown, key=f"val_large_{self.name}", step=epoch)


class PredictionWatch(keras.callbacks.Callback):
    """Say so when the model predicts nothing (or everything) on the validation split for
    ``epochs`` epochs in a row while the truth is not like that: a warning in the log and an
    MLflow tag ``seg.warning`` naming the likely causes, once (training goes on: it may still
    recover, and the user decides).

    Read from the epoch's pooled validation metrics: a sensitivity of 0 means no foreground
    pixel was found (nothing predicted where ``foreground`` of the pixels are foreground), a
    specificity of 0 that every pixel was predicted foreground.
    """

    def __init__(self, run: RunLog, foreground: float, threshold: float, epochs: int = 3) -> None:
        super().__init__()
        self.run, self.foreground, self.threshold, self.epochs = run, foreground, threshold, epochs
        self.streak: dict[str, int] = {"empty": 0, "full": 0}
        self.warned = False

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        logs = logs or {}
        seen = {"empty": logs.get("val_sensitivity"), "full": logs.get("val_specificity")}
        for kind, value in seen.items():
            stuck = value is not None and float(value) == 0.0
            self.streak[kind] = self.streak[kind] + 1 if stuck else 0
            if self.streak[kind] >= self.epochs and not self.warned and 0 < self.foreground < 1:
                self._warn(kind, epoch)

    def _warn(self, kind: str, epoch: int) -> None:
        self.warned = True
        share = f"{self.foreground:.1%} of the validation pixels are foreground"
        if kind == "empty":
            said = (
                f"the validation masks predicted have been empty for {self.epochs} epochs "
                f"(to epoch {epoch + 1}) while {share}: the loss may reward predicting "
                "background on so small a foreground (a Dice or Tversky term helps: "
                f"loss=bce_dice, loss=tversky), inference.threshold={self.threshold} may be "
                "above the probabilities reached so far, or trainer.learning_rate may be "
                "off; a foreground that is the dark class wants dataset.mask.invert=true"
            )
        else:
            said = (
                f"every validation pixel has been predicted foreground for {self.epochs} "
                f"epochs (to epoch {epoch + 1}) while {share}: the masks may be inverted "
                "(dataset.mask.invert=true), or inference.threshold="
                f"{self.threshold} too low for the probabilities reached so far"
            )
        log.warning("%s", said)
        self.run.set_tags({"seg.warning": said[:5000]})


class EpochLine(keras.callbacks.Callback):
    """One line per epoch that a person reads, about 100 columns whatever the metrics:
    ``epoch 3/30  21.4 s  loss 0.3124  val_loss 0.2987  val_dice 0.8123  lr 1.0e-03``
    (``shown``: the log keys to print, those the run watches), and in a terminal a progress
    bar over the epoch's steps with the running loss. Keras' own lines print every metric
    (about 400 columns): ``trainer.verbose=1|2`` brings them back."""

    def __init__(self, epochs: int, steps: int, shown: tuple[str, ...], stream: Any = None) -> None:
        super().__init__()
        self.epochs, self.steps, self.shown = epochs, steps, shown
        self.stream = stream or sys.stdout
        self.bar: Any = None
        self._start, self._lr = 0.0, 0.0

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        self._start, self._lr = time.perf_counter(), current_lr(self.model)
        if self.stream.isatty():
            self.bar = tqdm(
                total=self.steps,
                desc=f"epoch {epoch + 1}/{self.epochs}",
                unit="step",
                leave=False,
                file=self.stream,
                dynamic_ncols=True,
            )

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        if self.bar is not None:
            self.bar.n = min(self.steps, batch + 1)
            loss = (logs or {}).get("loss")
            if loss is not None:
                self.bar.set_postfix_str(f"loss {float(loss):.4f}", refresh=False)
            self.bar.refresh()

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
        logs = logs or {}
        values = "  ".join(f"{k} {float(logs[k]):.4f}" for k in self.shown if k in logs)
        width = len(str(self.epochs))
        print(
            f"epoch {epoch + 1:>{width}}/{self.epochs}  {time.perf_counter() - self._start:6.1f} s"
            f"  {values}  lr {self._lr:.1e}",
            file=self.stream,
            flush=True,
        )
