"""The primary config of every entry point (stages, seed, what to evaluate or infer, the
groups), and the paths and MLflow groups."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from omegaconf import MISSING

from seg.config.augmentation import AugmentationConfig
from seg.config.callbacks import CallbacksConfig
from seg.config.dataset import DatasetConfig
from seg.config.inference import InferenceConfig
from seg.config.trainer import TrainerConfig


class Stage(StrEnum):
    train = "train"
    evaluate = "evaluate"
    infer = "infer"


class Direction(StrEnum):
    """Whether a sweep looks for the largest or the smallest ``optimized_metric``."""

    maximize = "maximize"
    minimize = "minimize"


@dataclass
class PathsConfig:
    root_dir: str = MISSING  # where the command runs; outputs/ and mlflow.db live here
    log_dir: str = MISSING  # Hydra run and sweep directories
    cache_dir: str = MISSING  # generated demo data
    output_dir: str = MISSING  # this run's directory (set by Hydra)


@dataclass
class MlflowConfig:
    tracking_uri: str = MISSING
    experiment_name: str = MISSING
    run_name: str | None = None
    log_model: bool = True
    # The run's model registered as a new version of this registered model (MLflow's model
    # registry); a sweep gives its best job's version the alias "champion". null: not.
    register_model: str | None = None
    tags: dict[str, str] = field(default_factory=dict)
    outage_wait: float = (
        60.0  # s to wait at a run's end for an unreachable store (seg.tracking.spool)
    )


@dataclass
class RunConfig:
    """The primary config of every entry point; groups a task does not use stay null."""

    task_name: str = MISSING
    stages: list[Stage] = MISSING
    seed: int = 42
    checkpoint: str | None = None  # MLflow run id, models:/ or runs:/ URI, or a .keras file
    # Load model files with Keras' safe mode off (they may hold Python code, e.g. a Lambda
    # layer, which then runs): only for files whose source you trust (seg/training/model_files.py).
    trust_checkpoint: bool = False
    split: str = "test"  # split evaluated by seg-eval (dataset.splits key or folder name)
    data_dir: str | None = None  # seg-eval: a folder holding images/ and masks/ instead
    input: str | None = None  # seg-infer: a folder, a glob or one image file
    output: str | None = None  # seg-infer: where masks and overlays go (default: run dir)
    optimized_metric: str | None = None  # returned to Hydra sweepers
    optimized_direction: Direction = Direction.maximize  # how a sweep picks its best job
    paths: PathsConfig = field(default_factory=PathsConfig)
    dataset: DatasetConfig = field(default_factory=DatasetConfig)
    model: Any = None
    # LossConfig or CompoundLossConfig (binary), CategoricalLossConfig: chosen by the loss YAML
    loss: Any = None
    augmentation: AugmentationConfig | None = None
    callbacks: CallbacksConfig | None = None
    trainer: TrainerConfig | None = None
    inference: InferenceConfig = field(default_factory=InferenceConfig)
    mlflow: MlflowConfig = field(default_factory=MlflowConfig)
    # What seg-plan read and chose for an experiment it wrote (its fingerprint and choices):
    # logged with the run as plan.yaml, not as params.
    plan: Any = None


@dataclass
class PlanConfig:
    """seg-plan: read a dataset once, write an experiment for it (seg.planning)."""

    task_name: str = "plan"
    budget: float = 30.0  # minutes of training the plan is for
    name: str | None = None  # the experiment's name; null: dataset.name
    conf_dir: str = MISSING  # where conf/experiment/<name>.yaml goes (the user's config dir)
    overwrite: bool = False  # replace an experiment file of that name
    paths: PathsConfig = field(default_factory=PathsConfig)
    dataset: DatasetConfig = field(default_factory=DatasetConfig)


class ExportFormat(StrEnum):
    """What seg-export writes: a TensorFlow SavedModel, ONNX, or TFLite (LiteRT)."""

    saved_model = "saved_model"
    onnx = "onnx"
    tflite = "tflite"


@dataclass
class ExportConfig:
    """seg-export: a trained model for deployment (seg.runner.export)."""

    task_name: str = "export"
    checkpoint: str = MISSING  # MLflow run id, models:/ or runs:/ URI, or a .keras file
    # Load a model file with Keras' safe mode off (it may hold Python code, which then runs):
    # only for files whose source you trust (seg/training/model_files.py).
    trust_checkpoint: bool = False
    format: ExportFormat = ExportFormat.saved_model
    output: str = MISSING  # the folder the export goes to: new, or empty (or overwrite=true)
    overwrite: bool = False  # replace an existing export folder
    paths: PathsConfig = field(default_factory=PathsConfig)
    dataset: DatasetConfig = field(default_factory=DatasetConfig)  # a bare file's preprocessing
    mlflow: MlflowConfig = field(default_factory=MlflowConfig)
