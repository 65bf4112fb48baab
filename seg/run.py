"""One run: open the MLflow run, log what defines it, execute the configured stages, close it.

The run ends FINISHED, or FAILED/KILLED with the reason, whatever a stage does.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from seg.config import resume_target, validate
from seg.errors import ConfigError, TrackingPending

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Launch:
    """Facts of the launch that Hydra knows (seg.cli fills them in)."""

    output_dir: str
    overrides: list[str] = field(default_factory=list)
    job_num: int | None = None
    sweep_dir: str | None = None
    config_name: str = "train"
    parent_run_id: str | None = None  # the sweep's MLflow run (seg.sweep)
    run_name: str | None = None  # a sweep job's: its number and swept values (seg.sweep)
    threads: int | None = None  # TensorFlow threads of a job sharing the machine (seg.sweep)


@dataclass
class Context:
    """What stages share: the config, the run's folder and tracker, and each other's results."""

    cfg: DictConfig
    output_dir: Path
    tracker: Any  # seg.tracking.Tracker
    model: Any = None  # keras.Model trained (best weights) or loaded from cfg.checkpoint
    # seg.data.pipeline.Preprocessing the model was trained with: set with the model
    preprocessing: Any = None
    results: dict[str, float] = field(default_factory=dict)
    resume: Any = None  # seg.resume.Resume when this run continues an interrupted one

    def trained_or_loaded_model(self) -> Any:
        """The model, and :attr:`preprocessing` beside it: the one saved with a loaded model."""
        if self.model is None:
            from seg.tracking import load_model_and_preprocessing

            loaded = load_model_and_preprocessing(
                self.cfg.checkpoint, self.cfg.mlflow.tracking_uri,
                trust=bool(self.cfg.get("trust_checkpoint")),
            )
            self.model = loaded.model
            self.preprocessing = self._model_preprocessing(loaded.preprocessing, loaded.source)
        if self.preprocessing is None:  # a model set by hand: the configured preprocessing
            from seg.data.dataset import preprocessing_from_config

            self.preprocessing = preprocessing_from_config(self.cfg.dataset)
        return self.model

    def palette(self, num_classes: int, prep: Any = None) -> Any:
        """Class colours (np.ndarray; None for binary): inference.palette, else the colours of
        the colour-coded masks of ``prep`` (default: the model's preprocessing), else the
        default palette."""
        from seg.classes import palette

        prep = prep or self.preprocessing
        mask_colors = prep.mask.colors if prep is not None else ()
        return palette(num_classes, self.cfg.inference.get("palette"), mask_colors)

    def _model_preprocessing(self, spec: dict | None, source: str | None) -> Any:
        """The saved spec, or (older models, bare .keras files) the configured one, loudly."""
        from seg.data.dataset import preprocessing_from_config
        from seg.data.pipeline import Preprocessing
        from seg.data.preprocess import differences

        configured = preprocessing_from_config(self.cfg.dataset)
        if spec is None:
            log.warning(
                "checkpoint=%s: no preprocessing.json saved with the model; images are prepared "
                "as dataset.preprocess of this config says, which must match its training",
                self.cfg.checkpoint,
            )
            return configured
        saved = Preprocessing.from_dict(spec, source or str(self.cfg.checkpoint))
        log.info("preprocessing of the model from %s", source)
        if saved.image != configured.image:
            log.warning("the model's dataset.preprocess is used, not this config's: %s",
                        differences(saved.image.to_dict(), configured.image.to_dict()))
        return saved


def seed_everything(seed: int, deterministic: bool) -> None:
    """Seed Python, NumPy and TensorFlow (the old scripts never did)."""
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(seed)
    if deterministic:
        tf.config.experimental.enable_op_determinism()


def _tags(cfg: DictConfig, launch: Launch) -> dict[str, str]:
    from seg.tracking import git_commit

    tags = {
        "seg.task": cfg.task_name,
        "seg.stages": ",".join(str(getattr(s, "value", s)) for s in cfg.stages),
        "seg.overrides": " ".join(launch.overrides),
        "seg.output_dir": launch.output_dir,
        **{str(k): str(v) for k, v in cfg.mlflow.tags.items()},
    }
    commit = git_commit()
    if commit:
        tags["mlflow.source.git.commit"] = commit
    if launch.job_num is not None:
        tags["seg.job_num"] = str(launch.job_num)
        tags["seg.sweep_dir"] = str(launch.sweep_dir)
    if cfg.checkpoint:
        tags["seg.checkpoint"] = str(cfg.checkpoint)
    return tags


def _log_definition(ctx: Context, launch: Launch) -> None:
    """Params (flattened resolved config), config.yaml and overrides.yaml."""
    from seg.tracking import flatten

    resolved = OmegaConf.to_container(ctx.cfg, resolve=True, enum_to_str=True)
    ctx.tracker.log_params(flatten(resolved))
    ctx.tracker.log_text(OmegaConf.to_yaml(resolved), "config.yaml")
    ctx.tracker.log_text(OmegaConf.to_yaml(list(launch.overrides)), "overrides.yaml")


def _prepare_tensorflow(cfg: DictConfig, launch: Launch) -> None:
    """Threads and logical devices (before TensorFlow starts), then the seeds."""
    from seg.distribute import configure_tensorflow

    trainer = cfg.get("trainer")
    threads = trainer.threads if trainer and trainer.threads else launch.threads
    configure_tensorflow(threads, trainer.logical_cpus if trainer else None)
    if launch.job_num is not None:  # jobs of a sweep may share this process: start afresh
        import keras

        keras.backend.clear_session()
    seed_everything(cfg.seed, bool(trainer and trainer.deterministic))


def _open_run(cfg: DictConfig, launch: Launch, resume: Any, output_dir: Path) -> Any:
    """The run's tracker: a new MLflow run (a sweep's child under -m), or the interrupted run
    when resuming; records the store cannot take wait in ``output_dir``'s spool."""
    from seg.spool import SPOOL_DIR
    from seg.tracking import Tracker

    tracking = (cfg.mlflow.tracking_uri, cfg.mlflow.experiment_name)
    outage = {"spool_dir": output_dir / SPOOL_DIR, "outage_wait": cfg.mlflow.outage_wait}
    if resume is not None:
        return Tracker(*tracking, tags={"seg.resumed_in": launch.output_dir},
                       run_id=resume.run_id, **outage)
    return Tracker(*tracking, cfg.mlflow.run_name or launch.run_name, _tags(cfg, launch),
                   parent_run_id=launch.parent_run_id, **outage)


