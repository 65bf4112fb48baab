"""Training speed of seg against the plain Keras loop a user would write instead, on the
``pap_smear_herlev_128`` experiment's model (UNet, 16 filters, 7 levels, 31 M parameters,
batch 4, 128x128x3) and ../shared/data/pap_smear_herlev_128 (generated images when absent).

Prints, measured side by side in this one run:
  1. training images/s and CPU-seconds per image: seg's training (its factory and defaults:
     the experiment's config, ``mixed_precision=auto``, the fused optimizer update, its loss and
     metrics, its tf.data pipeline) vs a plain Keras 3 ``model.fit`` of the same architecture on
     in-memory arrays with Keras' defaults (float32, ``keras.optimizers.Adam``, BCE, no
     tuning); also seg in float32 and seg with Keras' Adam, to show what each change buys;
  2. seg's per-epoch overhead: its callbacks (divergence guard, best epoch, the per-epoch
     record with the resume state, masks of 4 validation images) against none, in seconds and
     as a fraction of the epoch, beside what the old way cost (Keras' ModelCheckpoint writing
     best.keras and ``save_weights`` of the resume state every epoch);
  3. the fixed per-run overhead of ``seg-train``: its wall time minus the fit, evaluate and
     infer phases it reports (time_* metrics), for the experiment and for ``debug=fast``;
  4. the fraction of this CPU's matmul peak that each training variant reaches.

Variants take turns, one epoch each per round, after a warm-up epoch (graph tracing); the
median round is reported (this machine is shared: interleaving gives every variant the same
moods). CPU-seconds are the process's (all its threads) and are the steadier figure on a
loaded machine. The load average is printed at the start and the end.

    python bench/train_speed.py [--images 256] [--rounds 3] [--skip-runs]

Last line: ``headline: <r> seg/plain-Keras training images per CPU-second``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import keras
import numpy as np
import tensorflow as tf

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data" / "pap_smear_herlev_128"
BATCH, SIZE = 4, (128, 128)
OLD_SCRIPTS_CPU_S_PER_IMAGE = 0.166  # the old scripts on this model, measured in issue 18


def load_average() -> str:
    return " ".join(f"{v:.2f}" for v in os.getloadavg())


def compose(*overrides: str):
    """The train config as ``seg-train experiment=pap_smear_herlev_128 <overrides>`` would
    compose it (the interpolations a launched run resolves are set by hand)."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import open_dict

    from seg.cli import CONF_DIR

    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        cfg = hydra_compose(
            "train",
            overrides=["experiment=pap_smear_herlev_128", *overrides],
            return_hydra_config=True,
        )
    with open_dict(cfg):
        cfg.hydra.runtime.output_dir = tempfile.mkdtemp()
    HydraConfig.instance().set_config(cfg)
    with open_dict(cfg):
        del cfg["hydra"]
    return cfg


def dataset_root(work: Path) -> tuple[Path, str]:
    """The real data, or a generated demo set of the same size and layout."""
    if SHARED.is_dir():
        return SHARED, str(SHARED)
    from seg.data.demo import DemoSpec, ensure_demo_dataset

    root = ensure_demo_dataset(
        work, DemoSpec(image_size=SIZE[0], num_train=512, num_valid=64, num_test=64)
    )
    return root, f"generated {root}"


@dataclass
class Variant:
    """One way to train: builds its model once, then runs one epoch per call of ``epoch``."""

    name: str
    policy: str
    epoch: Callable[[], None] = field(repr=False)
    walls: list[float] = field(default_factory=list)
    cpus: list[float] = field(default_factory=list)

    def run(self, images: int, record: bool = True) -> None:
        wall, cpu = time.perf_counter(), time.process_time()
        self.epoch()
        if record:
            self.walls.append((time.perf_counter() - wall) / images)
            self.cpus.append((time.process_time() - cpu) / images)

    @property
    def wall(self) -> float:
        return statistics.median(self.walls)

    @property
    def cpu(self) -> float:
        return statistics.median(self.cpus)


