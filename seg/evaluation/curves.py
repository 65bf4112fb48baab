"""Training curves: the history CSV written by Keras' CSVLogger, plotted one PNG per quantity."""

from __future__ import annotations

import csv
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # no display on servers; must precede pyplot
import matplotlib.pyplot as plt

from seg.files import written_whole


def read_history(path: Path) -> dict[str, list[float]]:
    """Columns of a CSVLogger file ({} when the file is missing or empty)."""
    if not path.is_file():
        return {}
    with path.open(newline="") as f:
        rows = list(csv.DictReader(f))
    return {k: [float(r[k]) for r in rows] for k in (rows[0] if rows else {})}


def plot_curves(history: dict[str, list[float]], out_dir: Path) -> list[Path]:
    """One PNG per quantity, training and validation on the same axes."""
    out_dir.mkdir(parents=True, exist_ok=True)
    epochs = history.get("epoch", [])
    written = []
    for key in sorted(history):
        if key == "epoch" or key.startswith("val_"):
            continue
        fig, ax = plt.subplots(figsize=(5, 3.5), dpi=100)
        ax.plot(epochs, history[key], marker=".", label=f"train {key}")
        if f"val_{key}" in history:
            ax.plot(epochs, history[f"val_{key}"], marker=".", label=f"valid {key}")
        ax.set_xlabel("epoch")
        ax.set_title(key)
        ax.grid(alpha=0.3)
        ax.legend()
        fig.tight_layout()
        path = out_dir / f"{key}.png"
        with written_whole(path) as tmp:
            fig.savefig(tmp)
        plt.close(fig)
        written.append(path)
    return written
