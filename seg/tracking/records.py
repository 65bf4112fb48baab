"""How each kind of record (metrics/params/tags, images, artifacts, texts, the model, the run's
end) reaches a run; the Tracker's spool delivers through these, at once or later (seg-sync)."""

from __future__ import annotations

import logging
from importlib import metadata
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
from mlflow.entities import LoggedModelStatus
from mlflow.exceptions import MlflowException
from mlflow.models import Model, ModelSignature
from mlflow.tracking import MlflowClient
from mlflow.types import Schema, TensorSpec

from seg.tracking.models import MODEL_NAME, PREPROCESSING_KEY
from seg.tracking.spool import Handler
from seg.training.model_files import load_model_file

log = logging.getLogger(__name__)


def _image_logged(client: MlflowClient, run_id: str, key: str, step: int, timestamp: int) -> bool:
    """Whether the run already holds this image record: MLflow names an image file after its
    key, step and timestamp (``images/<key>+step+<s>+timestamp+<t>+<uuid>.png``, ``%`` for ``+`` in
    older MLflow), and the record's timestamp was fixed when it was made."""
    stem = key.replace("/", "~")
    names = [
        f"images/{stem}{sep}step{sep}{step}{sep}timestamp{sep}{timestamp}{sep}" for sep in "+%"
    ]
    return any(
        a.path.startswith(tuple(names)) and a.path.endswith(".png")
        for a in client.list_artifacts(run_id, "images")
    )


def _model_logged(client: MlflowClient, run_id: str) -> str | None:
    """The URI of the run's model if an earlier attempt stored it whole (status READY, which
    MLflow sets after the last file is uploaded); None otherwise."""
    experiment_id = client.get_run(run_id).info.experiment_id
    found = client.search_logged_models(
        [experiment_id], filter_string=f"source_run_id = '{run_id}' AND name = '{MODEL_NAME}'"
    )
    ready = [m for m in found if m.status == LoggedModelStatus.READY]
    return ready[0].model_uri if ready else None


# What a logged model needs to load (the packages MLflow's own inference finds for a Keras
# model). Given explicitly, because MLflow infers them by loading the model in a subprocess
# that imports TensorFlow again: about 11 s per run on 2 cores.
MODEL_PACKAGES = ("mlflow", "keras", "numpy", "tensorflow")


def model_requirements() -> list[str]:
    """``<package>==<installed version>`` for each of :data:`MODEL_PACKAGES` installed."""
    pinned = []
    for package in MODEL_PACKAGES:
        try:
            pinned.append(f"{package}=={metadata.version(package)}")
        except metadata.PackageNotFoundError:
            continue
    return pinned


def model_signature(model: Any, sample: np.ndarray) -> ModelSignature:
    """Tensors in and out: the sample's dtype and shape (any batch size), the model's output
    shape. (MLflow's infer_signature would run the model on the sample: tracing its predict
    step takes seconds on a large model.)"""

    def spec(dtype: Any, shape: Any) -> TensorSpec:
        return TensorSpec(np.dtype(dtype), (-1, *(-1 if d is None else int(d) for d in shape)))

    outputs = model.output_shape if isinstance(model.output_shape, list) else [model.output_shape]
    return ModelSignature(
        inputs=Schema([spec(sample.dtype, sample.shape[1:])]),
        outputs=Schema([spec("float32", shape[1:]) for shape in outputs]),
    )


class RunRecords:
    """How each kind of record reaches one run; the Tracker's spool delivers through
    :meth:`handlers`, at once or later (seg-sync). ``redelivery``: for a kept record that an
    attempt cut short by the outage may have delivered already; an image is then not logged
    twice (metrics carry their timestamps and artifacts their paths, so those cannot be
    doubled), nor a model the run already holds whole."""

    def __init__(self, client: MlflowClient, run_id: str, *, redelivery: bool = False) -> None:
        self.client, self.run_id, self.redelivery = client, run_id, redelivery

    def handlers(self) -> dict[str, Handler]:
        return {
            "batch": self.batch,
            "image": self.image,
            "artifact": self.artifact,
            "text": self.text,
            "model": self.model,
            "register": self.register,
            "end": self.end,
        }

    def batch(
        self, metrics: list | None = None, params: dict | None = None, tags: dict | None = None
    ) -> None:
        self.client.log_batch(
            self.run_id,
            metrics=[mlflow.entities.Metric(k, v, ts, step) for k, v, ts, step in metrics or []],
            params=[mlflow.entities.Param(k, v) for k, v in (params or {}).items()],
            tags=[mlflow.entities.RunTag(k, v) for k, v in (tags or {}).items()],
        )

    def image(self, image: np.ndarray, key: str, step: int, timestamp: int | None = None) -> None:
        kept = self.redelivery and timestamp is not None
        if kept and _image_logged(self.client, self.run_id, key, step, timestamp):
            return
        self.client.log_image(self.run_id, image, key=key, step=step, timestamp=timestamp)

    def artifact(self, path: Path, artifact_path: str | None = None) -> None:
        if path.is_dir():
            self.client.log_artifacts(self.run_id, str(path), artifact_path)
        else:
            self.client.log_artifact(self.run_id, str(path), artifact_path)

    def text(self, text: str, artifact_file: str) -> None:
        self.client.log_text(self.run_id, text, artifact_file)

    def model(self, model: Any, sample: np.ndarray, preprocessing: dict | None = None) -> str:
        """The model with a signature (and the preprocessing it expects in its metadata);
        its URI."""
        if self.redelivery and (logged := _model_logged(self.client, self.run_id)) is not None:
            return logged
        if isinstance(model, Path):  # kept in the spool
            model = load_model_file(model, str(model))
        # Model.log puts the model in the active experiment, not in its run's (MLflow 3.17)
        mlflow.set_experiment(experiment_id=self.client.get_run(self.run_id).info.experiment_id)
        info = Model.log(
            artifact_path=None,
            name=MODEL_NAME,
            flavor=mlflow.keras,
            model=model,
            signature=model_signature(model, sample),
            run_id=self.run_id,
            metadata={PREPROCESSING_KEY: preprocessing} if preprocessing else None,
            pip_requirements=model_requirements(),
        )
        return info.model_uri

    def register(self, name: str) -> str:
        """The run's logged model as a new version of the registered model ``name`` (created
        if new); the version. A redelivered record finds the version registered already."""
        if self.redelivery:
            found = self.client.search_model_versions(f"name='{name}' and run_id='{self.run_id}'")
            if found:
                return str(found[0].version)
        uri = _model_logged(self.client, self.run_id)
        if uri is None:
            raise MlflowException(f"run {self.run_id} holds no logged model to register")
        version = mlflow.register_model(uri, name, tags={"seg.run_id": self.run_id})
        return str(version.version)

    def end(self, status: str, end_time: int) -> None:
        self.client.set_terminated(self.run_id, status, end_time)


def record_handlers(
    client: MlflowClient, run_id: str, *, redelivery: bool = False
) -> dict[str, Handler]:
    """The handlers of :class:`RunRecords` for ``run_id``."""
    return RunRecords(client, run_id, redelivery=redelivery).handlers()
