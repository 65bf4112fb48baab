"""What a run is given and what its stages share: the launch facts Hydra knows, and the
context (config, output folder, tracker, the model and its preprocessing, results)."""

from __future__ import annotations

import logging
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from seg.data.classes import palette
from seg.data.dataset import preprocessing_from_config
from seg.data.preprocess import differences
from seg.runner.phases import Phases

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Launch:
    """Facts of the launch that Hydra knows (seg.cli fills them in)."""

    output_dir: str
    overrides: list[str] = field(default_factory=list)
    job_num: int | None = None
    sweep_dir: str | None = None
    config_name: str = "train"
    parent_run_id: str | None = None  # the sweep's MLflow run (seg.runner.sweep)
    run_name: str | None = None  # a sweep job's: its number and swept values (seg.runner.sweep)
    threads: int | None = None  # TensorFlow threads of a job sharing the machine (seg.runner.sweep)
    swept: list[str] = field(default_factory=list)  # the keys a job's sweep varies


@dataclass
class Context:
    """What stages share: the config, the run's folder and tracker, and each other's results."""

    cfg: DictConfig
    output_dir: Path
    tracker: Any  # seg.tracking.tracker.Tracker
    model: Any = None  # keras.Model trained (best weights) or loaded from cfg.checkpoint
    # seg.data.pipeline.Preprocessing the model was trained with: set with the model
    preprocessing: Any = None
    results: dict[str, float] = field(default_factory=dict)
    resume: Any = None  # seg.runner.resume.Resume when this run continues an interrupted one
    phases: Phases = field(default_factory=Phases)  # where the run's time goes (time_* metrics)

    def trained_or_loaded_model(self) -> Any:
        """The model, and :attr:`preprocessing` beside it: the one saved with a loaded model."""
        if self.model is None:
            # MLflow and TensorFlow load in seconds: only once the files are checked
            from seg.tracking.models import load_model_and_preprocessing

            loaded = load_model_and_preprocessing(
                self.cfg.checkpoint,
                self.cfg.mlflow.tracking_uri,
                trust=bool(self.cfg.get("trust_checkpoint")),
            )
            self.model = loaded.model
            self.preprocessing = self._model_preprocessing(loaded.preprocessing, loaded.source)
        if self.preprocessing is None:  # a model set by hand: the configured preprocessing
            self.preprocessing = preprocessing_from_config(self.cfg.dataset)
        return self.model

    def palette(self, num_classes: int, prep: Any = None) -> Any:
        """Class colours (np.ndarray; None for binary): inference.palette, else the colours of
        the colour-coded masks of ``prep`` (default: the model's preprocessing), else the
        default palette."""
        prep = prep or self.preprocessing
        mask_colors = prep.mask.colors if prep is not None else ()
        return palette(num_classes, self.cfg.inference.get("palette"), mask_colors)

    def _model_preprocessing(self, spec: dict | None, source: str | None) -> Any:
        """The saved spec, or (older models, bare .keras files) the configured one, loudly."""
        from seg.data.pipeline import Preprocessing  # TensorFlow: once the files are checked

        configured = preprocessing_from_config(self.cfg.dataset)
        if spec is None:
            log.warning(
                "checkpoint=%s: no preprocessing.json saved with the model; images are prepared "
                "as dataset.preprocess of this config says, which must match its training",
                self.cfg.checkpoint,
            )
            return configured
        saved = Preprocessing.from_dict(spec, source or str(self.cfg.checkpoint))
        log.info("preprocessing of the model from %s", source)
        if saved.image != configured.image:
            log.warning(
                "the model's dataset.preprocess is used, not this config's: %s",
                differences(saved.image.to_dict(), configured.image.to_dict()),
            )
        return saved


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
