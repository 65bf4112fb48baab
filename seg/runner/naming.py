"""What a run is called, in which experiment it goes and whose child it is, so that the MLflow
UI's run list tells runs apart and puts each where one looks for it.

- A training run: its model and loss and the overrides that make it differ from the defaults
  (``unet bce_dice learning_rate=0.003``); a sweep's job: its number and swept values
  (``#3 model.base_filters=8 loss=bce_iou``, seg.runner.sweep).
- An evaluation or inference run: ``eval <the training run's name> on test`` (or ``on <the
  folder>``), nested under the training run it uses (``mlflow.parentRunId``) and in that run's
  experiment; from a bare ``.keras`` file, in an experiment named for the data it reads.
- Unique in its experiment (`` (2)``, `` (3)`` ...). ``mlflow.run_name`` and
  ``mlflow.experiment_name`` given by the user win.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from omegaconf import DictConfig

from seg.config.model import MODEL_SCHEMAS
from seg.tracking.naming import is_machine_key

MAX_NAME = 120  # characters: the run list shows about this much
# Overrides that never name a run: the machine keys (where things are: seg.tracking.naming),
# MLflow's and Hydra's own settings, the groups the name states anyway, and the stages run.
_NOT_NAMED_PREFIXES = ("hydra.", "mlflow.")
_NOT_NAMED_KEYS = ("model", "loss", "stages")


@dataclass(frozen=True)
class Identity:
    name: str
    experiment: str
    parent_run_id: str | None = None


def model_name(cfg: DictConfig) -> str:
    """The architecture's name in the registry (its ``_target_``'s module otherwise)."""
    target = str(cfg.model.get("_target_", ""))
    found = [n for n, s in MODEL_SCHEMAS.items() if getattr(s, "_target_", None) == target]
    return found[0] if found else target.rpartition(".")[0].rpartition(".")[2] or "model"


def _shown(override: str) -> str | None:
    """``trainer.learning_rate=0.003`` -> ``learning_rate=0.003``; None for where-overrides."""
    key, _, value = override.lstrip("+~").partition("=")
    if is_machine_key(key) or key.startswith(_NOT_NAMED_PREFIXES) or key in _NOT_NAMED_KEYS:
        return None
    return f"{key.rpartition('.')[2]}={value}"


def train_name(cfg: DictConfig, overrides: list[str]) -> str:
    shown = [s for o in overrides if (s := _shown(o)) is not None]
    loss = cfg.get("loss")
    parts = [model_name(cfg), str(loss.name) if loss is not None else "", *shown]
    return " ".join(p for p in parts if p)[:MAX_NAME]


def _data_path(cfg: DictConfig) -> Path | None:
    """The folder (or file) an evaluation or inference reads, if not a split of the dataset."""
    if cfg.get("data_dir"):
        return Path(str(cfg.data_dir)).expanduser().resolve()
    if cfg.task_name == "infer" and cfg.get("input"):
        path = Path(str(cfg.input)).expanduser()
        return (path if path.is_dir() or path.is_file() else path.parent).resolve()
    return None


def data_label(cfg: DictConfig) -> str:
    """What an evaluation or inference reads: the split, or the folder's (file's) name."""
    path = _data_path(cfg)
    return path.name if path is not None else str(cfg.get("split") or "test")


# Folder names that say which part of a dataset, not which dataset.
_PART_NAMES = ("train", "training", "valid", "validation", "val", "test", "testing", "images")


def data_experiment(cfg: DictConfig) -> str:
    """The experiment of a run from a bare model file: named for the data it reads, with the
    dataset's folder in front of a part's name (``cells test``, not ``test``)."""
    path = _data_path(cfg)
    if path is None:
        return str(cfg.mlflow.experiment_name)
    parts = [path.name]
    while parts[0].lower() in _PART_NAMES and path.parent != path:
        path = path.parent
        parts.insert(0, path.name)
    return " ".join(p for p in parts if p)[:MAX_NAME]


def named_by_user(overrides: list[str], key: str) -> bool:
    return any(o.lstrip("+~").partition("=")[0] == key for o in overrides)


def source_label(checkpoint: str, source_name: str | None) -> str:
    if source_name:
        return source_name
    path = Path(checkpoint)
    return path.name if path.suffix in (".keras", ".h5") else checkpoint
