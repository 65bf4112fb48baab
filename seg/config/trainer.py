"""The trainer group: epochs, batches, optimizer, precision, devices and resuming; its checks."""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

from omegaconf import MISSING, DictConfig

from seg.config.bounds import Bound, check_bounds, require
from seg.errors import ConfigError


class Optimizer(StrEnum):
    adam = "adam"
    adamw = "adamw"
    sgd = "sgd"
    rmsprop = "rmsprop"
    nadam = "nadam"


class Strategy(StrEnum):
    """tf.distribute strategy of the train stage (seg.training.distribute)."""

    default = "default"  # one device (TF places ops; a GPU if there is one)
    mirrored = "mirrored"  # synchronous data parallelism over this machine's GPUs (or CPUs)
    multi_worker = (
        "multi_worker"  # over machines: refused, Keras 3 cannot (seg.training.distribute)
    )


class MixedDtype(StrEnum):
    """Compute dtype of ``trainer.mixed_precision=true``: float16 suits GPUs (tensor cores),
    bfloat16 CPUs with AVX512-BF16/AMX (float16 arithmetic is emulated on most CPUs: slower
    than float32)."""

    auto = "auto"  # float16 with a GPU, bfloat16 without
    float16 = "float16"
    bfloat16 = "bfloat16"


# trainer.mixed_precision: auto lets the machine decide (seg.training.precision); true and
# false as before. A string, not an enum, so that the true/false Hydra reads stay valid.
MIXED_PRECISION = ("auto", "true", "false")


@dataclass
class TrainerConfig:
    epochs: int = MISSING
    batch_size: int = MISSING
    learning_rate: float = MISSING
    optimizer: Optimizer = MISSING
    weight_decay: float = 0.0  # AdamW / SGD decoupled decay
    momentum: float = 0.0  # SGD / RMSprop
    clipvalue: float | None = None
    clipnorm: float | None = None
    steps_per_epoch: int | None = None
    validation_steps: int | None = None
    verbose: int | None = None  # Keras fit: 1 progress bar, 2 a line per epoch, null: 1 on a tty
    deterministic: bool = False  # TF op determinism: reproducible to the bit, slower
    # Keras mixed_<dtype> policy for the model (outputs stay float32): auto (bfloat16 on a CPU
    # with AVX512-BF16/AMX or a GPU of compute capability >= 8, float16 on older tensor-core
    # GPUs, float32 otherwise) | true (mixed_precision_dtype) | false (float32)
    mixed_precision: str = "auto"
    mixed_precision_dtype: MixedDtype = MixedDtype.auto
    jit_compile: bool | None = None  # XLA; null: Keras' auto (on with a GPU, off on CPU)
    # Training steps per call into TensorFlow (Keras' steps_per_execution): fewer returns to
    # Python; per-batch callbacks then see every N-th batch.
    steps_per_execution: int = 1
    strategy: Strategy = Strategy.default
    # false: batch_size is the global batch, images per step summed over replicas (each replica
    # gets batch_size / replicas); true: batch_size is per replica (a step sees batch_size x
    # replicas images). Same thing on one device.
    batch_size_per_replica: bool = False
    # TensorFlow intra- and inter-op threads; null: this machine's cores divided by the jobs a
    # parallel launcher runs at once (hydra.launcher.n_jobs), so parallel jobs share the cores.
    threads: int | None = None
    # Split the CPU into this many logical devices before TensorFlow starts (null: one), so that
    # trainer.strategy=mirrored runs several replicas on a machine without GPUs (tests, demos).
    logical_cpus: int | None = None
    # Continue an interrupted run from its last epoch: true (the latest unfinished run of this
    # same config in the experiment) or an MLflow run id. The same MLflow run goes on.
    resume: str | None = None


# Checked here, before the run opens: Keras would refuse some only when it builds the optimizer
# or a callback, after the run opened.
_TRAINER_BOUNDS = (
    Bound("epochs", 1),
    Bound("batch_size", 1),
    Bound("steps_per_execution", 1),
    Bound("learning_rate", 0, low_open=True),
    *(
        Bound(name, 1, nullable=True)
        for name in ("steps_per_epoch", "validation_steps", "threads", "logical_cpus")
    ),
    Bound("weight_decay", 0),
    Bound("momentum", 0, 1, high_open=True),
    Bound("clipvalue", 0, low_open=True, nullable=True, note="null = no clipping"),
    Bound("clipnorm", 0, low_open=True, nullable=True, note="null = no clipping"),
)


def resume_target(value: str | None) -> str | None:
    """trainer.resume as given: None, "latest" (for true/latest) or an MLflow run id."""
    if value is None:
        return None
    text = str(value).strip()
    if text.lower() in ("true", "latest"):
        return "latest"
    if text.lower() in ("false", ""):
        return None
    return text


def _validate_resume(value: str | None) -> None:
    target = resume_target(value)
    require(
        target in (None, "latest") or bool(re.fullmatch(r"[0-9a-f]{32}", target)),
        "trainer.resume",
        f"true (the latest interrupted run of this config) or an MLflow run id, got {value!r}",
    )


# Model.fit of Keras 3 (3.15 with TF 2.21 here) fails under MultiWorkerMirroredStrategy: it
# reduces the first input batch across workers, which that strategy cannot do (and further
# reductions fail after that); see keras-team/keras#20585. Refused up front, with what works.
MULTI_WORKER_UNSUPPORTED = (
    "trainer.strategy=multi_worker: Keras 3's Model.fit does not run under "
    "tf.distribute.MultiWorkerMirroredStrategy (keras-team/keras#20585); train on one machine "
    "with trainer.strategy=mirrored (all its GPUs), or spread a sweep's jobs over machines "
    "with hydra/launcher=slurm or hydra/launcher=ray"
)


def validate_trainer(trainer: DictConfig) -> None:
    """The trainer group: ranges, the run to resume, a strategy Keras can train under."""
    check_bounds(trainer, "trainer", _TRAINER_BOUNDS)
    mode = str(trainer.mixed_precision).lower()
    require(
        mode in MIXED_PRECISION,
        "trainer.mixed_precision",
        f"one of {' | '.join(MIXED_PRECISION)}, got {trainer.mixed_precision!r}",
    )
    _validate_resume(trainer.resume)
    if str(trainer.strategy) == "multi_worker":
        raise ConfigError(MULTI_WORKER_UNSUPPORTED)
