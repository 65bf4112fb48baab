"""TensorFlow's share of the machine, and the tf.distribute strategy of the train stage.

:func:`configure_tensorflow` must run before TensorFlow executes its first op: thread pools and
logical devices are fixed once the runtime starts. A process that runs several jobs (Hydra's
basic launcher, a reused joblib worker) keeps the first job's settings; asking for others then
fails with a clear error instead of being silently ignored.
"""

from __future__ import annotations

import logging
from typing import Any

import tensorflow as tf

from seg.config.trainer import MULTI_WORKER_UNSUPPORTED
from seg.errors import ConfigError

log = logging.getLogger(__name__)


def _set_threads(threads: int) -> None:
    try:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(threads)
    except RuntimeError as err:  # the runtime already started with other values
        raise ConfigError(
            f"trainer.threads={threads}: TensorFlow already runs in this process with "
            f"{tf.config.threading.get_intra_op_parallelism_threads()} threads; a process "
            "that runs several jobs keeps the first job's setting"
        ) from err


def _set_logical_cpus(count: int) -> None:
    cpu = tf.config.list_physical_devices("CPU")[0]
    current = tf.config.get_logical_device_configuration(cpu) or [None]
    if len(current) == count:
        return
    try:
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration() for _ in range(count)]
        )
    except RuntimeError as err:
        raise ConfigError(
            f"trainer.logical_cpus={count}: TensorFlow already runs in this process with "
            f"{len(current)} logical CPU(s); a process that runs several jobs keeps the "
            "first job's setting"
        ) from err


def configure_tensorflow(threads: int | None, logical_cpus: int | None) -> None:
    """Thread pools and logical CPUs, before TensorFlow starts (None leaves its default)."""
    if threads is not None:
        _set_threads(threads)
        log.info("TensorFlow threads: %d intra-op, %d inter-op", threads, threads)
    if logical_cpus is not None and logical_cpus > 1:
        _set_logical_cpus(logical_cpus)


def make_strategy(name: str) -> Any:
    """The tf.distribute strategy named by trainer.strategy."""
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        gpus = [d.name for d in tf.config.list_logical_devices("GPU")]
        devices = gpus or [d.name for d in tf.config.list_logical_devices("CPU")]
        return tf.distribute.MirroredStrategy(devices=devices)
    raise ConfigError(
        MULTI_WORKER_UNSUPPORTED
        if name == "multi_worker"
        else f"trainer.strategy={name}: expected default or mirrored"
    )


def global_batch_size(batch_size: int, per_replica: bool, replicas: int) -> int:
    """Images per training step over all replicas (what the tf.data pipeline batches)."""
    total = batch_size * replicas if per_replica else batch_size
    if total % replicas:
        log.warning(
            "global batch %d is not a multiple of %d replicas: replicas get uneven batches",
            total,
            replicas,
        )
    return total
