"""A real `mlflow server` on 127.0.0.1 for tests: started on a free (or a given) port with a
SQLite backend and proxied artifacts in a folder, killed like a crash, restarted on the same
port with the same store."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.cli import BIN


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Server:
    root: Path  # server.db, artifacts/, server.log
    port: int
    proc: subprocess.Popen
    args: tuple[str, ...] = ()  # more `mlflow server` options
    env: dict[str, str] | None = None  # the server's environment (None: this process's)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def kill(self) -> None:
        """SIGKILL the server and its workers (its own process group): gone without notice."""
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=30)

    def restart(self) -> None:
        """Back on the same port with the same store (killed first if it still runs)."""
        self.kill()
        self.proc = start_server(self.root, self.port, self.args, self.env).proc


def _launch(
    root: Path, port: int, args: tuple[str, ...], env: dict[str, str] | None
) -> subprocess.Popen:
    log = (root / "server.log").open("a")
    return subprocess.Popen(
        [
            str(BIN / "mlflow"),
            "server",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--backend-store-uri",
            f"sqlite:///{root / 'server.db'}",
            "--artifacts-destination",
            str(root / "artifacts"),
            "--workers",
            "1",
            *args,
        ],
        cwd=root,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def _healthy(proc: subprocess.Popen, port: int, timeout: float = 120) -> bool:
    deadline = time.monotonic() + timeout
    while proc.poll() is None and time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as r:
                if r.status == 200:
                    return True
        except OSError:
            pass
        time.sleep(0.3)
    return False


def start_server(
    root: Path,
    port: int | None = None,
    args: tuple[str, ...] = (),
    env: dict[str, str] | None = None,
) -> Server:
    """A server on ``port``, or on a free port (another one when the chosen port was taken
    meanwhile and the server exited at once, up to a few times)."""
    root.mkdir(parents=True, exist_ok=True)
    for _attempt in range(1 if port else 4):
        chosen = port or free_port()
        proc = _launch(root, chosen, args, env)
        if _healthy(proc, chosen):
            return Server(root, chosen, proc, args, env)
        if proc.poll() is None:  # neither up nor gone: give up
            Server(root, chosen, proc).kill()
            break
    pytest.fail(f"mlflow server did not start: {(root / 'server.log').read_text()[-3000:]}")
