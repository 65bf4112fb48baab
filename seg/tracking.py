"""Everything that talks to MLflow, in one place.

A :class:`Tracker` wraps one MLflow run: params, tags, per-epoch metrics and images,
artifacts and the model. :func:`load_model_and_preprocessing` turns a run id, an MLflow
model URI or a ``.keras`` path into a Keras model and the preprocessing it was trained with
(``preprocessing.json``), wherever it was kept.
"""

from __future__ import annotations

import csv
import json
import logging
import os
import re
import subprocess
import tempfile
import time
import traceback
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import Any, NamedTuple, TypeVar

import mlflow
import numpy as np
from filelock import FileLock, Timeout
from mlflow.exceptions import MlflowException, RestException
from mlflow.tracking import MlflowClient
from requests.exceptions import ConnectionError as RequestsConnectionError
from requests.exceptions import HTTPError
from requests.exceptions import Timeout as RequestTimeout
from sqlalchemy.exc import OperationalError

from seg.errors import CheckpointError, ConfigError, TrackingPending
from seg.spool import SPOOL_DIR, TARGET_FILE, Handler, Spool

log = logging.getLogger(__name__)

MODEL_NAME = "model"  # the logged model's name: runs:/<run id>/model
# The preprocessing a model was trained with travels three ways: beside the checkpoint in the
# run dir, as a run artifact, and inside the logged model's MLmodel metadata (so that a
# models:/ URI of a registered model carries it too).
PREPROCESSING_FILE = "preprocessing.json"
_PREPROCESSING_KEY = "seg_preprocessing"  # key in the logged model's metadata
_RUN_ID = re.compile(r"^[0-9a-f]{32}$")
_MAX_PARAM_LENGTH = 6000  # MLflow's limit on a param value
PARENT_TAG = "mlflow.parentRunId"  # what the MLflow UI nests child runs by
T = TypeVar("T")

