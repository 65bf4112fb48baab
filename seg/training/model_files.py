"""Loading ``.keras`` model files, the one way seg does it: Keras' safe mode on.

A model file, from a shared tracking server above all, is untrusted input. In safe mode Keras
refuses to deserialize Python code saved in it (the bytecode of a Lambda layer's function);
in any mode it builds only classes of its own packages and registered custom objects (this
project's layers, losses and metrics, registered on import here). ``trust_checkpoint=true``
turns safe mode off, for files whose source the user trusts.
"""

from __future__ import annotations

import re
import zipfile
from pathlib import Path
from typing import Any

import keras

# The custom objects a model file may name register on import.
import seg.evaluation.metrics
import seg.losses
import seg.models.fused_norm
import seg.models.layers
import seg.training.optimizers  # noqa: F401
from seg.errors import CheckpointError

TRUST_KEY = "trust_checkpoint"  # the config key of the opt-in (seg.config.run.RunConfig)
# Words of Keras' refusals of code in safe mode (Lambda layers, __lambda__ functions).
_SAFE_MODE_REFUSAL = ("safe_mode=False", "enable_unsafe_deserialization")
# Keras' refusal of a class or function it will not import (only its own packages are
# imported; anything else must be a registered custom object).
_UNKNOWN_OBJECT = re.compile(r"Could not locate (?:class|function) '([^']+)'")


def refused_by_safe_mode(err: BaseException) -> bool:
    """Whether a load failed because safe mode refused code in the file."""
    return any(word in str(err) for word in _SAFE_MODE_REFUSAL)


def load_model_file(path: Path, label: str, trust: bool = False) -> Any:
    """The keras.Model in ``path`` (uncompiled); ``label`` says how the user named it (e.g.
    ``checkpoint=<run id>``). One :class:`CheckpointError` naming both when it cannot load."""
    path = Path(path)
    if path.suffix == ".keras" and path.is_file() and not zipfile.is_zipfile(path):
        # Keras says "File not found" for a file that is there but is no .keras archive.
        raise CheckpointError(
            f"{label}: {path} is not a Keras model file (a .keras file is a zip archive; this "
            "one is corrupt, truncated or another format): save the model again or name another"
        )
    try:
        return keras.saving.load_model(path, compile=False, safe_mode=not trust)
    except Exception as err:  # Keras raises many types for a bad file; name the file
        if not trust and refused_by_safe_mode(err):
            raise CheckpointError(
                f"{label}: {path} holds Python code (a Lambda layer or function) that Keras' "
                f"safe mode does not run; only if you trust its source, load it with "
                f"{TRUST_KEY}=true"
            ) from None
        unknown = _UNKNOWN_OBJECT.search(str(err))
        if unknown:
            raise CheckpointError(
                f"{label}: {path} names '{unknown.group(1)}', which is neither a Keras object "
                "nor one of seg's registered ones; it is not loaded (was it saved by another "
                "program, or altered?)"
            ) from None
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise CheckpointError(f"{label}: cannot load {path} as a Keras model ({first})") from err
