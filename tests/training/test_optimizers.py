"""The fused Adam and AdamW (seg.training.optimizers) reach Keras' own results, step by step,
with clipping, weight decay, a schedule and under a distribution strategy."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

from seg.training.optimizers import FusedAdam, FusedAdamW

STEPS = 6


def _problem(seed: int = 0) -> tuple[keras.Model, np.ndarray, np.ndarray]:
    keras.utils.set_random_seed(seed)
    model = keras.Sequential(
        [
            keras.Input((6, 6, 2)),
            keras.layers.Conv2D(3, 3, padding="same"),
            keras.layers.Conv2D(1, 1, activation="sigmoid"),
        ]
    )
    rng = np.random.default_rng(seed)
    x = rng.random((8, 6, 6, 2)).astype("float32")
    y = (rng.random((8, 6, 6, 1)) > 0.5).astype("float32")
    return model, x, y


def _trained(optimizer: keras.optimizers.Optimizer) -> list[np.ndarray]:
    model, x, y = _problem()
    model.compile(optimizer=optimizer, loss="binary_crossentropy")
    model.fit(x, y, batch_size=4, epochs=STEPS // 2, shuffle=False, verbose=0)
    slots = [v.numpy() for v in model.optimizer.variables if v.name != "iteration"]
    return [w for w in model.get_weights()] + slots


SCHEDULE = keras.optimizers.schedules.ExponentialDecay(1e-2, decay_steps=2, decay_rate=0.5)


@pytest.mark.parametrize(
    ("fused", "keras_class", "kwargs"),
    [
        (FusedAdam, keras.optimizers.Adam, {"learning_rate": 1e-2}),
        (FusedAdam, keras.optimizers.Adam, {"learning_rate": 1e-2, "clipvalue": 0.01}),
        (FusedAdam, keras.optimizers.Adam, {"learning_rate": SCHEDULE, "beta_1": 0.8}),
        (FusedAdamW, keras.optimizers.AdamW, {"learning_rate": 1e-2, "weight_decay": 0.1}),
    ],
    ids=["adam", "clipvalue", "schedule", "adamw"],
)
def test_the_fused_update_gives_keras_weights_and_moments(fused, keras_class, kwargs) -> None:
    ours, theirs = _trained(fused(**kwargs)), _trained(keras_class(**kwargs))
    assert len(ours) == len(theirs)
    for a, b in zip(ours, theirs, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)  # float32 rounding


def test_amsgrad_takes_keras_path_and_agrees() -> None:
    ours = _trained(FusedAdam(1e-2, amsgrad=True))
    theirs = _trained(keras.optimizers.Adam(1e-2, amsgrad=True))
    for a, b in zip(ours, theirs, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)  # float32 rounding


def test_the_fused_update_runs_on_every_replica_of_a_mirrored_strategy() -> None:
    cpus = tf.config.list_logical_devices("CPU")
    strategy = tf.distribute.MirroredStrategy([d.name for d in cpus])
    with strategy.scope():
        model, x, y = _problem()
        model.compile(optimizer=FusedAdam(1e-2), loss="binary_crossentropy")
    model.fit(x, y, batch_size=4, epochs=1, verbose=0)
    reference, _, _ = _problem()
    reference.compile(optimizer=keras.optimizers.Adam(1e-2), loss="binary_crossentropy")
    reference.fit(x, y, batch_size=4, epochs=1, verbose=0)
    for a, b in zip(model.get_weights(), reference.get_weights(), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)


def test_a_fused_optimizer_round_trips_through_its_config() -> None:
    optimizer = FusedAdamW(learning_rate=3e-4, weight_decay=0.05, clipnorm=1.0)
    rebuilt = keras.optimizers.deserialize(keras.optimizers.serialize(optimizer))
    assert type(rebuilt) is FusedAdamW
    assert rebuilt.get_config() == optimizer.get_config()