def _objective(cfg: DictConfig, ctx: Context) -> float | None:
    metric = cfg.get("optimized_metric")
    if not metric:
        return None
    if metric not in ctx.results:
        raise ConfigError(
            f"optimized_metric={metric}: not produced by this run; "
            f"available: {', '.join(sorted(ctx.results))}"
        )
    return ctx.results[metric]


def _check_inputs(ctx: Context, launch: Launch) -> None:
    """Files first (a bad one fails in a second, before TensorFlow starts), then TensorFlow's
    threads and seeds, then the model (size rule, or the checkpoint loaded once)."""
    from seg.preflight import check_files, check_model

    check_files(ctx.cfg)
    _prepare_tensorflow(ctx.cfg, launch)
    check_model(ctx)


def _run_stages(ctx: Context, launch: Launch) -> float | None:
    """The configured stages in the open run; ``optimized_metric``'s value."""
    from seg.stages import STAGES
    from seg.tracking import OBJECTIVE

    cfg, resume, output_dir = ctx.cfg, ctx.resume, ctx.output_dir
    if resume is None:  # first, so that a sweep's failing job still shows its values
        _log_definition(ctx, launch)
    if launch.job_num is not None:
        validate(cfg)
        if cfg.get("trainer") and resume_target(cfg.trainer.resume):
            raise ConfigError("trainer.resume: resume a sweep's job as a single run: "
                              "seg-train <its overrides> trainer.resume=<its run id>")
        _check_inputs(ctx, launch)
    if resume is not None:
        OmegaConf.update(cfg, "paths.output_dir", str(output_dir))
        log.info("resuming run %s in %s after epoch %d", resume.run_id, output_dir,
                 resume.state.epoch)
    output_dir.mkdir(parents=True, exist_ok=True)
    for stage in cfg.stages:
        name = str(getattr(stage, "value", stage))
        log.info("stage %s", name)
        STAGES[name](ctx)
    objective = _objective(cfg, ctx)
    if objective is not None:
        ctx.tracker.log_metrics({OBJECTIVE: objective})
    return objective


def execute(cfg: DictConfig, launch: Launch) -> float | None:
    """Run the configured stages in one MLflow run; return ``optimized_metric`` for sweepers.

    A single run checks its config and everything it will read (seg.preflight) before anything
    is logged or written. A sweep's job checks them inside its run, so that a job with a bad
    value still shows as a FAILED child of the sweep.
    """
    single = launch.job_num is None
    if single:
        validate(cfg)
    from seg.resume import find_run_to_resume

    resume = find_run_to_resume(cfg) if single else None
    # A resumed run goes on in the interrupted run's folder.
    output_dir = resume.output_dir if resume is not None else Path(launch.output_dir)
    ctx = Context(cfg, output_dir, tracker=None, resume=resume)
    if single:
        _check_inputs(ctx, launch)
    tracker = ctx.tracker = _open_run(cfg, launch, resume, output_dir)
    try:
        with tracker:
            objective = _run_stages(ctx, launch)
    except TrackingPending as pending:
        if single:
            raise
        # A sweep's job: its value still reaches the sweeper; the sweep's summary waits for
        # these records (seg.sweep_summary).
        log.error("%s", pending)
    log.info("outputs in %s; MLflow run %s", output_dir, tracker.run_id)
    return objective
