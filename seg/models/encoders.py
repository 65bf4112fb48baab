"""ImageNet encoders from keras.applications, as one nested ``encoder`` sub-model each.

Nothing is downloaded at run time: ``weights=None`` builds the architecture with random
weights; ``weights=/path/to/file`` loads a local ImageNet file (the ``*_notop.h5`` files that
keras.applications itself would download, or any ``.weights.h5`` saved from the same
encoder); ``weights=imagenet`` is an error that says which file to download.

The encoder is one layer named ``encoder`` of the final model, so freezing and unfreezing
is one flag: ``model.get_layer("encoder").trainable = False | True`` (see
:func:`set_encoder_trainable`). A frozen encoder also runs its BatchNormalization layers in
inference mode (Keras 3 semantics), which is what fine-tuning with small batches needs.
"""

from __future__ import annotations

from dataclasses import dataclass

import keras
import numpy as np

from seg.config.pretrained import WEIGHTS_FILES, weights_path
from seg.errors import ConfigError
from seg.models.blocks import arguments_checked
from seg.models.layers import ImageNetInput

__all__ = ["ENCODERS", "Encoder", "build_encoder", "set_encoder_trainable"]

# Feature maps of keras.applications' EfficientNets at strides 2, 4, 8, 16, 32
# (the same layer names in B0-B7).
_EFFICIENTNET_FEATURES = (
    "block2a_expand_activation",
    "block3a_expand_activation",
    "block4a_expand_activation",
    "block6a_expand_activation",
    "top_activation",
)
# ImageNet standard deviations (RGB) that EfficientNet's Normalization layer divides by.
_IMAGENET_STD = np.array([0.229, 0.224, 0.225], "float32")


@dataclass(frozen=True)
class Encoder:
    """What a builder needs to know about an encoder family."""

    application: str  # keras.applications constructor
    features: tuple[str, ...]  # layer names of the feature maps, finest first
    input_mode: str  # ImageNetInput mode


def _efficientnet(variant: int) -> Encoder:
    return Encoder(f"EfficientNetB{variant}", _EFFICIENTNET_FEATURES, "raw")


ENCODERS: dict[str, Encoder] = {
    # Feature maps at strides 2, 4, 8, 16 (conv5, stride 32, is not used by our models).
    "resnet50": Encoder(
        "ResNet50",
        ("conv1_relu", "conv2_block3_out", "conv3_block4_out", "conv4_block6_out"),
        "caffe",
    ),
    **{f"efficientnet_b{v}": _efficientnet(v) for v in range(8)},
}


def _fix_efficientnet_normalization(base: keras.Model) -> None:
    """Keras' EfficientNet ImageNet files store the ImageNet std, not its square, as the
    Normalization variance; keras.applications compensates with an extra Rescaling layer
    only when it downloads the file itself (``weights="imagenet"``, TF issue 49930). A file
    passed by path gets no such layer, so correct the variance in place instead."""
    norm = next(
        (layer for layer in base.layers if isinstance(layer, keras.layers.Normalization)), None
    )
    if norm is None:
        return
    variance = keras.ops.convert_to_numpy(norm.adapt_variance).reshape(-1)
    if variance.shape == (3,) and np.allclose(variance, _IMAGENET_STD, atol=1e-4):
        norm.adapt_variance.assign(np.reshape(_IMAGENET_STD**2, norm.adapt_variance.shape))
        norm.finalize_state()  # the layer divides by a tensor derived from the variable


def build_encoder(
    name: str,
    input_shape: tuple[int, int, int],
    weights: str | None,
    freeze: bool,
    bn_momentum: float = 0.9,
) -> tuple[keras.KerasTensor, list[keras.KerasTensor], keras.Model]:
    """(model input, feature maps finest first, the encoder sub-model).

    The encoder's BatchNormalization layers get ``bn_momentum`` like the rest of the model
    (keras.applications uses 0.99, whose moving statistics lag for the few hundred steps of
    a small dataset; a frozen encoder does not update them at all).

    The model input takes the pipeline's images (grey or RGB in [0, 1]); an
    :class:`ImageNetInput` layer converts them to what the encoder expects.
    """
    encoder = ENCODERS[name]
    path = weights_path(weights, name)
    if not isinstance(freeze, bool):
        raise ConfigError(f"model.freeze_encoder: must be true or false, got {freeze!r}")
    height, width, channels = input_shape
    if channels not in (1, 3):
        raise ConfigError(
            f"dataset.channels: the ImageNet encoder takes 1 (repeated to RGB) or 3 "
            f"channels, got {channels}"
        )
    arguments_checked()  # a config check stops here: the encoder is the first layer
    constructor = getattr(keras.applications, encoder.application)
    base = constructor(include_top=False, weights=None, input_shape=(height, width, 3))
    if path is not None:
        try:
            base.load_weights(str(path))
        except Exception as err:  # Keras raises many types for a mismatched file
            raise ConfigError(
                f"model.weights={path}: cannot load it into {encoder.application} "
                f"(expected {WEIGHTS_FILES[name].name}; {type(err).__name__}: {err})"
            ) from err
        if encoder.application.startswith("EfficientNet"):
            _fix_efficientnet_normalization(base)
    for layer in base.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.momentum = bn_momentum
    outputs = [base.get_layer(n).output for n in encoder.features]
    sub = keras.Model(base.input, outputs, name="encoder")
    sub.trainable = not freeze
    inputs = keras.Input(shape=input_shape, name="image")
    features = sub(ImageNetInput(encoder.input_mode, name="imagenet_input")(inputs))
    return inputs, list(features), sub


def set_encoder_trainable(model: keras.Model, trainable: bool = True) -> None:
    """Unfreeze (or freeze) the ``encoder`` of a built or loaded model, e.g. to fine-tune
    a model trained with ``model.freeze_encoder=true``; recompile it afterwards."""
    model.get_layer("encoder").trainable = trainable
