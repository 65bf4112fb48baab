"""Kill a training run mid-epoch, resume it with trainer.resume: the same MLflow run goes on
from the last checkpoint and ends FINISHED with every epoch logged exactly once."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from tests.cli import BIN, run_cli, tracking_uri

pytestmark = pytest.mark.slow

EPOCHS = 3
# Epochs of a second or more (12 steps), so that the kill lands inside a later epoch.
RUN = ["debug=fast", f"trainer.epochs={EPOCHS}", "trainer.steps_per_epoch=12",
       "stages=[train]", "callbacks.epoch_masks=null", "callbacks.curves=false",
       "mlflow.log_model=false"]


def _start(cwd: Path) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    env["SEG_CACHE_DIR"] = str(cwd / "cache")
    return subprocess.Popen([str(BIN / "seg-train"), *RUN], cwd=cwd, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def _kill_after_first_checkpoint(proc: subprocess.Popen, cwd: Path) -> int:
    """SIGKILL once the first epoch's checkpoint exists; the last epoch it holds."""
    deadline = time.monotonic() + 300
    pattern = "train/runs/*/checkpoints/last/state.json"
    while not (found := list((cwd / "outputs").glob(pattern))):
        assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read()
        time.sleep(0.1)
    proc.send_signal(signal.SIGKILL)  # no chance to clean up: the run stays RUNNING
    proc.wait(timeout=60)
    proc.stderr.close()
    return json.loads(found[0].read_text())["epoch"]  # replaced atomically: always whole


def test_killed_run_resumes_in_the_same_mlflow_run(tmp_path: Path) -> None:
    last_epoch = _kill_after_first_checkpoint(_start(tmp_path), tmp_path)
    assert last_epoch < EPOCHS - 1  # killed with epochs left to train
    client = MlflowClient(tracking_uri(tmp_path))
    exp = client.get_experiment_by_name("demo_cells")
    (killed,) = client.search_runs([exp.experiment_id])
    assert killed.info.status == "RUNNING"
    run_id = killed.info.run_id

    # Another config is not this run: the error names what differs.
    proc = run_cli("seg-train", *RUN, "model.base_filters=8", f"trainer.resume={run_id}",
                   cwd=tmp_path, check=False)
    assert proc.returncode == 2
    assert "model.base_filters=8 (run: 4)" in proc.stderr

    proc = run_cli("seg-train", *RUN, "trainer.resume=true", cwd=tmp_path)
    assert f"resuming run {run_id}" in proc.stderr and f"after epoch {last_epoch}" in proc.stderr
    (run,) = client.search_runs([exp.experiment_id])  # the same run, no new one
    assert run.info.run_id == run_id and run.info.status == "FINISHED"
    for key in ["loss", "val_loss", "val_dice", "lr", "epoch_time"]:
        steps = [m.step for m in client.get_metric_history(run_id, key)]
        assert sorted(steps) == list(range(EPOCHS)), key  # each epoch exactly once
    assert len(client.get_metric_history(run_id, "model_parameters")) == 1
    assert len(client.get_metric_history(run_id, "objective")) == 1
    output_dir = Path(run.data.tags["seg.output_dir"])
    history = (output_dir / "train_history.csv").read_text().splitlines()
    assert [line.split(",")[0] for line in history[1:]] == [str(e) for e in range(EPOCHS)]
    assert run.data.tags["seg.resumed_in"] != str(output_dir)  # the resume's own Hydra dir

    proc = run_cli("seg-train", *RUN, f"trainer.resume={run_id}", cwd=tmp_path, check=False)
    assert proc.returncode == 2 and "FINISHED" in proc.stderr


def test_resume_without_an_interrupted_run_says_so(tmp_path: Path) -> None:
    proc = run_cli("seg-train", *RUN, "trainer.resume=true", cwd=tmp_path, check=False,
                   timeout=120)
    assert proc.returncode == 2
    assert "no interrupted run of this config" in proc.stderr
    assert "Traceback" not in proc.stderr
