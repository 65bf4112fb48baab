"""How each kind of record (metrics/params/tags, images, artifacts, texts, the model, the run's
end) reaches a run; the Tracker's spool delivers through these, at once or later (seg-sync)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
from mlflow.entities import LoggedModelStatus
from mlflow.models import Model, infer_signature
from mlflow.tracking import MlflowClient

from seg.tracking.models import MODEL_NAME, PREPROCESSING_KEY
from seg.tracking.spool import Handler
from seg.training.model_files import load_model_file

log = logging.getLogger(__name__)








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
    experiment_id = client.get_run(run_id).info.experiment_id
    found = client.search_logged_models(
        [experiment_id], filter_string=f"source_run_id = '{run_id}' AND name = '{MODEL_NAME}'")
    ready = [m for m in found if m.status == LoggedModelStatus.READY]
    return ready[0].model_uri if ready else None


def record_handlers(client: MlflowClient, run_id: str, *,
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
        if redelivery and (logged := _model_logged(client, run_id)) is not None:
            return logged
        if isinstance(model, Path):  # kept in the spool
            model = load_model_file(model, str(model))
        prediction = np.asarray(model.predict(sample, verbose=0))
        # Model.log puts the model in the active experiment, not in its run's (MLflow 3.17)
        mlflow.set_experiment(experiment_id=client.get_run(run_id).info.experiment_id)
        info = Model.log(
            artifact_path=None, name=MODEL_NAME, flavor=mlflow.keras, model=model,
            signature=infer_signature(sample, prediction), run_id=run_id,
            metadata={PREPROCESSING_KEY: preprocessing} if preprocessing else None,
        )
        return info.model_uri

    def end(status: str, end_time: int) -> None:
        client.set_terminated(run_id, status, end_time)

    return {"batch": batch, "image": image, "artifact": artifact, "text": text,
            "model": model, "end": end}
