"""What a new dataset gets on the first try: seg's default recipe (and seg-plan's plan) against
the plain Keras UNet script a user writes instead, at equal wall-clock training budgets, on
two datasets nobody tuned the defaults for.

Datasets (from ../shared/data; generated demo data when absent):
  - pap_by_cell: the Herlev Pap smear nuclei at 128 px, split by cell (no cell in two splits);
  - lbc_nuclei: liquid-based cytology nuclei at 512 px (1.3 % foreground), split by base image.
Each candidate trains for ``--budget`` minutes (``trainer.time_budget``; the plain script stops
at the same budget) and is scored on the test split: dice per image at each mask's size, mean
and std over the images (seg's own evaluation for both, so the numbers are the same kind).

    python bench/recipes.py [--budget 10] [--candidates [PREFIXES]] [--datasets a,b]
    python bench/recipes.py --time-to-iou 45   # the published Pap split: minutes to IoU 0.9227

``--candidates`` adds the recipes the default was chosen from (or those whose labels start
with the comma-separated PREFIXES). Results are kept per composed config in ``--work``. Last line:
``headline: <d> dice points of seg's default over the plain Keras script at equal wall time
(worst of the datasets)``.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from train_speed import load_average  # beside this script

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
DATASETS = {  # name -> (image side, how to make it from ../shared/data)
    "pap_by_cell": (
        128,
        [
            "--src",
            str(SHARED / "pap_smear_herlev_128"),
            "--csv",
            str(SHARED / "pap_smear_herlev_128" / "splits_grouped_by_cell.csv"),
            "--csv-group-column",
            "cell_id",
            "--csv-split-column",
            "grouped_split",
            "--valid-fraction",
            "0.15",
        ],
    ),
    "lbc_nuclei": (
        512,
        [
            "--src",
            str(SHARED / "cervical_nucleus_lbc_512"),
            "--group-regex",
            r"(?:flipped_|mirrored_|rotated_\d+_)?(.+)",
            "--fractions",
            "0.6",
            "0.2",
            "0.2",
        ],
    ),
}
# The recipes the default was chosen from (overrides of seg-train; the first is the default).
# One that composes to the current default is not trained twice.
CANDIDATES = {
    "adam 1e-3, constant, reduce on plateau": [
        "trainer.schedule.name=constant",
        "trainer.optimizer=adam",
        "trainer.learning_rate=1e-3",
        "callbacks.reduce_lr.patience=4",
    ],
    "adamw 2e-3, cosine, warm-up 5 %": [
        "trainer.optimizer=adamw",
        "trainer.learning_rate=2e-3",
        "trainer.weight_decay=1e-4",
        "trainer.schedule.name=cosine",
        "trainer.schedule.warmup=0.05",
        "callbacks.reduce_lr=null",
    ],
    "adam 1e-3, poly 0.9": [
        "trainer.optimizer=adam",
        "trainer.learning_rate=1e-3",
        "trainer.schedule.name=poly",
    ],
    "adamw cosine, strong augmentation": [
        "trainer.optimizer=adamw",
        "trainer.learning_rate=2e-3",
        "trainer.weight_decay=1e-4",
        "trainer.schedule.name=cosine",
        "trainer.schedule.warmup=0.05",
        "callbacks.reduce_lr=null",
        "augmentation=strong",
    ],
    "sgd nesterov 1e-2, poly (nnU-Net)": [
        "trainer.optimizer=sgd",
        "trainer.learning_rate=1e-2",
        "trainer.momentum=0.99",
        "trainer.nesterov=true",
        "trainer.schedule.name=poly",
        "callbacks.reduce_lr=null",
    ],
}
PUBLISHED_IOU = 0.9227


def env(work: Path) -> dict[str, str]:
    out = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    out["SEG_CACHE_DIR"] = str(work / "cache")
    return out


def prepare(name: str, work: Path) -> Path:
    """The dataset in the project's layout under ``work`` (converted once)."""
    side, args = DATASETS[name]
    dst = work / "data" / name
    if not SHARED.is_dir():
        from seg.data.demo import DemoSpec, ensure_demo_dataset

        return ensure_demo_dataset(
            dst, DemoSpec(image_size=side, num_train=96, num_valid=24, num_test=24)
        )
    if not (dst / "test").is_dir():
        subprocess.run(
            [sys.executable, "-m", "datasets_prep.split", *args, "--dst", str(dst)],
            cwd=ROOT,
            check=True,
            capture_output=True,
        )
    return dst


