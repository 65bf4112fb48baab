"""Which local ImageNet file each pretrained encoder loads, and the check of ``model.weights``.

Free of Keras imports, so that config validation can check a weights path in a second,
before any data is read; the encoders (seg.models.encoders) load the file it names.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from seg.errors import ConfigError

__all__ = ["WEIGHTS_FILES", "WeightsFile", "check_model_weights", "weights_path"]


@dataclass(frozen=True)
class WeightsFile:
    """The ImageNet file keras.applications would download for an encoder (without top)."""

    name: str
    url: str


_RESNET_URL = "https://storage.googleapis.com/tensorflow/keras-applications/resnet/"
_EFFICIENTNET_URL = "https://storage.googleapis.com/keras-applications/"

WEIGHTS_FILES: dict[str, WeightsFile] = {
    "resnet50": WeightsFile("resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5", _RESNET_URL),
    **{
        f"efficientnet_b{v}": WeightsFile(f"efficientnetb{v}_notop.h5", _EFFICIENTNET_URL)
        for v in range(8)
    },
}

# The encoder of each model with one (model config `_target_` -> encoder name).
_ENCODER_OF = {
    "seg.models.deeplabv3plus.build_deeplabv3plus": "resnet50",
    "seg.models.transunet.build_transunet": "resnet50",
    "seg.models.efficient_unet.build_efficient_unet": "efficientnet_{variant}",
}


def weights_path(weights: str | None, encoder: str, key: str = "model.weights") -> Path | None:
    """The local file named by ``weights`` (None for random init), or one ConfigError saying
    which file to download: nothing is downloaded at run time."""
    if weights is None:
        return None
    file = WEIGHTS_FILES[encoder]
    fix = (
        f"nothing is downloaded at run time: download {file.url}{file.name} and pass its "
        f"path, {key}=/path/to/{file.name} (or {key}=null for random initialisation)"
    )
    if str(weights).strip().lower() == "imagenet":
        raise ConfigError(f"{key}=imagenet: {fix}")
    path = Path(str(weights)).expanduser()
    if not path.is_file():
        raise ConfigError(f"{key}={weights}: file not found; {fix}")
    if not path.name.endswith((".h5", ".hdf5")):
        raise ConfigError(f"{key}={weights}: expected a .h5 or .weights.h5 file; {fix}")
    return path.resolve()


def check_model_weights(model: Mapping[str, Any]) -> None:
    """``model.weights`` of a composed model config, checked before any work."""
    encoder = _ENCODER_OF.get(str(model.get("_target_")))
    if encoder is not None and model.get("weights") is not None:
        variant = getattr(model.get("variant"), "value", model.get("variant"))
        weights_path(model["weights"], encoder.format(variant=variant))