def seg_model(
    cfg,
    policy: str,
    optimizer: keras.optimizers.Optimizer | None = None,
    keras_batch_norm: bool = False,
):
    """The experiment's model compiled as seg's train stage compiles it (``keras_batch_norm``:
    with Keras' BatchNormalization instead of seg's fused one)."""
    from seg.evaluation.metrics import default_metrics
    from seg.models.fused_norm import with_keras_batch_norm
    from seg.training.factory import build_loss, build_model, build_optimizer

    keras.utils.set_random_seed(0)
    model = build_model(cfg.model, SIZE, 3, 1, policy)
    if keras_batch_norm:
        model = with_keras_batch_norm(model)
    model.compile(
        optimizer=optimizer or build_optimizer(cfg.trainer),
        loss=build_loss(cfg.loss),
        metrics=default_metrics(cfg.inference.threshold),
        steps_per_execution=cfg.trainer.steps_per_execution,
    )
    model.optimizer.build(model.trainable_variables)
    return model


def plain_keras_model(cfg):
    """The same architecture as a user builds it from Keras' layers (Keras' own
    BatchNormalization) and compiles it with Keras' defaults."""
    from seg.models.fused_norm import with_keras_batch_norm
    from seg.training.factory import build_model

    keras.utils.set_random_seed(0)
    model = with_keras_batch_norm(build_model(cfg.model, SIZE, 3, 1, "float32"))
    model.compile(
        optimizer=keras.optimizers.Adam(cfg.trainer.learning_rate, clipvalue=0.5),
        loss="binary_crossentropy",
    )
    return model


def training_variants(cfg, train_pairs, arrays) -> list[Variant]:
    from seg.data.dataset import preprocessing_from_config
    from seg.data.pipeline import make_dataset
    from seg.training.precision import precision_policy

    prep = preprocessing_from_config(cfg.dataset)
    dataset = make_dataset(train_pairs, prep, BATCH, training=True, seed=0, cache="memory")
    auto = precision_policy(cfg.trainer.mixed_precision, str(cfg.trainer.mixed_precision_dtype))
    x, y = arrays

    def seg_epoch(model):
        return lambda: model.fit(dataset, epochs=1, verbose=0, shuffle=False)

    plain = plain_keras_model(cfg)
    variants = [
        Variant(
            "plain Keras (float32, Adam)",
            "float32",
            lambda: plain.fit(x, y, batch_size=BATCH, epochs=1, verbose=0),
        ),
        Variant(f"seg ({auto}, fused Adam)", auto, seg_epoch(seg_model(cfg, auto))),
        Variant("seg in float32", "float32", seg_epoch(seg_model(cfg, "float32"))),
        Variant(
            f"seg with Keras' BatchNormalization ({auto})",
            auto,
            seg_epoch(seg_model(cfg, auto, keras_batch_norm=True)),
        ),
        Variant(
            f"seg with Keras' Adam ({auto})",
            auto,
            seg_epoch(
                seg_model(
                    cfg, auto, keras.optimizers.Adam(cfg.trainer.learning_rate, clipvalue=0.5)
                )
            ),
        ),
    ]
    return variants


class _NoRun:
    """A run that keeps nothing (the callbacks' logging is not what is timed)."""

    def log_metrics(self, metrics, step=None) -> None: ...
    def log_image(self, image, key, step) -> None: ...


