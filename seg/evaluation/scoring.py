"""Offline evaluation of predicted masks against ground truth (NumPy/SciPy only).

Runs after prediction, on hard masks and the probabilities, so it needs neither Keras nor
TensorFlow. The conventions match ``seg.evaluation.metrics``: a ratio whose denominator is 0 is
1.0 ("nothing to find, nothing found"), so an image with empty truth and empty prediction
scores 1.0 on every ratio and empty truth with any predicted pixel gets dice = iou =
precision = 0.0; an empty prediction where there was something to find has precision 0.0
(and recall 0.0), not 1.0.
``soft_dice``/``soft_iou`` count with the probabilities (TP = sum(T * P), ...). ``hd95`` and
``asd`` are boundary distances in pixels (:mod:`seg.evaluation.surface_distance`: 0 when
both masks are empty, the image diagonal when exactly one is). Never NaN.

Summaries report each metric several ways because they answer different questions: the mean,
(population) std and median over images (how a typical image fares and how much that varies),
and, for the ratios, the ``pooled`` value from the confusion summed over all images (every
pixel counts equally; distances have no pooled value).

Multiclass (``Evaluation(class_names)``, label maps in): every foreground class is scored one
against the rest, as ``<metric>_<class name>`` (per image, mean, std, pooled); the plain
``<metric>`` is the mean over foreground classes (its pooled value: the mean of the classes'
pooled values), except ``accuracy``, the fraction of pixels given their true class.
"""

from __future__ import annotations

import csv
import heapq
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from seg.data.io import resize
from seg.evaluation.surface_distance import hd95_asd
from seg.files import written_whole

__all__ = [
    "METRICS",
    "Case",
    "Confusion",
    "Evaluation",
    "Extremes",
    "ThresholdSweep",
    "confusion",
    "scores",
]

#: Confusion ratios, in the order they appear in reports.
METRICS: tuple[str, ...] = ("dice", "iou", "precision", "recall", "specificity", "accuracy")
SOFT_METRICS: tuple[str, ...] = ("soft_dice", "soft_iou")
DISTANCES: tuple[str, ...] = ("hd95", "asd")
#: Every per-image score, in report order.
SCORES: tuple[str, ...] = (*METRICS, *SOFT_METRICS, *DISTANCES)


@dataclass(frozen=True)
class Confusion:
    """Pixel confusion counts for one foreground class."""

    tp: float  # counts; sums of probabilities for soft confusions
    fp: float
    fn: float
    tn: float

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


def soft_confusion(truth: np.ndarray, probs: np.ndarray) -> Confusion:
    """Confusion of one class with probabilities as the prediction (TP = sum(T * P), ...)."""
    t = _as_mask(truth, "truth")
    q = np.clip(np.asarray(probs, np.float64), 0.0, 1.0)
    if t.shape != q.shape:
        raise ValueError(f"truth shape {t.shape} != probabilities shape {q.shape}")
    tp, predicted = float(q[t].sum()), float(q.sum())
    positives = float(np.count_nonzero(t))
    return Confusion(
        tp=tp, fp=predicted - tp, fn=positives - tp, tn=float(t.size) - predicted - positives + tp
    )


def _ratio(num: float, den: float) -> float:
    return float(num) / float(den) if den > 0 else 1.0


def scores(c: Confusion) -> dict[str, float]:
    """Dice, IoU, precision, recall (sensitivity), specificity and accuracy of one confusion;
    a zero denominator gives 1.0 (see module docstring)."""
    return {
        "dice": _ratio(2 * c.tp, 2 * c.tp + c.fp + c.fn),
        "iou": _ratio(c.tp, c.tp + c.fp + c.fn),
        "precision": _ratio(c.tp, c.tp + c.fp) if c.tp + c.fp > 0 else float(c.tp + c.fn == 0),
        "recall": _ratio(c.tp, c.tp + c.fn),
        "specificity": _ratio(c.tn, c.tn + c.fp),
        "accuracy": _ratio(c.tp + c.tn, c.total),
    }


