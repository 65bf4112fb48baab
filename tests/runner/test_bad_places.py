"""Places a run writes that cannot be written, through the real CLIs: a corrupt or foreign
tracking database, a store or run folder under a file, an output on a read-only file system,
a disk that fills up during training. Each is one line naming the key or path and the fix,
exit code 2, no traceback, and no MLflow run or output left where a check before the run could
have stopped it; what a full disk interrupts keeps what was done and no half-written file."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from tests.support.cli import run_cli, tracking_uri
from tests.support.outcomes import error_lines, hydra_files_only, runs_in_store
from tests.test_files import tmpfs

pytestmark = pytest.mark.slow


def _refused(proc, *expected: str) -> str:
    assert proc.returncode == 2, proc.stderr
    (line,) = error_lines(proc.stderr)
    for text in expected:
        assert text in line, line
    assert "Traceback" not in proc.stderr
    return line


def _foreign_database(path: Path) -> None:
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE notes (text)")
    db.close()


@pytest.mark.parametrize(
    ("make", "expected"),
    [
        (lambda p: p.write_bytes(b"these are notes, not a database"), "is not a SQLite database"),
        (lambda p: p.write_bytes(b"SQLite format 3\x00" + b"\x07" * 600), "damaged SQLite"),
        (_foreign_database, "another program's SQLite database (tables notes)"),
    ],
    ids=["not_sqlite", "damaged", "foreign"],
)
def test_a_bad_tracking_database_is_refused_before_the_run(
    tmp_path: Path, make, expected: str
) -> None:
    store = tmp_path / "mlflow.db"
    make(store)
    before = store.read_bytes()
    proc = run_cli("seg-train", "debug=fast", cwd=tmp_path, check=False, full_error=False)
    _refused(proc, f"mlflow.tracking_uri={tracking_uri(tmp_path)}", expected, "move it away")
    assert store.read_bytes() == before  # not migrated, not touched
    hydra_files_only(tmp_path)


def test_a_store_and_a_run_folder_under_a_file_are_refused(tmp_path: Path) -> None:
    (tmp_path / "taken").write_text("a file")
    store = f"sqlite:///{tmp_path / 'taken' / 'mlflow.db'}"
    proc = run_cli(
        "seg-train", "debug=fast", f"mlflow.tracking_uri={store}", cwd=tmp_path, check=False
    )
    _refused(proc, f"mlflow.tracking_uri={store}", f"{tmp_path / 'taken'} is a file, not a folder")
    hydra_files_only(tmp_path)
    proc = run_cli(
        "seg-train",
        "debug=fast",
        f"hydra.run.dir={tmp_path / 'taken' / 'run'}",
        cwd=tmp_path,
        check=False,
        full_error=False,
    )
    _refused(proc, f"{tmp_path / 'taken' / 'run'}: Not a directory", "a file stands where")
    assert runs_in_store(tmp_path) == []


def test_seg_infer_to_a_read_only_file_system_is_refused(tmp_path: Path) -> None:
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "x.png").write_bytes(b"")  # never read: the output is checked too
    with tmpfs(tmp_path / "ro", "ro,size=64k") as ro:
        proc = run_cli(
            "seg-infer",
            f"checkpoint={tmp_path / 'model.keras'}",
            f"input={tmp_path / 'in'}",
            f"output={ro / 'masks'}",
            cwd=tmp_path,
            check=False,
        )
    line = _refused(proc, f"output={ro / 'masks'}: cannot write in {ro} (the file system is")
    assert "read-only" in line
    assert runs_in_store(tmp_path) == []


def test_a_disk_that_fills_during_training_keeps_what_was_done(tmp_path: Path) -> None:
    """The run's folder on a small disk that fills during the first epoch's checkpoint: one
    line and exit 2; the run ends FAILED with the reason, and no half-written file is left."""
    with tmpfs(tmp_path / "disk", "size=160k") as disk:
        proc = run_cli(
            "seg-train",
            "debug=fast",
            f"hydra.run.dir={disk / 'run'}",
            "stages=[train]",
            cwd=tmp_path,
            check=False,
            full_error=False,
        )
        written = sorted(p.name for p in (disk / "run").rglob("*") if p.is_file())
    _refused(proc, "No space left on device", "free space on that disk")
    assert not [name for name in written if ".tmp" in name], written  # nothing half-written
    client = MlflowClient(tracking_uri(tmp_path))
    (run,) = runs_in_store(tmp_path)
    assert run.info.status == "FAILED" and "No space left" in run.data.tags["seg.error"]
    assert client.get_run(run.info.run_id).data.params["trainer.epochs"] == "2"  # kept
