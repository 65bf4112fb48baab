"""Where one training step's time goes, by operation type, on the ``pap_smear_herlev_128``
experiment's model (UNet, 16 filters, 7 levels, 31 M parameters, batch 4, 128x128x3) as seg
compiles it (its factory, loss, metrics, optimizer).

On a CPU, TensorFlow runs convolutions, matrix products, BatchNormalization (the fused kernel)
and layout reorders through oneDNN; ``ONEDNN_VERBOSE=profile_exec`` makes oneDNN print each
primitive it executes with its time. A child process trains ``--steps`` steps that way; the
times are summed by primitive and direction (forward, backward data, backward weights) and set
against the step's wall time measured without the verbose printing. What oneDNN does not run
(element-wise ops, Keras' own BatchNormalization, the optimizer's update, the loss and
metrics, Python) is the remainder.

    python bench/step_profile.py [--steps 20] [--policy mixed_bfloat16|float32] [--keras-bn]

Last line: ``headline: <share> of a training step in oneDNN convolutions``.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from train_speed import BATCH, SIZE, compose, load_average, seg_model  # beside this script

ROOT = Path(__file__).resolve().parents[1]


def _train(steps: int, policy: str, keras_bn: bool) -> float:
    """In this (child) process: ``steps`` training steps after a warm-up; ms per step."""
    import numpy as np

    # The experiment's model compiled as seg's train stage compiles it, one step per call so
    # that the profile's steps are the model's own.
    cfg = compose("trainer.steps_per_execution=1")
    model = seg_model(cfg, policy, keras_batch_norm=keras_bn)
    rng = np.random.default_rng(0)
    x = rng.random((BATCH * steps, *SIZE, 3), dtype=np.float32)
    y = (rng.random((BATCH * steps, *SIZE, 1)) > 0.8).astype(np.float32)
    model.fit(x[: BATCH * 2], y[: BATCH * 2], batch_size=BATCH, epochs=1, verbose=0)  # traces
    print("MEASURE-START", flush=True)
    start = time.perf_counter()
    model.fit(x, y, batch_size=BATCH, epochs=1, verbose=0)
    elapsed = (time.perf_counter() - start) * 1000 / steps
    print("MEASURE-END", flush=True)
    return elapsed


def _child(args: argparse.Namespace, verbose: bool) -> tuple[float, list[str]]:
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", KERAS_BACKEND="tensorflow")
    if verbose:
        env["ONEDNN_VERBOSE"] = "profile_exec"
    command = [sys.executable, __file__, "--child", "--steps", str(args.steps)]
    command += ["--policy", args.policy] + (["--keras-bn"] if args.keras_bn else [])
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=True, cwd=ROOT)
    lines = done.stdout.splitlines()
    measured = lines[lines.index("MEASURE-START") + 1 : lines.index("MEASURE-END")]
    return json.loads(lines[-1])["ms_per_step"], measured


def _by_primitive(lines: list[str], steps: int) -> dict[str, float]:
    """ms per step by '<primitive> <direction>' from oneDNN's profile_exec lines."""
    totals: dict[str, float] = collections.defaultdict(float)
    for line in lines:
        parts = line.split(",")
        if len(parts) < 8 or parts[2:4] != ["primitive", "exec"]:
            continue
        kind, direction = parts[5], parts[7]
        totals[f"{kind} {direction}".strip()] += float(parts[-1])
    return {k: v / steps for k, v in sorted(totals.items(), key=lambda kv: -kv[1])}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--policy", default="mixed_bfloat16")
    parser.add_argument("--keras-bn", action="store_true", help="Keras' BatchNormalization")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps({"ms_per_step": _train(args.steps, args.policy, args.keras_bn)}))
        return
    print(f"load average at start: {load_average()}")
    step_ms, _ = _child(args, verbose=False)
    _, lines = _child(args, verbose=True)
    parts = _by_primitive(lines, args.steps)
    bn = "Keras' BatchNormalization" if args.keras_bn else "seg's fused BatchNormalization"
    print(f"{args.policy}, {bn}: {step_ms:.1f} ms per step of {BATCH} images (no verbose)")
    print(f"{'oneDNN primitive':48s} {'ms/step':>8s} {'share':>7s}")
    for name, ms in parts.items():
        if ms >= 0.005 * step_ms:  # primitives of at least 0.5 % of the step
            print(f"{name:48s} {ms:8.1f} {ms / step_ms:7.1%}")
    in_onednn = sum(parts.values())
    print(f"{'all oneDNN primitives':48s} {in_onednn:8.1f} {in_onednn / step_ms:7.1%}")
    rest = max(0.0, step_ms - in_onednn)
    print(f"{'the rest (element-wise, optimizer, Python)':48s} {rest:8.1f} {rest / step_ms:7.1%}")
    conv = sum(ms for name, ms in parts.items() if name.startswith("convolution"))
    print(f"load average at end: {load_average()}")
    print(f"headline: {conv / step_ms:.2f} of a training step in oneDNN convolutions")


if __name__ == "__main__":
    main()