def _soft_scores(c: Confusion) -> dict[str, float]:
    return {
        "soft_dice": _ratio(2 * c.tp, 2 * c.tp + c.fp + c.fn),
        "soft_iou": _ratio(c.tp, c.tp + c.fp + c.fn),
    }


def _class_scores(
    truth: np.ndarray, pred: np.ndarray, probs: np.ndarray
) -> tuple[Confusion, Confusion, dict[str, float]]:
    """Hard and soft confusion and every score of one foreground class (bool masks)."""
    hard, soft = confusion(truth, pred), soft_confusion(truth, probs)
    hd95, asd = hd95_asd(truth, pred)
    return hard, soft, {**scores(hard), **_soft_scores(soft), "hd95": hd95, "asd": asd}


class Evaluation:
    """Accumulates per-image scores and the pooled confusions over a dataset.

    ``class_names`` (a multiclass model's, index 0 = background) switches from binary masks
    to label maps scored per foreground class (see the module docstring).
    """

    def __init__(self, class_names: Sequence[str] | None = None) -> None:
        self.class_names = list(class_names) if class_names and len(class_names) > 1 else None
        foreground = self.class_names[1:] if self.class_names else []
        self._keys = [*SCORES, *(f"{m}_{name}" for name in foreground for m in SCORES)]
        self._rows: list[dict] = []
        empty = Confusion(0, 0, 0, 0)
        self._pooled = [empty] * max(1, len(foreground))
        self._soft_pooled = [empty] * max(1, len(foreground))
        self._correct = 0  # multiclass pixel accuracy, pooled
        self._pixels = 0

    def __len__(self) -> int:
        return len(self._rows)

    def add(
        self, name: str, truth: np.ndarray, pred: np.ndarray, probs: np.ndarray | None = None
    ) -> dict[str, float]:
        """Score one image's masks (binary) or label maps (multiclass), record its row and
        return its scores. ``probs``: (H, W[, 1]) foreground probability, or (H, W, K)
        softmax; without it the prediction itself (0/1) stands for its probabilities."""
        truth, pred = np.asarray(truth), np.asarray(pred)
        if self.class_names is None:
            probs = pred if probs is None else np.asarray(probs).reshape(pred.shape)
            hard, soft, result = _class_scores(
                _as_mask(truth, "truth"), _as_mask(pred, "pred"), probs
            )
            hards, softs = [hard], [soft]
            fg_truth, fg_pred = hard.tp + hard.fn, hard.tp + hard.fp
        else:  # foreground: pixels of any class but background
            hards, softs, result = self._score_labels(truth, pred, probs)
            fg_truth, fg_pred = np.count_nonzero(truth), np.count_nonzero(pred)
        size = max(truth.size, 1)
        self._rows.append(
            {"file": name, **result, "fg_truth": fg_truth / size, "fg_pred": fg_pred / size}
        )
        self._pooled = [a + b for a, b in zip(self._pooled, hards, strict=True)]
        self._soft_pooled = [a + b for a, b in zip(self._soft_pooled, softs, strict=True)]
        return result

    def _score_labels(
        self, truth: np.ndarray, pred: np.ndarray, probs: np.ndarray | None
    ) -> tuple[list[Confusion], list[Confusion], dict[str, float]]:
        if truth.shape != pred.shape:
            raise ValueError(f"truth shape {truth.shape} != pred shape {pred.shape}")
        classes = len(self.class_names)
        for what, labels in (("truth", truth), ("pred", pred)):
            if labels.size and (labels.min() < 0 or labels.max() >= classes):
                raise ValueError(f"{what} labels must be class indices 0..{classes - 1}")
        per_class = [
            _class_scores(truth == k, pred == k, (pred == k) if probs is None else probs[..., k])
            for k in range(1, classes)
        ]
        result = {m: float(np.mean([c[2][m] for c in per_class])) for m in SCORES}
        correct = int(np.count_nonzero(truth == pred))
        result["accuracy"] = _ratio(correct, truth.size)
        self._correct += correct
        self._pixels += truth.size
        for name, (_, _, class_scores) in zip(self.class_names[1:], per_class, strict=True):
            result.update({f"{m}_{name}": v for m, v in class_scores.items()})
        return [c[0] for c in per_class], [c[1] for c in per_class], result

    def per_image_rows(self) -> list[dict]:
        """One dict per image, in insertion order (copies: callers may mutate them)."""
        return [dict(row) for row in self._rows]

    def _pooled_scores(self) -> dict[str, float]:
        per_class = [
            {**scores(h), **_soft_scores(s)}
            for h, s in zip(self._pooled, self._soft_pooled, strict=True)
        ]
        if self.class_names is None:
            return per_class[0]
        ratios = (*METRICS, *SOFT_METRICS)
        out = {m: float(np.mean([c[m] for c in per_class])) for m in ratios}
        out["accuracy"] = _ratio(self._correct, self._pixels)
        for name, class_scores in zip(self.class_names[1:], per_class, strict=True):
            out.update({f"{m}_{name}": v for m, v in class_scores.items()})
        return out

    def summary(self) -> dict[str, float]:
        """``<m>`` (mean over images), ``<m>_std`` (ddof=0), ``<m>_median``, ``<m>_pooled``
        (ratios only) and ``num_images``, for every score (and, multiclass, every
        ``<score>_<class>``)."""
        if not self._rows:
            raise ValueError("no images were added to the evaluation")
        pooled = self._pooled_scores()
        out: dict[str, float] = {}
        for key in self._keys:
            values = np.array([row[key] for row in self._rows], dtype=np.float64)
            out[key] = float(values.mean())
            out[f"{key}_std"] = float(values.std())
            out[f"{key}_median"] = float(np.median(values))
            if key in pooled:
                out[f"{key}_pooled"] = pooled[key]
        out["num_images"] = len(self._rows)
        return out

    def write_csv(self, per_image_path: Path, summary_path: Path) -> None:
        """Write ``per_image.csv`` (one row per image) and the summary (metric, mean, std,
        median, pooled (empty for distances); multiclass: the per-class rows
        ``<metric>_<class>`` after the means over classes)."""
        summary = self.summary()
        per_image_path = Path(per_image_path)
        summary_path = Path(summary_path)
        for path in (per_image_path, summary_path):
            path.parent.mkdir(parents=True, exist_ok=True)
        fields = ["file", *SCORES, "fg_truth", "fg_pred", *self._keys[len(SCORES) :]]
        with (
            written_whole(per_image_path) as tmp,
            tmp.open("w", newline="", encoding="utf-8") as fh,
        ):
            writer = csv.DictWriter(fh, fieldnames=fields)
            writer.writeheader()
            writer.writerows(self._rows)
        with written_whole(summary_path) as tmp, tmp.open("w", newline="", encoding="utf-8") as fh:
            writer = csv.writer(fh)
            writer.writerow(["metric", "mean", "std", "median", "pooled"])
            for key in self._keys:
                writer.writerow(
                    [
                        key,
                        summary[key],
                        summary[f"{key}_std"],
                        summary[f"{key}_median"],
                        summary.get(f"{key}_pooled", ""),
                    ]
                )


