"""A sweep's comparison, drawn for its parent run: what a researcher looks at first, readable in
the MLflow UI's artifact view without opening the children one by one.

- ``parallel_coordinates.png``: one axis per swept key and one for the objective, a line per
  job coloured by its objective (the best one bold);
- ``objective_vs_params.png``: the objective against each swept key;
- ``validation_curves.png``: the children's per-epoch validation curves (loss and the
  optimised metric) on shared axes;
- ``ranked.html``: the jobs ranked by their objective, with their swept values.

The jobs come as plain records (:class:`Job`), so this module needs no tracking store.
"""

from __future__ import annotations

import html
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # no display on servers; must precede pyplot
import matplotlib.pyplot as plt
import numpy as np

from seg.files import write_text_whole, written_whole

MAX_CURVES = 24  # overlaid validation curves: the best jobs beyond this many would be a blur


@dataclass
class Job:
    number: str
    name: str
    status: str
    values: dict[str, str]  # swept key -> its value in this job (as overridden)
    objective: float | None
    curves: dict[str, list[float]] = field(default_factory=dict)  # metric -> value per epoch


def _numeric(values: Sequence[str]) -> list[float] | None:
    try:
        return [float(v) for v in values]
    except ValueError:
        return None


def _axis(values: Sequence[str]) -> tuple[np.ndarray, list[float], list[str], bool]:
    """Positions in [0, 1] of the values of one key, with its ticks (positions, labels) and
    whether it is on a log scale (positive numbers spanning more than a decade)."""
    numbers = _numeric(values)
    if numbers is None or len(set(numbers)) < 2:
        labels = sorted(set(values), key=lambda v: (_numeric([v]) is None, v))
        spot = {v: i / max(len(labels) - 1, 1) for i, v in enumerate(labels)}
        return np.array([spot[v] for v in values]), list(spot.values()), labels, False
    x = np.array(numbers)
    log = bool(x.min() > 0 and x.max() / x.min() > 10)
    scaled = np.log10(x) if log else x
    low, high = scaled.min(), scaled.max()
    unique = sorted(set(numbers))
    ticks = unique if len(unique) <= 8 else list(np.linspace(x.min(), x.max(), 5))
    spots = [((math.log10(t) if log else t) - low) / (high - low) for t in ticks]
    return (scaled - low) / (high - low), spots, [f"{t:.3g}" for t in ticks], log


def _scored(jobs: Sequence[Job]) -> list[Job]:
    return [j for j in jobs if j.objective is not None and math.isfinite(j.objective)]


def _best(jobs: Sequence[Job], maximize: bool) -> Job | None:
    scored = _scored(jobs)
    if not scored:
        return None
    return (max if maximize else min)(scored, key=lambda j: j.objective)


def parallel_coordinates(
    jobs: Sequence[Job], keys: Sequence[str], objective: str, maximize: bool, out: Path
) -> Path | None:
    scored = _scored(jobs)
    if not scored or not keys:
        return None
    columns = [_axis([j.values.get(k, "") for j in scored]) for k in keys]
    columns.append(_axis([f"{j.objective:.6g}" for j in scored]))
    names = [*keys, objective]
    values = np.array([j.objective for j in scored])
    colours = plt.cm.viridis(
        (values - values.min()) / (np.ptp(values) or 1)
        if maximize
        else (values.max() - values) / (np.ptp(values) or 1)
    )
    best = _best(scored, maximize)
    fig, ax = plt.subplots(figsize=(max(6.0, 2.2 * len(names)), 4.8), dpi=110)
    xs = np.arange(len(names))
    for i, job in enumerate(scored):
        ys = [column[0][i] for column in columns]
        bold = job is best
        ax.plot(
            xs,
            ys,
            color=colours[i],
            lw=3 if bold else 1.2,
            alpha=1 if bold else 0.7,
            zorder=3 if bold else 2,
            label=f"best: #{job.number}" if bold else None,
        )
    for x, (_, spots, labels, _log) in zip(xs, columns, strict=True):
        ax.axvline(x, color="0.6", lw=0.8, zorder=1)
        for spot, label in zip(spots, labels, strict=True):
            ax.annotate(
                label, (x, spot), xytext=(4, 0), textcoords="offset points", fontsize=8, va="center"
            )
    ax.set_xticks(xs, [f"{n}\n(log)" if c[3] else n for n, c in zip(names, columns, strict=True)])
    ax.set_yticks([])
    ax.set_xlim(-0.2, len(names) - 0.6)
    ax.set_title(
        f"{len(scored)} jobs: swept keys against {objective} "
        f"({'higher' if maximize else 'lower'} is better)"
    )
    ax.legend(loc="lower left", fontsize=8)
    return _save(fig, out / "parallel_coordinates.png")


