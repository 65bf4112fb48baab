"""The trainer group: epochs, batches, optimizer, precision, devices and resuming; its checks."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from enum import StrEnum

from omegaconf import MISSING, DictConfig

from seg.config.bounds import Bound, bounded, check_bounds, require
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


class ScheduleName(StrEnum):
    """Learning-rate schedules (seg.training.schedules documents each)."""

    constant = "constant"
    cosine = "cosine"
    poly = "poly"
    step = "step"
    onecycle = "onecycle"


@dataclass
class ScheduleConfig:
    """trainer.schedule: the learning rate over the training, trainer.learning_rate at its
    peak; the steps are the training's (epochs x steps per epoch, or what fits
    trainer.time_budget)."""

    name: ScheduleName = ScheduleName.constant
    warmup: float = 0.0  # fraction of the steps with a linear warm-up from 0 (not onecycle)
    min_lr: float = 0.0  # cosine, poly: the end, as a fraction of trainer.learning_rate
    power: float = 0.9  # poly: lr * (1 - t) ** power (nnU-Net's 0.9)
    milestones: list[float] = field(default_factory=lambda: [0.5, 0.75])  # step: fractions
    gamma: float = 0.1  # step: the factor at each milestone
    pct_start: float = 0.3  # onecycle: fraction of the steps rising to the learning rate
    div_factor: float = 25.0  # onecycle: it starts at learning_rate / div_factor
    final_div_factor: float = 1e4  # onecycle: it ends at the start / final_div_factor


@dataclass
class TrainerConfig:
    epochs: int = MISSING
    batch_size: int = MISSING
    learning_rate: float = MISSING
    optimizer: Optimizer = MISSING
    weight_decay: float = 0.0  # AdamW / SGD decoupled decay
    momentum: float = 0.0  # SGD / RMSprop
    nesterov: bool = False  # SGD: Nesterov momentum
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    # Wall-clock limit of the training, in minutes or "H:MM": it stops after the last epoch that
    # fits (the schedule ends with it); evaluation and inference still run. null: no limit.
    time_budget: str | None = None
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
    steps_per_execution: int = 8
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
_TRAINER_BOUNDS = bounded(
    "trainer",
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


_SCHEDULE_BOUNDS = bounded(
    "trainer.schedule",
    Bound("warmup", 0, 1, high_open=True, note="a fraction of the steps"),
    Bound("min_lr", 0, 1, note="a fraction of trainer.learning_rate"),
    Bound("power", 0, low_open=True),
    Bound("gamma", 0, 1, low_open=True),
    Bound("pct_start", 0, 1, low_open=True, high_open=True),
    Bound("div_factor", 1),
    Bound("final_div_factor", 1),
)


def budget_seconds(value: str | float | None) -> float | None:
    """trainer.time_budget in seconds: minutes (a number) or "H:MM"; None for no limit."""
    if value is None or str(value).strip().lower() in ("", "null", "none"):
        return None
    text = str(value).strip()
    hours, colon, minutes = text.partition(":")
    try:
        if colon:
            h, m = float(hours), float(minutes)
            total = h * 60 + m if h >= 0 and 0 <= m < 60 else math.nan
        else:
            total = float(text)
    except ValueError:
        total = math.nan
    require(
        math.isfinite(total) and total > 0,
        "trainer.time_budget",
        f"minutes (e.g. 30) or H:MM (e.g. 1:30), more than 0; got {value!r}",
    )
    return total * 60


def _validate_schedule(schedule: DictConfig) -> None:
    check_bounds(schedule, "trainer.schedule", _SCHEDULE_BOUNDS)
    milestones = list(schedule.milestones)
    require(
        all(0 < m < 1 for m in milestones) and milestones == sorted(milestones),
        "trainer.schedule.milestones",
        f"increasing fractions of the steps in (0, 1), got {milestones}",
    )


def validate_trainer(trainer: DictConfig) -> None:
    """The trainer group: ranges, the schedule and the time budget, the run to resume, a
    strategy Keras can train under."""
    check_bounds(trainer, "trainer", _TRAINER_BOUNDS)
    _validate_schedule(trainer.schedule)
    budget_seconds(trainer.time_budget)
    mode = str(trainer.mixed_precision).lower()
    require(
        mode in MIXED_PRECISION,
        "trainer.mixed_precision",
        f"one of {' | '.join(MIXED_PRECISION)}, got {trainer.mixed_precision!r}",
    )
    _validate_resume(trainer.resume)
    if str(trainer.strategy) == "multi_worker":
        raise ConfigError(MULTI_WORKER_UNSUPPORTED)
