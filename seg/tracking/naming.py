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
