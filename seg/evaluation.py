"""Offline evaluation of predicted binary masks against ground truth (NumPy only).

Runs after prediction, on hard masks, so it needs neither Keras nor TensorFlow. The
conventions match ``seg.metrics``: a ratio whose denominator is 0 is 1.0 ("nothing to find,
nothing found"), so an image with empty truth and empty prediction scores 1.0 on every metric
and empty truth with any predicted pixel gets dice = iou = precision = 0.0. Never NaN.

Summaries report each metric three ways because they answer different questions: the mean
and (population) std over images (how a typical image fares and how much that varies), and
the ``pooled`` value from the confusion summed over all images (every pixel counts equally).
"""

from __future__ import annotations

import csv
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
    """Accumulates per-image scores and the pooled confusion over a dataset."""

    def __init__(self) -> None:
        self._rows: list[dict] = []
        self._pooled = Confusion(0, 0, 0, 0)

    def __len__(self) -> int:
        return len(self._rows)

    def add(self, name: str, truth: np.ndarray, pred: np.ndarray) -> dict[str, float]:
        """Score one image's binary masks, record its row and return its scores."""
        c = confusion(truth, pred)
        result = scores(c)
        size = max(c.total, 1)
        self._rows.append(
            {
                "file": name,
                **result,
                "fg_truth": (c.tp + c.fn) / size,
                "fg_pred": (c.tp + c.fp) / size,
            }
        )
        self._pooled = self._pooled + c
        return result

    def per_image_rows(self) -> list[dict]:
        """One dict per image, in insertion order (copies: callers may mutate them)."""
        return [dict(row) for row in self._rows]

    def summary(self) -> dict[str, float]:
        """``<m>`` (mean over images), ``<m>_std`` (ddof=0), ``<m>_pooled`` and ``num_images``."""
        if not self._rows:
            raise ValueError("no images were added to the evaluation")
        pooled = scores(self._pooled)
        out: dict[str, float] = {}
        for metric in METRICS:
            values = np.array([row[metric] for row in self._rows], dtype=np.float64)
            out[metric] = float(values.mean())
            out[f"{metric}_std"] = float(values.std())
            out[f"{metric}_pooled"] = pooled[metric]
        out["num_images"] = len(self._rows)
        return out

    def write_csv(self, per_image_path: Path, summary_path: Path) -> None:
        """Write ``per_image.csv`` (one row per image) and the summary (metric,mean,std,pooled)."""
        summary = self.summary()
        per_image_path = Path(per_image_path)
        summary_path = Path(summary_path)
        for path in (per_image_path, summary_path):
            path.parent.mkdir(parents=True, exist_ok=True)
        with per_image_path.open("w", newline="", encoding="utf-8") as fh:
            writer = csv.DictWriter(fh, fieldnames=list(_PER_IMAGE_FIELDS))
            writer.writeheader()
            writer.writerows(self._rows)
        with summary_path.open("w", newline="", encoding="utf-8") as fh:
            writer = csv.writer(fh)
            writer.writerow(["metric", "mean", "std", "pooled"])
            for metric in METRICS:
                writer.writerow(
                    [metric, summary[metric], summary[f"{metric}_std"], summary[f"{metric}_pooled"]]
                )