def seg_train(
    label: str, overrides: list[str], work: Path, config_dir: Path | None = None
) -> dict[str, float]:
    """One seg-train (train and evaluate on test) in its own folder; its test scores."""
    from mlflow.tracking import MlflowClient

    cwd = Path(tempfile.mkdtemp(dir=work, prefix="run-"))
    command = [
        str(Path(sys.executable).parent / "seg-train"),
        *(["--config-dir", str(config_dir)] if config_dir else []),
        "stages=[train,evaluate]",
        "mlflow.log_model=false",
        *overrides,
    ]
    start = time.perf_counter()
    done = subprocess.run(command, cwd=cwd, env=env(work), capture_output=True, text=True)
    if done.returncode:
        raise RuntimeError(f"{label}: seg-train failed:\n{done.stderr[-3000:]}")
    client = MlflowClient(f"sqlite:///{cwd / 'mlflow.db'}")
    (run,) = client.search_runs([e.experiment_id for e in client.search_experiments()])
    per_image = next(Path(run.data.tags["seg.output_dir"]).glob("evaluation/per_image.csv"))
    with per_image.open() as f:
        dice = [float(row["dice"]) for row in csv.DictReader(f)]
    epochs = len(client.get_metric_history(run.info.run_id, "epoch_time"))
    return {
        "dice": statistics.mean(dice),
        "std": statistics.pstdev(dice),
        "epochs": epochs,
        "fit_min": run.data.metrics.get("time_fit", 0) / 60,
        "wall_min": (time.perf_counter() - start) / 60,
        "run_id": run.info.run_id,
    }


def plain_keras(root: Path, side: int, budget: float, work: Path) -> dict[str, float]:
    """The plain script in a subprocess (a fresh process, as a user runs it)."""
    out = work / f"plain-{root.name}.json"
    command = [
        sys.executable,
        str(Path(__file__).with_name("plain_keras_unet.py")),
        str(root),
        str(side),
        str(budget),
        str(out),
    ]
    start = time.perf_counter()
    done = subprocess.run(command, env=env(work), capture_output=True, text=True)
    if done.returncode:
        raise RuntimeError(f"plain Keras script failed:\n{done.stderr[-3000:]}")
    result = json.loads(out.read_text())
    result["wall_min"] = (time.perf_counter() - start) / 60
    return result


def cached(work: Path, name: str, key: str, measure) -> dict:
    """``measure()``'s result, kept in ``work`` so a stopped benchmark continues where it was
    (each recipe costs its whole budget; rerunning the same command skips the finished ones).
    ``key`` names what was measured: for seg, the recipe's composed config (config_key)."""
    slug = "".join(c if c.isalnum() else "_" for c in key)
    path = work / "results" / name / f"{slug}.json"
    if path.is_file():
        return json.loads(path.read_text())
    result = measure()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=1))
    return result


def config_key(overrides: list[str], config_dir: Path | None = None) -> str:
    """A short hash of seg-train's config composed with ``overrides`` (and the configs in
    ``config_dir``, as ``--config-dir`` adds them): a cached result stands for exactly this
    config (a changed default is trained again), and two recipes composing to the same config
    are trained once."""
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    from seg.cli import CONF_DIR  # importing the CLI registers the config schemas

    search = [f"hydra.searchpath=[file://{config_dir}]"] if config_dir else []
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        composed = compose("train", overrides=[*search, *overrides])
        composed = OmegaConf.to_container(composed)
    composed.pop("plan", None)  # seg-plan's record of what it read: not part of the training
    text = json.dumps(composed, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:10]


def chosen(candidates: str | None) -> dict[str, list[str]]:
    """The candidates ``--candidates`` names: all, or those whose labels start with one of
    its comma-separated prefixes."""
    if candidates is None:
        return {}
    prefixes = [p.strip() for p in candidates.split(",") if p.strip()]
    return {
        label: overrides
        for label, overrides in CANDIDATES.items()
        if candidates == "all" or any(label.startswith(p) for p in prefixes)
    }


def compare(name: str, budget: float, candidates: str | None, work: Path) -> dict[str, dict]:
    root = prepare(name, work)
    side = DATASETS[name][0]
    base = [
        "dataset=folder",
        f"dataset.root={root}",
        f"dataset.name={name}",
        f"dataset.image_size=[{side},{side}]",
        f"trainer.time_budget={budget}",
        "trainer.epochs=1000",
    ]
    rows: dict[str, dict] = {}
    rows["plain Keras UNet script"] = cached(
        work, name, f"plain {budget:g} min", lambda: plain_keras(root, side, budget, work)
    )
    default_key = config_key(base)
    rows["seg default"] = cached(
        work, name, f"default {default_key}", lambda: seg_train("default", base, work)
    )
    plan_dir = work / f"plan-{name}"
    subprocess.run(
        [
            str(Path(sys.executable).parent / "seg-plan"),
            f"dataset.root={root}",
            f"dataset.name={name}",
            f"budget={budget}",
            f"conf_dir={plan_dir}",
            "overwrite=true",
        ],
        cwd=work,
        env=env(work),
        check=True,
        capture_output=True,
    )
    plan_key = config_key([f"experiment={name}"], plan_dir)
    if plan_key == default_key:  # the plan chose seg's defaults for everything
        rows["seg-plan's plan = seg default"] = rows["seg default"]
    else:
        rows["seg-plan's plan"] = cached(
            work,
            name,
            f"plan {plan_key}",
            lambda: seg_train("plan", [f"experiment={name}"], work, plan_dir),
        )
    for label, overrides in chosen(candidates).items():
        key = config_key([*base, *overrides])
        if key == default_key:  # the same config as the default's: trained once
            rows[f"{label} = seg default"] = rows["seg default"]
            continue
        rows[label] = cached(
            work,
            name,
            f"{label} {key}",
            lambda o=overrides, t=label: seg_train(t, [*base, *o], work),
        )
    return rows


