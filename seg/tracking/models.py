"""A trained model and the preprocessing it expects, from a run id, an MLflow model URI or a
``.keras`` file, wherever they were kept."""

from __future__ import annotations

import json
import logging
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any, NamedTuple

import mlflow
from mlflow.exceptions import MlflowException
from mlflow.models import Model

from seg.errors import CheckpointError
from seg.files import write_text_whole
from seg.tracking.naming import RUN_ID, run_id_of
from seg.training.model_files import load_model_file

log = logging.getLogger(__name__)


MODEL_NAME = "model"  # the logged model's name: runs:/<run id>/model


# The preprocessing a model was trained with travels three ways: beside the checkpoint in the
# run dir, as a run artifact, and inside the logged model's MLmodel metadata (so that a
# models:/ URI of a registered model carries it too).
PREPROCESSING_FILE = "preprocessing.json"


PREPROCESSING_KEY = "seg_preprocessing"  # key in the logged model's metadata


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
    uri = f"runs:/{checkpoint}/{MODEL_NAME}" if RUN_ID.match(checkpoint) else checkpoint
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
    return write_text_whole(path, json.dumps(dict(spec), indent=2, sort_keys=True) + "\n")


def _metadata_preprocessing(workdir: Path) -> dict[str, Any] | None:
    """The spec in the downloaded MLflow model's metadata (MLmodel file), if any."""
    mlmodel = next(workdir.rglob("MLmodel"), None)
    if mlmodel is None:
        return None
    spec = (Model.load(str(mlmodel)).metadata or {}).get(PREPROCESSING_KEY)
    return dict(spec) if isinstance(spec, Mapping) else None


def _run_artifact_preprocessing(run_id: str, tracking_uri: str, workdir: Path) -> Path | None:
    """The run's preprocessing.json artifact downloaded into ``workdir``, if it has one."""
    try:
        local = mlflow.artifacts.download_artifacts(
            run_id=run_id,
            artifact_path=PREPROCESSING_FILE,
            dst_path=str(workdir / "spec"),
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
    run_id = run_id_of(checkpoint)
    found = _run_artifact_preprocessing(run_id, tracking_uri, workdir) if run_id else None
    if found is not None:
        return read_preprocessing(found), f"runs:/{run_id}/{PREPROCESSING_FILE}"
    return None, None


def load_model_and_preprocessing(
    checkpoint: str, tracking_uri: str, trust: bool = False
) -> LoadedModel:
    """The model (Keras' safe mode on unless ``trust``: :mod:`seg.training.model_files`) plus the
    preprocessing spec saved with it (see :data:`PREPROCESSING_FILE`); the caller decides what
    to do when there is none. Files from the store are downloaded into a temporary folder."""
    with tempfile.TemporaryDirectory(prefix="seg-model-") as tmp:
        workdir = Path(tmp).resolve()
        path = resolve_model_file(checkpoint, tracking_uri, workdir)
        model = load_model_file(path, f"checkpoint={checkpoint}", trust)
        spec, source = _find_preprocessing(checkpoint, path, tracking_uri, workdir)
    return LoadedModel(model, spec, source)
