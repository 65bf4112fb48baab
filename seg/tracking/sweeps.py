"""A sweep (Hydra multirun) as one parent run: its children, its table and its best job."""

from __future__ import annotations

import csv
import logging
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import mlflow
from mlflow.tracking import MlflowClient

from seg.files import written_whole
from seg.tracking.naming import MAX_PARAM_LENGTH, PARENT_TAG, safe_key
from seg.tracking.store import prepare_experiment, retry_when_locked
from seg.tracking.sweep_plots import Job, draw_all

log = logging.getLogger(__name__)


# A sweep (Hydra multirun) is one parent run; each job's run names it in PARENT_TAG.
OBJECTIVE = "objective"  # metric: the value a job returned to the sweeper


SWEEP_TABLE = "sweep_runs.csv"
BEST_TAG = "seg.best."  # a job's best value over epochs of each metric (seg.runner.stages.train)
COMPARISON = "comparison"  # the parent's plots and ranked table (artifact folder)


def start_sweep_run(
    tracking_uri: str,
    experiment_name: str,
    run_name: str,
    tags: Mapping[str, str],
    params: Mapping[str, str],
) -> str:
    """Create the parent run of a sweep (without making it the active run of this process, where
    the basic launcher runs the jobs); returns its id."""
    experiment_id = prepare_experiment(tracking_uri, experiment_name)
    client = MlflowClient(tracking_uri)
    run = retry_when_locked(
        lambda: client.create_run(experiment_id, run_name=run_name, tags=dict(tags))
    )
    client.log_batch(
        run.info.run_id,
        params=[mlflow.entities.Param(k, str(v)[:MAX_PARAM_LENGTH]) for k, v in params.items()],
    )
    return run.info.run_id


def end_sweep_run(tracking_uri: str, run_id: str, status: str, error: str | None = None) -> None:
    client = MlflowClient(tracking_uri)
    if error:
        client.set_tag(run_id, "seg.error", error[:5000])
    client.set_terminated(run_id, status)


def child_runs(tracking_uri: str, parent_run_id: str) -> list[mlflow.entities.Run]:
    """The runs of a sweep's jobs in any experiment, ordered by job number."""
    client = MlflowClient(tracking_uri)
    experiments = [e.experiment_id for e in client.search_experiments()]
    runs: list[mlflow.entities.Run] = []
    token = None
    while True:
        page = client.search_runs(
            experiments,
            filter_string=f"tags.`{PARENT_TAG}` = '{parent_run_id}'",
            max_results=1000,
            page_token=token,
        )
        runs.extend(page)
        token = page.token
        if not token:
            break
    return sorted(runs, key=lambda r: int(r.data.tags.get("seg.job_num", 1 << 30)))


class SweepSummary(NamedTuple):
    jobs: int
    finished: int
    failed: int  # FAILED or KILLED
    best_run_id: str | None
    best_value: float | None
    table: Path | None  # the CSV in the sweep dir (also a parent run artifact)


def _table(runs: list[mlflow.entities.Run]) -> tuple[list[str], list[dict[str, Any]]]:
    """Columns and rows of the sweep table: a job's identity and outcome, its final metrics,
    its best values over epochs (``best.<metric>``) and its params (the ones that differ
    between jobs first), named as mlflow.search_runs names them."""
    params = sorted({k for r in runs for k in r.data.params})
    varying = [k for k in params if len({r.data.params.get(k) for r in runs}) > 1]
    params = varying + [k for k in params if k not in varying]
    metrics = sorted({k for r in runs for k in r.data.metrics} - {OBJECTIVE})
    best = sorted({k for r in runs for k in r.data.tags if k.startswith(BEST_TAG)})
    columns = [
        "job",
        "run_id",
        "run_name",
        "status",
        OBJECTIVE,
        "overrides",
        "error",
        *(f"metrics.{k}" for k in metrics),
        *(k.removeprefix("seg.") for k in best),
        *(f"params.{k}" for k in params),
    ]
    rows = []
    for run in runs:
        tags, data = run.data.tags, run.data
        rows.append(
            {
                "job": tags.get("seg.job_num", ""),
                "run_id": run.info.run_id,
                "run_name": run.info.run_name,
                "status": run.info.status,
                OBJECTIVE: data.metrics.get(OBJECTIVE, ""),
                "overrides": tags.get("seg.overrides", ""),
                "error": tags.get("seg.error", ""),
                **{f"metrics.{k}": data.metrics.get(k, "") for k in metrics},
                **{k.removeprefix("seg."): tags.get(k, "") for k in best},
                **{f"params.{k}": data.params.get(k, "") for k in params},
            }
        )
    return columns, rows


def swept_values(overrides: str, swept: Sequence[str]) -> dict[str, str]:
    """The swept keys' values in a job's overrides (its tag seg.overrides)."""
    found = {}
    for override in overrides.split():
        key, _, value = override.lstrip("+~").partition("=")
        if key in swept:
            found[key] = value
    return found


