"""Input pipeline benchmark: does the data keep up with training?

Prints, measured side by side in this one run:
  1. images/s delivered by the training pipeline (tf.data, ``augmentation=strong``), cached and
     uncached, and images/s the default UNet consumes in training: their ratio (goal >= 3);
  2. the time of a training epoch fed by that pipeline vs. the same images already in memory
     (goal <= 1.10), and the same with the input threads at normal priority
     (dataset.input_niceness=0), epochs of the three interleaved;
  3. a naive loader in the style of the old scripts (sequential cv2.imread, per-image Python
     augmentation): our speed-up over it;
  4. peak RSS of one epoch over a 10,000-image generated dataset, with and without the cache.

Runs on ../shared/data/pap_smear_herlev_128 when present, on generated data otherwise.

    python bench/pipeline.py [--images 512] [--rounds 3] [--rss-images 10000]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data" / "pap_smear_herlev_128"
SIZE = (128, 128)
BATCH = 8


def compose(work: Path, *overrides: str):
    """The train config exactly as `seg-train <overrides>` composes it (outputs under work)."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import open_dict

    from seg.cli import CONF_DIR

    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        cfg = hydra_compose("train", overrides=list(overrides), return_hydra_config=True)
    with open_dict(cfg):
        cfg.hydra.runtime.output_dir = tempfile.mkdtemp(dir=work)
    HydraConfig.instance().set_config(cfg)
    with open_dict(cfg):
        del cfg["hydra"]
    return cfg


def dataset_pairs(n: int, workdir: Path):
    """Pairs of the real Pap smear train split, or of a generated demo set."""
    from seg.data.demo import DemoSpec, ensure_demo_dataset
    from seg.data.pairs import split_pairs

    if SHARED.is_dir():
        pairs, source = split_pairs(SHARED, "train", "images", "masks"), str(SHARED)
    else:
        spec = DemoSpec(image_size=SIZE[0], num_train=n, num_valid=8, num_test=8)
        root = ensure_demo_dataset(workdir, spec)
        pairs, source = split_pairs(root, "train", "images", "masks"), f"generated {root}"
    return pairs[:n], source


def train_dataset(
    cfg, pairs, cache: str, cache_file: Path | None = None, input_niceness: int | None = None
):
    """The training pipeline exactly as the train stage builds it (``input_niceness``: the
    config's unless given)."""
    from seg.data.augment import as_spec
    from seg.data.dataset import preprocessing_from_config
    from seg.data.pipeline import make_dataset

    return make_dataset(
        pairs,
        preprocessing_from_config(cfg.dataset),
        BATCH,
        training=True,
        augmentation=as_spec(cfg.augmentation),
        seed=cfg.seed,
        cache=cache,
        cache_file=cache_file,
        input_niceness=(cfg.dataset.input_niceness if input_niceness is None else input_niceness),
    )


def delivered_rate(dataset, epochs: int = 2) -> float:
    """Images/s the pipeline delivers on its own (after one warm-up epoch)."""
    for _ in dataset:
        pass
    count, start = 0, time.perf_counter()
    for _ in range(epochs):
        for images, _masks in dataset:
            count += int(images.shape[0])
    return count / (time.perf_counter() - start)


def build_model(cfg):
    from seg.evaluation.metrics import default_metrics
    from seg.training.factory import build_loss, build_model, build_optimizer

    model = build_model(cfg.model, SIZE, 3, 1)
    model.compile(
        optimizer=build_optimizer(cfg.trainer), loss=build_loss(cfg.loss), metrics=default_metrics()
    )
    return model


def in_memory(dataset):
    """The same batches materialised in RAM: training without any input cost."""
    import tensorflow as tf

    images, masks = zip(*[(x.numpy(), y.numpy()) for x, y in dataset], strict=True)
    arrays = (np.concatenate(images), np.concatenate(masks))
    return tf.data.Dataset.from_tensor_slices(arrays).batch(BATCH).cache().prefetch(2), arrays


def epoch_times(model, datasets: dict, rounds: int = 3) -> dict[str, float]:
    """Median epoch time of each dataset, epochs interleaved (a, b, a, b, ...) so that drifts
    of the machine's speed hit all of them alike; one warm-up epoch each (tracing, cache)."""
    times: dict[str, list[float]] = {name: [] for name in datasets}
    for dataset in datasets.values():
        model.fit(dataset, epochs=1, verbose=0, shuffle=False)
    for _ in range(rounds):
        for name, dataset in datasets.items():
            start = time.perf_counter()
            model.fit(dataset, epochs=1, verbose=0, shuffle=False)
            times[name].append(time.perf_counter() - start)
    return {name: float(np.median(t)) for name, t in times.items()}


def naive_rate(pairs, spec, rng: np.random.Generator) -> float:
    """Images/s of the old scripts' loader (bench/naive_loader.py) on the same files and ops."""
    from naive_loader import batches

    start, count = time.perf_counter(), 0
    for images, _masks in batches(pairs, SIZE, spec, BATCH, rng):
        count += len(images)
    return count / (time.perf_counter() - start)


