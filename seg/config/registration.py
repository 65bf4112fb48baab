"""Registration of the schemas in Hydra's ConfigStore, and of seg's OmegaConf resolvers.

The one module of :mod:`seg.config` that knows Hydra (besides :mod:`seg.cli` and the sweep
callback): the entry points call :func:`register` before they compose.
"""

from __future__ import annotations

import os
import secrets

from hydra.core.config_store import ConfigStore
from omegaconf import OmegaConf

from seg.config.augmentation import AugmentationConfig
from seg.config.callbacks import CallbacksConfig
from seg.config.dataset import DatasetConfig
from seg.config.help import help_text
from seg.config.inference import InferenceConfig
from seg.config.loss import CategoricalLossConfig, CompoundLossConfig, LossConfig
from seg.config.model import MODEL_SCHEMAS
from seg.config.run import ExportConfig, MlflowConfig, PathsConfig, PlanConfig, RunConfig
from seg.config.trainer import TrainerConfig


def _unique_token() -> str:
    """Random suffix of run directories: unique even for runs started in the same second."""
    return secrets.token_hex(3)


def register() -> None:
    """Register the schemas and resolvers; called by the entry points before composing."""
    if not OmegaConf.has_resolver("seg_cwd"):
        # The launch directory, usable in hydra.sweep.dir where ${hydra:runtime.cwd} is not
        # available yet; jobs never chdir (hydra.job.chdir=false), so it is the same for all.
        OmegaConf.register_new_resolver("seg_cwd", os.getcwd, use_cache=True)
    if not OmegaConf.has_resolver("seg_uid"):
        # Cached per config, and Hydra copies the cache into each sweep job's config, so one
        # run or sweep directory gets one token however often it is resolved.
        OmegaConf.register_new_resolver("seg_uid", _unique_token, use_cache=True)
    if not OmegaConf.has_resolver("seg_help"):
        OmegaConf.register_new_resolver("seg_help", help_text)  # hydra.help.template
    store = ConfigStore.instance()
    store.store(name="run_schema", node=RunConfig)
    store.store(name="plan_schema", node=PlanConfig)
    store.store(name="export_schema", node=ExportConfig)
    for group, name, node in [
        ("dataset", "dataset", DatasetConfig),
        ("loss", "loss", LossConfig),
        ("loss", "categorical", CategoricalLossConfig),
        ("loss", "compound", CompoundLossConfig),
        ("augmentation", "augmentation", AugmentationConfig),
        ("callbacks", "callbacks", CallbacksConfig),
        ("trainer", "trainer", TrainerConfig),
        ("inference", "inference", InferenceConfig),
        ("mlflow", "mlflow", MlflowConfig),
        ("paths", "paths", PathsConfig),
    ]:
        # Kept under schema/ so they are not offered as choices of the group itself; each
        # YAML of the group pulls its schema in with `- /schema/<group>/<name>@_here_`.
        store.store(group=f"schema/{group}", name=name, node=node)
    for name, node in MODEL_SCHEMAS.items():
        store.store(group="schema/model", name=name, node=node)