class Timed(keras.callbacks.Callback):
    """Runs ``inner`` callbacks, timing their epoch-end work (wall and CPU seconds)."""

    def __init__(self, inner: list[keras.callbacks.Callback]) -> None:
        super().__init__()
        self.inner, self.walls, self.cpus = inner, [], []

    def set_model(self, model: keras.Model) -> None:
        super().set_model(model)
        for callback in self.inner:
            callback.set_model(model)

    def on_train_begin(self, logs=None) -> None:
        for callback in self.inner:
            callback.on_train_begin(logs)

    def on_epoch_begin(self, epoch, logs=None) -> None:
        for callback in self.inner:
            callback.on_epoch_begin(epoch, logs)

    def on_train_batch_end(self, batch, logs=None) -> None:
        for callback in self.inner:
            callback.on_train_batch_end(batch, logs)

    def on_epoch_end(self, epoch, logs=None) -> None:
        wall, cpu = time.perf_counter(), time.process_time()
        for callback in self.inner:
            callback.on_epoch_end(epoch, logs)
        self.walls.append(time.perf_counter() - wall)
        self.cpus.append(time.process_time() - cpu)


class _OldResumeState(keras.callbacks.Callback):
    """The previous resume state: ``save_weights`` every epoch, the one before removed."""

    def __init__(self, folder: Path) -> None:
        super().__init__()
        self.folder = folder

    def on_epoch_end(self, epoch, logs=None) -> None:
        path = self.folder / f"epoch_{epoch:05d}.weights.h5"
        self.model.save_weights(path)
        for old in self.folder.glob("epoch_*.weights.h5"):
            if old != path:
                old.unlink()


def callback_costs(cfg, train_pairs, valid_pairs, work: Path, rounds: int) -> dict[str, Timed]:
    """Epochs of seg's training with seg's callbacks and with the old way's, their epoch-end
    work timed (the best checkpoint improves every epoch: it monitors the training loss)."""
    from omegaconf import OmegaConf

    from seg.data.dataset import preprocessing_from_config
    from seg.data.pipeline import make_dataset
    from seg.data.preprocess import for_display
    from seg.training.callback_list import CheckpointFiles, build_callbacks
    from seg.training.callbacks import DivergenceGuard, EpochMasks
    from seg.training.precision import precision_policy

    prep = preprocessing_from_config(cfg.dataset)
    train = make_dataset(train_pairs, prep, BATCH, training=True, seed=0, cache="memory")
    valid = make_dataset(valid_pairs, prep, BATCH, cache="memory")
    policy = precision_policy(cfg.trainer.mixed_precision, str(cfg.trainer.mixed_precision_dtype))
    node = OmegaConf.merge(
        cfg.callbacks,
        {"checkpoint": {"monitor": "loss"}, "early_stopping": None, "reduce_lr": None},
    )
    sample = [prep.load_pair(str(p.image).encode(), str(p.mask).encode()) for p in valid_pairs[:4]]
    images, labels = np.stack([i for i, _ in sample]), np.stack([m for _, m in sample])

    def masks() -> EpochMasks:
        return EpochMasks(
            _NoRun(),
            images,
            labels,
            [f"v{i}" for i in range(len(images))],
            display=for_display(images),
        )

    seg_folder, old_folder = Path(tempfile.mkdtemp(dir=work)), Path(tempfile.mkdtemp(dir=work))
    files = CheckpointFiles(
        seg_folder / "best.keras", seg_folder / "last", seg_folder / "history.csv"
    )
    timed = {
        "seg's callbacks": Timed(
            build_callbacks(node, _NoRun(), files, after_record=(masks(),))[0]
        ),
        "old way (best.keras + save_weights)": Timed(
            [
                DivergenceGuard(),
                keras.callbacks.ModelCheckpoint(
                    str(old_folder / "best.keras"), monitor="loss", save_best_only=True
                ),
                _OldResumeState(old_folder),
                masks(),
            ]
        ),
    }
    models = {name: seg_model(cfg, policy) for name in timed}
    epoch_walls: list[float] = []
    for r in range(rounds + 1):
        for name in list(timed) if r % 2 else list(timed)[::-1]:
            start = time.perf_counter()
            models[name].fit(
                train, validation_data=valid, epochs=1, verbose=0, callbacks=[timed[name]]
            )
            if r:
                epoch_walls.append(time.perf_counter() - start)
    for callbacks in timed.values():  # the warm-up epoch's first writes are not counted
        callbacks.walls, callbacks.cpus = callbacks.walls[1:], callbacks.cpus[1:]
    timed["epoch"] = epoch_walls  # type: ignore[assignment]
    return timed