# MLflow's HTTP client retries a failed request 7 times with exponential back-off and waits up
# to 120 s for an answer: minutes per call while a tracking server is down, during which
# training would stand still. Bounded here (a user's own values win); what does not get
# through is kept in the run's spool (seg.spool) and delivered later.
for _name, _value in (("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2"),
                      ("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "1"),
                      ("MLFLOW_HTTP_REQUEST_BACKOFF_JITTER", "0.5"),
                      ("MLFLOW_HTTP_REQUEST_TIMEOUT", "15")):
    os.environ.setdefault(_name, _value)


def flatten(tree: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    """{"model": {"base_filters": 16}} -> {"model.base_filters": "16"} (lists stay one value)."""
    flat: dict[str, str] = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            flat.update(flatten(value, f"{name}."))
        else:
            flat[name] = str(value)[:_MAX_PARAM_LENGTH]
    return flat


def safe_key(text: str) -> str:
    """A metric/image key MLflow accepts on every store: letters, digits, _ - . only."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text)


def git_commit() -> str | None:
    """Commit of the checkout seg runs from (None for an installed wheel or without git)."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=Path(__file__).resolve().parent,
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


# Opening a brand-new SQLite store from several processes at once races in MLflow's schema
# creation and migrations ("duplicate column name", "table ... already exists") and in
# experiment get-or-create (mlflow/mlflow#4123, #12259). Every process therefore opens the store
# and gets or creates its experiment under one file lock beside the database; what still meets
# a write lock ("database is locked") is retried.
_LOCK_TIMEOUT_S = 300
_LOCKED_RETRIES = 8


def _sqlite_path(tracking_uri: str) -> Path | None:
    """The database file of a sqlite:/// URI (None for other stores and in-memory SQLite)."""
    if not tracking_uri.startswith("sqlite:///"):
        return None
    path = tracking_uri[len("sqlite:///"):].split("?", 1)[0]
    return None if path in ("", ":memory:") else Path(path)


def local_artifact_location(tracking_uri: str) -> str | None:
    """Where a SQLite store's new experiments keep their artifacts: ``mlruns/`` beside the
    database, so the store is one folder wherever it lives. (MLflow's default is ``./mlruns``
    in the current directory: a store elsewhere would scatter its artifacts over every
    directory a run was started from.) None for servers and other databases: theirs to say."""
    path = _sqlite_path(tracking_uri)
    return None if path is None else (path.resolve().parent / "mlruns").as_uri()


def store_lock(tracking_uri: str) -> AbstractContextManager:
    """An inter-process lock for a SQLite store (a no-op for servers and databases)."""
    path = _sqlite_path(tracking_uri)
    if path is None:
        return nullcontext()
    path.parent.mkdir(parents=True, exist_ok=True)
    return FileLock(f"{path}.lock", timeout=_LOCK_TIMEOUT_S)


def _retry_when_locked(action: Callable[[], T]) -> T:
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


def prepare_experiment(tracking_uri: str, experiment_name: str) -> str:
    """Open the store (creating its schema if new) and get or create the experiment, safely
    against other processes doing the same; returns the experiment id."""

    def get_or_create() -> str:
        client = MlflowClient(tracking_uri)
        experiment = client.get_experiment_by_name(experiment_name)
        if experiment is not None:
            return experiment.experiment_id
        try:
            return client.create_experiment(
                experiment_name, artifact_location=local_artifact_location(tracking_uri)
            )
        except MlflowException:  # created meanwhile by a process that does not lock (a server)
            experiment = client.get_experiment_by_name(experiment_name)
            if experiment is None:
                raise
            return experiment.experiment_id

    try:
        with store_lock(tracking_uri):
            return _retry_when_locked(get_or_create)
    except (MlflowException, OperationalError, Timeout) as err:
        raise ConfigError(
            f"mlflow.tracking_uri={tracking_uri}: cannot open the tracking store ({err})"
        ) from err


def _image_logged(client: MlflowClient, run_id: str, key: str, step: int, timestamp: int) -> bool:
    """Whether the run already holds this image record: MLflow names an image file after its
    key, step and timestamp (``images/<key>+step+<s>+timestamp+<t>+<uuid>.png``, ``%`` for ``+`` in
    older MLflow), and the record's timestamp was fixed when it was made."""
    stem = key.replace("/", "~")
    names = [f"images/{stem}{sep}step{sep}{step}{sep}timestamp{sep}{timestamp}{sep}"
             for sep in "+%"]
    return any(a.path.startswith(tuple(names)) and a.path.endswith(".png")
               for a in client.list_artifacts(run_id, "images"))


def _model_logged(client: MlflowClient, run_id: str) -> str | None:
    """The URI of the run's model if an earlier attempt stored it whole (status READY, which
    MLflow sets after the last file is uploaded); None otherwise."""
    from mlflow.entities import LoggedModelStatus

    experiment_id = client.get_run(run_id).info.experiment_id
    found = client.search_logged_models(
        [experiment_id], filter_string=f"source_run_id = '{run_id}' AND name = '{MODEL_NAME}'")
    ready = [m for m in found if m.status == LoggedModelStatus.READY]
    return ready[0].model_uri if ready else None


def _record_handlers(client: MlflowClient, run_id: str, *,
                     redelivery: bool = False) -> dict[str, Handler]:
    """How each kind of record reaches the run; the Tracker's spool delivers through these,
    at once or later (seg-sync). ``redelivery``: for a kept record that an attempt cut short
    by the outage may have delivered already; an image is then not logged twice (metrics
    carry their timestamps and artifacts their paths, so those cannot be doubled), nor a model
    the run already holds whole."""

    def batch(metrics: list | None = None, params: dict | None = None,
              tags: dict | None = None) -> None:
        client.log_batch(
            run_id,
            metrics=[mlflow.entities.Metric(k, v, ts, step) for k, v, ts, step in metrics or []],
            params=[mlflow.entities.Param(k, v) for k, v in (params or {}).items()],
            tags=[mlflow.entities.RunTag(k, v) for k, v in (tags or {}).items()],
        )

    def image(image: np.ndarray, key: str, step: int, timestamp: int | None = None) -> None:
        if redelivery and timestamp is not None and _image_logged(client, run_id, key, step,
                                                                  timestamp):
            return
        client.log_image(run_id, image, key=key, step=step, timestamp=timestamp)

    def artifact(path: Path, artifact_path: str | None = None) -> None:
        if path.is_dir():
            client.log_artifacts(run_id, str(path), artifact_path)
        else:
            client.log_artifact(run_id, str(path), artifact_path)

    def text(text: str, artifact_file: str) -> None:
        client.log_text(run_id, text, artifact_file)

    def model(model: Any, sample: np.ndarray, preprocessing: dict | None = None) -> str:
        """The model with a signature (and the preprocessing it expects in its metadata);
        its URI."""
        from mlflow.models import Model, infer_signature

        if redelivery and (logged := _model_logged(client, run_id)) is not None:
            return logged
        if isinstance(model, Path):  # kept in the spool
            from seg.model_files import load_model_file

            model = load_model_file(model, str(model))
        prediction = np.asarray(model.predict(sample, verbose=0))
        # Model.log puts the model in the active experiment, not in its run's (MLflow 3.17)
        mlflow.set_experiment(experiment_id=client.get_run(run_id).info.experiment_id)
        info = Model.log(
            artifact_path=None, name=MODEL_NAME, flavor=mlflow.keras, model=model,
            signature=infer_signature(sample, prediction), run_id=run_id,
            metadata={_PREPROCESSING_KEY: preprocessing} if preprocessing else None,
        )
        return info.model_uri

    def end(status: str, end_time: int) -> None:
        client.set_terminated(run_id, status, end_time)

    return {"batch": batch, "image": image, "artifact": artifact, "text": text,
            "model": model, "end": end}


def _now_ms() -> int:
    return int(time.time() * 1000)


# Errors that say the store could not be reached (the record is kept and tried again later),
# as opposed to a store that answered and refused it.
_TRANSIENT_STATUS = {408, 429, 500, 502, 503, 504}
_TRANSIENT_CODES = {"TEMPORARILY_UNAVAILABLE", "REQUEST_LIMIT_EXCEEDED"}


def store_unreachable(err: BaseException) -> bool:
    """Whether ``err`` says the store could not be reached (worth trying again later) rather
    than that it refused the request (seg.spool keeps records on the first kind only)."""
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


class Tracker:
    """One MLflow run. Use as a context manager: it ends FINISHED, FAILED or KILLED.

    ``parent_run_id`` makes it a child of a sweep's run; ``run_id`` continues an existing run
    (resume) instead of starting one. A continued run keeps the final (step-less) metrics it
    logged before the interruption rather than logging them twice.

    Everything logged after the start goes through a :class:`seg.spool.Spool` in
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
        from mlflow.tracking.context.registry import resolve_tags

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
            self.run = _retry_when_locked(lambda: self.client.create_run(
                self.experiment_id, run_name=run_name, tags=resolve_tags(tags)
            ))
        self.run_id = run_id or self.run.info.run_id
        target = {"tracking_uri": tracking_uri, "run_id": self.run_id,
                  "experiment_name": experiment_name}
        self.spool = Spool(spool_dir, _record_handlers(self.client, self.run_id),
                           store_unreachable, target, retry_every=retry_every,
                           redelivery=_record_handlers(self.client, self.run_id,
                                                       redelivery=True))
        if run_id is not None:
            # What the interrupted run kept (its end status too) goes first, then it runs again.
            self.spool.drain(0.0)
            _retry_when_locked(lambda: self.client.update_run(run_id, status="RUNNING"))
            self.run = self.client.get_run(run_id)
            self._logged_finals = set(self.run.data.metrics)
            self.set_tags(tags)
        log.info("MLflow run %s in experiment '%s' (%s)%s", self.run_id, experiment_name,
                 tracking_uri, " resumed" if run_id else "")

    def __enter__(self) -> Tracker:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            pending = self.end("FINISHED")
            if pending:
                raise TrackingPending(pending)
            return
        if issubclass(exc_type, KeyboardInterrupt):
            self.set_tags({"seg.error": f"interrupted: {exc or 'KeyboardInterrupt (Ctrl-C)'}"})
            self._report(self.end("KILLED", wait=0.0))
            return
        try:  # the error must reach the run; a failure to log it must not hide the error
            self.set_tags({"seg.error": f"{exc_type.__name__}: {exc}"[:5000]})
            self.log_text("".join(traceback.format_exception(exc_type, exc, tb)), "error.txt")
        finally:
            self._report(self.end("FAILED"))

    def end(self, status: str, wait: float | None = None) -> str | None:
        """End the run with ``status``; a message saying where its records are when the store
        stayed unreachable (None when everything was delivered)."""
        self.spool.submit("end", status=status, end_time=_now_ms())
        left = self.spool.drain(self.outage_wait if wait is None else wait)
        if not left:
            return None
        folder = self.spool.folder
        return (f"the tracking store {self.tracking_uri} is unreachable: {left} records of run "
                f"{self.run_id} (metrics, images, artifacts, its end status {status}) are kept "
                f"in {folder}; deliver them when it is back with: seg-sync {folder}")

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
            now = _now_ms()
            self.spool.submit("batch", metrics=[(k, v, now, step or 0)
                                                for k, v in values.items()])

    def logged_steps(self, key: str) -> set[int]:
        """Steps at which the run already has metric ``key`` (a resumed run's epochs)."""
        return {m.step for m in self.client.get_metric_history(self.run_id, safe_key(key))}

    def log_image(self, image: np.ndarray, key: str, step: int) -> None:
        """An image in MLflow's per-step image store: the UI shows a step slider per key."""
        self.spool.submit("image", image=np.asarray(image), key=safe_key(key), step=step,
                          timestamp=_now_ms())

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
        return self.spool.submit("model", model=model, sample=np.asarray(sample),
                                 preprocessing=spec)


def deliver_spool(folder: Path, tracking_uri: str | None = None) -> tuple[int, int]:
    """Deliver the records a run kept in ``folder`` (a run's output dir or its spool) to its
    run, in its store or in ``tracking_uri``; (delivered, left)."""
    folder = Path(folder)
    if (folder / SPOOL_DIR).is_dir():
        folder = folder / SPOOL_DIR
    target_file = folder / TARGET_FILE
    if not target_file.is_file():
        raise ConfigError(f"{folder}: no records to deliver (no {TARGET_FILE}: nothing was "
                          "kept, or it was delivered already)")
    target = json.loads(target_file.read_text(encoding="utf-8"))
    uri = tracking_uri or target["tracking_uri"]
    mlflow.set_tracking_uri(uri)  # where a kept model goes (Model.log uses the global store)
    handlers = _record_handlers(MlflowClient(uri), target["run_id"], redelivery=True)
    spool = Spool(folder, handlers, store_unreachable, target)
    left = spool.flush()
    return spool.delivered, left


def _keras_file(folder: Path) -> Path:
    found = sorted(folder.rglob("*.keras"))
    if not found:
        raise CheckpointError(f"{folder}: the MLflow model holds no .keras file")
    return found[0]


def resolve_model_file(checkpoint: str, tracking_uri: str, workdir: Path) -> Path:
    """checkpoint=<run id | runs:/... | models:/... | file.keras> -> a local .keras file."""
    path = Path(checkpoint).expanduser()
    if checkpoint.endswith(".keras") or path.exists():
        if not path.is_file():
            raise CheckpointError(f"checkpoint={checkpoint}: file not found")
        return path.resolve()
    uri = f"runs:/{checkpoint}/{MODEL_NAME}" if _RUN_ID.match(checkpoint) else checkpoint
    if not uri.startswith(("runs:/", "models:/")):
        raise CheckpointError(
            f"checkpoint={checkpoint}: not a run id, a runs:/ or models:/ URI, or a .keras file"
        )
    mlflow.set_tracking_uri(tracking_uri)
    try:
        local = mlflow.artifacts.download_artifacts(
            artifact_uri=uri, dst_path=str(workdir), tracking_uri=tracking_uri
        )
    except MlflowException as err:
        raise CheckpointError(
            f"checkpoint={checkpoint}: no such model in the tracking store {tracking_uri} "
            f"({err.message.splitlines()[0] if err.message else err}); check the run id, "
            "or set mlflow.tracking_uri to the store that holds it"
        ) from err
    return _keras_file(Path(local))


class LoadedModel(NamedTuple):
    model: Any
    preprocessing: dict[str, Any] | None  # the saved spec, None when none was found
    source: str | None  # where the spec came from (for the log)


def read_preprocessing(path: Path) -> dict[str, Any]:
    """A preprocessing.json file as a dict; one clear error if it is not JSON."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise CheckpointError(f"{path}: cannot read the preprocessing spec ({err})") from err
    if not isinstance(data, dict):
        raise CheckpointError(f"{path}: the preprocessing spec is not a JSON object")
    return data


def write_preprocessing(path: Path, spec: Mapping[str, Any]) -> Path:
    """Write ``spec`` as preprocessing.json (pretty, sorted keys: it is read by people too)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(dict(spec), indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return path


def _run_id_of(checkpoint: str) -> str | None:
    """The run a run id or runs:/<id>/... URI names (None for files and models:/ URIs)."""
    if _RUN_ID.match(checkpoint):
        return checkpoint
    match = re.match(r"^runs:/([0-9a-f]{32})(/|$)", checkpoint)
    return match.group(1) if match else None


def _metadata_preprocessing(workdir: Path) -> dict[str, Any] | None:
    """The spec in the downloaded MLflow model's metadata (MLmodel file), if any."""
    from mlflow.models import Model

    mlmodel = next(workdir.rglob("MLmodel"), None)
    if mlmodel is None:
        return None
    spec = (Model.load(str(mlmodel)).metadata or {}).get(_PREPROCESSING_KEY)
    return dict(spec) if isinstance(spec, Mapping) else None


def _run_artifact_preprocessing(run_id: str, tracking_uri: str, workdir: Path) -> Path | None:
    """The run's preprocessing.json artifact downloaded into ``workdir``, if it has one."""
    try:
        local = mlflow.artifacts.download_artifacts(
            run_id=run_id, artifact_path=PREPROCESSING_FILE, dst_path=str(workdir / "spec"),
            tracking_uri=tracking_uri,
        )
    except (MlflowException, OSError):
        return None
    return Path(local) if Path(local).is_file() else None


def _find_preprocessing(
    checkpoint: str, model_file: Path, tracking_uri: str, workdir: Path
) -> tuple[dict[str, Any] | None, str | None]:
    """(spec, where) for a model: a .keras file's sibling preprocessing.json; for an MLflow
    model its metadata, then its run's artifact. (None, None) when there is none."""
    if not model_file.is_relative_to(workdir):  # a local file the user named
        sibling = model_file.parent / PREPROCESSING_FILE
        return (read_preprocessing(sibling), str(sibling)) if sibling.is_file() else (None, None)
    spec = _metadata_preprocessing(workdir)
    if spec is not None:
        return spec, f"{checkpoint} (model metadata)"
    run_id = _run_id_of(checkpoint)
    found = _run_artifact_preprocessing(run_id, tracking_uri, workdir) if run_id else None
    if found is not None:
        return read_preprocessing(found), f"runs:/{run_id}/{PREPROCESSING_FILE}"
    return None, None


def load_model_and_preprocessing(
    checkpoint: str, tracking_uri: str, trust: bool = False
) -> LoadedModel:
    """The model (Keras' safe mode on unless ``trust``: :mod:`seg.model_files`) plus the
    preprocessing spec saved with it (see :data:`PREPROCESSING_FILE`); the caller decides what
    to do when there is none. Files from the store are downloaded into a temporary folder."""
    from seg.model_files import load_model_file

    with tempfile.TemporaryDirectory(prefix="seg-model-") as tmp:
        workdir = Path(tmp).resolve()
        path = resolve_model_file(checkpoint, tracking_uri, workdir)
        model = load_model_file(path, f"checkpoint={checkpoint}", trust)
        spec, source = _find_preprocessing(checkpoint, path, tracking_uri, workdir)
    return LoadedModel(model, spec, source)


def find_run(tracking_uri: str, run_id: str) -> mlflow.entities.Run | None:
    try:
        with store_lock(tracking_uri):  # the first access may create a new store
            return MlflowClient(tracking_uri).get_run(run_id)
    except MlflowException:
        return None


def unfinished_runs(
    tracking_uri: str, experiment_name: str, task: str
) -> list[mlflow.entities.Run]:
    """Runs of ``task`` in the experiment that did not finish (RUNNING ones too: a process
    killed without notice leaves its run RUNNING), newest first."""
    client = MlflowClient(tracking_uri)
    with store_lock(tracking_uri):  # the first access may create a new store
        experiment = client.get_experiment_by_name(experiment_name)
    if experiment is None:
        return []
    return list(client.search_runs(
        [experiment.experiment_id],
        filter_string=f"attributes.status != 'FINISHED' and tags.`seg.task` = '{task}'",
        order_by=["attributes.start_time DESC"], max_results=200,
    ))


# A sweep (Hydra multirun) is one parent run; each job's run names it in PARENT_TAG.
OBJECTIVE = "objective"  # metric: the value a job returned to the sweeper
SWEEP_TABLE = "sweep_runs.csv"


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
    run = _retry_when_locked(
        lambda: client.create_run(experiment_id, run_name=run_name, tags=dict(tags))
    )
    client.log_batch(
        run.info.run_id,
        params=[mlflow.entities.Param(k, str(v)[:_MAX_PARAM_LENGTH]) for k, v in params.items()],
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
            experiments, filter_string=f"tags.`{PARENT_TAG}` = '{parent_run_id}'",
            max_results=1000, page_token=token,
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
    """Columns and rows of the sweep table: a job's identity and outcome, its final metrics
    and its params (the ones that differ between jobs first), named as mlflow.search_runs
    names them."""
    params = sorted({k for r in runs for k in r.data.params})
    varying = [k for k in params if len({r.data.params.get(k) for r in runs}) > 1]
    params = varying + [k for k in params if k not in varying]
    metrics = sorted({k for r in runs for k in r.data.metrics} - {OBJECTIVE})
    columns = ["job", "run_id", "run_name", "status", OBJECTIVE, "overrides", "error",
               *(f"metrics.{k}" for k in metrics), *(f"params.{k}" for k in params)]
    rows = []
    for run in runs:
        tags, data = run.data.tags, run.data
        rows.append({
            "job": tags.get("seg.job_num", ""), "run_id": run.info.run_id,
            "run_name": run.info.run_name, "status": run.info.status,
            OBJECTIVE: data.metrics.get(OBJECTIVE, ""), "overrides": tags.get("seg.overrides", ""),
            "error": tags.get("seg.error", ""),
            **{f"metrics.{k}": data.metrics.get(k, "") for k in metrics},
            **{f"params.{k}": data.params.get(k, "") for k in params},
        })
    return columns, rows


def finish_sweep_run(
    tracking_uri: str,
    run_id: str,
    metric: str | None,
    direction: str,
    sweep_dir: Path,
    files: list[Path],
) -> SweepSummary:
    """Write the table of the jobs' runs into ``sweep_dir`` and log it, the best job by its
    objective and ``files`` (those that exist) to the parent run; end it FINISHED when a job
    finished, else FAILED."""
    client = MlflowClient(tracking_uri)
    runs = child_runs(tracking_uri, run_id)
    finished = [r for r in runs if r.info.status == "FINISHED"]
    failed = [r for r in runs if r.info.status in ("FAILED", "KILLED")]
    scored = [r for r in finished if OBJECTIVE in r.data.metrics]
    pick = max if direction == "maximize" else min
    best = pick(scored, key=lambda r: r.data.metrics[OBJECTIVE]) if scored else None
    table = None
    if runs:
        columns, rows = _table(runs)
        table = Path(sweep_dir) / SWEEP_TABLE
        table.parent.mkdir(parents=True, exist_ok=True)
        with table.open("w", newline="") as f:
            writer = csv.DictWriter(f, columns)
            writer.writeheader()
            writer.writerows(rows)
    for path in [table, *files]:
        if path is not None and Path(path).is_file():
            client.log_artifact(run_id, str(path))
    values = {"jobs": len(runs), "jobs_finished": len(finished), "jobs_failed": len(failed)}
    tags = {}
    if best is not None:
        values[f"best_{safe_key(metric or OBJECTIVE)}"] = best.data.metrics[OBJECTIVE]
        tags = {"seg.best_run_id": best.info.run_id,
                "seg.best_job_num": best.data.tags.get("seg.job_num", ""),
                "seg.best_overrides": best.data.tags.get("seg.overrides", "")}
    now = int(time.time() * 1000)
    client.log_batch(
        run_id,
        metrics=[mlflow.entities.Metric(k, float(v), now, 0) for k, v in values.items()],
        tags=[mlflow.entities.RunTag(k, v) for k, v in tags.items()],
    )
    client.set_terminated(run_id, "FINISHED" if finished else "FAILED")
    return SweepSummary(len(runs), len(finished), len(failed),
                        best.info.run_id if best else None,
                        best.data.metrics[OBJECTIVE] if best else None, table)