# --------------------------------------------------------------------------- threshold sweep


class ThresholdSweep:
    """Binary predictions re-thresholded at ``thresholds``: the mean per-image dice, the pooled
    dice, and the pooled precision-recall curve, exact (sorted probabilities, no binning)."""

    def __init__(self, thresholds: Sequence[float] | None = None) -> None:
        default = np.round(np.arange(0.02, 0.985, 0.02), 2)
        self.thresholds = np.asarray(default if thresholds is None else thresholds, np.float64)
        self._dice: list[np.ndarray] = []
        self.tp = np.zeros(len(self.thresholds))
        self.fp = np.zeros(len(self.thresholds))
        self.positives = 0

    def __len__(self) -> int:
        return len(self._dice)

    def add(self, truth: np.ndarray, probs: np.ndarray) -> None:
        """One image: (H, W) truth mask and foreground probabilities."""
        t = _as_mask(truth, "truth").ravel()
        p = np.asarray(probs, np.float64).reshape(t.shape)
        positive, negative = np.sort(p[t]), np.sort(p[~t])
        # predicted foreground at threshold th: probability > th
        tp = len(positive) - np.searchsorted(positive, self.thresholds, side="right")
        fp = len(negative) - np.searchsorted(negative, self.thresholds, side="right")
        fn = len(positive) - tp
        den = 2 * tp + fp + fn
        self._dice.append(np.where(den > 0, 2 * tp / np.maximum(den, 1), 1.0))
        self.tp += tp
        self.fp += fp
        self.positives += len(positive)

    def curves(self) -> dict[str, np.ndarray]:
        """threshold, mean_dice (per image), pooled_dice, precision, recall (pooled)."""
        if not self._dice:
            raise ValueError("no images were added to the threshold sweep")
        fn = self.positives - self.tp
        with np.errstate(invalid="ignore", divide="ignore"):
            # nothing predicted: 1 when there was nothing to find either, else 0
            nothing = 1.0 if self.positives == 0 else 0.0
            precision = np.where(self.tp + self.fp > 0, self.tp / (self.tp + self.fp), nothing)
            recall = np.where(self.positives > 0, self.tp / max(self.positives, 1), 1.0)
        den = 2 * self.tp + self.fp + fn
        return {
            "threshold": self.thresholds,
            "mean_dice": np.mean(self._dice, axis=0),
            "pooled_dice": np.where(den > 0, 2 * self.tp / np.maximum(den, 1), 1.0),
            "precision": precision,
            "recall": recall,
        }

    def best(self) -> tuple[float, float]:
        """(threshold, mean per-image dice) at the threshold with the highest mean dice
        (the lowest such threshold on a tie)."""
        mean = self.curves()["mean_dice"]
        i = int(np.argmax(mean))
        return float(self.thresholds[i]), float(mean[i])


