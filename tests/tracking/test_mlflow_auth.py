"""The README's shared-server setup, for real: `mlflow server --app-name basic-auth` on
127.0.0.1 refuses a client without credentials, and seg logs with them (from the environment)."""

from __future__ import annotations

import base64
import json
import os
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from seg.errors import ConfigError
from seg.tracking.tracker import Tracker
from tests.support.mlflow_server import start_server

pytest.importorskip("flask_wtf", reason="the basic-auth app needs mlflow[auth] (Flask-WTF)")
# One worker runs the whole module under pytest-xdist: its module-scoped fixture is built once.
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("test_mlflow_auth")]

ADMIN_PASSWORD = "admin-password-0123"  # the auth app wants >= 12 characters
ALICE = ("alice", "alice-password-0123")
CREDENTIALS = ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD")


@pytest.fixture(scope="module")
def auth_server(tmp_path_factory):
    root = tmp_path_factory.mktemp("auth")
    ini = root / "basic_auth.ini"
    ini.write_text(
        "[mlflow]\ndefault_permission = READ\n"
        f"database_uri = sqlite:///{root / 'basic_auth.db'}\nadmin_username = admin\n"
        "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n"
        # one password hash check per user, not per request (it is slow on purpose)
        "auth_cache_ttl_seconds = 60\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    env.update(
        MLFLOW_AUTH_CONFIG_PATH=str(ini),
        MLFLOW_AUTH_ADMIN_PASSWORD=ADMIN_PASSWORD,
        MLFLOW_FLASK_SERVER_SECRET_KEY="test-secret-key",
    )
    server = start_server(root, args=("--app-name", "basic-auth"), env=env)
    yield server.url
    server.kill()


def _login(monkeypatch, user: str | None, password: str | None = None) -> None:
    for name, value in zip(CREDENTIALS, (user, password), strict=True):
        if value is None:
            monkeypatch.delenv(name, raising=False)
        else:
            monkeypatch.setenv(name, value)


def _create_user(url: str, name: str, password: str) -> None:
    """What the admin does (mlflow.server.get_app_client("basic-auth", ...).create_user), by
    its REST call: importing mlflow.server builds the whole server app."""
    token = base64.b64encode(f"admin:{ADMIN_PASSWORD}".encode()).decode()
    request = urllib.request.Request(
        f"{url}/api/2.0/mlflow/users/create",
        method="POST",
        data=json.dumps({"username": name, "password": password}).encode(),
        headers={"Authorization": f"Basic {token}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        assert response.status == 200


def test_a_client_without_credentials_is_refused(auth_server: str, monkeypatch) -> None:
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(
            f"{auth_server}/api/2.0/mlflow/experiments/search?max_results=1", timeout=10
        )
    assert err.value.code == 401
    _login(monkeypatch, None)
    with pytest.raises(ConfigError, match=f"mlflow.tracking_uri={auth_server}: cannot open"):
        Tracker(auth_server, "no_credentials")
    _login(monkeypatch, "admin", "wrong-password-0123")
    with pytest.raises(ConfigError, match="cannot open the tracking store"):
        Tracker(auth_server, "wrong_password")


def test_seg_logs_with_credentials_from_the_environment(
    auth_server: str, monkeypatch, tmp_path: Path
) -> None:
    _create_user(auth_server, *ALICE)
    _login(monkeypatch, *ALICE)
    with Tracker(auth_server, "with_credentials") as run:
        run.log_params({"model.base_filters": "8"})
        run.log_metrics({"val_dice": 0.5}, step=0)
        (tmp_path / "note.txt").write_text("kept")
        run.log_artifact(tmp_path / "note.txt")
    stored = MlflowClient(auth_server).get_run(run.run_id)
    assert stored.info.status == "FINISHED"
    assert stored.data.params == {"model.base_filters": "8"}
    assert stored.data.metrics == {"val_dice": 0.5}
    assert [a.path for a in MlflowClient(auth_server).list_artifacts(run.run_id)] == ["note.txt"]
