"""Running the real console scripts in a subprocess, isolated in a temporary folder."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

BIN = Path(sys.executable).parent


def cli_env(cwd: Path, full_error: bool = True) -> dict[str, str]:
    """The environment of a CLI run in ``cwd``: no MLFLOW_* of the caller's (a test never
    writes to a real store), the demo cache in ``cwd``; with ``full_error``, Hydra's whole
    traceback for a failure (without it, what a user sees)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    env["SEG_CACHE_DIR"] = str(cwd / "cache")
    if full_error:
        env["HYDRA_FULL_ERROR"] = "1"
    else:
        env.pop("HYDRA_FULL_ERROR", None)
    return env


def start_cli(command: str, *overrides: str, cwd: Path) -> subprocess.Popen:
    """The CLI started in the background (to signal it, or to break its store meanwhile);
    its stderr (the log) goes to ``cwd/<command>.log`` (a pipe could fill up and block it),
    stdout is discarded."""
    with (cwd / f"{command}.log").open("w") as log:
        return subprocess.Popen(
            [str(BIN / command), *overrides],
            cwd=cwd,
            env=cli_env(cwd),
            stdout=subprocess.DEVNULL,
            stderr=log,
            text=True,
        )


def run_cli(
    command: str,
    *overrides: str,
    cwd: Path,
    timeout: float = 600,
    check: bool = True,
    full_error: bool = True,
) -> subprocess.CompletedProcess:
    """``seg-train`` / ``seg-eval`` / ``seg-infer`` with overrides, everything under ``cwd``.

    The tracking store, outputs and demo cache all live in ``cwd``; the caller's own
    MLFLOW_TRACKING_URI is removed so a test can never write to a real store.
    """
    proc = subprocess.run(
        [str(BIN / command), *overrides],
        cwd=cwd,
        env=cli_env(cwd, full_error),
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if check and proc.returncode != 0:
        raise AssertionError(
            f"{command} {' '.join(overrides)} exited {proc.returncode}\n"
            f"--- stdout\n{proc.stdout[-4000:]}\n--- stderr\n{proc.stderr[-6000:]}"
        )
    return proc


def tracking_uri(cwd: Path) -> str:
    """The store a run in ``cwd`` writes to by default (MLflow's SQLite default there)."""
    return f"sqlite:///{cwd / 'mlflow.db'}"
