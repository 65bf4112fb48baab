"""``trainer.time_budget``: training that ends in time, with its schedule ending with it.

After every epoch :class:`TimeBudget` predicts how many more epochs fit the budget from the mean
epoch so far (validation included), leaving out the fit's first epoch once there are others: it
also traces the graphs, a one-off cost that would make a short budget expect too few epochs. It
stops the fit cleanly at the end of the last one that fits. The learning-rate schedule is
shortened (or lengthened, as the estimate improves) to the epochs that fit, from the current step
on, so a cosine or poly schedule reaches its end when the training does instead of being cut off
in the middle. A batch that ends past the budget stops the epoch there (its validation still
runs): the budget is kept within about one epoch's validation.
"""

from __future__ import annotations

import logging
import math
import time

import keras

from seg.training.schedules import ScheduleLR

log = logging.getLogger(__name__)


class TimeBudget(keras.callbacks.Callback):
    """Stop training when the next epoch would not fit ``seconds``; keep ``schedule`` (if
    any) to ``steps_per_epoch`` x the epochs that fit."""

    def __init__(
        self,
        seconds: float,
        epochs: int,
        steps_per_epoch: int,
        schedule: ScheduleLR | None = None,
        initial_epoch: int = 0,
    ) -> None:
        super().__init__()
        self.seconds, self.epochs, self.steps_per_epoch = seconds, epochs, steps_per_epoch
        self.schedule, self.initial_epoch = schedule, initial_epoch
        self.start = 0.0
        self.stopped_after: int | None = None  # the last epoch trained (0-based), if stopped
        self.done = 0  # epochs completed in this fit
        self.first = 0.0  # seconds of this fit's first epoch (graph tracing included)

    def on_train_begin(self, logs: dict | None = None) -> None:
        self.start = time.perf_counter()

    def elapsed(self) -> float:
        return time.perf_counter() - self.start

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        if self.elapsed() > self.seconds:
            self.model.stop_training = True  # Keras ends the epoch here; validation still runs

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        self.done += 1
        elapsed = self.elapsed()
        if self.done == 1:
            self.first = elapsed
        per_epoch = (elapsed - self.first) / (self.done - 1) if self.done > 1 else elapsed
        fit = (
            self.initial_epoch
            + self.done
            + max(0, math.floor((self.seconds - elapsed) / per_epoch))
        )
        total = min(self.epochs, fit)
        if self.schedule is not None:
            at = int(keras.ops.convert_to_numpy(self.model.optimizer.iterations))
            self.schedule.set_total_steps(total * self.steps_per_epoch, at_step=at)
        if (epoch + 1 >= total and epoch + 1 < self.epochs) or elapsed > self.seconds:
            self.model.stop_training = True
        if self.model.stop_training and epoch + 1 < self.epochs:
            self.stopped_after = epoch

    def report(self) -> str | None:
        """What the budget did, for the run's tag and log (None: it never had to stop)."""
        if self.stopped_after is None:
            return None
        return (
            f"stopped after epoch {self.stopped_after + 1} of {self.epochs}: "
            f"{self.elapsed() / 60:.1f} min of a {self.seconds / 60:g}-minute budget"
        )
