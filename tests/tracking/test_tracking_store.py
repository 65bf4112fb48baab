"""seg.tracking against a real SQLite store: several processes opening a brand-new store at the
same instant, and a resumed run's final metrics.

Without seg.tracking.tracker's lock, MLflow's schema creation races between processes ("duplicate
column name", "table ... already exists") and so does experiment creation: runs are lost.
"""

from __future__ import annotations

import multiprocessing
from pathlib import Path

from mlflow.tracking import MlflowClient

JOBS = 4


def _job(uri: str, index: int, barrier) -> None:
    from seg.tracking.tracker import Tracker

    barrier.wait(timeout=120)  # all processes start opening the store together
    with Tracker(uri, "race", tags={"job": str(index)}) as tracker:
        tracker.log_metrics({"index": index}, step=0)


def test_parallel_processes_open_a_fresh_sqlite_store_without_losing_a_run(
    tmp_path: Path,
) -> None:
    uri = f"sqlite:///{tmp_path / 'fresh' / 'mlflow.db'}"
    spawn = multiprocessing.get_context("spawn")  # fresh interpreters, like parallel jobs
    barrier = spawn.Barrier(JOBS)
    procs = [spawn.Process(target=_job, args=(uri, i, barrier)) for i in range(JOBS)]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(timeout=300)
    assert [p.exitcode for p in procs] == [0] * JOBS
    client = MlflowClient(uri)
    (experiment,) = [e for e in client.search_experiments() if e.name == "race"]
    runs = client.search_runs([experiment.experiment_id])
    assert sorted(r.data.tags["job"] for r in runs) == [str(i) for i in range(JOBS)]
    assert all(r.info.status == "FINISHED" for r in runs)
    assert sorted(r.data.metrics["index"] for r in runs) == list(range(JOBS))


def test_a_resumed_run_logs_each_final_metric_once(tmp_path: Path, sqlite_store: str) -> None:
    """A run killed after its final metrics, resumed: they are not logged a second time,
    while per-epoch metrics go on."""
    from seg.tracking.tracker import Tracker

    uri = sqlite_store
    tracker = Tracker(uri, "resume")
    tracker.log_metrics({"loss": 0.5}, step=0)
    tracker.log_metrics({"best_loss": 0.5, "model_parameters": 10})
    tracker.end("KILLED")
    with Tracker(uri, "resume", run_id=tracker.run_id) as resumed:
        resumed.log_metrics({"loss": 0.4}, step=1)
        resumed.log_metrics({"best_loss": 0.4, "test_dice": 0.9})
    client = MlflowClient(uri)
    history = {
        k: [(m.step, m.value) for m in client.get_metric_history(tracker.run_id, k)]
        for k in ("loss", "best_loss", "model_parameters", "test_dice")
    }
    assert history == {
        "loss": [(0, 0.5), (1, 0.4)],
        "best_loss": [(0, 0.5)],
        "model_parameters": [(0, 10.0)],
        "test_dice": [(0, 0.9)],
    }
    assert client.get_run(tracker.run_id).info.status == "FINISHED"


def test_a_store_keeps_its_artifacts_beside_it_not_in_the_working_directory(
    tmp_path: Path, monkeypatch, sqlite_store: str
) -> None:
    """MLflow's default puts a SQLite store's artifacts in ./mlruns of whatever directory the
    run starts from; a store elsewhere then leaves artifacts behind in every such directory."""
    from seg.tracking.tracker import Tracker

    store, elsewhere = tmp_path / "store", tmp_path / "launched_here"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    uri = f"sqlite:///{store / 'mlflow.db'}"
    with Tracker(uri, "beside") as tracker:
        tracker.log_text("kept with the store", "note.txt")
    client = MlflowClient(uri)
    run = client.get_run(tracker.run_id)
    assert run.info.artifact_uri.startswith((store / "mlruns").as_uri())
    assert [a.path for a in client.list_artifacts(tracker.run_id)] == ["note.txt"]
    assert list(elsewhere.iterdir()) == []
    assert len(list((store / "mlruns").rglob("note.txt"))) == 1


