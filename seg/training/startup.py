"""TensorFlow imported without its start-up notices: a terminal a person reads.

TensorFlow's C++ code writes a dozen lines while it loads, twice (two of its libraries log
before their logging is set up, so ``TF_CPP_MIN_LOG_LEVEL`` cannot hide them): that oneDNN is
on, that no CUDA driver was found, an ERROR that ``cuInit`` failed on a machine without a GPU,
which CPU instructions the binary could use. :func:`import_tensorflow` captures what the import
and the first look at the devices write to the process's stderr, and writes back everything
but those known notices, so TensorFlow's real warnings and errors still reach the user. On a
machine with an NVIDIA device, a failed ``cuInit`` is a real error and is kept.
"""

from __future__ import annotations

import os
import re
import sys
import tempfile
from pathlib import Path

# Lines TensorFlow writes on every start that say nothing a user can act on.
_NOTICES = (
    r"All log messages before absl::InitializeLog\(\) is called are written to STDERR",
    r"port\.cc:\d+\] oneDNN custom operations are on",
    r"cudart_stub\.cc:\d+\] Could not find cuda drivers on your machine",
    r"cpu_feature_guard\.cc:\d+\] This TensorFlow binary is optimized",
    r"^To enable the following instructions: .* rebuild TensorFlow",
    r"Unable to register cu(DNN|FFT|BLAS) factory",
    r"computation placer already registered",
)
_NO_GPU_NOTICES = (r"cuda_platform\.cc:\d+\] failed call to cuInit",)


def has_nvidia_device() -> bool:
    return Path("/dev/nvidia0").exists() or Path("/proc/driver/nvidia/version").exists()


def is_notice(line: str, gpu: bool) -> bool:
    patterns = _NOTICES if gpu else _NOTICES + _NO_GPU_NOTICES
    return any(re.search(p, line) for p in patterns)


def import_tensorflow() -> None:
    """Import TensorFlow (once) and list its devices with the start-up notices filtered out
    of stderr; thread settings can still be made afterwards."""
    if "tensorflow" in sys.modules:
        return
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as capture:
        os.dup2(capture.fileno(), 2)
        try:
            import tensorflow as tf  # the import this module exists for

            tf.config.list_physical_devices()  # the platforms start here (cuInit)
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
        capture.seek(0)
        written = capture.read().decode("utf-8", errors="replace").splitlines()
    gpu = has_nvidia_device()
    kept = [line for line in written if line.strip() and not is_notice(line, gpu)]
    if kept:
        sys.stderr.write("\n".join(kept) + "\n")
