"""seg's fused BatchNormalization computes what Keras' layer computes: outputs, gradients and
moving statistics, in float32 and under the mixed bfloat16 policy; it saves and loads."""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

from seg.models.fused_norm import FusedBatchNorm


@pytest.fixture
def policy(request):
    keras.mixed_precision.set_global_policy(request.param)
    yield request.param
    keras.mixed_precision.set_global_policy("float32")


def _pair(shape: tuple[int, ...], **kwargs) -> tuple[keras.layers.Layer, keras.layers.Layer]:
    rng = np.random.default_rng(1)
    keras_bn, fused = keras.layers.BatchNormalization(**kwargs), FusedBatchNorm(**kwargs)
    for layer in (keras_bn, fused):
        layer.build(shape)
    weights = [rng.normal(size=w.shape).astype("float32") for w in keras_bn.get_weights()]
    weights[-1] = np.abs(weights[-1]) + 0.5  # a moving variance is positive
    keras_bn.set_weights(weights)
    fused.set_weights(weights)
    return keras_bn, fused


@pytest.mark.parametrize("policy", ["float32", "mixed_bfloat16"], indirect=True)
@pytest.mark.parametrize("center_scale", [True, False])
def test_it_matches_keras_batch_normalization(policy: str, center_scale: bool) -> None:
    rng = np.random.default_rng(0)
    x = tf.constant(rng.normal(2, 3, (4, 8, 6, 5)), "float32")
    # A loss with a gradient (the sum of squares of normalised values is a constant).
    weights = tf.constant(rng.normal(size=(4, 8, 6, 5)), "float32")
    keras_bn, fused = _pair(x.shape, momentum=0.9, center=center_scale, scale=center_scale)
    tolerance = 1e-5 if policy == "float32" else 2e-2
    results = []
    for layer in (keras_bn, fused):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = layer(x, training=True)
            loss = tf.reduce_sum(tf.cast(y, "float32") * weights)
        grads = tape.gradient(loss, [x, *layer.trainable_weights])
        results.append((y, grads, layer(x, training=False)))
    (y_k, g_k, inf_k), (y_f, g_f, inf_f) = results
    assert y_f.dtype == y_k.dtype == keras.mixed_precision.global_policy().compute_dtype
    np.testing.assert_allclose(np.float32(y_f), np.float32(y_k), atol=tolerance * 10)
    for a, b in zip(g_k, g_f, strict=True):
        scale = float(np.abs(a).max()) or 1.0
        assert float(np.abs(np.float32(a) - np.float32(b)).max()) / scale < 5e-3
    for a, b in zip(keras_bn.non_trainable_weights, fused.non_trainable_weights, strict=True):
        np.testing.assert_allclose(b.numpy(), a.numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(np.float32(inf_f), np.float32(inf_k), atol=tolerance * 10)


def test_other_inputs_take_keras_own_path_and_the_layer_round_trips(tmp_path: Path) -> None:
    keras_bn, fused = _pair((3, 7, 4), axis=1)  # not channels-last NHWC: Keras' computation
    x = tf.constant(np.random.default_rng(2).normal(size=(3, 7, 4)), "float32")
    np.testing.assert_allclose(fused(x, training=True), keras_bn(x, training=True), atol=1e-5)
    inputs = keras.Input((8, 8, 3))
    model = keras.Model(inputs, FusedBatchNorm(momentum=0.8)(inputs))
    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras")  # safe mode: registered
    assert isinstance(loaded.layers[-1], FusedBatchNorm) and loaded.layers[-1].momentum == 0.8
