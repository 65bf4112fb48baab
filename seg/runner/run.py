"""One run: open the MLflow run, log what defines it, execute the configured stages, close it.

The run ends FINISHED, or FAILED/KILLED with the reason, whatever a stage does.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from seg.config.trainer import resume_target
from seg.config.validation import validate
from seg.errors import ConfigError, DatasetError, SegError, TrackingPending
from seg.runner.context import Context, Launch, git_commit
from seg.runner.naming import (
    MAX_NAME,
    Identity,
    data_experiment,
    data_label,
    named_by_user,
    source_label,
    train_name,
)
from seg.runner.phases import Phases
from seg.runner.preflight import check_files, check_model, check_outputs, stage_names
from seg.runner.resume import find_run_to_resume
from seg.tracking.naming import machine_tags, run_params
from seg.tracking.spool import SPOOL_DIR

log = logging.getLogger(__name__)


def seed_everything(seed: int, deterministic: bool) -> None:
    """Seed Python, NumPy and TensorFlow (the old scripts never did)."""
    # TensorFlow loads once the config and the files are checked
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(seed)
    if deterministic:
        tf.config.experimental.enable_op_determinism()


def _tags(cfg: DictConfig, launch: Launch) -> dict[str, str]:
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
        if launch.swept:
            tags["seg.swept"] = ",".join(launch.swept)
    if cfg.checkpoint:
        tags["seg.checkpoint"] = str(cfg.checkpoint)
    return tags


def _log_definition(ctx: Context, launch: Launch) -> None:
    """Params (flattened resolved config), config.yaml and overrides.yaml."""
    resolved = OmegaConf.to_container(ctx.cfg, resolve=True, enum_to_str=True)
    if plan := resolved.get("plan"):  # seg-plan's record: an artifact, not params
        ctx.tracker.log_text(OmegaConf.to_yaml(plan), "plan.yaml")
        ctx.tracker.set_tags({"seg.plan": str(plan.get("name", ""))})
    ctx.tracker.log_params(run_params(resolved))
    ctx.tracker.set_tags(machine_tags(resolved))
    ctx.tracker.log_text(OmegaConf.to_yaml(resolved), "config.yaml")
    ctx.tracker.log_text(OmegaConf.to_yaml(list(launch.overrides)), "overrides.yaml")


def _quiet_tensorflow() -> None:
    """TensorFlow imported without its start-up notices (seg.training.startup), before
    anything else imports it."""
    from seg.training.startup import import_tensorflow  # TensorFlow: what it is for

    import_tensorflow()


def _prepare_tensorflow(cfg: DictConfig, launch: Launch) -> None:
    """Threads and logical devices (before TensorFlow starts), then the seeds."""
    _quiet_tensorflow()
    from seg.training.distribute import configure_tensorflow  # TensorFlow, as above

    trainer = cfg.get("trainer")
    threads = trainer.threads if trainer and trainer.threads else launch.threads
    configure_tensorflow(threads, trainer.logical_cpus if trainer else None)
    if launch.job_num is not None:  # jobs of a sweep may share this process: start afresh
        import keras  # TensorFlow, as above

        keras.backend.clear_session()
    seed_everything(cfg.seed, bool(trainer and trainer.deterministic))


def _identity(cfg: DictConfig, launch: Launch) -> Identity:
    """The run's name, experiment and parent (seg.runner.naming)."""
    # MLflow: loaded by the tracker's import in _open_run already
    from seg.tracking.runs import find_experiment_name, source_run, unique_run_name

    uri, experiment = cfg.mlflow.tracking_uri, str(cfg.mlflow.experiment_name)
    if launch.run_name is not None:  # a sweep's job: its number and swept values
        return Identity(cfg.mlflow.run_name or launch.run_name, experiment, launch.parent_run_id)
    parent, name = launch.parent_run_id, cfg.mlflow.run_name
    if "train" in [str(s) for s in cfg.stages]:
        name = name or train_name(cfg, launch.overrides)
    else:
        source = source_run(uri, str(cfg.checkpoint))
        keep = named_by_user(launch.overrides, "mlflow.experiment_name")
        if source is not None:
            parent = parent or source.info.run_id
            if not keep:
                experiment = find_experiment_name(uri, source.info.experiment_id) or experiment
        elif (cfg.get("data_dir") or cfg.get("input")) and not keep:
            experiment = data_experiment(cfg)  # a bare model file: named for its data
        label = source_label(str(cfg.checkpoint), source.info.run_name if source else None)
        name = name or f"{cfg.task_name} {label} on {data_label(cfg)}"[:MAX_NAME]
    if not cfg.mlflow.run_name:
        name = unique_run_name(uri, experiment, name)
    return Identity(name, experiment, parent)


