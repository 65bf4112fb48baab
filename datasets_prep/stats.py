"""What a dataset in the project's layout holds: pairs per split, image sizes, how much of
each mask is foreground.

    python -m datasets_prep.stats --root data/pap_smear_herlev_128_by_cell [--out DIR]

prints a table and writes ``stats.json`` and ``foreground_fraction.png`` (a histogram of the
foreground fraction per mask, one curve per split) into ``--out`` (default: the root).

Foreground: an index mask (every value <= 63, e.g. 0/1/2) counts any non-zero class; other
masks count values above half their full scale (so JPEG noise around 0 and 255 is ignored).
"""

from __future__ import annotations

import argparse
import json
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # no display on servers; must precede pyplot
import matplotlib.pyplot as plt
import numpy as np
from tqdm import tqdm

from datasets_prep.cli import run
from datasets_prep.files import read_grey, read_image
from seg.data.pairs import Pair, split_pairs
from seg.data.preprocess import mask_scale
from seg.errors import DatasetError

_INDEX_MAX = 63  # a mask with no value above this is read as class indices


def foreground_fraction(mask: np.ndarray) -> float:
    """Fraction of foreground pixels (see the module docstring)."""
    if mask.max(initial=0) <= _INDEX_MAX:
        return float(np.count_nonzero(mask)) / mask.size
    return float(np.count_nonzero(mask > mask_scale(mask) / 2)) / mask.size


@dataclass
class SplitStats:
    pairs: int = 0
    sizes: Counter = field(default_factory=Counter)  # "HxW" -> images
    foreground: list[float] = field(default_factory=list)  # one per mask

    def to_dict(self) -> dict:
        fg = np.asarray(self.foreground)
        return {
            "pairs": self.pairs,
            "image_sizes": dict(self.sizes.most_common()),
            "foreground_mean": float(fg.mean()) if fg.size else None,
            "foreground_min": float(fg.min()) if fg.size else None,
            "foreground_max": float(fg.max()) if fg.size else None,
            "empty_masks": int(np.count_nonzero(fg == 0)),
        }


def _measure(pair: Pair) -> tuple[str, float]:
    h, w = read_image(pair.image).shape[:2]
    return f"{h}x{w}", foreground_fraction(read_grey(pair.mask))


def split_folders(root: Path) -> list[str]:
    """train, valid, test (those present) then other folders holding images/ (test_4096)."""
    present = sorted(p.name for p in root.iterdir() if (p / "images").is_dir())
    order = {"train": 0, "valid": 1, "test": 2}
    return sorted(present, key=lambda n: (order.get(n, 3), n))


def dataset_stats(root: Path, workers: int = 4) -> dict[str, SplitStats]:
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"--root {root}: folder not found")
    splits = split_folders(root)
    if not splits:
        raise DatasetError(f"--root {root}: no <split>/images folders")
    stats = {}
    for split in splits:
        pairs = split_pairs(root, split, "images", "masks")
        s = stats[split] = SplitStats(pairs=len(pairs))
        with ThreadPoolExecutor(max_workers=workers) as pool:  # OpenCV releases the GIL
            for size, fraction in tqdm(
                pool.map(_measure, pairs), total=len(pairs), desc=split, unit="pair"
            ):
                s.sizes[size] += 1
                s.foreground.append(fraction)
    return stats


def plot_foreground(stats: dict[str, SplitStats], path: Path) -> Path:
    fig, ax = plt.subplots(figsize=(6, 4), dpi=100)
    bins = np.linspace(0, 1, 41)
    for split, s in stats.items():
        if s.foreground:
            ax.hist(
                s.foreground,
                bins=bins,
                histtype="step",
                density=True,
                linewidth=1.5,
                label=f"{split} ({s.pairs})",
            )
    ax.set_xlabel("foreground fraction of a mask")
    ax.set_ylabel("density")
    ax.set_title("Foreground fraction per split")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def table(stats: dict[str, SplitStats]) -> str:
    lines = [f"{'split':<10} {'pairs':>6}  {'foreground mean [min, max]':<28} image sizes"]
    for split, s in stats.items():
        d = s.to_dict()
        fg = (
            "-"
            if d["foreground_mean"] is None
            else f"{d['foreground_mean']:.3f} "
            f"[{d['foreground_min']:.3f}, {d['foreground_max']:.3f}]"
        )
        sizes = ", ".join(f"{k}: {v}" for k, v in list(d["image_sizes"].items())[:4])
        if len(d["image_sizes"]) > 4:
            sizes += f" ... ({len(d['image_sizes'])} sizes)"
        lines.append(f"{split:<10} {s.pairs:>6}  {fg:<28} {sizes}")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> None:
    p = argparse.ArgumentParser(
        prog="python -m datasets_prep.stats", description=__doc__.split("\n\n")[0]
    )
    p.add_argument("--root", type=Path, required=True, help="<root>/<split>/{images,masks}")
    p.add_argument("--out", type=Path, default=None, help="where to write (default: --root)")
    args = p.parse_args(argv)
    stats = dataset_stats(args.root)
    out = args.out or args.root
    out.mkdir(parents=True, exist_ok=True)
    (out / "stats.json").write_text(
        json.dumps({k: v.to_dict() for k, v in stats.items()}, indent=1) + "\n", encoding="utf-8"
    )
    plot_foreground(stats, out / "foreground_fraction.png")
    print(table(stats))
    print(f"wrote {out / 'stats.json'} and {out / 'foreground_fraction.png'}")


if __name__ == "__main__":
    run(main)
