"""Reproduce the published Pap smear result, and the same setup on the leak-free split by cell.

Side by side, in one run, each trained by the real CLI (``seg-train
experiment=pap_smear_herlev_128``) and scored with its best checkpoint:

  published  ../shared/data/pap_smear_herlev_128 as split by its source repository: 13
             orientations of each cell spread over train/valid/test (the split leaks);
  leak-free  the same files split by cell (splits_grouped_by_cell.csv: train/test by cell, valid
             carved from train by cell, seed 0), written by ``python -m datasets_prep.split``.

Prints IoU and dice on valid (the published figure, IoU 0.9227, is on valid) and on test,
each the mean over images and pooled over all pixels, with epochs and wall time.
The published ``iou_coef`` is a soft Jaccard pooled over a batch of probabilities: our pooled
IoU (hard masks at 0.5, pooled over the whole split) is the closest comparison.

    python bench/reproduce.py                          # the real run: hours on a 2-core CPU
    python bench/reproduce.py --parallel --epochs 18 trainer.mixed_precision=true
                                                       # both at once, bfloat16 on this CPU
    python bench/reproduce.py --epochs 1 --limit 64    # minutes: checks the machinery only
    python bench/reproduce.py --setup published trainer.mixed_precision=true
                                                       # one setup; stop it (SIGTERM to its
                                                       # seg-train) at any epoch, then go on:
    python bench/reproduce.py --setup published --resume trainer.mixed_precision=true
    python bench/reproduce.py --report                 # the table of the setups finished

``--resume`` continues each setup's interrupted training run (``trainer.resume=true``: the same
MLflow run, from its last completed epoch), so a run longer than a working session is done in
several; the training time reported is the sum of the run's epoch times over all of them.

With ``--parallel`` the two setups train at the same time, each with half the machine: the
same wall time for both, and on 2 cores slightly more throughput than one after the other.
"""

from __future__ import annotations

import argparse
import csv
import shlex
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data" / "pap_smear_herlev_128"
BIN = Path(sys.executable).parent
PUBLISHED_IOU = 0.9227
EXPERIMENT = "pap_smear_herlev_128"


@dataclass
class Result:
    setup: str
    pairs: str  # train/valid/test
    epochs: int
    best_epoch: int
    train_seconds: float  # sum of the epochs' times, over every session of a resumed run
    valid: dict[str, float]
    test: dict[str, float]


def run(command: list[str], log: Path) -> None:
    """Run a command (output to ``log``); stop with its log on failure."""
    print("$", shlex.join(command), flush=True)
    log.parent.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    with log.open("w") as fh:
        code = subprocess.run(command, stdout=fh, stderr=subprocess.STDOUT, cwd=ROOT).returncode
    seconds = time.perf_counter() - start
    if code != 0:
        sys.exit(
            f"failed ({code}) after {seconds:.0f} s; last lines of {log}:\n"
            + "\n".join(log.read_text().splitlines()[-20:])
            + "\n(an interrupted training goes on with the same command plus --resume)"
        )


def scores(run_dir: Path) -> dict[str, float]:
    """dice/iou (mean over images) and their pooled values from evaluation.csv."""
    with (run_dir / "evaluation" / "evaluation.csv").open() as fh:
        rows = {r["metric"]: r for r in csv.DictReader(fh)}
    return {
        f"{m}{suffix}": float(rows[m][column])
        for m in ("dice", "iou")
        for suffix, column in (("", "mean"), ("_pooled", "pooled"))
    }


