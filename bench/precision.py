"""Training step time by dtype policy (trainer.mixed_precision / mixed_precision_dtype) and XLA
(trainer.jit_compile), side by side in one run, on this machine.

The model is the ``pap_smear_herlev_128`` experiment's UNet (composed from conf/: 16 filters,
7 levels, 31 M parameters) at batch 4 on 128x128x3 random inputs, built by the project's factory
under each policy. Each variant is warmed up (graph tracing, XLA compilation) before
``--steps`` timed steps; ratios are to float32 without XLA.

    python bench/precision.py [--steps 40] [--xla]
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

from pathlib import Path

import keras
import numpy as np
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig

from seg.config import register
from seg.factory import build_model, precision_policy

CONF = Path(__file__).resolve().parents[1] / "conf"
BATCH, SIZE = 4, (128, 128)


def experiment_model() -> DictConfig:
    """The experiment's model node, as seg-train composes it (no second copy of its values)."""
    register()  # the schemas the group configs extend
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose("train", overrides=["experiment=pap_smear_herlev_128"]).model


def step_seconds(unet: DictConfig, policy: str, jit: bool, steps: int) -> float:
    """Mean seconds per training step (Adam, binary cross-entropy) after a warm-up."""
    keras.utils.set_random_seed(0)
    model = build_model(unet, SIZE, 3, 1, policy)
    model.compile(optimizer=keras.optimizers.Adam(1e-4), loss="binary_crossentropy",
                  jit_compile=jit)
    rng = np.random.default_rng(0)
    x = rng.random((BATCH * steps, *SIZE, 3), dtype=np.float32)
    y = (rng.random((BATCH * steps, *SIZE, 1)) > 0.5).astype(np.float32)
    model.fit(x[: 2 * BATCH], y[: 2 * BATCH], batch_size=BATCH, epochs=1, verbose=0)
    start = time.perf_counter()
    model.fit(x, y, batch_size=BATCH, epochs=1, verbose=0)
    return (time.perf_counter() - start) / steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--xla", action="store_true", help="also time jit_compile=true")
    args = parser.parse_args()
    variants = [("float32", False), (precision_policy(True, "bfloat16"), False),
                (precision_policy(True, "float16"), False)]
    if args.xla:
        variants.append((precision_policy(True, "bfloat16"), True))
    unet, base = experiment_model(), None
    print(f"{'policy':<16} {'xla':<5} {'ms/step':>8} {'vs float32':>10}")
    for policy, jit in variants:
        seconds = step_seconds(unet, policy, jit, args.steps)
        base = base or seconds
        print(f"{policy:<16} {jit!s:<5} {seconds * 1e3:>8.0f} {base / seconds:>9.2f}x",
              flush=True)


if __name__ == "__main__":
    main()
