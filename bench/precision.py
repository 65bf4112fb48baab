"""Training step time by dtype policy (trainer.mixed_precision / mixed_precision_dtype) and XLA
(trainer.jit_compile), side by side in one run, on this machine.

The model is the ``pap_smear_herlev_128`` experiment's UNet (composed from conf/: 16 filters,
7 levels, 31 M parameters) at batch 4 on 128x128x3 random inputs, built by the project's factory
under each policy. Each variant is warmed up (graph tracing, XLA compilation), then the
variants take turns: ``--rounds`` rounds of ``--steps`` steps each (``train_on_batch``, which
waits for the step's result). This VM's speed drifts over minutes (the same float32 epoch has
taken 46 s and 81 s), so one long timing per variant may compare the host's moods rather than
the dtypes: interleaved rounds see the same moods, and the best round of each (other load only
ever slows a round) is the comparison.
Ratios are to float32 without XLA.

    python bench/precision.py [--steps 10] [--rounds 5] [--xla]
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import keras
import numpy as np
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig

from seg.cli import CONF_DIR  # importing the CLI registers the config schemas
from seg.training.factory import build_model
from seg.training.precision import precision_policy

BATCH, SIZE = 4, (128, 128)


def experiment_model() -> DictConfig:
    """The experiment's model node, as seg-train composes it (no second copy of its values)."""
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        return compose("train", overrides=["experiment=pap_smear_herlev_128"]).model


def compiled_model(unet: DictConfig, policy: str, jit: bool) -> keras.Model:
    """The experiment's model under ``policy``, compiled as the trainer would (Adam, BCE)."""
    keras.utils.set_random_seed(0)
    model = build_model(unet, SIZE, 3, 1, policy)
    model.compile(
        optimizer=keras.optimizers.Adam(1e-4), loss="binary_crossentropy", jit_compile=jit
    )
    return model


def round_seconds(model: keras.Model, x: np.ndarray, y: np.ndarray, steps: int) -> float:
    """Seconds per training step over one round of ``steps`` steps."""
    start = time.perf_counter()
    for _ in range(steps):
        model.train_on_batch(x, y)
    return (time.perf_counter() - start) / steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=10, help="timed steps per round")
    parser.add_argument("--rounds", type=int, default=5, help="rounds (the best counts)")
    parser.add_argument("--xla", action="store_true", help="also time jit_compile=true")
    args = parser.parse_args()
    variants = [
        ("float32", False),
        (precision_policy(True, "bfloat16"), False),
        (precision_policy(True, "float16"), False),
    ]
    if args.xla:
        variants.append((precision_policy(True, "bfloat16"), True))
    unet = experiment_model()
    rng = np.random.default_rng(0)
    x = rng.random((BATCH, *SIZE, 3), dtype=np.float32)
    y = (rng.random((BATCH, *SIZE, 1)) > 0.5).astype(np.float32)
    models = [compiled_model(unet, policy, jit) for policy, jit in variants]
    for model in models:  # tracing and compilation are not what is compared
        for _ in range(2):
            model.train_on_batch(x, y)
    times: list[list[float]] = [[] for _ in variants]
    for _ in range(args.rounds):
        for model, seconds in zip(models, times, strict=True):
            seconds.append(round_seconds(model, x, y, args.steps))
    base = min(times[0])
    print(
        f"batch {BATCH}, {SIZE[0]}x{SIZE[1]}x3; best and median of {args.rounds} interleaved "
        f"rounds of {args.steps} steps"
    )
    print(f"{'policy':<16} {'xla':<5} {'best ms':>8} {'median':>7} {'vs float32':>10}")
    for (policy, jit), seconds in zip(variants, times, strict=True):
        print(
            f"{policy:<16} {jit!s:<5} {min(seconds) * 1e3:>8.0f} "
            f"{float(np.median(seconds)) * 1e3:>7.0f} {base / min(seconds):>9.2f}x"
        )


if __name__ == "__main__":
    main()