def history(run_dir: Path) -> tuple[int, int, float]:
    """(epochs run, best epoch by val_loss (1-based), seconds of all epochs) from the run's
    history CSV, which a resumed run carries on."""
    with (run_dir / "train_history.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    losses = [float(r["val_loss"]) for r in rows]
    seconds = sum(float(r["epoch_time"]) for r in rows)
    return len(losses), 1 + min(range(len(losses)), key=losses.__getitem__), seconds


def count_pairs(root: Path, limit: int | None) -> str:
    counts = []
    for split in ("train", "valid", "test"):
        n = sum(1 for _ in (root / split / "images").iterdir())
        counts.append(str(min(n, limit) if limit else n))
    return "/".join(counts)


def leak_free_copy(src: Path, dst: Path) -> None:
    """The split by cell, written once (datasets_prep.split is idempotent)."""
    from datasets_prep import split

    argv = [
        "--src",
        str(src),
        "--dst",
        str(dst),
        "--csv",
        str(src / "splits_grouped_by_cell.csv"),
        "--csv-group-column",
        "cell_id",
        "--csv-split-column",
        "grouped_split",
        "--valid-fraction",
        "0.15",
        "--seed",
        "0",
    ]
    print("$ python -m datasets_prep.split", shlex.join(argv), flush=True)
    split.main(argv)


def train_and_score(setup: str, root: Path, args: argparse.Namespace) -> Result:
    work = args.work / setup
    common = [
        f"dataset.root={root}",
        f"dataset.name={EXPERIMENT}_{setup}",
        f"mlflow.tracking_uri={args.tracking_uri}",
        f"mlflow.experiment_name=reproduce_{EXPERIMENT}",
    ]
    if args.limit:
        common.append(f"dataset.limit={args.limit}")
    train = [
        str(BIN / "seg-train"),
        f"experiment={EXPERIMENT}",
        *common,
        "split=valid",
        "stages=[train,evaluate]",
        "mlflow.log_model=false",
        "trainer.verbose=2",
        f"mlflow.run_name={setup}",
        f"hydra.run.dir={work / 'train'}",
    ]
    if args.epochs:
        train.append(f"trainer.epochs={args.epochs}")
    if args.resume:
        train.append("trainer.resume=true")
    test = [
        str(BIN / "seg-eval"),
        f"checkpoint={work / 'train' / 'checkpoints' / 'best.keras'}",
        "dataset=folder",
        "dataset.image_size=[128,128]",
        "loss=bce_iou",
        *common,
        "split=test",
        f"mlflow.run_name={setup}_test",
        f"hydra.run.dir={work / 'test'}",
    ]
    if not args.report:
        run(train + args.override, work / ("train_resumed.log" if args.resume else "train.log"))
        run(test, work / "test.log")
    elif not (work / "test" / "evaluation" / "evaluation.csv").is_file():
        sys.exit(
            f"{work}: no finished {setup} run to report (its test evaluation is missing); "
            f"run without --report first"
        )
    epochs, best, seconds = history(work / "train")
    return Result(
        setup,
        count_pairs(root, args.limit),
        epochs,
        best,
        seconds,
        scores(work / "train"),
        scores(work / "test"),
    )


def report(results: list[Result]) -> None:
    header = (
        f"{'setup':<10} {'pairs t/v/t':<14} {'epochs':>6} {'best':>4} {'train':>8}  "
        f"{'valid IoU':>9} {'pooled':>6} {'dice':>6}  {'test IoU':>8} {'pooled':>6} "
        f"{'dice':>6}"
    )
    print("\n" + header)
    for r in results:
        v, t = r.valid, r.test
        print(
            f"{r.setup:<10} {r.pairs:<14} {r.epochs:>6} {r.best_epoch:>4} "
            f"{r.train_seconds / 60:>6.1f} m  {v['iou']:>9.4f} {v['iou_pooled']:>6.4f} "
            f"{v['dice']:>6.4f}  {t['iou']:>8.4f} {t['iou_pooled']:>6.4f} {t['dice']:>6.4f}"
        )
    for r in results:
        print(
            f"{r.setup}: {r.train_seconds / r.epochs:.1f} s per epoch (training and "
            "validation; start-up not included)"
        )
    by = {r.setup: r for r in results}
    if "published" in by:
        pub = by["published"].valid["iou_pooled"]
        print(f"published split valid IoU (pooled) / published 0.9227: {pub / PUBLISHED_IOU:.3f}")
    if len(by) == 2:
        ratio = by["leak_free"].test["dice"] / by["published"].valid["dice"]
        print(f"leak-free test dice / published-split valid dice: {ratio:.3f}")
        print(
            f"headline: {by['published'].valid['iou_pooled']:.4f} valid IoU (pooled) on the "
            f"published split vs published {PUBLISHED_IOU}; leak-free test dice "
            f"{by['leak_free'].test['dice']:.4f} ({ratio:.3f} of the published split's)"
        )
    else:
        (r,) = results
        print(f"headline: {r.valid['iou_pooled']:.4f} valid IoU (pooled), {r.setup} split")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=SHARED, help="pap_smear_herlev_128 root")
    parser.add_argument(
        "--work",
        type=Path,
        default=ROOT / "outputs" / "reproduce",
        help="run directories, the leak-free copy and the MLflow store",
    )
    parser.add_argument(
        "--tracking-uri", default=None, help="MLflow store (default: sqlite:///<work>/mlflow.db)"
    )
    parser.add_argument(
        "--epochs",
        type=int,
        default=None,
        help="default: the experiment's (100, early stopping decides)",
    )
    parser.add_argument("--limit", type=int, default=None, help="first N pairs of each split")
    parser.add_argument("--setup", choices=["published", "leak_free", "both"], default="both")
    parser.add_argument(
        "--resume", action="store_true", help="continue each setup's interrupted training run"
    )
    parser.add_argument(
        "--parallel",
        action="store_true",
        help="train the setups at the same time (one process each)",
    )
    parser.add_argument(
        "--report",
        action="store_true",
        help="train nothing: print the table of the setups already finished in "
        "--work (e.g. each trained by its own --setup invocation)",
    )
    parser.add_argument("override", nargs="*", help="more seg-train overrides, key=value")
    args = parser.parse_args()
    if not (args.data / "splits_grouped_by_cell.csv").is_file():
        sys.exit(
            f"{args.data}: the pap_smear_herlev_128 dataset (with its "
            "splits_grouped_by_cell.csv) is needed; pass --data"
        )
    args.work = args.work.resolve()
    args.tracking_uri = args.tracking_uri or f"sqlite:///{args.work / 'mlflow.db'}"
    args.work.mkdir(parents=True, exist_ok=True)
    args.setups = ["published", "leak_free"] if args.setup == "both" else [args.setup]
    roots = {"published": args.data.resolve(), "leak_free": args.work / "by_cell"}
    if "leak_free" in args.setups and not args.report:
        leak_free_copy(roots["published"], roots["leak_free"])
    start = time.perf_counter()
    with ThreadPoolExecutor(len(args.setups) if args.parallel else 1) as pool:
        results = list(pool.map(lambda s: train_and_score(s, roots[s], args), args.setups))
    if not args.report:
        print(
            f"\nwall time of this invocation {(time.perf_counter() - start) / 60:.1f} min "
            f"(epochs={args.epochs or 'experiment default'}, limit={args.limit or 'none'}, "
            f"{'in parallel' if args.parallel else 'one after the other'}, "
            f"overrides: {shlex.join(args.override) or 'none'})"
        )
    report(results)


if __name__ == "__main__":
    main()
