"""Evaluation figures (PNG, matplotlib): the per-image score distribution, the threshold sweep
with the precision-recall curve, and a gallery of the worst and best cases."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # no display on servers; must precede pyplot
import matplotlib.pyplot as plt
import numpy as np

from seg.evaluation.scoring import Case
from seg.files import written_whole
from seg.inference.visualize import comparison, error_overlay

__all__ = ["plot_distribution", "plot_gallery", "plot_threshold_sweep"]


def _save(fig, path: Path, top: float = 1.0) -> Path:
    """Write and close ``fig``; ``top`` < 1 leaves room for a suptitle."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout(rect=(0, 0, 1, top))
    with written_whole(path) as tmp:
        fig.savefig(tmp)
    plt.close(fig)
    return path


def plot_distribution(values: Sequence[float], path: Path, metric: str = "dice") -> Path:
    """Histogram of a per-image score in [0, 1] with its mean and median."""
    values = np.asarray(values, np.float64)
    fig, ax = plt.subplots(figsize=(6, 3.5), dpi=100)
    ax.hist(values, bins=np.linspace(0, 1, 21), color="#4c72b0", edgecolor="white")
    ax.axvline(values.mean(), color="#c44e52", label=f"mean {values.mean():.3f}")
    ax.axvline(
        np.median(values), color="#55a868", linestyle="--", label=f"median {np.median(values):.3f}"
    )
    ax.set_xlim(0, 1)
    ax.set_xlabel(f"{metric} per image")
    ax.set_ylabel("images")
    ax.set_title(f"{metric} over {len(values)} images")
    ax.legend()
    return _save(fig, path)


def plot_threshold_sweep(
    curves: dict[str, np.ndarray], best: tuple[float, float], configured: float, path: Path
) -> Path:
    """Dice (mean per image and pooled) against the threshold, and the pooled PR curve."""
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4), dpi=100)
    th = curves["threshold"]
    left.plot(th, curves["mean_dice"], label="dice, mean per image")
    left.plot(th, curves["pooled_dice"], label="dice, pooled")
    left.axvline(best[0], color="#c44e52", label=f"best {best[0]:.2f} (dice {best[1]:.3f})")
    left.axvline(configured, color="grey", linestyle="--", label=f"configured {configured:.2f}")
    left.set_xlabel("threshold")
    left.set_ylabel("dice")
    left.set_xlim(0, 1)
    left.grid(alpha=0.3)
    left.legend(fontsize=8)
    right.plot(curves["recall"], curves["precision"], marker=".")
    i = int(np.argmin(np.abs(th - best[0])))
    right.plot(
        curves["recall"][i],
        curves["precision"][i],
        "o",
        color="#c44e52",
        label=f"threshold {best[0]:.2f}",
    )
    right.set_xlabel("recall (pooled)")
    right.set_ylabel("precision (pooled)")
    right.set_xlim(0, 1.02)
    right.set_ylim(0, 1.02)
    right.grid(alpha=0.3)
    right.legend(fontsize=8)
    return _save(fig, path)


def plot_gallery(
    worst: Sequence[Case],
    best: Sequence[Case],
    path: Path,
    metric: str = "dice",
    palette: np.ndarray | None = None,
) -> Path:
    """One row per case: image | truth | prediction | errors, worst cases first."""
    rows = [("worst", c) for c in worst] + [("best", c) for c in best]
    titles = ("image", "truth", "prediction", "errors")
    height = 2.6 * len(rows)
    fig, axes = plt.subplots(len(rows), 4, figsize=(10, height), dpi=100, squeeze=False)
    for (kind, case), row in zip(rows, axes, strict=True):
        panels = comparison(case.image, case.truth, case.pred, palette=palette)
        width = case.truth.shape[1]
        tiles = [panels[:, i * (width + 2) : i * (width + 2) + width] for i in range(3)]
        tiles.append(error_overlay(case.image, case.truth, case.pred))
        for ax, tile, title in zip(row, tiles, titles, strict=True):
            ax.imshow(tile)
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_title(title, fontsize=8)
        row[0].set_ylabel(f"{kind}: {case.name}\n{metric} {case.score:.3f}", fontsize=8)
    fig.suptitle(
        "errors: correct green, false positive red, false negative blue, wrong class yellow",
        fontsize=8,
    )
    return _save(fig, path, top=1 - 0.3 / height)
