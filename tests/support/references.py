"""NumPy references of the losses and metrics (float64, written out), and a batch that holds
the empty-mask cases; the Keras implementations are tested against them."""

from __future__ import annotations

import keras
import numpy as np

EPS = 1e-7
H = W = 16


# ----------------------------------------------------------------------------- data


def make_batch(channels: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Batch of 3: [empty truth + empty pred, empty truth + non-empty pred, random/random]."""
    rng = np.random.default_rng(seed)
    if channels == 1:
        y = (rng.random((3, H, W, 1)) < 0.3).astype("float32")
        p = rng.random((3, H, W, 1)).astype("float32")
        y[:2] = 0.0
        p[0] = rng.uniform(0.0, 0.4, (H, W, 1))  # every pixel below threshold
        p[1, :4, :4] = 0.9  # guarantee some predicted foreground
        return y, p
    labels = rng.integers(0, channels, (3, H, W))
    labels[:2] = 0  # background only = empty foreground
    y = np.eye(channels, dtype="float32")[labels]
    logits = rng.normal(size=(3, H, W, channels))
    logits[0, ..., 0] += 10.0  # argmax is background everywhere
    logits[1, :4, :4, 1] += 10.0  # some foreground predicted
    p = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
    return y, p.astype("float32")


# ----------------------------------------------------------------------------- references


def ref_ce(y: np.ndarray, p: np.ndarray) -> np.ndarray:
    p = np.clip(p.astype("float64"), EPS, 1 - EPS)
    if y.shape[-1] == 1:
        return (-(y * np.log(p) + (1 - y) * np.log(1 - p))).mean(axis=(1, 2, 3))
    return (-(y * np.log(p)).sum(-1)).mean(axis=(1, 2))


def ref_dice_loss(y: np.ndarray, p: np.ndarray, smooth: float = 1.0) -> np.ndarray:
    inter = (y * p).sum(axis=(1, 2))
    dice = (2 * inter + smooth) / (y.sum(axis=(1, 2)) + p.sum(axis=(1, 2)) + smooth)
    return 1 - dice.mean(-1)


def ref_iou_loss(y: np.ndarray, p: np.ndarray, smooth: float = 1.0) -> np.ndarray:
    inter = (y * p).sum(axis=(1, 2))
    union = y.sum(axis=(1, 2)) + p.sum(axis=(1, 2)) - inter
    return 1 - ((inter + smooth) / (union + smooth)).mean(-1)


def ref_hard(y: np.ndarray, p: np.ndarray, threshold: float = 0.5) -> tuple[np.ndarray, ...]:
    c = p.shape[-1]
    if c == 1:
        return y > 0.5, p > threshold
    return y[..., 1:] > 0.5, np.eye(c, dtype=bool)[p.argmax(-1)][..., 1:]


def ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    num, den = np.asarray(num, float), np.asarray(den, float)
    return np.where(den > 0, num / np.where(den > 0, den, 1), 1.0)


def ref_per_image(y: np.ndarray, p: np.ndarray) -> dict[str, np.ndarray]:
    t, q = ref_hard(y, p)
    inter = (t & q).sum(axis=(1, 2))
    ts, qs = t.sum(axis=(1, 2)), q.sum(axis=(1, 2))
    return {
        "dice": ratio(2 * inter, ts + qs).mean(-1),
        "iou": ratio(inter, ts + qs - inter).mean(-1),
    }


def ref_pooled(y: np.ndarray, p: np.ndarray) -> dict[str, float]:
    t, q = ref_hard(y, p)
    tp, fp = (t & q).sum(), (~t & q).sum()
    tn, fn = (~t & ~q).sum(), (t & ~q).sum()
    if y.shape[-1] == 1:
        acc = float((t == q).mean())
    else:
        acc = float((y.argmax(-1) == p.argmax(-1)).mean())
    return {
        "sensitivity": float(ratio(tp, tp + fn)),
        "specificity": float(ratio(tn, tn + fp)),
        # nothing predicted: 1 when there was nothing to find either, else 0
        "precision": float(ratio(tp, tp + fp)) if tp + fp else float(tp + fn == 0),
        "binary_accuracy": acc,
    }


def ref_metrics(y: np.ndarray, p: np.ndarray) -> dict[str, float]:
    per_image = {k: float(v.mean()) for k, v in ref_per_image(y, p).items()}
    return {**per_image, **ref_pooled(y, p)}


def metric_values(metrics: list[keras.metrics.Metric]) -> dict[str, float]:
    return {m.name: float(m.result()) for m in metrics}