def _jobs(
    client: MlflowClient, runs: list[mlflow.entities.Run], swept: Sequence[str], curves: list[str]
) -> list[Job]:
    jobs = []
    for run in runs:
        histories = {}
        for metric in curves:
            points = sorted(
                client.get_metric_history(run.info.run_id, metric), key=lambda m: m.step
            )
            histories[metric] = [m.value for m in points]
        jobs.append(
            Job(
                run.data.tags.get("seg.job_num", "?"),
                run.info.run_name or run.info.run_id,
                run.info.status,
                swept_values(run.data.tags.get("seg.overrides", ""), swept),
                run.data.metrics.get(OBJECTIVE),
                histories,
            )
        )
    return jobs


def _comparison(
    client: MlflowClient,
    runs: list[mlflow.entities.Run],
    request: tuple[str | None, str, Sequence[str]],
    out: Path,
) -> list[Path]:
    """The parent's comparison plots and ranked table (seg.tracking.sweep_plots)."""
    metric, direction, swept = request
    curves = list(dict.fromkeys(["val_loss", *([metric] if metric else [])]))
    jobs = _jobs(client, runs, swept, curves)
    return draw_all(jobs, list(swept), metric or OBJECTIVE, direction == "maximize", curves, out)


def _write_table(runs: list[mlflow.entities.Run], sweep_dir: Path) -> Path:
    columns, rows = _table(runs)
    table = sweep_dir / SWEEP_TABLE
    with written_whole(table) as tmp, tmp.open("w", newline="") as f:
        writer = csv.DictWriter(f, columns)
        writer.writeheader()
        writer.writerows(rows)
    return table


CHAMPION = "champion"  # the alias of a sweep's best job's registered model version


def _crown(client: MlflowClient, name: str, run_id: str) -> dict[str, str]:
    """The alias champion on the version of ``name`` that ``run_id`` registered; the parent's
    tag saying so (none when that job registered no version)."""
    found = client.search_model_versions(f"name='{name}' and run_id='{run_id}'")
    if not found:
        log.warning("the best job %s registered no version of %s: no champion", run_id, name)
        return {}
    version = str(max(int(v.version) for v in found))
    client.set_registered_model_alias(name, CHAMPION, version)
    return {"seg.champion": f"models:/{name}@{CHAMPION} (version {version})"}


def finish_sweep_run(
    tracking_uri: str,
    run_id: str,
    metric: str | None,
    direction: str,
    sweep_dir: Path,
    files: list[Path],
    swept: Sequence[str] = (),
    register_model: str | None = None,
) -> SweepSummary:
    """Write the table of the jobs' runs into ``sweep_dir`` and log it, the comparison of the
    jobs (plots of the ``swept`` keys against the objective, the ranked table), the best job by
    its objective and ``files`` (those that exist) to the parent run; end it FINISHED when a
    job finished, else FAILED."""
    client = MlflowClient(tracking_uri)
    runs = child_runs(tracking_uri, run_id)
    finished = [r for r in runs if r.info.status == "FINISHED"]
    failed = [r for r in runs if r.info.status in ("FAILED", "KILLED")]
    scored = [r for r in finished if OBJECTIVE in r.data.metrics]
    pick = max if direction == "maximize" else min
    best = pick(scored, key=lambda r: r.data.metrics[OBJECTIVE]) if scored else None
    table = _write_table(runs, Path(sweep_dir)) if runs else None
    for path in [table, *files]:
        if path is not None and Path(path).is_file():
            client.log_artifact(run_id, str(path))
    if runs:
        comparison = _comparison(
            client, runs, (metric, direction, swept), Path(sweep_dir) / COMPARISON
        )
        for path in comparison:
            client.log_artifact(run_id, str(path), COMPARISON)
    values = {"jobs": len(runs), "jobs_finished": len(finished), "jobs_failed": len(failed)}
    tags = {}
    if best is not None:
        values[f"best_{safe_key(metric or OBJECTIVE)}"] = best.data.metrics[OBJECTIVE]
        tags = {
            "seg.best_run_id": best.info.run_id,
            "seg.best_job_num": best.data.tags.get("seg.job_num", ""),
            "seg.best_overrides": best.data.tags.get("seg.overrides", ""),
        }
    if best is not None and register_model:
        tags.update(_crown(client, register_model, best.info.run_id))
    now = int(time.time() * 1000)
    client.log_batch(
        run_id,
        metrics=[mlflow.entities.Metric(k, float(v), now, 0) for k, v in values.items()],
        tags=[mlflow.entities.RunTag(k, v) for k, v in tags.items()],
    )
    client.set_terminated(run_id, "FINISHED" if finished else "FAILED")
    return SweepSummary(
        len(runs),
        len(finished),
        len(failed),
        best.info.run_id if best else None,
        best.data.metrics[OBJECTIVE] if best else None,
        table,
    )