def rss_child(args: argparse.Namespace) -> None:
    """One epoch over the big generated set; prints this process's peak RSS (MB)."""
    from seg.data.pairs import split_pairs

    root = Path(args.rss_root)
    cfg = compose(root, "augmentation=strong")
    pairs = split_pairs(root, "train", "images", "masks")[: args.rss_limit]
    cache_file = Path(tempfile.mkdtemp(dir=root)) / "train"
    dataset = train_dataset(cfg, pairs, args.rss_child, cache_file)
    count = sum(int(x.shape[0]) for x, _ in dataset)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"images": count, "peak_rss_mb": peak}))


def peak_rss(root: Path, cache: str, images: int) -> float:
    """Peak RSS (MB) of a fresh process running one epoch over the first ``images`` pairs."""
    out = subprocess.run(
        [
            sys.executable,
            __file__,
            "--rss-child",
            cache,
            "--rss-root",
            str(root),
            "--rss-limit",
            str(images),
        ],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return json.loads(out.strip().splitlines()[-1])["peak_rss_mb"]


def report_rates(images: int, rounds: int, work: Path) -> float:
    """Parts 1-3; returns the pipeline/training images-per-second ratio."""
    from seg.data.augment import as_spec

    pairs, source = dataset_pairs(images, work)
    print(
        f"data: {len(pairs)} pairs from {source}; {SIZE[0]}x{SIZE[1]}, batch {BATCH}, "
        f"{os.cpu_count()} CPU cores"
    )
    cfg = compose(work, "augmentation=strong")

    cached = train_dataset(cfg, pairs, "memory")
    uncached = train_dataset(cfg, pairs, "none")
    rate_cached = delivered_rate(cached)
    rate_uncached = delivered_rate(uncached)

    model = build_model(cfg)
    memory_ds, _ = in_memory(cached)
    not_reniced = train_dataset(cfg, pairs, "memory", input_niceness=0)
    epochs = epoch_times(
        model, {"memory": memory_ds, "pipeline": cached, "not_reniced": not_reniced}, rounds
    )
    memory_epoch, pipeline_epoch = epochs["memory"], epochs["pipeline"]
    consumed = len(pairs) / memory_epoch
    naive = naive_rate(pairs, as_spec(cfg.augmentation), np.random.default_rng(0))

    print(f"pipeline, strong augmentation, cached:    {rate_cached:8.1f} images/s")
    print(f"pipeline, strong augmentation, no cache:  {rate_uncached:8.1f} images/s")
    print(f"UNet training consumes (data in memory):  {consumed:8.1f} images/s")
    print(f"naive sequential loader (old scripts):    {naive:8.1f} images/s")
    print(f"ratio pipeline (cached) / training:       {rate_cached / consumed:8.2f}x  (goal >= 3)")
    print(f"ratio pipeline (no cache) / training:     {rate_uncached / consumed:8.2f}x")
    print(
        f"epoch time, pipeline / in memory:         {pipeline_epoch / memory_epoch:8.3f}  "
        f"({pipeline_epoch:.2f} s vs {memory_epoch:.2f} s, median of {rounds}; goal <= 1.10)"
    )
    print(
        f"  same, input threads at niceness 0:      {epochs['not_reniced'] / memory_epoch:8.3f}  "
        f"({epochs['not_reniced']:.2f} s; dataset.input_niceness="
        f"{cfg.dataset.input_niceness} above)"
    )
    print(
        f"speed-up over the naive loader:           {rate_uncached / naive:8.2f}x (no cache), "
        f"{rate_cached / naive:.2f}x (cached)"
    )
    return rate_cached / consumed


def report_rss(images: int, work: Path) -> dict[str, float]:
    """Part 4: peak RSS of one epoch per cache mode, each in a fresh process; without a memory
    cache also over a tenth of the images, to show that memory does not grow with the data."""
    from seg.data.demo import DemoSpec, ensure_demo_dataset

    spec = DemoSpec(image_size=SIZE[0], num_train=images, num_valid=1, num_test=1)
    big = ensure_demo_dataset(work, spec)
    peaks = {}
    for cache, sizes in (
        ("none", (images // 10, images)),
        ("disk", (images // 10, images)),
        ("memory", (images,)),
    ):
        for n in sizes:
            peaks[f"{cache}@{n}"] = peak_rss(big, cache, n)
            print(
                f"peak RSS, one epoch over {n:6d} images, cache={cache:6s}: "
                f"{peaks[f'{cache}@{n}']:8.0f} MB"
            )
    return peaks


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--images", type=int, default=512, help="pairs for the rate tests (0: skip them)"
    )
    parser.add_argument("--rss-images", type=int, default=10_000, help="0: skip the RSS test")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved timed epochs each")
    parser.add_argument("--rss-child", choices=["memory", "none", "disk"], help=argparse.SUPPRESS)
    parser.add_argument("--rss-root", help=argparse.SUPPRESS)
    parser.add_argument("--rss-limit", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.rss_child:
        rss_child(args)
        return

    import keras

    keras.utils.set_random_seed(0)
    with tempfile.TemporaryDirectory(prefix="seg-bench-") as tmp:
        work = Path(tmp)
        ratio = report_rates(args.images, args.rounds, work) if args.images else None
        peaks = report_rss(args.rss_images, work) if args.rss_images else None
    if ratio is not None:
        print(f"headline: {ratio:.2f} pipeline/training images-per-second ratio")
    elif peaks:
        print(
            f"headline: {peaks[f'none@{args.rss_images}']:.0f} MB peak RSS of an uncached "
            f"epoch over {args.rss_images} images"
        )


if __name__ == "__main__":
    main()
