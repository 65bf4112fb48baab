"""Hydra callback: one MLflow parent run per multirun, and its summary when the sweep ends.

Configured in ``conf/hydra/default.yaml`` (``hydra.callbacks``), so every ``-m`` sweep of every
sweeper (basic grid, Optuna) and launcher (basic, joblib, submitit, Ray) gets one. The parent
is created before any job starts, which also creates a new SQLite store's schema and the
experiment once, before parallel jobs open the store. Jobs learn its id in ``on_job_start``,
which Hydra calls in whichever process runs the job (the callback travels with the job to
joblib, submitit and Ray workers), and their runs become its children (``mlflow.parentRunId``).

When the sweep ends, the parent gets the table of its children (``sweep_runs.csv``, also
written to the sweep dir), the best child by ``optimized_metric``, Hydra's ``multirun.yaml``
and Optuna's ``optimization_results.yaml``. A failed job does not stop the sweep (the job
returns no value, see :mod:`seg.cli`); the command exits 1 when any job failed.
"""

from __future__ import annotations

import atexit
import logging
import math
import os
import signal
import sys
from pathlib import Path
from typing import Any

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from seg import machine
from seg.errors import TrackingPending
from seg.runner.context import git_commit

log = logging.getLogger(__name__)

# Set for each job by on_job_start: the parent run, and the keys the sweep varies.
PARENT_RUN_ENV = "SEG_SWEEP_PARENT_RUN_ID"
SWEPT_KEYS_ENV = "SEG_SWEEP_KEYS"


def _terminate(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"terminated by signal {signum}")


def interrupt_on_sigterm() -> None:
    """SIGTERM (a scheduler, `kill`) unwinds like Ctrl-C, so open MLflow runs end KILLED."""
    signal.signal(signal.SIGTERM, _terminate)


def parent_run_id() -> str | None:
    """The parent run of the sweep this job belongs to (None outside a sweep)."""
    return os.environ.get(PARENT_RUN_ENV) or None


def _short_name(target: str | None) -> str:
    """hydra_plugins.hydra_joblib_launcher.joblib_launcher.JoblibLauncher -> JoblibLauncher."""
    return str(target or "").rsplit(".", 1)[-1]


def _parse(overrides: list[str]) -> list[Any] | None:
    try:
        return OverridesParser.create().parse_overrides(overrides)
    except Exception:  # e.g. glob() of a config group, which needs the config loader
        return None


def _search_overrides(hydra_cfg: DictConfig, overrides: list[str]) -> list[str]:
    """The sweep's own overrides and its sweeper's search space (hydra.sweeper.params)."""
    params = [f"{k}={v}" for k, v in (hydra_cfg.sweeper.get("params") or {}).items()]
    return [*params, *overrides]


def _swept_keys(hydra_cfg: DictConfig, overrides: list[str]) -> list[str]:
    """Keys whose value changes from job to job."""
    parsed = _parse(_search_overrides(hydra_cfg, overrides)) or []
    return [o.get_key_element().lstrip("+~") for o in parsed if o.is_sweep_override()]


def _planned_jobs(hydra_cfg: DictConfig, overrides: list[str]) -> int | None:
    """Jobs the sweep will launch: Optuna's n_trials, the grid's size for the basic sweeper."""
    sweeper = hydra_cfg.sweeper
    if "n_trials" in sweeper:
        return int(sweeper.n_trials)
    if _short_name(sweeper.get("_target_")) != "BasicSweeper":
        return None
    parsed = _parse(_search_overrides(hydra_cfg, overrides))
    if parsed is None:
        return None
    return math.prod(len(list(o.sweep_string_iterator())) for o in parsed if o.is_sweep_override())


def job_swept_keys() -> list[str]:
    """In a job's process: the keys its sweep varies (set by the sweep's on_job_start)."""
    return [k for k in os.environ.get(SWEPT_KEYS_ENV, "").split(",") if k]


def job_run_name(job_num: int, overrides: list[str]) -> str:
    """#3 model.base_filters=8 loss=bce_iou: the job's number and the values the sweep varies
    (all its overrides when the sweep's keys are unknown)."""
    swept = job_swept_keys()
    shown = [o for o in overrides if o.partition("=")[0].lstrip("+~") in swept] or overrides
    return f"#{job_num} {' '.join(shown)}"[:200]


def parallel_jobs(launcher: DictConfig) -> int:
    """Jobs the launcher runs at once on this machine (joblib's n_jobs; 1 for the others)."""
    n_jobs = launcher.get("n_jobs")
    if n_jobs is None:
        return 1
    return machine.cpu_count() + 1 + int(n_jobs) if int(n_jobs) < 0 else int(n_jobs)


def job_threads(launcher: DictConfig) -> int | None:
    """TensorFlow threads of one job so the launcher's parallel jobs share the cores without
    oversubscribing them: cores // n_jobs for joblib, the CPUs a Ray task reserves; None (all
    cores) when a job has the machine or its allocation (basic, submitit) to itself."""
    ray_cpus = OmegaConf.select(launcher, "ray.remote.num_cpus")
    if ray_cpus is not None:
        return max(1, int(ray_cpus))
    return machine.threads_per_job(parallel_jobs(launcher))


