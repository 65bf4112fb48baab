"""BatchNormalization in one TensorFlow kernel per call: Keras 3's layer, computed by
``FusedBatchNormV3`` (oneDNN on CPUs, cuDNN on GPUs) where it can be.

Keras 3's BatchNormalization computes the moments and the normalisation as separate
element-wise operations, and under a mixed precision policy first casts the whole activation
to float32 and the result back: several passes over every activation, forward and backward. The
fused kernel reads a bfloat16/float16/float32 activation once, keeps its statistics in float32
and writes the result in the input's dtype, with a fused gradient.

Same numbers as Keras' layer (tests/models/test_fused_norm.py): the batch variance for the
moving average is the biased one Keras uses (the kernel reports the unbiased one, corrected
here), the same momentum update, the same variables, so weights load either way. Where the
kernel does not apply (not a 4-D channels-last input, a mask, renormalisation, another
backend) Keras' own computation runs.
"""

from __future__ import annotations

import keras
import tensorflow as tf

__all__ = ["FusedBatchNorm", "with_keras_batch_norm"]


@keras.saving.register_keras_serializable(package="seg")
class FusedBatchNorm(keras.layers.BatchNormalization):
    """``keras.layers.BatchNormalization`` over the channels of NHWC images, fused."""

    def _fusable(self, inputs, mask) -> bool:
        return (
            mask is None
            and not self.renorm
            and len(inputs.shape) == 4
            and self.axis in (-1, 3)
            and keras.backend.backend() == "tensorflow"
        )

    def call(self, inputs, training=None, mask=None):
        # Only training is fused. Inference is Keras' own arithmetic: cheap next to training,
        # and an inference-mode FusedBatchNormV3 after a convolution is rewritten by Grappler
        # into one fused kernel that does not implement every activation (Mish fails).
        if not (training and self.trainable and self._fusable(inputs, mask)):
            return super().call(inputs, training=training, mask=mask)
        channels = inputs.shape[-1]
        gamma = self.gamma if self.scale else tf.ones((channels,), "float32")
        beta = self.beta if self.center else tf.zeros((channels,), "float32")
        gamma, beta = tf.cast(gamma, "float32"), tf.cast(beta, "float32")
        outputs, mean, unbiased = tf.compat.v1.nn.fused_batch_norm(
            inputs, gamma, beta, epsilon=self.epsilon, is_training=True
        )
        count = tf.cast(tf.reduce_prod(tf.shape(inputs)[:-1]), "float32")
        variance = unbiased * (count - 1.0) / count  # Keras' moving average takes the biased one
        momentum = self.momentum
        self.moving_mean.assign(self.moving_mean * momentum + mean * (1.0 - momentum))
        self.moving_variance.assign(self.moving_variance * momentum + variance * (1.0 - momentum))
        return tf.cast(outputs, self.compute_dtype)


def _as_keras_layer(node: object) -> object:
    """A (nested) model config with every FusedBatchNorm named as Keras' own layer."""
    if isinstance(node, dict):
        if node.get("class_name") == "FusedBatchNorm" and "config" in node:
            node = {**node, "module": "keras.layers", "class_name": "BatchNormalization"}
            node["registered_name"] = None
        return {k: _as_keras_layer(v) for k, v in node.items()}
    return [_as_keras_layer(v) for v in node] if isinstance(node, list) else node


def with_keras_batch_norm(model: keras.Model) -> keras.Model:
    """A copy of ``model`` (same weights) whose FusedBatchNorm layers are Keras' own, which
    computes the same: a model file anyone loads without importing seg
    (``keras.saving.load_model``, ``mlflow.keras.load_model``)."""
    copy = type(model).from_config(_as_keras_layer(model.get_config()))
    copy.set_weights(model.get_weights())
    return copy