def _open_run(cfg: DictConfig, launch: Launch, resume: Any, output_dir: Path) -> Any:
    """The run's tracker: a new MLflow run (a sweep's child under -m, an evaluation's under
    its training run), or the interrupted run when resuming; records the store cannot take
    wait in ``output_dir``'s spool."""
    _quiet_tensorflow()  # a sweep's job opens its run before its checks; the tracker needs it
    from seg.tracking.tracker import Tracker  # MLflow loads once the files are checked

    outage = {"spool_dir": output_dir / SPOOL_DIR, "outage_wait": cfg.mlflow.outage_wait}
    if resume is not None:
        return Tracker(
            cfg.mlflow.tracking_uri,
            cfg.mlflow.experiment_name,
            tags={"seg.resumed_in": launch.output_dir},
            run_id=resume.run_id,
            **outage,
        )
    who = _identity(cfg, launch)
    return Tracker(
        cfg.mlflow.tracking_uri,
        who.experiment,
        who.name,
        _tags(cfg, launch),
        parent_run_id=who.parent_run_id,
        **outage,
    )


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


def _name_a_class_mismatch(ctx: Context, launch: Launch) -> None:
    """Masks that read wrong when evaluating a checkpoint may be masks of its other class
    count (3-class masks read as binary): raise that mismatch, the cause to name, if it is
    one. An unreadable checkpoint stays second to the files' problem, as always."""
    stages = stage_names(ctx.cfg)
    if "train" in stages or "evaluate" not in stages:
        return
    try:
        _prepare_tensorflow(ctx.cfg, launch)
        check_model(ctx)
    except ConfigError:
        raise
    except SegError:
        return


def _check_inputs(ctx: Context, launch: Launch) -> None:
    """Files first (a bad one fails in a second, before TensorFlow starts), then TensorFlow's
    threads and seeds, then the model (size rule, or the checkpoint loaded once)."""
    check_outputs(ctx.cfg, ctx.output_dir)
    try:
        check_files(ctx.cfg)
    except DatasetError as files_problem:
        _name_a_class_mismatch(ctx, launch)
        raise files_problem
    _prepare_tensorflow(ctx.cfg, launch)
    check_model(ctx)


def _run_stages(ctx: Context, launch: Launch) -> float | None:
    """The configured stages in the open run; ``optimized_metric``'s value."""
    # TensorFlow and MLflow: loaded by now, imported here to keep them off the module's start
    from seg.runner.stages import STAGES
    from seg.tracking.sweeps import OBJECTIVE

    cfg, resume, output_dir = ctx.cfg, ctx.resume, ctx.output_dir
    if resume is None:  # first, so that a sweep's failing job still shows its values
        _log_definition(ctx, launch)
    if launch.job_num is not None:
        validate(cfg)
        if cfg.get("trainer") and resume_target(cfg.trainer.resume):
            raise ConfigError(
                "trainer.resume: resume a sweep's job as a single run: "
                "seg-train <its overrides> trainer.resume=<its run id>"
            )
        with ctx.phases.timed("preflight"):
            _check_inputs(ctx, launch)
    if resume is not None:
        OmegaConf.update(cfg, "paths.output_dir", str(output_dir))
        log.info(
            "resuming run %s in %s after epoch %d", resume.run_id, output_dir, resume.state.epoch
        )
    output_dir.mkdir(parents=True, exist_ok=True)
    for stage in cfg.stages:
        name = str(getattr(stage, "value", stage))
        log.info("stage %s", name)
        with ctx.phases.timed(name):
            STAGES[name](ctx)
    objective = _objective(cfg, ctx)
    if objective is not None:
        ctx.tracker.log_metrics({OBJECTIVE: objective})
    _log_phases(ctx)
    return objective


def _log_phases(ctx: Context) -> None:
    """The time_* metrics, and one line saying where the run's time went."""
    times = ctx.phases.metrics()
    ctx.tracker.log_metrics(times)
    shown = ", ".join(f"{k.removeprefix('time_')} {v:.1f}" for k, v in times.items())
    log.info("time (s): %s", shown)


def execute(cfg: DictConfig, launch: Launch) -> float | None:
    """Run the configured stages in one MLflow run; return ``optimized_metric`` for sweepers.

    A single run checks its config and everything it will read (seg.runner.preflight) before
    anything is logged or written. A sweep's job checks them inside its run, so that a job with a
    bad value still shows as a FAILED child of the sweep.
    """
    single = launch.job_num is None
    # a sweep's job may not be its process's first: its time starts now
    phases = Phases() if single else Phases(start=time.time())
    with phases.timed("preflight"):
        if single:
            validate(cfg)
        resume = find_run_to_resume(cfg) if single else None
        # A resumed run goes on in the interrupted run's folder.
        output_dir = resume.output_dir if resume is not None else Path(launch.output_dir)
        ctx = Context(cfg, output_dir, tracker=None, resume=resume, phases=phases)
        if single:
            _check_inputs(ctx, launch)
    with phases.timed("open_run"):
        tracker = ctx.tracker = _open_run(cfg, launch, resume, output_dir)
    try:
        with tracker:
            objective = _run_stages(ctx, launch)
    except TrackingPending as pending:
        if single:
            raise
        # A sweep's job: its value still reaches the sweeper; the sweep's summary waits for
        # these records (seg.tracking.sweep_summary).
        log.error("%s", pending)
    log.info("outputs in %s; MLflow run %s", output_dir, tracker.run_id)
    return objective
