"""The run's tracker: one MLflow run, written through a spool so that training goes on
while the store is unreachable."""

from __future__ import annotations

import json
import logging
import traceback
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
from mlflow.tracking import MlflowClient
from mlflow.tracking.context.registry import resolve_tags

from seg.errors import ConfigError, TrackingPending
from seg.tracking.naming import PARENT_TAG, safe_key
from seg.tracking.records import record_handlers
from seg.tracking.spool import SPOOL_DIR, TARGET_FILE, Spool
from seg.tracking.store import (
    now_ms,
    prepare_experiment,
    retry_when_locked,
    store_unreachable,
)

log = logging.getLogger(__name__)


ERROR_TAG = "seg.error"  # why the run failed or was interrupted (while it is)
ERROR_HISTORY_TAG = "seg.error_history"  # the errors of a resumed run's earlier endings


class Tracker:
    """One MLflow run. Use as a context manager: it ends FINISHED, FAILED or KILLED.

    ``parent_run_id`` makes it a child of a sweep's run; ``run_id`` continues an existing run
    (resume) instead of starting one. A continued run keeps the final (step-less) metrics it
    logged before the interruption rather than logging them twice.

    Everything logged after the start goes through a :class:`seg.tracking.spool.Spool` in
    ``spool_dir``: while the store cannot be reached, records are kept there and training goes
    on. At the end the Tracker waits up to ``outage_wait`` seconds for the store to deliver
    them (not after Ctrl-C/SIGTERM), then says where they are and how to deliver them.
    """

    def __init__(
        self,
        tracking_uri: str,
        experiment_name: str,
        run_name: str | None = None,
        tags: Mapping[str, str] | None = None,
        parent_run_id: str | None = None,
        run_id: str | None = None,
        spool_dir: Path | None = None,
        outage_wait: float = 60.0,
        retry_every: float = 15.0,
    ) -> None:
        self.tracking_uri, self.outage_wait = tracking_uri, outage_wait
        mlflow.set_tracking_uri(tracking_uri)
        self.experiment_id = prepare_experiment(tracking_uri, experiment_name)
        self.client = MlflowClient(tracking_uri)
        tags = dict(tags or {})
        self._logged_finals: set[str] = set()
        # Not mlflow.start_run: a process-wide active run could not be let go of while the
        # store is unreachable. The same run as start_run makes, tags of its context included.
        if run_id is None:
            if parent_run_id:
                tags[PARENT_TAG] = parent_run_id
            if run_name:
                tags["mlflow.runName"] = run_name
            self.run = retry_when_locked(
                lambda: self.client.create_run(
                    self.experiment_id, run_name=run_name, tags=resolve_tags(tags)
                )
            )
        self.run_id = run_id or self.run.info.run_id
        target = {
            "tracking_uri": tracking_uri,
            "run_id": self.run_id,
            "experiment_name": experiment_name,
        }
        self.spool = Spool(
            spool_dir,
            record_handlers(self.client, self.run_id),
            store_unreachable,
            target,
            retry_every=retry_every,
            redelivery=record_handlers(self.client, self.run_id, redelivery=True),
        )
        if run_id is not None:
            # What the interrupted run kept (its end status too) goes first, then it runs again.
            self.spool.drain(0.0)
            retry_when_locked(lambda: self.client.update_run(run_id, status="RUNNING"))
            self.run = self.client.get_run(run_id)
            self._logged_finals = set(self.run.data.metrics)
            self._file_away_error()
            self.set_tags(tags)
        log.info(
            "MLflow run %s in experiment '%s' (%s)%s",
            self.run_id,
            experiment_name,
            tracking_uri,
            " resumed" if run_id else "",
        )

    def _file_away_error(self) -> None:
        """A resumed run is no longer failed or interrupted: its ``seg.error`` moves to the
        end of ``seg.error_history`` (one line per earlier ending), so the run list shows
        only a current error and the record of its interruptions stays."""
        error = self.run.data.tags.get(ERROR_TAG)
        if error is None:
            return
        history = self.run.data.tags.get(ERROR_HISTORY_TAG, "")
        entry = " ".join(error.split())[:500]
        retry_when_locked(
            lambda: self.client.set_tag(
                self.run_id, ERROR_HISTORY_TAG, "\n".join(filter(None, [history, entry]))[-5000:]
            )
        )
        retry_when_locked(lambda: self.client.delete_tag(self.run_id, ERROR_TAG))

    def __enter__(self) -> Tracker:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            pending = self.end("FINISHED")
            if pending:
                raise TrackingPending(pending)
            return
        if issubclass(exc_type, KeyboardInterrupt):
            self.set_tags({ERROR_TAG: f"interrupted: {exc or 'KeyboardInterrupt (Ctrl-C)'}"})
            self._report(self.end("KILLED", wait=0.0))
            return
        try:  # the error must reach the run; a failure to log it must not hide the error
            self.set_tags({ERROR_TAG: f"{exc_type.__name__}: {exc}"[:5000]})
            self.log_text("".join(traceback.format_exception(exc_type, exc, tb)), "error.txt")
        finally:
            self._report(self.end("FAILED"))

    def end(self, status: str, wait: float | None = None) -> str | None:
        """End the run with ``status``; a message saying where its records are when the store
        stayed unreachable (None when everything was delivered)."""
        self.spool.submit("end", status=status, end_time=now_ms())
        left = self.spool.drain(self.outage_wait if wait is None else wait)
        if not left:
            return None
        folder = self.spool.folder
        return (
            f"the tracking store {self.tracking_uri} is unreachable: {left} records of run "
            f"{self.run_id} (metrics, images, artifacts, its end status {status}) are kept "
            f"in {folder}; deliver them when it is back with: seg-sync {folder}"
        )

    @staticmethod
    def _report(pending: str | None) -> None:
        if pending:
            log.error("%s", pending)

    def log_params(self, params: Mapping[str, str]) -> None:
        self.spool.submit("batch", params=dict(params))

    def set_tags(self, tags: Mapping[str, str]) -> None:
        self.spool.submit("batch", tags={k: str(v) for k, v in tags.items()})

    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        values = {safe_key(k): float(v) for k, v in metrics.items() if np.isscalar(v)}
        if step is None:
            values = {k: v for k, v in values.items() if k not in self._logged_finals}
        if values:
            now = now_ms()
            self.spool.submit("batch", metrics=[(k, v, now, step or 0) for k, v in values.items()])

    def logged_steps(self, key: str) -> set[int]:
        """Steps at which the run already has metric ``key`` (a resumed run's epochs)."""
        return {m.step for m in self.client.get_metric_history(self.run_id, safe_key(key))}

    def log_image(self, image: np.ndarray, key: str, step: int) -> None:
        """An image in MLflow's per-step image store: the UI shows a step slider per key."""
        self.spool.submit(
            "image", image=np.asarray(image), key=safe_key(key), step=step, timestamp=now_ms()
        )

    def log_artifact(self, path: Path, artifact_path: str | None = None) -> None:
        self.spool.submit("artifact", path=Path(path), artifact_path=artifact_path)

    def log_text(self, text: str, artifact_file: str) -> None:
        self.spool.submit("text", text=text, artifact_file=artifact_file)

    def log_keras_model(
        self, model: Any, sample: np.ndarray, preprocessing: Mapping[str, Any] | None = None
    ) -> str | None:
        """Log the model (runs:/<run id>/model) with a signature and the preprocessing it
        expects in its metadata; its URI (None while it waits in the spool)."""
        spec = dict(preprocessing) if preprocessing else None
        return self.spool.submit(
            "model", model=model, sample=np.asarray(sample), preprocessing=spec
        )

    def register_model(self, name: str) -> str | None:
        """The run's logged model registered as a version of ``name``; the version (None
        while it waits in the spool)."""
        return self.spool.submit("register", name=name)


def deliver_spool(folder: Path, tracking_uri: str | None = None) -> tuple[int, int]:
    """Deliver the records a run kept in ``folder`` (a run's output dir or its spool) to its
    run, in its store or in ``tracking_uri``; (delivered, left)."""
    folder = Path(folder)
    if (folder / SPOOL_DIR).is_dir():
        folder = folder / SPOOL_DIR
    target_file = folder / TARGET_FILE
    if not target_file.is_file():
        raise ConfigError(
            f"{folder}: no records to deliver (no {TARGET_FILE}: nothing was "
            "kept, or it was delivered already)"
        )
    target = json.loads(target_file.read_text(encoding="utf-8"))
    uri = tracking_uri or target["tracking_uri"]
    mlflow.set_tracking_uri(uri)  # where a kept model goes (Model.log uses the global store)
    handlers = record_handlers(MlflowClient(uri), target["run_id"], redelivery=True)
    spool = Spool(folder, handlers, store_unreachable, target)
    left = spool.flush()
    return spool.delivered, left
