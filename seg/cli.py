"""Thin Hydra entry points: seg-train, seg-eval, seg-infer.

They compose the config, hand it with the launch facts to :func:`seg.runner.run.execute` and turn a
user error into one clear line. TensorFlow is imported only once a config has composed, so a
typo fails in a second.
"""

from __future__ import annotations

import logging
import os
import sys
import warnings

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

from seg import composition
from seg.config import CONF_DIR
from seg.config.registration import register
from seg.errors import SegError
from seg.planning.run import run_plan
from seg.runner.context import Launch
from seg.runner.export import run_export
from seg.runner.run import execute
from seg.runner.sweep import (
    interrupt_on_sigterm,
    job_run_name,
    job_swept_keys,
    job_threads,
    parent_run_id,
)

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # keep TF's C++ start-up chatter out of logs
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
# MLflow's usage telemetry calls a server at start and waits for it at exit (seconds, here
# where it cannot be reached); it stays off unless a user sets MLFLOW_DISABLE_TELEMETRY=false.
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")

log = logging.getLogger("seg")
INTERRUPTED_EXIT_CODE = 130  # the shell's code for a job stopped by Ctrl-C (128 + SIGINT)

register()
composition.install()  # composition errors: one line, exit 2
# A log file on a full disk must not print a traceback per log line (logging's own default);
# nor must the clean-up failures that h5py and TensorFlow report as "Exception ignored" after
# a failed write: the error itself reaches the user as one line.
logging.raiseExceptions = False
# seg's configs add ./conf to Hydra's search path (the project's own configs); a directory
# without one is the usual case, not a problem to warn about.
warnings.filterwarnings("ignore", message=r"provider=hydra\.searchpath in main, path=conf is not")
sys.unraisablehook = lambda unraisable: log.debug(
    "ignored in %r: %s", unraisable.object, unraisable.exc_value
)


def _launch_facts() -> dict[str, object]:
    """What Hydra knows about this launch, as plain values (seg.runner does not import
    Hydra)."""
    hc = HydraConfig.get()
    multirun = hc.mode == RunMode.MULTIRUN
    return {
        "output_dir": hc.runtime.output_dir,
        "overrides": list(hc.overrides.task),
        "job_num": hc.job.num if multirun else None,
        "sweep_dir": hc.sweep.dir if multirun else None,
        "config_name": hc.job.config_name,
        "parent_run_id": parent_run_id() if multirun else None,
        "run_name": job_run_name(hc.job.num, list(hc.overrides.task)) if multirun else None,
        "threads": job_threads(hc.launcher) if multirun else None,
        "swept": job_swept_keys() if multirun else [],
    }


def interrupted_message(err: KeyboardInterrupt, task: str) -> str:
    """One line for Ctrl-C/SIGTERM instead of a traceback: what was kept, how to go on."""
    message = f"interrupted ({err or 'Ctrl-C'}); a run already open ended KILLED"
    if task == "train":
        message += (
            ", its completed epochs and checkpoints/last kept: continue it with "
            "seg-train <the same overrides> trainer.resume=true (or =<run id>)"
        )
    return message


def _execute(cfg: DictConfig) -> float | None:
    """One run. In a sweep a failed job returns no value instead of raising, so the sweep goes
    on (Hydra's basic sweeper stops at the first exception); its MLflow run is FAILED with the
    error, and the sweep's end reports it."""
    interrupt_on_sigterm()
    launch = Launch(**_launch_facts())
    try:
        return execute(cfg, launch)
    except SegError as err:
        log.error("%s", err)
        if launch.job_num is None:
            sys.exit(err.exit_code)
    except KeyboardInterrupt as err:
        if launch.job_num is not None:
            raise  # the sweep stops; seg.runner.sweep ends its parent run KILLED
        log.error("%s", interrupted_message(err, str(cfg.task_name)))
        sys.exit(INTERRUPTED_EXIT_CODE)
    except Exception as err:
        if launch.job_num is None:
            if (problem := composition.write_problem(err)) is None:
                raise
            log.error("%s", problem)  # a full disk, a read-only folder...: one line
            composition.leave(composition.EXIT_CODE, after_failed_write=True)
        log.exception("job %d failed", launch.job_num)
    log.error("job %d failed; the sweep goes on without it", launch.job_num)
    return None


@hydra.main(version_base="1.3", config_path=CONF_DIR, config_name="train")
def train(cfg: DictConfig) -> float | None:
    """Train, evaluate and infer as listed in `stages`, all logged to one MLflow run."""
    return _execute(cfg)


@hydra.main(version_base="1.3", config_path=CONF_DIR, config_name="eval")
def evaluate(cfg: DictConfig) -> float | None:
    """Evaluate a trained model (checkpoint=...) on a split or a folder with masks."""
    return _execute(cfg)


@hydra.main(version_base="1.3", config_path=CONF_DIR, config_name="infer")
def infer(cfg: DictConfig) -> float | None:
    """Write masks and overlays for a folder, a glob or one image (checkpoint=..., input=...)."""
    return _execute(cfg)


@hydra.main(version_base="1.3", config_path=CONF_DIR, config_name="export")
def export(cfg: DictConfig) -> None:
    """Export a trained model for deployment (seg.runner.export)."""
    try:
        run_export(cfg)
    except SegError as err:
        log.error("%s", err)
        sys.exit(err.exit_code)


@hydra.main(version_base="1.3", config_path=CONF_DIR, config_name="plan")
def plan(cfg: DictConfig) -> None:
    """Read a dataset once and write a planned experiment for it (seg.planning)."""
    try:
        hc = HydraConfig.get()
        run_plan(cfg, list(hc.overrides.task), str(hc.runtime.choices.get("dataset", "folder")))
    except SegError as err:
        log.error("%s", err)
        sys.exit(err.exit_code)