def report(name: str, rows: dict[str, dict]) -> None:
    print(f"\n{name}: test dice per image, mean +- std")
    print(
        f"{'recipe':42s} {'dice':>7s} {'std':>6s} {'epochs':>6s} {'fit min':>7s} {'wall min':>8s}"
    )
    for label, r in rows.items():
        print(
            f"{label:42s} {r['dice']:7.4f} {r['std']:6.3f} {r['epochs']:6d} "
            f"{r.get('fit_min', 0):7.1f} {r['wall_min']:8.1f}"
        )


def time_to_iou(budget: float, work: Path) -> None:
    """The published Pap split (its experiment's model and loss) under seg's default recipe
    for ``budget`` minutes: the epoch (and minutes of training) at which valid IoU first
    reaches the published 0.9227."""
    from mlflow.tracking import MlflowClient

    root = SHARED / "pap_smear_herlev_128"
    result = seg_train(
        "published",
        [
            "experiment=pap_smear_herlev_128",
            f"dataset.root={root}",
            f"trainer.time_budget={budget}",
            # seg's default rate in place of the published 1e-4 (both constant, halved on
            # plateaus); no early stopping: the budget decides
            "trainer.learning_rate=1e-3",
            "callbacks.early_stopping=null",
            "split=valid",
        ],
        work,
    )
    client = MlflowClient(next(work.glob("run-*/mlflow.db")).as_uri().replace("file:", "sqlite:"))
    ious = client.get_metric_history(result["run_id"], "val_iou")
    times = client.get_metric_history(result["run_id"], "epoch_time")
    elapsed, reached = 0.0, None
    print(f"\npublished split, {budget:g}-minute budget: epoch, minutes of training, val_iou")
    for iou, t in zip(
        sorted(ious, key=lambda m: m.step), sorted(times, key=lambda m: m.step), strict=True
    ):
        elapsed += t.value / 60
        print(f"{iou.step + 1:5d} {elapsed:7.1f} {iou.value:.4f}")
        if reached is None and iou.value >= PUBLISHED_IOU:
            reached = elapsed
    run = client.get_run(result["run_id"])
    pooled = run.data.metrics.get("valid_iou_pooled")
    print(
        f"valid IoU of the best checkpoint: {run.data.metrics.get('valid_iou'):.4f} mean, "
        f"{pooled:.4f} pooled; reached {PUBLISHED_IOU} after "
        + (f"{reached:.1f} minutes of training" if reached else "never, within the budget")
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--budget", type=float, default=10.0, help="minutes of training")
    parser.add_argument(
        "--candidates",
        nargs="?",
        const="all",
        default=None,
        metavar="PREFIXES",
        help="add the candidate recipes: all, or those whose labels start with these (a,b)",
    )
    parser.add_argument("--datasets", default=",".join(DATASETS))
    parser.add_argument("--time-to-iou", type=float, default=None, metavar="MINUTES")
    parser.add_argument("--work", type=Path, default=None)
    args = parser.parse_args()
    print(f"load average at start: {load_average()}")
    work = args.work or Path(tempfile.mkdtemp(prefix="seg-recipes-"))
    work.mkdir(parents=True, exist_ok=True)
    if args.time_to_iou:
        time_to_iou(args.time_to_iou, work)
        print(f"load average at end: {load_average()}")
        return
    gains = []
    for name in args.datasets.split(","):
        rows = compare(name, args.budget, args.candidates, work)
        report(name, rows)
        gains.append(100 * (rows["seg default"]["dice"] - rows["plain Keras UNet script"]["dice"]))
        (work / f"{name}.json").write_text(json.dumps(rows, indent=1))
    print(f"\nload average at end: {load_average()}; runs in {work}")
    print(
        f"headline: {min(gains):.2f} dice points of seg's default over the plain Keras script "
        "at equal wall time (worst of the datasets)"
    )


if __name__ == "__main__":
    main()