def interleave(variants: list[Variant], images: int, rounds: int) -> None:
    for variant in variants:  # warm-up: graph tracing, caches filled
        variant.run(images, record=False)
    for r in range(rounds):
        for variant in variants[r % len(variants) :] + variants[: r % len(variants)]:
            variant.run(images)


def conv_flops_per_image(model: keras.Model) -> float:
    """Multiply-adds x 2 of every convolution of one forward pass (the rest is a few %)."""
    total = 0.0

    def walk(layer) -> None:
        nonlocal total
        if isinstance(layer, keras.Model):
            for inner in layer.layers:
                walk(inner)
            return
        if isinstance(layer, keras.layers.Conv2D | keras.layers.Conv2DTranspose):
            out = layer.output.shape
            kernel = layer.kernel.shape  # (kh, kw, in, out) or (kh, kw, out, in) for transposed
            positions = (
                out[1] * out[2]
                if isinstance(layer, keras.layers.Conv2D)
                else (layer.input.shape[1] * layer.input.shape[2])
            )
            total += 2.0 * positions * float(np.prod(kernel))

    walk(model)
    return total


def matmul_peak(dtype: tf.DType, n: int = 2048, repeats: int = 6) -> float:
    """Best GFLOP/s of an n x n matmul on this CPU (all its threads)."""
    a = tf.random.uniform((n, n), dtype=tf.float32)
    a = tf.cast(a, dtype)
    product = tf.function(lambda m: tf.matmul(m, m))
    product(a).numpy()
    best = 0.0
    for _ in range(repeats):
        start = time.perf_counter()
        product(a).numpy()
        best = max(best, 2 * n**3 / (time.perf_counter() - start) / 1e9)
    return best


def cli_overhead(args_list: list[str], work: Path) -> dict[str, float]:
    """``seg-train`` in a subprocess: its wall time and the time_* metrics of its run."""
    from mlflow.tracking import MlflowClient

    cwd = Path(tempfile.mkdtemp(dir=work))
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    env["SEG_CACHE_DIR"] = str(work / "cache")
    command = [str(Path(sys.executable).parent / "seg-train"), *args_list]
    start = time.perf_counter()
    subprocess.run(command, cwd=cwd, env=env, check=True, capture_output=True)
    wall = time.perf_counter() - start
    client = MlflowClient(f"sqlite:///{cwd / 'mlflow.db'}")
    (run,) = client.search_runs([e.experiment_id for e in client.search_experiments()])
    times = {k: v for k, v in run.data.metrics.items() if k.startswith("time_")}
    work_time = sum(times.get(f"time_{k}", 0.0) for k in ("fit", "evaluate", "infer"))
    return {"wall": wall, "work": work_time, "overhead": wall - work_time, **times}


def report_training(variants: list[Variant], peaks: dict[str, float], flops: float) -> float:
    plain = variants[0]
    print(f"\n1. training, {BATCH} images per step, median of the rounds")
    print(f"{'variant':38s} {'img/s':>7s} {'CPU-s/img':>10s} {'vs plain':>9s} {'of peak':>8s}")
    for v in variants:
        peak = peaks["bfloat16" if "bfloat16" in v.policy else "float32"]
        print(
            f"{v.name:38s} {1 / v.wall:7.2f} {v.cpu:10.4f} {plain.cpu / v.cpu:8.2f}x "
            f"{flops / v.wall / 1e9 / peak:7.1%}"
        )
    seg = variants[1]
    print(
        f"seg vs the old scripts' {OLD_SCRIPTS_CPU_S_PER_IMAGE} CPU-s per image (issue 18): "
        f"{OLD_SCRIPTS_CPU_S_PER_IMAGE / seg.cpu:.2f}x"
    )
    return plain.cpu / seg.cpu


