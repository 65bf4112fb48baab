"""A sweep's summary on its parent run, finished when the sweep ends or, if the tracking store
cannot give a true one then, later by ``seg-sync <sweep dir>``.

The summary (the jobs' table, the best job) is read from the jobs' runs in the store. While
the store is unreachable, or while a job's records still wait in its spool (its run in the
store lacks its last epochs and its end), it cannot be right: the sweep then leaves what the
summary needs in ``<sweep dir>/sweep_summary_pending.json`` and seg-sync, once the store is
back, delivers every job's records first and then finishes the parent run.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path

from seg.errors import TrackingPending
from seg.files import write_text_whole
from seg.tracking.spool import SPOOL_DIR, kept_records
from seg.tracking.store import store_unreachable
from seg.tracking.sweeps import SweepSummary, finish_sweep_run
from seg.tracking.tracker import deliver_spool

log = logging.getLogger(__name__)

PENDING_FILE = "sweep_summary_pending.json"


@dataclass
class SummaryRequest:
    """What finishing a sweep's parent run needs (seg.tracking.sweeps.finish_sweep_run)."""

    tracking_uri: str
    run_id: str
    metric: str | None
    direction: str
    sweep_dir: str
    files: list[str]  # logged to the parent when they exist (multirun.yaml, Optuna's result)
    swept: list[str] = field(default_factory=list)  # the keys the sweep varies
    register_model: str | None = None  # the registered model whose best version is champion

    def finish(self, tracking_uri: str | None = None) -> SweepSummary:
        return finish_sweep_run(
            tracking_uri or self.tracking_uri,
            self.run_id,
            self.metric,
            self.direction,
            Path(self.sweep_dir),
            [Path(f) for f in self.files],
            self.swept,
            self.register_model,
        )


def job_spools(sweep_dir: Path) -> list[Path]:
    """The spools of the sweep's jobs that still hold records to deliver (a spool left with
    refused records only does not hold the summary back)."""
    return sorted(p for p in Path(sweep_dir).rglob(SPOOL_DIR) if kept_records(p))


def finish_or_defer(request: SummaryRequest) -> SweepSummary:
    """Finish the parent run, or leave the request in the sweep dir for seg-sync and raise
    TrackingPending saying so."""
    sweep_dir = Path(request.sweep_dir)
    waiting = job_spools(sweep_dir)
    if waiting:
        shown = ", ".join(map(str, waiting[:3])) + (", ..." if len(waiting) > 3 else "")
        why = f"records of {len(waiting)} of its jobs wait in their spools ({shown})"
    else:
        try:
            return request.finish()
        except Exception as err:
            if not store_unreachable(err):
                raise
            why = f"the tracking store {request.tracking_uri} is unreachable ({err})"
    write_text_whole(sweep_dir / PENDING_FILE, json.dumps(asdict(request), indent=1))
    raise TrackingPending(
        f"the sweep's summary waits: {why}; deliver the jobs' records and "
        f"the summary when the store is back with: seg-sync {sweep_dir}"
    )


def describe(summary: SweepSummary, request: SummaryRequest) -> str:
    best = (
        f"; best job: run {summary.best_run_id} ({request.metric}={summary.best_value:.4g})"
        if summary.best_run_id
        else ""
    )
    return (
        f"sweep done: {summary.jobs} jobs, {summary.finished} finished, {summary.failed} "
        f"failed{best}; parent run {request.run_id}, table {summary.table}"
    )


def is_pending(folder: Path) -> bool:
    return (Path(folder) / PENDING_FILE).is_file()


def finish_pending(sweep_dir: Path, tracking_uri: str | None = None) -> str:
    """seg-sync of a sweep dir: every job's kept records, then the parent's summary; the
    summary's description."""
    sweep_dir = Path(sweep_dir)
    left = 0
    for spool in job_spools(sweep_dir):
        delivered, spool_left = deliver_spool(spool, tracking_uri)
        log.info(
            "%s: delivered %d records%s",
            spool,
            delivered,
            f", {spool_left} left" if spool_left else "",
        )
        left += spool_left
    if left:
        raise TrackingPending(
            f"{sweep_dir}: {left} records of its jobs are left because the "
            "tracking store is still unreachable; run seg-sync again when "
            "it is back"
        )
    pending = sweep_dir / PENDING_FILE
    request = SummaryRequest(**json.loads(pending.read_text(encoding="utf-8")))
    try:
        summary = request.finish(tracking_uri)
    except Exception as err:
        if not store_unreachable(err):
            raise
        raise TrackingPending(
            f"{sweep_dir}: the jobs' records are delivered but the store "
            f"became unreachable for the summary ({err}); run seg-sync "
            "again when it is back"
        ) from err
    pending.unlink()
    return describe(summary, request)
