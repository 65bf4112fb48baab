"""Several processes opening one brand-new SQLite tracking store at the same instant.

Without seg.tracking's lock, MLflow's schema creation races between them ("duplicate column
name", "table ... already exists") and so does experiment creation: some runs are lost.
"""

from __future__ import annotations

import multiprocessing
from pathlib import Path

from mlflow.tracking import MlflowClient

JOBS = 4


def _job(uri: str, index: int, barrier) -> None:
    from seg.tracking import Tracker

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