def _spool_losing_replies(tmp_path: Path, kind: str):
    """A run in a fresh store, and a spool whose first ``kind`` delivery reaches the store but
    loses the reply (as a server dying mid-response), so the record is kept and redelivered."""
    from requests.exceptions import ConnectionError as LostReply

    from seg.tracking.records import record_handlers
    from seg.tracking.spool import Spool
    from seg.tracking.store import store_unreachable
    from seg.tracking.tracker import Tracker

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    tracker = Tracker(uri, "replies")
    client = MlflowClient(uri)
    handlers = record_handlers(client, tracker.run_id)

    replies = iter([False])  # the first reply is lost, later ones arrive

    def then_lost_reply(**args) -> None:
        handlers[kind](**args)
        if not next(replies, True):
            raise LostReply("connection reset by peer")

    spool = Spool(
        tmp_path / "spool",
        {**handlers, kind: then_lost_reply},
        store_unreachable,
        redelivery=record_handlers(client, tracker.run_id, redelivery=True),
    )
    return tracker, client, spool


def test_an_image_whose_reply_was_lost_is_not_logged_twice(tmp_path: Path) -> None:
    """A delivery the outage cut after the store had the image (the reply lost): the record is
    kept and delivered again, and the run still holds the image once at its step."""
    import numpy as np

    tracker, client, spool = _spool_losing_replies(tmp_path, "image")
    picture = np.full((8, 8, 3), 200, np.uint8)
    for step in (0, 1):
        spool.submit("image", image=picture, key="val_masks", step=step, timestamp=1_000 + step)
    assert spool.kept == 2 and spool.flush() == 0
    tracker.end("FINISHED")
    names = [a.path for a in client.list_artifacts(tracker.run_id, "images")]
    steps = sorted(int(n.split("+step+")[1].split("+")[0]) for n in names if n.endswith(".png"))
    assert steps == [0, 1], names
    assert sum(n.endswith(".webp") for n in names) == 2, names


def test_a_model_whose_reply_was_lost_is_not_logged_twice(tmp_path: Path) -> None:
    """The same for the model: the redelivery finds the one the run holds whole (READY)."""
    import keras
    import numpy as np

    tracker, client, spool = _spool_losing_replies(tmp_path, "model")
    model = keras.Sequential([keras.Input((4, 4, 1)), keras.layers.Conv2D(1, 1)])
    model.save(tmp_path / "tiny.keras")
    spool.submit("model", model=tmp_path / "tiny.keras", sample=np.zeros((1, 4, 4, 1), np.float32))
    assert spool.kept == 1 and spool.flush() == 0
    tracker.end("FINISHED")
    experiment_id = client.get_run(tracker.run_id).info.experiment_id
    found = client.search_logged_models(
        [experiment_id], filter_string=f"source_run_id = '{tracker.run_id}'"
    )
    assert len(found) == 1, [m.model_id for m in found]


def test_a_locked_store_is_retried_in_one_line_without_mlflows_traceback(caplog) -> None:
    """SQLite's "database is locked" (after MLflow's 20 s busy timeout, too slow to provoke
    here) reaches seg as MLflow raises it, after MLflow's logger printed a traceback for it:
    seg retries, says so in one warning line, and the traceback is filtered; any other error
    is raised at once."""
    import logging

    import pytest
    from mlflow.exceptions import MlflowException
    from sqlalchemy.exc import OperationalError

    from seg.tracking.store import retry_when_locked

    mlflow_log = logging.getLogger("mlflow.store.db.utils")
    failures = []

    def locked_twice() -> str:
        if len(failures) < 2:
            error = OperationalError("UPDATE runs", {}, Exception("database is locked"))
            failures.append(error)
            mlflow_log.exception(  # as mlflow.store.db.utils does
                "SQLAlchemy database error. The following exception is caught.\n%s", error
            )
            raise MlflowException(message=error) from error
        return "written"

    with caplog.at_level(logging.WARNING):
        assert retry_when_locked(locked_twice) == "written"
    assert len(failures) == 2
    assert [r.getMessage() for r in caplog.records] == [
        "tracking store busy (database is locked); retrying"
    ] * 2
    assert not any(r.name.startswith("mlflow") for r in caplog.records)

    def other_error() -> None:
        failures.append("other")
        raise MlflowException("RESOURCE_DOES_NOT_EXIST: no such run")

    with pytest.raises(MlflowException, match="no such run"):
        retry_when_locked(other_error)
    assert failures.count("other") == 1