# --------------------------------------------------------------------------- gallery


@dataclass(frozen=True)
class Case:
    """One image for the gallery: thumbnails of image, truth and prediction."""

    name: str
    score: float
    image: np.ndarray
    truth: np.ndarray
    pred: np.ndarray


class Extremes:
    """The ``k`` lowest- and ``k`` highest-scoring images, kept as thumbnails no larger than
    ``max_side``, so memory stays flat however many images are evaluated."""

    def __init__(self, k: int = 4, max_side: int = 256) -> None:
        self.k, self.max_side = k, max_side
        self._worst: list[tuple[float, int, Case]] = []  # key -score: the heap drops the best
        self._best: list[tuple[float, int, Case]] = []  # key score: the heap drops the worst
        self._count = 0

    def _thumbnail(
        self, name: str, score: float, image: np.ndarray, truth: np.ndarray, pred: np.ndarray
    ) -> Case:
        h, w = truth.shape[:2]
        scale = min(1.0, self.max_side / max(h, w))
        th, tw = max(1, round(h * scale)), max(1, round(w * scale))
        return Case(
            name,
            score,
            resize(np.asarray(image, np.float32), th, tw),
            resize(np.asarray(truth, np.uint8), th, tw, nearest=True),
            resize(np.asarray(pred, np.uint8), th, tw, nearest=True),
        )

    def add(
        self, name: str, score: float, image: np.ndarray, truth: np.ndarray, pred: np.ndarray
    ) -> None:
        if self.k <= 0:
            return
        self._count += 1
        worst_full = len(self._worst) >= self.k and -score <= self._worst[0][0]
        best_full = len(self._best) >= self.k and score <= self._best[0][0]
        if worst_full and best_full:
            return  # neither extreme: no thumbnail needed
        case = self._thumbnail(name, score, image, truth, pred)
        for heap, key in ((self._worst, -score), (self._best, score)):
            item = (key, self._count, case)
            if len(heap) < self.k:
                heapq.heappush(heap, item)
            else:
                heapq.heappushpop(heap, item)

    def worst(self) -> list[Case]:
        """Lowest score first."""
        return [c for _, _, c in sorted(self._worst, key=lambda t: (-t[0], t[1]))]

    def best(self) -> list[Case]:
        """Highest score first, without the images already among the worst."""
        shown = {c.name for c in self.worst()}
        ranked = sorted(self._best, key=lambda t: (-t[0], t[1]))
        return [c for _, _, c in ranked if c.name not in shown]
