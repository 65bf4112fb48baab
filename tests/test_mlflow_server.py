"""seg-train against a real `mlflow server` on 127.0.0.1 (HTTP tracking, proxied artifacts)."""

from __future__ import annotations

import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from tests.cli import BIN, run_cli

pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    root = tmp_path_factory.mktemp("server")
    port = _free_port()
    log = (root / "server.log").open("w")
    proc = subprocess.Popen(
        [str(BIN / "mlflow"), "server", "--host", "127.0.0.1", "--port", str(port),
         "--backend-store-uri", f"sqlite:///{root / 'server.db'}",
         "--artifacts-destination", str(root / "artifacts"), "--workers", "1"],
        cwd=root, stdout=log, stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while True:
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2) as r:
                if r.status == 200:
                    break
        except OSError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"mlflow server did not start: {(root / 'server.log').read_text()}")
        time.sleep(0.5)
    yield url, root
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
    log.close()


def test_train_logs_everything_to_a_tracking_server(server, tmp_path: Path) -> None:
    url, root = server
    run_cli("seg-train", "debug=fast", f"mlflow.tracking_uri={url}", "stages=[train,evaluate]",
            "mlflow.experiment_name=server_e2e", cwd=tmp_path)
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
    run_cli("seg-eval", f"checkpoint={run.info.run_id}", f"mlflow.tracking_uri={url}",
            "mlflow.experiment_name=server_e2e", "dataset.image_size=[32,32]",
            "dataset.limit=16", cwd=tmp_path)
    runs = client.search_runs([exp.experiment_id])
    assert len(runs) == 2 and all(r.info.status == "FINISHED" for r in runs)
