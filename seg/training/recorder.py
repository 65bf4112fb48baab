"""The per-epoch record of a fit and the state an interrupted run resumes from.

After every epoch :class:`EpochRecorder` saves the last checkpoint (the model's weights with
the optimizer's variables, :mod:`seg.training.checkpoints`; the history; the other callbacks'
progress), writes ``train_history.csv`` and logs the epoch's metrics to the run, in
that order, so that a resumed run logs each epoch exactly once.
"""

from __future__ import annotations

import csv
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import keras

from seg.files import write_text_whole, written_whole
from seg.training.callbacks import RunLog, current_lr
from seg.training.checkpoints import read_state, write_state

# Keras callbacks whose progress must survive an interruption, and the attributes holding it
# (their on_train_begin resets them, so a resumed fit restores them afterwards).
_PROGRESS = {
    "BestCheckpoint": ("best",),
    "EarlyStopping": ("wait", "best", "best_epoch", "stopped_epoch"),
    "ReduceLROnPlateau": ("wait", "best", "cooldown_counter"),
}


# Progress saved under another class name by earlier versions (resumed runs read it).
_PROGRESS_ALIASES = {"BestCheckpoint": "ModelCheckpoint"}
STATE_FILE = "state.json"


@dataclass
class TrainingState:
    """What the last checkpoint holds besides the weights (see :class:`EpochRecorder`)."""

    epoch: int  # the last completed epoch, 0-based
    weights: Path  # model and optimizer variables after that epoch (.weights.h5)
    history: list[dict[str, float]]  # one record per completed epoch, as logged to MLflow
    progress: dict[str, dict[str, Any]] = field(default_factory=dict)  # see _PROGRESS


def read_training_state(folder: Path) -> TrainingState | None:
    """The last checkpoint in ``folder`` (None when there is none)."""
    path = Path(folder) / STATE_FILE
    if not path.is_file():
        return None
    data = json.loads(path.read_text(encoding="utf-8"))
    return TrainingState(
        data["epoch"], Path(folder) / data["weights"], data["history"], data.get("progress", {})
    )


def write_csv(path: Path, rows: list[dict[str, float]]) -> None:
    """The history as CSV (epoch first, then sorted keys, like Keras' CSVLogger), atomically."""
    keys = sorted({k for row in rows for k in row} - {"epoch"})
    with written_whole(path) as tmp, tmp.open("w", newline="") as f:
        writer = csv.DictWriter(f, ["epoch", *keys])
        writer.writeheader()
        writer.writerows(rows)


class EpochRecorder(keras.callbacks.Callback):
    """After every epoch, in this order: the last checkpoint (weights with the optimizer state,
    the history, the other callbacks' progress), ``train_history.csv``, then the epoch's metrics
    to the run (step = epoch, 0-based like Keras; plus lr and epoch_time).

    Checkpoint first: an interruption at any instant leaves a checkpoint holding every epoch
    the run has logged, so a resumed fit logs each epoch exactly once (:meth:`log_missing`
    logs the ones saved but not yet logged). The weights file is written before ``state.json``
    names it, and ``state.json`` is replaced atomically. Must come after the callbacks whose
    progress it saves.
    """

    def __init__(
        self,
        run: RunLog,
        folder: Path,
        history_csv: Path,
        callbacks: list[keras.callbacks.Callback],
        resumed: TrainingState | None = None,
    ) -> None:
        super().__init__()
        self.run, self.folder, self.history_csv = run, Path(folder), Path(history_csv)
        self.watched = [c for c in callbacks if type(c).__name__ in _PROGRESS]
        self.resumed = resumed
        self.history: list[dict[str, float]] = list(resumed.history) if resumed else []
        self._start, self._lr = 0.0, 0.0

    def log_missing(self, logged_steps: set[int]) -> None:
        """Log the resumed history's epochs that the run lacks (saved, then interrupted)."""
        for record in self.history:
            epoch = int(record["epoch"])
            if epoch not in logged_steps:
                self.run.log_metrics({k: v for k, v in record.items() if k != "epoch"}, epoch)

    def on_train_begin(self, logs: dict | None = None) -> None:
        if self.resumed is None:
            return
        for callback in self.watched:
            name = type(callback).__name__
            saved = self.resumed.progress.get(name)
            if saved is None:
                saved = self.resumed.progress.get(_PROGRESS_ALIASES.get(name, ""), {})
            for attr, value in saved.items():
                setattr(callback, attr, value)

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        self._start = time.perf_counter()
        self._lr = current_lr(self.model)  # the rate of this epoch (ReduceLR changes it at its end)

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        record = {k: float(v) for k, v in (logs or {}).items() if k != "learning_rate"}
        record.update(lr=self._lr, epoch_time=time.perf_counter() - self._start)
        self.history.append({"epoch": epoch, **record})
        self._save(epoch)
        write_csv(self.history_csv, self.history)
        self.run.log_metrics(record, step=epoch)

    def _save(self, epoch: int) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        weights = write_state(self.model, self.folder / f"epoch_{epoch:05d}.weights.h5")
        progress = {
            type(c).__name__: {a: _plain(getattr(c, a, None)) for a in _PROGRESS[type(c).__name__]}
            for c in self.watched
        }
        state = {
            "epoch": epoch,
            "weights": weights.name,
            "history": self.history,
            "progress": progress,
        }
        write_text_whole(self.folder / STATE_FILE, json.dumps(state, indent=1))
        for callback in self.watched:  # e.g. the best checkpoint keeps this epoch's archive
            if hasattr(callback, "on_state_saved"):
                callback.on_state_saved(epoch, weights)
        for old in self.folder.glob("epoch_*.weights.h5"):
            if old != weights:
                old.unlink()


def restore_state(model: keras.Model, state: TrainingState) -> None:
    """A resumed run's model and optimizer as the last checkpoint left them (the optimizer
    built: its slots are part of the state)."""
    model.optimizer.build(model.trainable_variables)
    read_state(model, state.weights)


def _plain(value: Any) -> Any:
    """A callback's progress value as JSON (NumPy and tensor scalars become floats)."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return float(keras.ops.convert_to_numpy(value))