def report_callbacks(costs: dict, images: int) -> None:
    epoch = statistics.median(costs.pop("epoch"))
    print(
        f"\n2. per-epoch overhead of the callbacks' epoch-end work, median of the rounds "
        f"({images} training images, epoch {epoch:.1f} s with its validation)"
    )
    for name, timed in costs.items():
        wall, cpu = statistics.median(timed.walls), statistics.median(timed.cpus)
        print(
            f"{name:38s} {wall:6.2f} s per epoch ({wall / epoch:.1%} of the epoch), CPU {cpu:.2f} s"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=256, help="training images per epoch")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--skip-runs", action="store_true", help="no seg-train subprocesses")
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="TensorFlow intra/inter-op threads (default: TensorFlow's, all cores)",
    )
    args = parser.parse_args()
    if args.threads:
        tf.config.threading.set_intra_op_parallelism_threads(args.threads)
        tf.config.threading.set_inter_op_parallelism_threads(args.threads)
    print(f"load average at start: {load_average()}; cores: {os.cpu_count()}")
    work = Path(tempfile.mkdtemp(prefix="seg-train-speed-"))
    root, source = dataset_root(work)
    cfg = compose(f"dataset.root={root}")
    from seg.data.dataset import load_split, preprocessing_from_config

    train_pairs = load_split(cfg.dataset, "train")[: args.images]
    valid_pairs = load_split(cfg.dataset, "valid")[: max(8, args.images // 8)]
    prep = preprocessing_from_config(cfg.dataset)
    loaded = [prep.load_pair(str(p.image).encode(), str(p.mask).encode()) for p in train_pairs]
    arrays = (
        np.stack([i for i, _ in loaded]),
        np.stack([m for _, m in loaded])[..., None].astype("float32"),
    )
    threads = args.threads or "TensorFlow's default (all cores)"
    print(f"data: {source}, {len(train_pairs)} training images; threads: {threads}")

    variants = training_variants(cfg, train_pairs, arrays)
    interleave(variants, len(train_pairs), args.rounds)
    peaks = {"float32": matmul_peak(tf.float32), "bfloat16": matmul_peak(tf.bfloat16)}
    flops = 3 * conv_flops_per_image(plain_keras_model(cfg))  # forward + two for the backward
    print(
        f"\nmatmul peak: {peaks['float32']:.0f} GFLOP/s float32, {peaks['bfloat16']:.0f} "
        f"bfloat16; the model: {flops / 1e9:.1f} GFLOP per training image (convolutions)"
    )
    ratio = report_training(variants, peaks, flops)

    report_callbacks(
        callback_costs(cfg, train_pairs, valid_pairs, work, args.rounds), len(train_pairs)
    )

    if not args.skip_runs:
        print("\n3. fixed per-run overhead of seg-train (wall time minus fit, evaluate, infer)")
        for label, overrides in [
            (
                "experiment, 1 epoch",
                [
                    "experiment=pap_smear_herlev_128",
                    f"dataset.root={root}",
                    "trainer.epochs=1",
                    f"dataset.limit={args.images}",
                ],
            ),
            ("debug=fast", ["debug=fast"]),
        ]:
            times = cli_overhead(overrides, work)
            phases = ", ".join(
                f"{k.removeprefix('time_')} {v:.1f}"
                for k, v in times.items()
                if k.startswith("time_") and k not in ("time_total",)
            )
            print(
                f"{label:20s} wall {times['wall']:5.1f} s, work {times['work']:5.1f} s, "
                f"overhead {times['overhead']:4.1f} s ({phases})"
            )
    print(f"\nload average at end: {load_average()}")
    print(
        json.dumps(
            {"seg_cpu_s_per_image": variants[1].cpu, "plain_cpu_s_per_image": variants[0].cpu}
        )
    )
    print(f"headline: {ratio:.2f} seg/plain-Keras training images per CPU-second")


if __name__ == "__main__":
    main()
