"""Kill a training run mid-epoch, resume it with trainer.resume: the same MLflow run goes on
from the last checkpoint and ends FINISHED with every epoch logged exactly once. SIGTERM (a
scheduler, `kill`) ends the run KILLED first; SIGKILL leaves it RUNNING."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from tests.support.cli import run_cli, start_cli, tracking_uri

pytestmark = pytest.mark.slow

EPOCHS = 3
# Epochs of a second or more (12 steps), so that the kill lands inside a later epoch.
RUN = [
    "debug=fast",
    f"trainer.epochs={EPOCHS}",
    "trainer.steps_per_epoch=12",
    "stages=[train]",
    "callbacks.epoch_masks=null",
    "callbacks.curves=false",
    "mlflow.log_model=false",
]
STATE = "train/runs/*/checkpoints/last/state.json"  # the last checkpoint (seg.runner.resume)


def _wait(proc: subprocess.Popen, cwd: Path, done) -> None:
    deadline = time.monotonic() + 300
    while not done():
        assert proc.poll() is None and time.monotonic() < deadline, (
            cwd / "seg-train.log"
        ).read_text()[-3000:]
        time.sleep(0.1)


def _kill_after_first_checkpoint(proc: subprocess.Popen, cwd: Path) -> int:
    """SIGKILL once the first epoch's checkpoint exists; the last epoch it holds."""
    _wait(proc, cwd, lambda: list((cwd / "outputs").glob(STATE)))
    proc.send_signal(signal.SIGKILL)  # no chance to clean up: the run stays RUNNING
    proc.wait(timeout=60)
    found = list((cwd / "outputs").glob(STATE))
    return json.loads(found[0].read_text())["epoch"]  # replaced atomically: always whole


def _epochs(client: MlflowClient, run_id: str, key: str) -> list[int]:
    return sorted(m.step for m in client.get_metric_history(run_id, key))


def test_sigterm_mid_epoch_ends_the_run_killed_and_it_resumes(tmp_path: Path) -> None:
    proc = start_cli("seg-train", *RUN, cwd=tmp_path)
    client = MlflowClient(tracking_uri(tmp_path))

    def first_epoch_in_the_store() -> bool:
        runs = client.search_runs([client.get_experiment_by_name("demo_cells").experiment_id])
        return bool(runs and client.get_metric_history(runs[0].info.run_id, "loss"))

    # The first checkpoint comes just before epoch 0's metrics (and long after the store exists).
    _wait(proc, tmp_path, lambda: list((tmp_path / "outputs").glob(STATE)))
    _wait(proc, tmp_path, first_epoch_in_the_store)
    proc.send_signal(signal.SIGTERM)  # epoch 0 is logged: the signal lands in epoch 1
    assert proc.wait(timeout=120) == 130
    log = (tmp_path / "seg-train.log").read_text()  # one line says what to do, no traceback
    assert "interrupted (terminated by signal 15)" in log and "trainer.resume=true" in log
    assert "Traceback" not in log
    (run,) = client.search_runs([client.get_experiment_by_name("demo_cells").experiment_id])
    run_id = run.info.run_id
    assert run.info.status == "KILLED"
    assert "terminated by signal 15" in run.data.tags["seg.error"]
    # What was logged before the signal stays: the completed epochs, their history, config.
    state = json.loads(
        (Path(run.data.tags["seg.output_dir"]) / "checkpoints" / "last" / "state.json").read_text()
    )
    assert state["epoch"] < EPOCHS - 1  # killed with epochs left to train
    logged = _epochs(client, run_id, "loss")
    # every checkpointed epoch, bar one the signal caught between its checkpoint and its log
    assert logged == list(range(len(logged))) and state["epoch"] + 1 - len(logged) in (0, 1)
    artifacts = {a.path for a in client.list_artifacts(run_id)}
    assert {"config.yaml", "preprocessing.json", "train_history.csv"} <= artifacts

    proc = run_cli("seg-train", *RUN, f"trainer.resume={run_id}", cwd=tmp_path)
    assert f"resuming run {run_id}" in proc.stderr
    assert f"after epoch {state['epoch']}" in proc.stderr
    (run,) = client.search_runs([run.info.experiment_id])  # the same run, no new one
    assert run.info.run_id == run_id and run.info.status == "FINISHED"
    for key in ["loss", "val_loss", "lr", "epoch_time"]:
        assert _epochs(client, run_id, key) == list(range(EPOCHS)), key
    # Finished now: no error shown, the interruption kept in the history.
    assert "seg.error" not in run.data.tags
    assert "terminated by signal 15" in run.data.tags["seg.error_history"]


def test_killed_run_resumes_in_the_same_mlflow_run(tmp_path: Path) -> None:
    last_epoch = _kill_after_first_checkpoint(start_cli("seg-train", *RUN, cwd=tmp_path), tmp_path)
    assert last_epoch < EPOCHS - 1  # killed with epochs left to train
    client = MlflowClient(tracking_uri(tmp_path))
    exp = client.get_experiment_by_name("demo_cells")
    (killed,) = client.search_runs([exp.experiment_id])
    assert killed.info.status == "RUNNING"
    run_id = killed.info.run_id

    # Another config is not this run: the error names what differs.
    proc = run_cli(
        "seg-train",
        *RUN,
        "model.base_filters=8",
        f"trainer.resume={run_id}",
        cwd=tmp_path,
        check=False,
    )
    assert proc.returncode == 2
    assert "model.base_filters=8 (run: 4)" in proc.stderr

    proc = run_cli("seg-train", *RUN, "trainer.resume=true", cwd=tmp_path)
    assert f"resuming run {run_id}" in proc.stderr and f"after epoch {last_epoch}" in proc.stderr
    (run,) = client.search_runs([exp.experiment_id])  # the same run, no new one
    assert run.info.run_id == run_id and run.info.status == "FINISHED"
    for key in ["loss", "val_loss", "val_dice", "lr", "epoch_time"]:
        assert _epochs(client, run_id, key) == list(range(EPOCHS)), key  # each exactly once
    assert len(client.get_metric_history(run_id, "model_parameters")) == 1
    assert len(client.get_metric_history(run_id, "objective")) == 1
    output_dir = Path(run.data.tags["seg.output_dir"])
    history = (output_dir / "train_history.csv").read_text().splitlines()
    assert [line.split(",")[0] for line in history[1:]] == [str(e) for e in range(EPOCHS)]
    assert run.data.tags["seg.resumed_in"] != str(output_dir)  # the resume's own Hydra dir

    proc = run_cli("seg-train", *RUN, f"trainer.resume={run_id}", cwd=tmp_path, check=False)
    assert proc.returncode == 2 and "FINISHED" in proc.stderr


def test_resume_without_an_interrupted_run_says_so(tmp_path: Path) -> None:
    proc = run_cli("seg-train", *RUN, "trainer.resume=true", cwd=tmp_path, check=False, timeout=120)
    assert proc.returncode == 2
    assert "no interrupted run of this config" in proc.stderr
    assert "Traceback" not in proc.stderr
