"""Input threads that yield the CPU to the training step.

On a CPU the training step and tf.data's map calls share the cores. A training op waits for
its slowest intra-op thread, so an augmentation thread that preempts one of them stalls the
whole step, and an epoch costs more than the sum of both works. With a higher niceness the
input threads still get every moment the step leaves idle (and the whole CPU when the step
waits for data), but no longer preempt it (`python bench/pipeline.py` times both side by side).

Only the dataset's own threads are reniced: the dataset gets a private thread pool, so the
threads of the training step (TensorFlow's shared pools) keep their priority. Linux only (where
a thread id can be reniced); elsewhere nothing changes.
"""

from __future__ import annotations

import os
import sys
import threading

import numpy as np
import tensorflow as tf

SUPPORTED = sys.platform.startswith("linux")


def _renice_current_thread(niceness: int) -> None:
    tid = threading.get_native_id()
    if os.getpriority(os.PRIO_PROCESS, tid) < niceness:
        os.setpriority(os.PRIO_PROCESS, tid, niceness)


def yielding(tensor: tf.Tensor, niceness: int) -> tf.Tensor:
    """``tensor`` unchanged, once the thread computing it runs at ``niceness`` (a no-op graph
    step; put it at the start of a map function)."""
    if niceness <= 0 or not SUPPORTED:
        return tensor

    def renice(value: np.ndarray) -> np.ndarray:
        _renice_current_thread(niceness)
        return value

    out = tf.numpy_function(renice, [tensor], tensor.dtype, stateful=False)
    return tf.ensure_shape(out, tensor.shape)
