"""seg-train against a real `mlflow server` on 127.0.0.1 (HTTP tracking, proxied artifacts)."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from tests.support.cli import run_cli
from tests.support.mlflow_server import start_server

# One worker runs the whole module under pytest-xdist: its module-scoped fixture is built once.
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("test_mlflow_server")]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    running = start_server(tmp_path_factory.mktemp("server"))
    yield running.url, running.root
    running.kill()


def test_train_logs_everything_to_a_tracking_server(server, tmp_path: Path) -> None:
    url, root = server
    run_cli(
        "seg-train",
        "debug=fast",
        f"mlflow.tracking_uri={url}",
        "stages=[train,evaluate]",
        "mlflow.experiment_name=server_e2e",
        cwd=tmp_path,
    )
    assert not (tmp_path / "mlflow.db").exists()  # nothing went to the local default store
    client = MlflowClient(url)
    exp = client.get_experiment_by_name("server_e2e")
    (run,) = client.search_runs([exp.experiment_id])
    assert run.info.status == "FINISHED"
    assert [m.step for m in client.get_metric_history(run.info.run_id, "val_dice")] == [0, 1]
    assert "test_dice" in run.data.metrics
    names = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"config.yaml", "per_image.csv", "images", "curves"} <= names
    # Artifacts went through the server's proxy into its artifact destination.
    assert any((root / "artifacts").rglob("per_image.csv"))
    local = client.download_artifacts(run.info.run_id, "per_image.csv", str(tmp_path))
    assert Path(local).read_text().startswith("file,")
    # And the model is loadable by run id through the server.
    run_cli(
        "seg-eval",
        f"checkpoint={run.info.run_id}",
        f"mlflow.tracking_uri={url}",
        "mlflow.experiment_name=server_e2e",
        "dataset.image_size=[32,32]",
        "dataset.limit=16",
        cwd=tmp_path,
    )
    runs = client.search_runs([exp.experiment_id])
    assert len(runs) == 2 and all(r.info.status == "FINISHED" for r in runs)


def test_sweep_with_a_failing_job_against_a_tracking_server(server, tmp_path: Path) -> None:
    """A 2-job sweep whose first job fails (7 levels do not fit 32 px): the second still runs,
    the failure is recorded, and the parent run on the server sums it up."""
    url, _ = server
    proc = run_cli(
        "seg-train",
        "-m",
        "debug=fast",
        "model.num_layers=7,3",
        "trainer.epochs=1",
        "stages=[train]",
        "callbacks.epoch_masks=null",
        "callbacks.curves=false",
        "mlflow.log_model=false",
        f"mlflow.tracking_uri={url}",
        "mlflow.experiment_name=server_sweep",
        f"hydra.sweep.dir={tmp_path / 'sweep'}",
        cwd=tmp_path,
        check=False,
    )
    assert proc.returncode == 1, proc.stderr[-3000:]
    assert "1 of 2 jobs of the sweep failed" in proc.stderr
    assert not (tmp_path / "mlflow.db").exists()
    client = MlflowClient(url)
    exp = client.get_experiment_by_name("server_sweep")
    (parent,) = client.search_runs([exp.experiment_id], "tags.`seg.kind` = 'sweep'")
    children = client.search_runs(
        [exp.experiment_id],
        f"tags.`mlflow.parentRunId` = '{parent.info.run_id}'",
        order_by=["tags.`seg.job_num` ASC"],
    )
    assert [c.data.params["model.num_layers"] for c in children] == ["7", "3"]
    failed, finished = children
    assert failed.info.status == "FAILED"
    assert "model.num_layers=7" in failed.data.tags["seg.error"]
    assert "error.txt" in {a.path for a in client.list_artifacts(failed.info.run_id)}
    assert finished.info.status == "FINISHED"
    assert parent.info.status == "FINISHED"
    assert parent.data.metrics["jobs_failed"] == 1 and parent.data.metrics["jobs_finished"] == 1
    assert parent.data.tags["seg.best_run_id"] == finished.info.run_id
    table = Path(client.download_artifacts(parent.info.run_id, "sweep_runs.csv", str(tmp_path)))
    rows = list(csv.DictReader(table.open()))
    assert [(r["job"], r["status"]) for r in rows] == [("0", "FAILED"), ("1", "FINISHED")]
    assert "model.num_layers=7" in rows[0]["error"]