def objective_vs_params(
    jobs: Sequence[Job], keys: Sequence[str], objective: str, maximize: bool, out: Path
) -> Path | None:
    scored = _scored(jobs)
    if not scored or not keys:
        return None
    fig, axes = plt.subplots(1, len(keys), figsize=(4.2 * len(keys), 3.6), dpi=110, squeeze=False)
    best = _best(scored, maximize)
    y = [j.objective for j in scored]
    for ax, key in zip(axes[0], keys, strict=True):
        raw = [j.values.get(key, "") for j in scored]
        numbers = _numeric(raw)
        if numbers is not None and len(set(numbers)) > 1:
            ax.scatter(numbers, y, s=28)
            if min(numbers) > 0 and max(numbers) / min(numbers) > 10:
                ax.set_xscale("log")
            bx = float(best.values.get(key, "nan")) if best else None
        else:
            labels = sorted(set(raw))
            ax.scatter([labels.index(v) for v in raw], y, s=28)
            ax.set_xticks(range(len(labels)), labels, rotation=20, fontsize=8)
            bx = labels.index(best.values.get(key, "")) if best else None
        if best is not None:
            ax.scatter(
                [bx],
                [best.objective],
                s=90,
                facecolors="none",
                edgecolors="red",
                label=f"best #{best.number}",
            )
            ax.legend(fontsize=8)
        ax.set_xlabel(key)
        ax.set_ylabel(objective)
        ax.grid(alpha=0.3)
    return _save(fig, out / "objective_vs_params.png")


def validation_curves(
    jobs: Sequence[Job], metrics: Sequence[str], maximize: bool, out: Path
) -> Path | None:
    with_curves = [j for j in jobs if any(j.curves.get(m) for m in metrics)]
    if not with_curves:
        return None
    ranked = sorted(with_curves, key=lambda j: _rank_key(j, maximize))[:MAX_CURVES]
    fig, axes = plt.subplots(1, len(metrics), figsize=(6 * len(metrics), 4), dpi=110, squeeze=False)
    colours = plt.cm.tab20(np.linspace(0, 1, max(len(ranked), 2)))
    for ax, metric in zip(axes[0], metrics, strict=True):
        for colour, job in zip(colours, ranked, strict=False):
            values = job.curves.get(metric) or []
            ax.plot(
                range(1, len(values) + 1),
                values,
                marker=".",
                color=colour,
                label=_short(job),
                lw=2.2 if job is ranked[0] else 1.1,
            )
        ax.set_title(metric)
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
    axes[0][-1].legend(fontsize=7, loc="center left", bbox_to_anchor=(1.02, 0.5))
    return _save(fig, out / "validation_curves.png")


def ranked_table(
    jobs: Sequence[Job], keys: Sequence[str], objective: str, maximize: bool, out: Path
) -> Path | None:
    if not jobs:
        return None
    ranked = sorted(jobs, key=lambda j: _rank_key(j, maximize))
    head = ["rank", "job", "run", "status", objective, *keys]
    rows = []
    for rank, job in enumerate(ranked, start=1):
        score = "" if job.objective is None else f"{job.objective:.4f}"
        cells = [
            str(rank),
            job.number,
            job.name,
            job.status,
            score,
            *(job.values.get(k, "") for k in keys),
        ]
        rows.append("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in cells) + "</tr>")
    page = (
        "<!doctype html><meta charset='utf-8'><style>body{font:14px sans-serif}"
        "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:3px 8px}"
        "tr:nth-child(2){background:#e8f4e8}</style>"
        f"<p>{len(jobs)} jobs ranked by {html.escape(objective)} "
        f"({'higher' if maximize else 'lower'} is better)</p><table><tr>"
        + "".join(f"<th>{html.escape(h)}</th>" for h in head)
        + "</tr>"
        + "".join(rows)
        + "</table>"
    )
    return write_text_whole(out / "ranked.html", page)


def _rank_key(job: Job, maximize: bool) -> tuple[int, float]:
    if job.objective is None or not math.isfinite(job.objective):
        return (1, 0.0)
    return (0, -job.objective if maximize else job.objective)


def _short(job: Job) -> str:
    text = f"#{job.number} " + " ".join(
        f"{k.rpartition('.')[2]}={v}" for k, v in job.values.items()
    )
    return text if len(text) <= 48 else text[:47] + "…"


def _save(fig: plt.Figure, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    with written_whole(path) as tmp:
        fig.savefig(tmp, bbox_inches="tight")
    plt.close(fig)
    return path


def draw_all(
    jobs: Sequence[Job],
    keys: Sequence[str],
    objective: str,
    maximize: bool,
    curves: Sequence[str],
    out: Path,
) -> list[Path]:
    """Every comparison that the jobs allow (none for a sweep without a scored job)."""
    out.mkdir(parents=True, exist_ok=True)
    drawn = [
        parallel_coordinates(jobs, keys, objective, maximize, out),
        objective_vs_params(jobs, keys, objective, maximize, out),
        validation_curves(jobs, curves, maximize, out),
        ranked_table(jobs, keys, objective, maximize, out),
    ]
    return [p for p in drawn if p is not None]
