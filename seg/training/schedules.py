"""Learning-rate schedules by name (``trainer.schedule.name``), as one serializable Keras
schedule whose length can be set while training runs.

Every schedule is a function of the training progress ``t = step / total_steps`` in [0, 1],
after an optional linear warm-up from 0 over the first ``warmup`` fraction of the steps:

- ``constant``: the learning rate;
- ``cosine``: from the learning rate down to ``min_lr`` (a fraction of it) along a half cosine;
- ``poly``: ``lr * (1 - t) ** power`` (nnU-Net's poly with power 0.9), floored at ``min_lr``;
- ``step``: multiplied by ``gamma`` at each of the ``milestones`` (fractions of the steps);
- ``onecycle``: up from ``lr / div_factor`` to the learning rate over ``pct_start`` of the
  steps, then down along a half cosine to ``lr / div_factor / final_div_factor`` (Smith 2018).

The total is a variable: ``trainer.time_budget`` shortens it once the epochs that fit the
budget are known (seg.training.budget), so the schedule ends when the training does. A new
total takes effect from the step it is set at: the progress goes on from where it was to 1 at
the new end, so a revised estimate never moves the learning rate back up a decaying curve.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import keras
from keras import ops

SCHEDULES = ("constant", "cosine", "poly", "step", "onecycle")


@keras.saving.register_keras_serializable(package="seg")
class ScheduleLR(keras.optimizers.schedules.LearningRateSchedule):
    """The learning rate at ``step`` of ``total_steps`` for one of :data:`SCHEDULES`."""

    def __init__(
        self,
        learning_rate: float,
        total_steps: int,
        name: str = "constant",
        warmup: float = 0.0,
        min_lr: float = 0.0,
        power: float = 0.9,
        milestones: Sequence[float] = (0.5, 0.75),
        gamma: float = 0.1,
        pct_start: float = 0.3,
        div_factor: float = 25.0,
        final_div_factor: float = 1e4,
        from_step: float = 0.0,
        from_progress: float = 0.0,
    ) -> None:
        if name not in SCHEDULES:
            raise ValueError(f"schedule {name!r}: expected one of {', '.join(SCHEDULES)}")
        self.learning_rate, self.name, self.warmup = float(learning_rate), name, float(warmup)
        self.min_lr, self.power, self.gamma = float(min_lr), float(power), float(gamma)
        self.milestones = tuple(float(m) for m in milestones)
        self.pct_start, self.div_factor = float(pct_start), float(div_factor)
        self.final_div_factor = float(final_div_factor)
        self.total_steps = keras.Variable(
            max(1, int(total_steps)), dtype="float32", trainable=False, name="total_steps"
        )
        # Where the last change of total took effect: (step, progress then).
        self.from_step = keras.Variable(float(from_step), dtype="float32", trainable=False)
        self.from_progress = keras.Variable(float(from_progress), dtype="float32", trainable=False)

    def progress(self, step: Any) -> Any:
        """t in [0, 1]: linear from ``from_progress`` at ``from_step`` to 1 at the total."""
        left = ops.maximum(self.total_steps - self.from_step, 1.0)
        t = self.from_progress + (1.0 - self.from_progress) * (step - self.from_step) / left
        return ops.clip(t, 0.0, 1.0)

    def set_total_steps(self, steps: int, at_step: int | None = None) -> None:
        """Shorten (or lengthen) the schedule while training runs, from ``at_step`` on (the
        optimizer's current step; None: as if the total had always been ``steps``)."""
        if at_step is None:
            self.from_step.assign(0.0)
            self.from_progress.assign(0.0)
        else:
            now = float(keras.ops.convert_to_numpy(self.progress(float(at_step))))
            self.from_step.assign(float(at_step))
            self.from_progress.assign(now)
        self.total_steps.assign(float(max(1, int(steps))))

    def __call__(self, step: Any) -> Any:
        step = ops.cast(step, "float32")
        t = self.progress(step)
        rate = self._rate(t)
        if self.warmup > 0 and self.name != "onecycle":
            rate = rate * ops.minimum(1.0, (step + 1.0) / (self.warmup * self.total_steps + 1.0))
        return rate

    def _rate(self, t: Any) -> Any:
        lr, low = self.learning_rate, self.learning_rate * self.min_lr
        if self.name == "cosine":
            return low + (lr - low) * 0.5 * (1.0 + ops.cos(math.pi * t))
        if self.name == "poly":
            return ops.maximum(low, lr * ops.power(1.0 - t, self.power))
        if self.name == "step":
            passed = sum(ops.cast(t >= m, "float32") for m in self.milestones)
            return lr * ops.power(self.gamma, passed)
        if self.name == "onecycle":
            start = lr / self.div_factor
            end = start / self.final_div_factor
            rise = ops.clip(t / self.pct_start, 0.0, 1.0)
            fall = ops.clip((t - self.pct_start) / (1.0 - self.pct_start), 0.0, 1.0)
            up = start + (lr - start) * 0.5 * (1.0 - ops.cos(math.pi * rise))
            down = end + (lr - end) * 0.5 * (1.0 + ops.cos(math.pi * fall))
            return ops.where(t < self.pct_start, up, down)
        return ops.convert_to_tensor(lr, "float32")

    def get_config(self) -> dict[str, Any]:
        return {
            "learning_rate": self.learning_rate,
            "total_steps": int(keras.ops.convert_to_numpy(self.total_steps)),
            "name": self.name,
            "warmup": self.warmup,
            "min_lr": self.min_lr,
            "power": self.power,
            "milestones": list(self.milestones),
            "gamma": self.gamma,
            "pct_start": self.pct_start,
            "div_factor": self.div_factor,
            "final_div_factor": self.final_div_factor,
            "from_step": float(keras.ops.convert_to_numpy(self.from_step)),
            "from_progress": float(keras.ops.convert_to_numpy(self.from_progress)),
        }
