"""Does ``trainer.mixed_precision=auto`` train the same model as float32? Validation loss per
epoch of the ``pap_smear_herlev_128`` experiment under the automatic policy (bfloat16 on a CPU
with AVX512-BF16) beside float32, and beside a second float32 run of another seed: the
difference between the policies is compared with the run-to-run noise of float32 itself.

Three ``seg-train`` runs, one after the other, on the first ``--images`` pairs of each split
of ../shared/data/pap_smear_herlev_128 (generated images when absent), ``--epochs`` epochs,
early stopping off; their curves are printed side by side, plotted to ``--plot``, and the
mean absolute differences of val_loss compared.

    python bench/precision_curves.py [--images 512] [--epochs 10] [--plot curves.png]

Last line: ``headline: <r> |auto - float32| / |float32 - float32 (other seed)| of val_loss``.
"""

from __future__ import annotations

import argparse
import csv
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from train_speed import SHARED, load_average  # beside this script

RUNS = {  # name -> overrides
    "float32": ["trainer.mixed_precision=false", "seed=1"],
    "auto": ["trainer.mixed_precision=auto", "seed=1"],
    "float32, seed 2": ["trainer.mixed_precision=false", "seed=2"],
}


def train(name: str, overrides: list[str], root: Path, args, work: Path) -> dict[str, list]:
    cwd = work / name.replace(" ", "_").replace(",", "")
    cwd.mkdir(parents=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    env["SEG_CACHE_DIR"] = str(work / "cache")
    command = [
        str(Path(sys.executable).parent / "seg-train"),
        "experiment=pap_smear_herlev_128",
        f"dataset.root={root}",
        f"dataset.limit={args.images}",
        f"trainer.epochs={args.epochs}",
        "callbacks.early_stopping=null",
        "stages=[train]",
        "mlflow.log_model=false",
        *overrides,
    ]
    start = time.perf_counter()
    subprocess.run(command, cwd=cwd, env=env, check=True, capture_output=True)
    print(f"{name}: {time.perf_counter() - start:.0f} s", flush=True)
    (history,) = cwd.glob("outputs/train/runs/*/train_history.csv")
    with history.open() as f:
        rows = list(csv.DictReader(f))
    return {key: [float(r[key]) for r in rows] for key in rows[0]}


def mean_abs(a: list[float], b: list[float]) -> float:
    return sum(abs(x - y) for x, y in zip(a, b, strict=True)) / len(a)


def plot(curves: dict[str, dict[str, list]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for name, history in curves.items():
        axes[0].plot(history["epoch"], history["val_loss"], marker="o", label=name)
        axes[1].plot(history["epoch"], history["val_dice"], marker="o", label=name)
    for ax, title in zip(axes, ("val_loss", "val_dice"), strict=True):
        ax.set_title(title)
        ax.set_xlabel("epoch")
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=512)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--plot", type=Path, default=Path("precision_curves.png"))
    args = parser.parse_args()
    print(f"load average at start: {load_average()}")
    work = Path(tempfile.mkdtemp(prefix="seg-precision-curves-"))
    if SHARED.is_dir():
        root = SHARED
    else:
        from seg.data.demo import DemoSpec, ensure_demo_dataset

        root = ensure_demo_dataset(
            work,
            DemoSpec(image_size=128, num_train=args.images, num_valid=args.images // 4, num_test=8),
        )
    curves = {name: train(name, overrides, root, args, work) for name, overrides in RUNS.items()}
    names = list(curves)
    print(
        f"\n{'epoch':>5s} "
        + " ".join(f"{n + ' val_loss':>24s}" for n in names)
        + f" {'auto epoch s':>13s} {'float32 epoch s':>16s}"
    )
    for i, epoch in enumerate(curves[names[0]]["epoch"]):
        print(
            f"{int(epoch):5d} "
            + " ".join(f"{curves[n]['val_loss'][i]:24.4f}" for n in names)
            + f" {curves['auto']['epoch_time'][i]:13.1f}"
            f" {curves['float32']['epoch_time'][i]:16.1f}"
        )
    policy = mean_abs(curves["auto"]["val_loss"], curves["float32"]["val_loss"])
    noise = mean_abs(curves["float32, seed 2"]["val_loss"], curves["float32"]["val_loss"])
    plot(curves, args.plot)
    print(
        f"\nmean |auto - float32| of val_loss: {policy:.4f}; mean |float32 seed 2 - float32|: "
        f"{noise:.4f}; curves: {args.plot.resolve()}"
    )
    print(f"load average at end: {load_average()}")
    print(
        f"headline: {policy / noise:.2f} |auto - float32| / |float32 - float32 (other seed)| "
        "of val_loss"
    )


if __name__ == "__main__":
    main()
