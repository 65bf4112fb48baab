"""The tracking server goes away while a run logs to it (a real `mlflow server`, SIGKILLed and
restarted on the same port with the same store): training goes on, the records wait in the
run's spool and reach the run when the server is back, at a later record, at the run's end, or
through seg-sync (a sweep's summary too)."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import mlflow
import numpy as np
import pytest
from mlflow.tracking import MlflowClient

from tests.support.cli import run_cli, start_cli
from tests.support.mlflow_server import Server, start_server

# One worker runs the whole module under pytest-xdist: its module-scoped fixture is built once.
pytestmark = [pytest.mark.slow, pytest.mark.long, pytest.mark.xdist_group("test_tracking_outage")]


def _steps(client: MlflowClient, run_id: str, key: str) -> list[int]:
    return sorted(m.step for m in client.get_metric_history(run_id, key))


def _image_steps(client: MlflowClient, run_id: str, key: str) -> list[int]:
    names = [a.path.split("/")[-1] for a in client.list_artifacts(run_id, "images")]
    return sorted(
        int(n.split("+step+")[1].split("+")[0])
        for n in names
        if n.startswith(f"{key}+step+") and n.endswith(".png")
    )


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> Server:
    """One server for the module (starting one takes long on a busy machine); each test
    kills it and brings it back."""
    running = start_server(tmp_path_factory.mktemp("server"))
    yield running
    running.kill()


def test_records_wait_in_the_spool_and_follow_when_the_server_is_back(
    server: Server, tmp_path: Path
) -> None:
    """In-process, without TensorFlow: a call while the server is down costs a bounded time
    (MLflow's own retries would take minutes), later calls none until it is time to retry;
    the first call after that delivers the kept records in order, then its own."""
    from seg.tracking.tracker import Tracker

    spool = tmp_path / "out" / "tracking_spool"
    artifact = tmp_path / "out" / "notes.txt"
    artifact.parent.mkdir()
    artifact.write_text("as logged")
    tracker = Tracker(server.url, "outage_calls", spool_dir=spool, retry_every=3600)
    tracker.log_metrics({"loss": 1.0}, step=0)
    server.kill()
    start = time.monotonic()
    tracker.log_metrics({"loss": 0.9}, step=1)  # fails, kept
    first = time.monotonic() - start
    tracker.log_image(np.full((8, 8, 3), 200, np.uint8), "val_masks", step=1)
    tracker.log_artifact(artifact)
    artifact.write_text("changed later")  # the spool kept it as it was when logged
    assert first < 15 and time.monotonic() - start < first + 2  # no retry before it is time
    assert tracker.spool.kept == len(tracker.spool.records()) == 3
    server.restart()
    tracker.spool.retry_every = 0  # it is time
    tracker.log_metrics({"loss": 0.8}, step=2)
    assert tracker.spool.kept == 0 and not spool.exists()
    assert tracker.end("FINISHED") is None
    client = MlflowClient(server.url)
    run = client.get_run(tracker.run_id)
    assert run.info.status == "FINISHED"
    assert [(m.step, m.value) for m in client.get_metric_history(run.info.run_id, "loss")] == [
        (0, 1.0),
        (1, 0.9),
        (2, 0.8),
    ]
    assert _image_steps(client, run.info.run_id, "val_masks") == [1]
    assert mlflow.artifacts.load_text(f"{run.info.artifact_uri}/notes.txt") == "as logged"


# Epochs of a second or more (12 steps) so that the server dies while epochs are left.
RUN = [
    "debug=fast",
    "trainer.steps_per_epoch=12",
    "stages=[train]",
    "callbacks.epoch_masks.num_images=1",
]


def _train_until_first_epoch_then_kill(
    server: Server, cwd: Path, *overrides: str, multirun: bool = False
) -> tuple[subprocess.Popen, str, Path]:
    """seg-train (-m with ``multirun``) against ``server`` (in an experiment named after
    ``cwd``), which is killed once epoch 0's metrics reached it; (the process, the run id of
    the run or the sweep's job, its output dir)."""
    experiment_name = cwd.name
    proc = start_cli(
        "seg-train",
        *(["-m"] if multirun else []),
        *RUN,
        f"mlflow.tracking_uri={server.url}",
        f"mlflow.experiment_name={experiment_name}",
        *overrides,
        cwd=cwd,
    )
    client = MlflowClient(server.url)
    deadline = time.monotonic() + 300
    while True:
        assert proc.poll() is None and time.monotonic() < deadline, (
            cwd / "seg-train.log"
        ).read_text()[-3000:]
        experiment = client.get_experiment_by_name(experiment_name)
        runs = client.search_runs([experiment.experiment_id]) if experiment else []
        run = next((r for r in runs if client.get_metric_history(r.info.run_id, "loss")), None)
        if run:  # (in a sweep, not its parent run)
            break
        time.sleep(0.2)
    server.kill()
    return proc, run.info.run_id, Path(run.data.tags["seg.output_dir"])


def _assert_complete(url: str, run_id: str, epochs: int) -> None:
    """The run as if the server had never gone: every epoch, image, artifact and the model."""
    mlflow.set_tracking_uri(url)  # for the artifact and model URIs
    client = MlflowClient(url)
    run = client.get_run(run_id)
    assert run.info.status == "FINISHED"
    for key in ("loss", "val_loss", "val_dice", "lr", "epoch_time"):
        assert _steps(client, run_id, key) == list(range(epochs)), key
    assert "seg.best.val_dice" in run.data.tags
    assert _image_steps(client, run_id, "val_masks") == list(range(epochs))
    artifacts = {a.path for a in client.list_artifacts(run_id)}
    assert {"config.yaml", "preprocessing.json", "train_history.csv", "curves"} <= artifacts
    history = mlflow.artifacts.load_text(f"{run.info.artifact_uri}/train_history.csv")
    assert len(history.splitlines()) == epochs + 1
    assert mlflow.models.get_model_info(f"runs:/{run_id}/model").signature is not None


def test_server_back_during_the_run(server: Server, tmp_path: Path) -> None:
    """Killed after epoch 0, restarted once the run kept records: the run ends FINISHED with
    everything, delivered by the run itself; the spool is gone."""
    proc, run_id, output_dir = _train_until_first_epoch_then_kill(
        server, tmp_path, "trainer.epochs=3", "mlflow.outage_wait=600"
    )
    spool = output_dir / "tracking_spool"
    deadline = time.monotonic() + 120
    while not list(spool.glob("0*.json")):  # training went on and kept its records
        assert proc.poll() is None and time.monotonic() < deadline
        time.sleep(0.2)
    server.restart()
    assert proc.wait(timeout=900) == 0, (tmp_path / "seg-train.log").read_text()[-3000:]
    log = (tmp_path / "seg-train.log").read_text()
    assert "tracking store unreachable" in log and "reachable again" in log
    assert not spool.exists()
    _assert_complete(server.url, run_id, epochs=3)


def test_server_down_until_the_end_then_seg_sync(server: Server, tmp_path: Path) -> None:
    """Still down when the run ends: exit 3 and one line saying where the records are and
    how to deliver them; seg-sync does, once the server is back (the model included)."""
    proc, run_id, output_dir = _train_until_first_epoch_then_kill(
        server, tmp_path, "trainer.epochs=2", "mlflow.outage_wait=0"
    )
    assert proc.wait(timeout=600) == 3
    log = (tmp_path / "seg-train.log").read_text()
    spool = output_dir / "tracking_spool"
    assert f"are kept in {spool}; deliver them when it is back with: seg-sync {spool}" in log
    assert "Traceback" not in log
    kept = len(list(spool.glob("0*.json")))
    assert kept >= 4  # epoch 1's metrics and images, artifacts, the model, the end

    proc = run_cli("seg-sync", str(output_dir), cwd=tmp_path, check=False, timeout=120)
    assert proc.returncode == 3 and "still unreachable" in proc.stderr  # not back yet
    assert len(list(spool.glob("0*.json"))) == kept

    server.restart()
    proc = run_cli("seg-sync", str(output_dir), cwd=tmp_path, timeout=300)
    assert f"delivered {kept} records" in proc.stdout
    assert not spool.exists()
    _assert_complete(server.url, run_id, epochs=2)


def test_a_sweeps_summary_waits_for_its_jobs_records_and_seg_sync_finishes_it(
    server: Server, tmp_path: Path
) -> None:
    """Down from a sweep's job's first epoch to the sweep's end: the job's records wait in its
    spool, the summary cannot be read from the store, so the sweep exits 3 naming seg-sync
    of the sweep dir, which later delivers the job's records and then the summary."""
    sweep_dir = tmp_path / "sweep"
    proc, run_id, output_dir = _train_until_first_epoch_then_kill(
        server,
        tmp_path,
        "model.base_filters=4",
        f"hydra.sweep.dir={sweep_dir}",
        "trainer.epochs=1",
        "mlflow.outage_wait=0",
        multirun=True,
    )
    assert proc.wait(timeout=600) == 3
    log = (tmp_path / "seg-train.log").read_text()
    assert (
        f"deliver the jobs' records and the summary when the store is back with: "
        f"seg-sync {sweep_dir}" in log
    )
    assert "Traceback" not in log and "job 0 failed" not in log  # its value reached the sweeper
    assert (sweep_dir / "sweep_summary_pending.json").is_file()

    server.restart()
    proc = run_cli("seg-sync", str(sweep_dir), cwd=tmp_path, timeout=300)
    assert "sweep done: 1 jobs, 1 finished, 0 failed; best job: run " + run_id in proc.stdout
    assert not (sweep_dir / "sweep_summary_pending.json").exists()
    assert not (output_dir / "tracking_spool").exists()
    _assert_complete(server.url, run_id, epochs=1)
    client = MlflowClient(server.url)
    parent = client.get_run(client.get_run(run_id).data.tags["mlflow.parentRunId"])
    assert parent.info.status == "FINISHED"
    assert parent.data.metrics["jobs_finished"] == 1
    assert parent.data.tags["seg.best_run_id"] == run_id
    assert "sweep_runs.csv" in {a.path for a in client.list_artifacts(parent.info.run_id)}
