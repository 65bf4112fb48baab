"""Offline evaluation of predicted masks against ground truth (NumPy only).

Runs after prediction, on hard masks, so it needs neither Keras nor TensorFlow. The
conventions match ``seg.metrics``: a ratio whose denominator is 0 is 1.0 ("nothing to find,
nothing found"), so an image with empty truth and empty prediction scores 1.0 on every metric
and empty truth with any predicted pixel gets dice = iou = precision = 0.0. Never NaN.

Summaries report each metric three ways because they answer different questions: the mean
and (population) std over images (how a typical image fares and how much that varies), and
the ``pooled`` value from the confusion summed over all images (every pixel counts equally).

Multiclass (``Evaluation(class_names)``, label maps in): every foreground class is scored one
against the rest, as ``<metric>_<class name>`` (per image, mean, std, pooled); the plain
``<metric>`` is the mean over foreground classes (its pooled value: the mean of the classes'
pooled values), except ``accuracy``, the fraction of pixels given their true class.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = ["METRICS", "Confusion", "Evaluation", "confusion", "scores"]

#: Metric names, in the order they appear in reports.
METRICS: tuple[str, ...] = ("dice", "iou", "precision", "recall", "specificity", "accuracy")

_PER_IMAGE_FIELDS: tuple[str, ...] = ("file", *METRICS, "fg_truth", "fg_pred")


@dataclass(frozen=True)
class Confusion:
    """Pixel confusion counts for one foreground class."""

    tp: int
    fp: int
    fn: int
    tn: int

    def __add__(self, other: Confusion) -> Confusion:
        return Confusion(
            self.tp + other.tp, self.fp + other.fp, self.fn + other.fn, self.tn + other.tn
        )

    @property
    def total(self) -> int:
        return self.tp + self.fp + self.fn + self.tn


def _as_mask(array: np.ndarray, what: str) -> np.ndarray:
    """Boolean view of a bool or 0/1 mask; other values (0/255, probabilities) are rejected
    because silently treating them as foreground would corrupt every score."""
    array = np.asarray(array)
    if array.dtype == bool:
        return array
    if not np.isin(array, (0, 1)).all():
        raise ValueError(f"{what} mask must be boolean or 0/1; got values outside {{0, 1}}")
    return array.astype(bool)


def confusion(truth: np.ndarray, pred: np.ndarray) -> Confusion:
    """Count TP/FP/FN/TN between two same-shaped bool or 0/1 masks of one foreground class."""
    t = _as_mask(truth, "truth")
    p = _as_mask(pred, "pred")
    if t.shape != p.shape:
        raise ValueError(f"truth shape {t.shape} != pred shape {p.shape}")
    tp = int(np.count_nonzero(t & p))
    fp = int(np.count_nonzero(~t & p))
    fn = int(np.count_nonzero(t & ~p))
    return Confusion(tp=tp, fp=fp, fn=fn, tn=int(t.size) - tp - fp - fn)


def _ratio(num: int, den: int) -> float:
    return float(num) / float(den) if den > 0 else 1.0


def scores(c: Confusion) -> dict[str, float]:
    """Dice, IoU, precision, recall (sensitivity), specificity and accuracy of one confusion;
    a zero denominator gives 1.0 (see module docstring)."""
    return {
        "dice": _ratio(2 * c.tp, 2 * c.tp + c.fp + c.fn),
        "iou": _ratio(c.tp, c.tp + c.fp + c.fn),
        "precision": _ratio(c.tp, c.tp + c.fp),
        "recall": _ratio(c.tp, c.tp + c.fn),
        "specificity": _ratio(c.tn, c.tn + c.fp),
        "accuracy": _ratio(c.tp + c.tn, c.total),
    }


class Evaluation:
    """Accumulates per-image scores and the pooled confusions over a dataset.

    ``class_names`` (a multiclass model's, index 0 = background) switches from binary masks
    to label maps scored per foreground class (see the module docstring).
    """

    def __init__(self, class_names: Sequence[str] | None = None) -> None:
        self.class_names = list(class_names) if class_names and len(class_names) > 1 else None
        foreground = self.class_names[1:] if self.class_names else []
        self._keys = [*METRICS, *(f"{m}_{name}" for name in foreground for m in METRICS)]
        self._rows: list[dict] = []
        self._pooled = [Confusion(0, 0, 0, 0)] * max(1, len(foreground))
        self._correct = 0  # multiclass pixel accuracy, pooled
        self._pixels = 0

    def __len__(self) -> int:
        return len(self._rows)

    def add(self, name: str, truth: np.ndarray, pred: np.ndarray) -> dict[str, float]:
        """Score one image's masks (binary) or label maps (multiclass), record its row and
        return its scores."""
        if self.class_names is None:
            c = confusion(truth, pred)
            confusions, result = [c], scores(c)
            fg_truth, fg_pred = c.tp + c.fn, c.tp + c.fp
        else:  # foreground: pixels of any class but background
            truth, pred = np.asarray(truth), np.asarray(pred)
            confusions, result = self._score_labels(truth, pred)
            fg_truth, fg_pred = np.count_nonzero(truth), np.count_nonzero(pred)
        size = max(confusions[0].total, 1)
        self._rows.append(
            {"file": name, **result, "fg_truth": fg_truth / size, "fg_pred": fg_pred / size}
        )
        self._pooled = [a + b for a, b in zip(self._pooled, confusions, strict=True)]
        return result

    def _score_labels(
        self, truth: np.ndarray, pred: np.ndarray
    ) -> tuple[list[Confusion], dict[str, float]]:
        if truth.shape != pred.shape:
            raise ValueError(f"truth shape {truth.shape} != pred shape {pred.shape}")
        classes = len(self.class_names)
        for what, labels in (("truth", truth), ("pred", pred)):
            if labels.size and (labels.min() < 0 or labels.max() >= classes):
                raise ValueError(f"{what} labels must be class indices 0..{classes - 1}")
        confusions = [confusion(truth == k, pred == k) for k in range(1, classes)]
        per_class = [scores(c) for c in confusions]
        result = {m: float(np.mean([s[m] for s in per_class])) for m in METRICS}
        correct = int(np.count_nonzero(truth == pred))
        result["accuracy"] = _ratio(correct, truth.size)
        self._correct += correct
        self._pixels += truth.size
        for name, class_scores in zip(self.class_names[1:], per_class, strict=True):
            result.update({f"{m}_{name}": v for m, v in class_scores.items()})
        return confusions, result

    def per_image_rows(self) -> list[dict]:
        """One dict per image, in insertion order (copies: callers may mutate them)."""
        return [dict(row) for row in self._rows]

    def _pooled_scores(self) -> dict[str, float]:
        if self.class_names is None:
            return scores(self._pooled[0])
        per_class = [scores(c) for c in self._pooled]
        out = {m: float(np.mean([s[m] for s in per_class])) for m in METRICS}
        out["accuracy"] = _ratio(self._correct, self._pixels)
        for name, class_scores in zip(self.class_names[1:], per_class, strict=True):
            out.update({f"{m}_{name}": v for m, v in class_scores.items()})
        return out

    def summary(self) -> dict[str, float]:
        """``<m>`` (mean over images), ``<m>_std`` (ddof=0), ``<m>_pooled`` and ``num_images``,
        for every metric (and, multiclass, every ``<metric>_<class>``)."""
        if not self._rows:
            raise ValueError("no images were added to the evaluation")
        pooled = self._pooled_scores()
        out: dict[str, float] = {}
        for key in self._keys:
            values = np.array([row[key] for row in self._rows], dtype=np.float64)
            out[key] = float(values.mean())
            out[f"{key}_std"] = float(values.std())
            out[f"{key}_pooled"] = pooled[key]
        out["num_images"] = len(self._rows)
        return out

    def write_csv(self, per_image_path: Path, summary_path: Path) -> None:
        """Write ``per_image.csv`` (one row per image) and the summary (metric,mean,std,pooled;
        multiclass: the per-class rows ``<metric>_<class>`` after the means over classes)."""
        summary = self.summary()
        per_image_path = Path(per_image_path)
        summary_path = Path(summary_path)
        for path in (per_image_path, summary_path):
            path.parent.mkdir(parents=True, exist_ok=True)
        fields = [*_PER_IMAGE_FIELDS, *self._keys[len(METRICS):]]
        with per_image_path.open("w", newline="", encoding="utf-8") as fh:
            writer = csv.DictWriter(fh, fieldnames=fields)
            writer.writeheader()
            writer.writerows(self._rows)
        with summary_path.open("w", newline="", encoding="utf-8") as fh:
            writer = csv.writer(fh)
            writer.writerow(["metric", "mean", "std", "pooled"])
            for key in self._keys:
                writer.writerow(
                    [key, summary[key], summary[f"{key}_std"], summary[f"{key}_pooled"]]
                )
