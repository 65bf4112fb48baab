"""The dtype policy a model trains under: ``trainer.mixed_precision=auto`` picks what this
machine computes fastest without changing the results beyond noise.

- a GPU of compute capability 8 or more (Ampere and later): ``mixed_bfloat16`` (bfloat16 has
  float32's range: no loss scaling);
- an older GPU with tensor cores (compute capability 7.x): ``mixed_float16`` (Keras wraps the
  optimizer in a LossScaleOptimizer);
- a CPU whose instructions include AVX512-BF16 or AMX-BF16: ``mixed_bfloat16``
  (``python bench/train_speed.py`` measures it against float32);
- anything else: ``float32`` (float16 on a CPU is emulated, bfloat16 without those
  instructions is converted back and forth: both slower than float32).

Weights, the loss and the model's outputs stay float32 under every policy (seg.models' output
heads are float32 layers).
"""

from __future__ import annotations

import logging
from pathlib import Path

import tensorflow as tf

log = logging.getLogger(__name__)

CPU_BF16_FLAGS = ("avx512_bf16", "amx_bf16")  # /proc/cpuinfo names of the instructions


def cpu_flags(cpuinfo: Path = Path("/proc/cpuinfo")) -> set[str]:
    """The CPU's instruction-set flags (Linux); empty where the kernel does not say."""
    try:
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("flags"):
                return set(line.partition(":")[2].split())
    except OSError:
        pass
    return set()


def _gpu_capabilities() -> list[tuple[int, int]]:
    """Compute capability (major, minor) of each visible GPU."""
    found = []
    for gpu in tf.config.list_physical_devices("GPU"):
        capability = tf.config.experimental.get_device_details(gpu).get("compute_capability")
        found.append(tuple(capability) if capability else (0, 0))
    return found


def auto_policy(
    gpus: list[tuple[int, int]] | None = None, flags: set[str] | None = None
) -> tuple[str, str]:
    """The policy ``mixed_precision=auto`` chooses, and why (for the log)."""
    gpus = _gpu_capabilities() if gpus is None else gpus
    if gpus:
        lowest = min(gpus)
        if lowest >= (8, 0):
            return "mixed_bfloat16", f"GPU of compute capability {lowest[0]}.{lowest[1]}"
        if lowest >= (7, 0):
            return "mixed_float16", f"GPU of compute capability {lowest[0]}.{lowest[1]}"
        return "float32", "GPU without tensor cores"
    flags = cpu_flags() if flags is None else flags
    native = [f for f in CPU_BF16_FLAGS if f in flags]
    if native:
        return "mixed_bfloat16", f"CPU with {native[0].upper()}"
    return "float32", "CPU without bfloat16 instructions"


def precision_policy(mixed_precision: str | bool, dtype: str = "auto") -> str:
    """The Keras dtype policy of ``trainer.mixed_precision`` (auto | true | false) and
    ``trainer.mixed_precision_dtype`` (auto: float16 with a GPU, bfloat16 without)."""
    mode = str(mixed_precision).lower()
    if mode == "false":
        return "float32"
    if mode == "auto":
        policy, why = auto_policy()
        log.info("mixed precision auto: %s (%s)", policy, why)
        return policy
    if dtype == "auto":
        dtype = "float16" if tf.config.list_logical_devices("GPU") else "bfloat16"
    return f"mixed_{dtype}"
