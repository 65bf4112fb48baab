"""The tracking store: opening it safely from many processes, retrying a busy SQLite
store, and telling an unreachable store from one that refused a request."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from typing import TypeVar

from filelock import FileLock, Timeout
from mlflow.exceptions import MlflowException, RestException
from mlflow.tracking import MlflowClient
from requests.exceptions import ConnectionError as RequestsConnectionError
from requests.exceptions import HTTPError
from requests.exceptions import Timeout as RequestTimeout
from sqlalchemy.exc import DatabaseError, OperationalError

from seg.errors import ConfigError
from seg.tracking.store_file import sqlite_path

log = logging.getLogger(__name__)
T = TypeVar("T")

# MLflow's HTTP client retries a failed request 7 times with exponential back-off and waits up
# to 120 s for an answer: minutes per call while a tracking server is down, during which
# training would stand still. Bounded here (a user's own values win); what does not get
# through is kept in the run's spool (seg.tracking.spool) and delivered later.
for _name, _value in (
    ("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2"),
    ("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "1"),
    ("MLFLOW_HTTP_REQUEST_BACKOFF_JITTER", "0.5"),
    ("MLFLOW_HTTP_REQUEST_TIMEOUT", "15"),
):
    os.environ.setdefault(_name, _value)


# Opening a brand-new SQLite store from several processes at once races in MLflow's schema
# creation and migrations ("duplicate column name", "table ... already exists") and in
# experiment get-or-create (mlflow/mlflow#4123, #12259). Every process therefore opens the store
# and gets or creates its experiment under one file lock beside the database; what still meets
# a write lock ("database is locked") is retried.
_LOCK_TIMEOUT_S = 300


_LOCKED_RETRIES = 8


class _RetriedLocks(logging.Filter):
    """MLflow logs a whole traceback for each "database is locked" it meets
    (mlflow.store.db.utils) before raising it; seg retries such a call and says so in one
    warning line, so the traceback only hides that line."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "database is locked" not in record.getMessage()


logging.getLogger("mlflow.store.db.utils").addFilter(_RetriedLocks())


def local_artifact_location(tracking_uri: str) -> str | None:
    """Where a SQLite store's new experiments keep their artifacts: ``mlruns/`` beside the
    database, so the store is one folder wherever it lives. (MLflow's default is ``./mlruns``
    in the current directory: a store elsewhere would scatter its artifacts over every
    directory a run was started from.) None for servers and other databases: theirs to say."""
    path = sqlite_path(tracking_uri)
    return None if path is None else (path.resolve().parent / "mlruns").as_uri()


def store_lock(tracking_uri: str) -> AbstractContextManager:
    """An inter-process lock for a SQLite store (a no-op for servers and databases)."""
    path = sqlite_path(tracking_uri)
    if path is None:
        return nullcontext()
    path.parent.mkdir(parents=True, exist_ok=True)
    return FileLock(f"{path}.lock", timeout=_LOCK_TIMEOUT_S)


def retry_when_locked(action: Callable[[], T]) -> T:
    """``action()``, retried with back-off while SQLite says "database is locked"."""
    for attempt in range(_LOCKED_RETRIES):
        try:
            return action()
        except (MlflowException, OperationalError) as err:
            if "database is locked" not in str(err) or attempt == _LOCKED_RETRIES - 1:
                raise
            log.warning("tracking store busy (database is locked); retrying")
            time.sleep(0.2 * 2**attempt)
    raise AssertionError("unreachable")


# The experiment tag by which MLflow 3's UI tells a model-training experiment from a GenAI one.
# (MLflow 3.17.1's UI decides by a per-browser switch instead, "Machine learning" vs "GenAI",
# or ?workflowType=machine_learning in the link; the tag is what later versions read.)
KIND_TAG, MODEL_TRAINING = "mlflow.experimentKind", "custom_model_development"


def prepare_experiment(tracking_uri: str, experiment_name: str) -> str:
    """Open the store (creating its schema if new) and get or create the experiment, safely
    against other processes doing the same; returns the experiment id."""

    def get_or_create() -> str:
        client = MlflowClient(tracking_uri)
        experiment = client.get_experiment_by_name(experiment_name)
        if experiment is not None:
            if KIND_TAG not in experiment.tags:  # made by an older seg, or by hand
                client.set_experiment_tag(experiment.experiment_id, KIND_TAG, MODEL_TRAINING)
            return experiment.experiment_id
        try:
            return client.create_experiment(
                experiment_name,
                artifact_location=local_artifact_location(tracking_uri),
                tags={KIND_TAG: MODEL_TRAINING},
            )
        except MlflowException:  # created meanwhile by a process that does not lock (a server)
            experiment = client.get_experiment_by_name(experiment_name)
            if experiment is None:
                raise
            return experiment.experiment_id

    try:
        with store_lock(tracking_uri):
            return retry_when_locked(get_or_create)
    except (MlflowException, DatabaseError, Timeout) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ConfigError(
            f"mlflow.tracking_uri={tracking_uri}: cannot open the tracking store ({first})"
        ) from err


def now_ms() -> int:
    return int(time.time() * 1000)


# Errors that say the store could not be reached (the record is kept and tried again later),
# as opposed to a store that answered and refused it.
_TRANSIENT_STATUS = {408, 429, 500, 502, 503, 504}


_TRANSIENT_CODES = {"TEMPORARILY_UNAVAILABLE", "REQUEST_LIMIT_EXCEEDED"}


def store_unreachable(err: BaseException) -> bool:
    """Whether ``err`` says the store could not be reached (worth trying again later) rather
    than that it refused the request (seg.tracking.spool keeps records on the first kind only)."""
    if isinstance(err, RestException):  # the server answered with an error
        return err.error_code in _TRANSIENT_CODES
    if isinstance(err, HTTPError):  # an artifact upload answered with an error status
        status = err.response.status_code if err.response is not None else None
        return status is None or status in _TRANSIENT_STATUS
    if isinstance(err, (RequestsConnectionError, RequestTimeout)):
        return True
    message = str(err)
    if isinstance(err, (MlflowException, OperationalError)) and "database is locked" in message:
        return True
    # mlflow.utils.rest_utils.http_request: connection refused, timeouts, retries exhausted
    return isinstance(err, MlflowException) and message.startswith("API request to")
