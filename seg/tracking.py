"""Everything that talks to MLflow, in one place.

A :class:`Tracker` wraps one MLflow run: params, tags, per-epoch metrics and images,
artifacts and the model. :func:`load_model_and_preprocessing` turns a run id, an MLflow
model URI or a ``.keras`` path into a Keras model and the preprocessing it was trained with
(``preprocessing.json``), wherever it was kept.
"""

from __future__ import annotations

import json
import logging
import re
import subprocess
import tempfile
import traceback
from collections.abc import Mapping
from pathlib import Path
from typing import Any, NamedTuple

import mlflow
import numpy as np
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from seg.errors import CheckpointError, ConfigError

log = logging.getLogger(__name__)

MODEL_NAME = "model"  # the logged model's name: runs:/<run id>/model
# The preprocessing a model was trained with travels three ways: beside the checkpoint in the
# run dir, as a run artifact, and inside the logged model's MLmodel metadata (so that a
# models:/ URI of a registered model carries it too).
PREPROCESSING_FILE = "preprocessing.json"
_PREPROCESSING_KEY = "seg_preprocessing"  # key in the logged model's metadata
_RUN_ID = re.compile(r"^[0-9a-f]{32}$")
_MAX_PARAM_LENGTH = 6000  # MLflow's limit on a param value


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


class Tracker:
    """One MLflow run. Use as a context manager: it ends FINISHED, FAILED or KILLED."""

    def __init__(
        self,
        tracking_uri: str,
        experiment_name: str,
        run_name: str | None = None,
        tags: Mapping[str, str] | None = None,
    ) -> None:
        self.tracking_uri = tracking_uri
        mlflow.set_tracking_uri(tracking_uri)
        self.client = MlflowClient(tracking_uri)
        try:
            experiment = mlflow.set_experiment(experiment_name)
        except MlflowException as err:
            raise ConfigError(
                f"mlflow.tracking_uri={tracking_uri}: cannot open the tracking store ({err})"
            ) from err
        self.run = mlflow.start_run(
            experiment_id=experiment.experiment_id, run_name=run_name, tags=dict(tags or {})
        )
        self.run_id = self.run.info.run_id
        self.experiment_id = experiment.experiment_id
        log.info("MLflow run %s in experiment '%s' (%s)", self.run_id, experiment_name,
                 tracking_uri)

    def __enter__(self) -> Tracker:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.end("FINISHED")
            return
        if issubclass(exc_type, KeyboardInterrupt):
            self.set_tags({"seg.error": f"interrupted: {exc or 'KeyboardInterrupt (Ctrl-C)'}"})
            self.end("KILLED")
            return
        try:  # the error must reach the run; a failure to log it must not hide the error
            self.set_tags({"seg.error": f"{exc_type.__name__}: {exc}"[:5000]})
            self.log_text("".join(traceback.format_exception(exc_type, exc, tb)), "error.txt")
        finally:
            self.end("FAILED")

    def end(self, status: str) -> None:
        mlflow.end_run(status=status)

    def log_params(self, params: Mapping[str, str]) -> None:
        self.client.log_batch(
            self.run_id,
            params=[mlflow.entities.Param(k, v) for k, v in params.items()],
        )

    def set_tags(self, tags: Mapping[str, str]) -> None:
        self.client.log_batch(
            self.run_id, tags=[mlflow.entities.RunTag(k, str(v)) for k, v in tags.items()]
        )

    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        values = {safe_key(k): float(v) for k, v in metrics.items() if np.isscalar(v)}
        if values:
            mlflow.log_metrics(values, step=step, run_id=self.run_id)

    def log_image(self, image: np.ndarray, key: str, step: int) -> None:
        """An image in MLflow's per-step image store: the UI shows a step slider per key."""
        self.client.log_image(self.run_id, image, key=safe_key(key), step=step)

    def log_artifact(self, path: Path, artifact_path: str | None = None) -> None:
        path = Path(path)
        if path.is_dir():
            self.client.log_artifacts(self.run_id, str(path), artifact_path)
        else:
            self.client.log_artifact(self.run_id, str(path), artifact_path)

    def log_text(self, text: str, artifact_file: str) -> None:
        self.client.log_text(self.run_id, text, artifact_file)

    def log_figure(self, figure: Any, artifact_file: str) -> None:
        self.client.log_figure(self.run_id, figure, artifact_file)

    def log_keras_model(
        self, model: Any, sample: np.ndarray, preprocessing: Mapping[str, Any] | None = None
    ) -> str:
        """Log the model with a signature (and the preprocessing it expects in its metadata);
        returns its URI (also reachable as runs:/id/model)."""
        from mlflow.models import infer_signature

        prediction = np.asarray(model.predict(sample, verbose=0))
        signature = infer_signature(sample, prediction)
        metadata = {_PREPROCESSING_KEY: dict(preprocessing)} if preprocessing else None
        info = mlflow.keras.log_model(
            model, name=MODEL_NAME, signature=signature, metadata=metadata
        )
        return info.model_uri


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


def _load_keras(path: Path, checkpoint: str) -> Any:
    import keras

    import seg.losses
    import seg.metrics
    import seg.models.layers  # noqa: F401  (custom objects register on import)

    try:
        return keras.saving.load_model(path, compile=False, safe_mode=True)
    except Exception as err:  # Keras raises many types for a bad file; name the file
        raise CheckpointError(
            f"checkpoint={checkpoint}: cannot load {path.name} as a Keras model ({err})"
        ) from err


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


def load_model_and_preprocessing(checkpoint: str, tracking_uri: str) -> LoadedModel:
    """:func:`load_model` plus the preprocessing spec saved with the model (see
    :data:`PREPROCESSING_FILE`); the caller decides what to do when there is none."""
    with tempfile.TemporaryDirectory(prefix="seg-model-") as tmp:
        workdir = Path(tmp).resolve()
        path = resolve_model_file(checkpoint, tracking_uri, workdir)
        model = _load_keras(path, checkpoint)
        spec, source = _find_preprocessing(checkpoint, path, tracking_uri, workdir)
    return LoadedModel(model, spec, source)
