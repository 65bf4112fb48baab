"""The checks of a composed config that its types cannot express, run before any work.

Each group checks itself (``validate_<group>`` beside its schema); :func:`validate` adds what
holds between groups and what a task needs, and names the key at fault.
"""

from __future__ import annotations

from omegaconf import DictConfig, OmegaConf

from seg.config.augmentation import check_augmentation
from seg.config.bounds import require, require_finite, require_in
from seg.config.callbacks import validate_callbacks
from seg.config.dataset import validate_dataset
from seg.config.inference import validate_inference
from seg.config.loss import validate_loss
from seg.config.pretrained import check_model_weights
from seg.config.run import Stage
from seg.config.targets import check_target
from seg.config.trainer import validate_trainer

TRAINING_GROUPS = ("model", "loss", "trainer", "callbacks", "augmentation")


def _validate_run(cfg: DictConfig) -> list[str]:
    """Mandatory values, finite numbers, the seed and the stages; the stages' names."""
    missing = sorted(OmegaConf.missing_keys(cfg))
    require(
        not missing,
        ", ".join(missing),
        "mandatory value(s) not set: give them on the command line, e.g. "
        + " ".join(f"{k}=..." for k in missing),
    )
    require_finite(cfg)
    # NumPy's seed (keras.utils.set_random_seed) takes 0..2**32-1 only: fail here, not at start.
    require_in(cfg.seed, "seed", 0, 2**32 - 1)
    stages = [Stage(s).value for s in cfg.stages]
    require(bool(stages), "stages", "list at least one of train, evaluate, infer")
    require_in(cfg.mlflow.get("outage_wait", 0.0), "mlflow.outage_wait", 0, note="seconds")
    for key in ("experiment_name", "run_name", "tracking_uri", "register_model"):
        value = cfg.mlflow.get(key)
        require(
            value is None or bool(str(value).strip()),
            f"mlflow.{key}",
            "is empty: give a name, or leave the default"
            + (" (null: a name made from the run's config)" if key == "run_name" else ""),
        )
    require(
        not cfg.mlflow.get("register_model") or bool(cfg.mlflow.log_model),
        "mlflow.register_model",
        "registers the run's logged model: set mlflow.log_model=true (or register_model=null)",
    )
    metric = cfg.get("optimized_metric")
    if metric and "loss" in metric:
        require(
            str(cfg.optimized_direction) == "minimize",
            "optimized_direction",
            f"optimized_metric={metric} is a loss: set optimized_direction=minimize",
        )
    return stages


def _validate_training(cfg: DictConfig) -> None:
    """The groups the train stage needs, each checked."""
    for group in TRAINING_GROUPS:
        require(cfg.get(group) is not None, group, "the train stage needs this group")
    check_target(cfg.model._target_, "model")
    check_model_weights(cfg.model)  # a local file: nothing is downloaded at run time
    if cfg.model.get("weights") is not None:  # pretrained: the model normalises its input
        require(
            str(cfg.dataset.preprocess.normalize) == "unit",
            "dataset.preprocess.normalize",
            f"must be unit with pretrained weights (model.weights): the model applies the "
            f"ImageNet normalisation its encoder expects itself, got "
            f"{cfg.dataset.preprocess.normalize}",
        )
    validate_trainer(cfg.trainer)
    validate_callbacks(cfg.callbacks)
    check_augmentation(cfg.augmentation)


def _validate_model_source(cfg: DictConfig, stages: list[str]) -> None:
    """Without training, the model comes from checkpoint=; seg-infer needs its input."""
    require(
        cfg.checkpoint is not None,
        "checkpoint",
        "without the train stage, name a model: checkpoint=<run id | models:/... | "
        "runs:/... | path/to/model.keras>",
    )
    if "infer" in stages:
        require(cfg.input is not None, "input", "name a folder, a glob or an image file")


def validate(cfg: DictConfig) -> None:
    """Check what the types cannot: ranges and the fields a task needs. Names the key."""
    stages = _validate_run(cfg)
    validate_dataset(cfg.dataset)
    validate_loss(cfg)
    training = "train" in stages
    if training:
        _validate_training(cfg)
    else:
        _validate_model_source(cfg, stages)
    size = tuple(int(s) for s in cfg.dataset.image_size)
    # a model trained here takes dataset.image_size, and its test-time augmentation must too
    validate_inference(cfg.inference, int(cfg.dataset.num_classes), size if training else None)
