"""How seg's values become MLflow's: params flattened from the config, keys every store
accepts, the tag that nests a run under another. Free of MLflow, so that the runner can use it
before MLflow loads."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

MAX_PARAM_LENGTH = 6000  # MLflow's limit on a param value

PARENT_TAG = "mlflow.parentRunId"  # what the MLflow UI nests child runs by


def flatten(tree: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    """{"model": {"base_filters": 16}} -> {"model.base_filters": "16"} (lists stay one value)."""
    flat: dict[str, str] = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            flat.update(flatten(value, f"{name}."))
        else:
            flat[name] = str(value)[:MAX_PARAM_LENGTH]
    return flat


def safe_key(text: str) -> str:
    """A metric/image key MLflow accepts on every store: letters, digits, _ - . only."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text)


# Top-level config nodes that are records, not settings: logged as artifacts, never as params.
NOT_PARAMS = ("plan",)
# Config keys that say where things are on this machine, or how a run is carried out, rather
# than what the experiment is: logged as tags (seg.config.<key>), so that the MLflow UI's "show
# diff only" shows what differs in the experiments' design. A key equal to, or under, one of
# these prefixes.
MACHINE_KEYS = (
    "paths",
    "mlflow.tracking_uri",
    "mlflow.outage_wait",
    "dataset.root",
    "dataset.verify",
    "trainer.threads",
    "trainer.logical_cpus",
    "trainer.resume",
    "trainer.verbose",
    "checkpoint",
    "trust_checkpoint",
    "input",
    "output",
    "data_dir",
    "callbacks.epoch_masks.large_image",
)
MACHINE_TAG_PREFIX = "seg.config."


def is_machine_key(key: str) -> bool:
    return any(key == k or key.startswith(f"{k}.") for k in MACHINE_KEYS)


def run_params(config: Mapping[str, Any]) -> dict[str, str]:
    """The params of a run: its resolved config flattened, without :data:`NOT_PARAMS` and
    the :data:`MACHINE_KEYS` (see :func:`machine_tags`)."""
    flat = flatten({k: v for k, v in config.items() if k not in NOT_PARAMS})
    return {k: v for k, v in flat.items() if not is_machine_key(k)}


def machine_tags(config: Mapping[str, Any]) -> dict[str, str]:
    """The :data:`MACHINE_KEYS` of the flattened config, as ``seg.config.<key>`` tags."""
    flat = flatten({k: v for k, v in config.items() if k not in NOT_PARAMS})
    return {f"{MACHINE_TAG_PREFIX}{k}": v for k, v in flat.items() if is_machine_key(k)}


RUN_ID = re.compile(r"^[0-9a-f]{32}$")


def run_id_of(checkpoint: str) -> str | None:
    """The run a run id or runs:/<id>/... URI names (None for files and models:/ URIs)."""
    if RUN_ID.match(checkpoint):
        return checkpoint
    match = re.match(r"^runs:/([0-9a-f]{32})(/|$)", checkpoint)
    return match.group(1) if match else None
