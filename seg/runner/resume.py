"""Which interrupted run ``trainer.resume`` continues, and the last checkpoint it continues from.

A resumed run is the same MLflow run (its params, curves and artifacts go on) in the same
output directory, from the checkpoint :class:`seg.training.recorder.EpochRecorder` wrote after
its last completed epoch. The config must be the run's own: resuming a run with other settings would
make its params lie, so any difference is an error naming the keys.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from omegaconf import DictConfig, OmegaConf

from seg.config.trainer import resume_target
from seg.errors import ConfigError
from seg.tracking.naming import is_machine_key, run_params

if TYPE_CHECKING:
    from seg.training.recorder import TrainingState

LAST_CHECKPOINT_DIR = Path("checkpoints") / "last"


@dataclass(frozen=True)
class Resume:
    run_id: str
    output_dir: Path
    state: TrainingState


def comparable_params(cfg: DictConfig) -> dict[str, str]:
    """The params this config logs: its design, which a resume may not change (the machine
    keys may: the resume request itself, this invocation's directory, paths, threads...)."""
    resolved = OmegaConf.to_container(cfg, resolve=True, enum_to_str=True)
    return run_params(resolved)


def _differences(ours: dict[str, str], theirs: dict[str, str]) -> list[str]:
    """The design params that differ (a run logged before the machine keys became tags still
    has them as params: they are not compared)."""
    keys = sorted(
        k
        for k in ours.keys() | theirs.keys()
        if not is_machine_key(k) and ours.get(k) != theirs.get(k)
    )
    return [f"{k}={ours.get(k)} (run: {theirs.get(k)})" for k in keys]


def _state(output_dir: str | None) -> TrainingState | None:
    from seg.training.recorder import read_training_state  # imports Keras: only when resuming

    return read_training_state(Path(output_dir) / LAST_CHECKPOINT_DIR) if output_dir else None


def find_run_to_resume(cfg: DictConfig) -> Resume | None:
    """The run trainer.resume names (None when it is not set); a clear error when there is
    none to resume."""
    from seg.tracking.runs import find_run, unfinished_runs  # MLflow: only when resuming

    target = resume_target(cfg.trainer.resume if cfg.get("trainer") else None)
    if target is None:
        return None
    uri, experiment = cfg.mlflow.tracking_uri, cfg.mlflow.experiment_name
    params = comparable_params(cfg)
    if target == "latest":
        for run in unfinished_runs(uri, experiment, str(cfg.task_name)):
            output_dir = run.data.tags.get("seg.output_dir")
            state = _state(output_dir)
            if state is not None and not _differences(params, run.data.params):
                return Resume(run.info.run_id, Path(output_dir), state)
        raise ConfigError(
            f"trainer.resume=true: experiment '{experiment}' in {uri} has no interrupted "
            "run of this config with a last checkpoint; give the same overrides as the "
            "interrupted run, or its run id: trainer.resume=<run id>"
        )
    run = find_run(uri, target)
    key = f"trainer.resume={target}"
    if run is None:
        raise ConfigError(f"{key}: no such run in {uri}")
    if run.info.status == "FINISHED":
        raise ConfigError(f"{key}: the run has FINISHED; there is nothing to resume")
    differences = _differences(params, run.data.params)
    if differences:
        raise ConfigError(
            f"{key}: this config differs from the run's: {', '.join(differences[:8])}; resume "
            f"with the run's overrides: {run.data.tags.get('seg.overrides', '')!r}"
        )
    output_dir = run.data.tags.get("seg.output_dir")
    state = _state(output_dir)
    if state is None:
        raise ConfigError(
            f"{key}: no last checkpoint in {Path(str(output_dir)) / LAST_CHECKPOINT_DIR} (the "
            "run stopped before its first epoch ended, or its directory is gone)"
        )
    return Resume(run.info.run_id, Path(output_dir), state)
