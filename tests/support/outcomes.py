"""What a refused command must leave behind, checked alike by the bad-input tests: no MLflow
run in the store, no output beyond Hydra's own files, and the one error line it printed."""

from __future__ import annotations

from pathlib import Path

from mlflow.tracking import MlflowClient

from tests.support.cli import tracking_uri


def runs_in_store(cwd: Path) -> list:
    """Every MLflow run in the store of ``cwd`` (none if the store was never created)."""
    if not (cwd / "mlflow.db").exists():
        return []
    client = MlflowClient(tracking_uri(cwd))
    ids = [e.experiment_id for e in client.search_experiments()]
    return client.search_runs(ids) if ids else []


def hydra_files_only(cwd: Path) -> None:
    """The run directories hold Hydra's own files (.hydra/, the log) and nothing else."""
    for path in (cwd / "outputs").rglob("*"):
        if path.is_file():
            assert ".hydra" in path.parts or path.suffix == ".log", path


def error_lines(stderr: str) -> list[str]:
    """The lines a command printed as errors (seg's logged errors and its one-line ones)."""
    return [line for line in stderr.splitlines() if "ERROR" in line or line.startswith("error:")]