class MlflowSweep(Callback):
    """The parent MLflow run of a Hydra multirun (see the module docstring)."""

    def __init__(self) -> None:
        self.run_id: str | None = None
        self.tracking_uri: str | None = None
        self.swept_keys: list[str] = []
        self._open = False

    # -- in the process that runs the sweep --

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        from seg.tracking.sweeps import start_sweep_run  # MLflow: only when a sweep starts

        hc = config.hydra
        overrides = list(hc.overrides.task)
        sweep_dir = Path(hc.sweep.dir)
        self.tracking_uri = str(config.mlflow.tracking_uri)
        sweeper, launcher = _short_name(hc.sweeper._target_), _short_name(hc.launcher._target_)
        tags = {
            "seg.kind": "sweep",
            "seg.task": str(config.task_name),
            "seg.sweep_dir": str(sweep_dir),
            "seg.overrides": " ".join(overrides),
            **{str(k): str(v) for k, v in config.mlflow.tags.items()},
        }
        commit = git_commit()
        if commit:
            tags["mlflow.source.git.commit"] = commit
        params: dict[str, Any] = {
            "sweep.sweeper": sweeper,
            "sweep.launcher": launcher,
            # joblib's processes at once (other launchers decide elsewhere: not logged)
            "sweep.parallel_jobs": parallel_jobs(hc.launcher) if "n_jobs" in hc.launcher else None,
            "sweep.planned_jobs": _planned_jobs(hc, overrides),
            "optimized_metric": config.get("optimized_metric"),
            "optimized_direction": config.get("optimized_direction"),
        }
        typed = dict(o.partition("=")[::2] for o in overrides)
        params.update({f"sweep.{k}": v for k, v in typed.items()})
        for key, value in (hc.sweeper.get("params") or {}).items():  # as overridden, if so
            params[f"search.{key}"] = typed.get(key, value)
        self.swept_keys = _swept_keys(hc, overrides)
        tags["seg.swept"] = ",".join(self.swept_keys)  # what to pick in the UI's compare view
        name = config.mlflow.run_name or f"sweep {sweep_dir.name}"
        self.run_id = start_sweep_run(
            self.tracking_uri,
            str(config.mlflow.experiment_name),
            name,
            tags,
            {k: str(v) for k, v in params.items() if v is not None},
        )
        self._open = True
        atexit.register(self._abandoned)
        interrupt_on_sigterm()
        log.info(
            "MLflow parent run %s for the sweep in %s (%s)",
            self.run_id,
            sweep_dir,
            self.tracking_uri,
        )

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        # MLflow: loaded by the sweep's start already, here only when it ends
        from seg.tracking.sweep_summary import SummaryRequest, describe, finish_or_defer

        if not self._open:
            return
        sweep_dir = Path(config.hydra.sweep.dir)
        request = SummaryRequest(
            self.tracking_uri,
            self.run_id,
            config.get("optimized_metric"),
            str(config.get("optimized_direction", "maximize")),
            str(sweep_dir),
            [str(sweep_dir / "multirun.yaml"), str(sweep_dir / "optimization_results.yaml")],
            list(self.swept_keys),
            config.mlflow.get("register_model"),
        )
        try:
            summary = finish_or_defer(request)
        except TrackingPending as pending:
            self._open = False  # left to seg-sync, not KILLED at exit
            print(f"error: {pending}", file=sys.stderr)
            sys.exit(pending.exit_code)
        self._open = False
        log.info("%s", describe(summary, request))
        if summary.failed:
            sys.exit(
                f"error: {summary.failed} of {summary.jobs} jobs of the sweep failed; "
                f"their MLflow runs hold the errors (tag seg.error, error.txt), listed in "
                f"{summary.table}"
            )

    def _abandoned(self) -> None:
        """At exit without on_multirun_end (Ctrl-C, SIGTERM, a sweeper or launcher error)."""
        if self._open:
            from seg.tracking.store import store_unreachable  # MLflow, as above
            from seg.tracking.sweeps import end_sweep_run

            self._open = False
            try:
                end_sweep_run(
                    self.tracking_uri,
                    self.run_id,
                    "KILLED",
                    "the sweep stopped before its end (interrupted, or a launcher "
                    "or sweeper error: see its console output)",
                )
            except Exception as err:
                if not store_unreachable(err):
                    raise
                log.error(
                    "the sweep's parent run %s stays RUNNING: the tracking store %s is "
                    "unreachable (%s)",
                    self.run_id,
                    self.tracking_uri,
                    err,
                )

    # -- in the process that runs a job --

    def on_job_start(self, config: DictConfig, **kwargs: Any) -> None:
        if self.run_id is not None:
            os.environ[PARENT_RUN_ENV] = self.run_id
            os.environ[SWEPT_KEYS_ENV] = ",".join(self.swept_keys)

    def __getstate__(self) -> dict[str, Any]:
        # Jobs in other processes get a copy that must not end the parent when they exit.
        return {**self.__dict__, "_open": False}
