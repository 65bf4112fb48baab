"""Losses and Keras metrics against plain NumPy references, incl. empty-mask conventions."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from seg.errors import ConfigError
from seg.evaluation.metrics import (
    Dice,
    IoU,
    PixelAccuracy,
    Precision,
    Sensitivity,
    Specificity,
    default_metrics,
)
from seg.losses import PRESETS, SegmentationLoss
from tests.support.references import (
    H,
    W,
    make_batch,
    metric_values,
    ref_ce,
    ref_dice_loss,
    ref_iou_loss,
    ref_metrics,
    ref_per_image,
)

# ----------------------------------------------------------------------------- losses

TERMS = {"bce": ref_ce, "dice": ref_dice_loss, "iou": ref_iou_loss}


@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("term", sorted(TERMS))
def test_each_loss_term_matches_reference_per_image(channels: int, term: str) -> None:
    y, p = make_batch(channels)
    loss = SegmentationLoss(**{term: 1.0})
    per_image = keras.ops.convert_to_numpy(loss.call(keras.ops.array(y), keras.ops.array(p)))
    expected = TERMS[term](y, p)
    assert per_image.shape == (3,)
    np.testing.assert_allclose(per_image, expected, rtol=1e-5, atol=1e-6)
    # Keras reduces the per-image values with a plain mean over the batch.
    np.testing.assert_allclose(float(loss(y, p)), expected.mean(), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("channels", [1, 3])
def test_weights_combine_linearly(channels: int) -> None:
    y, p = make_batch(channels, seed=1)
    parts = {t: float(SegmentationLoss(**{t: 1.0})(y, p)) for t in TERMS}
    bce_dice = float(SegmentationLoss(*PRESETS["bce_dice"])(y, p))
    assert bce_dice == pytest.approx(0.5 * parts["bce"] + 0.5 * parts["dice"], rel=1e-5)
    bce_iou = float(SegmentationLoss(*PRESETS["bce_iou"])(y, p))
    assert bce_iou == pytest.approx(0.5 * parts["bce"] + 0.5 * parts["iou"], rel=1e-5)
    mixed = float(SegmentationLoss(bce=0.2, dice=1.5, iou=3.0)(y, p))
    expected = 0.2 * parts["bce"] + 1.5 * parts["dice"] + 3.0 * parts["iou"]
    assert mixed == pytest.approx(expected, rel=1e-5)
    assert SegmentationLoss.from_preset("bce_dice").get_config()["dice"] == 0.5


@pytest.mark.parametrize("channels", [1, 3])
def test_empty_truth_and_near_zero_prediction_give_near_zero_loss(channels: int) -> None:
    y = np.zeros((2, H, W, channels), "float32")
    p = np.full_like(y, 1e-6)
    if channels > 1:  # softmax output: confident background, channel 0 truth all ones
        y[..., 0] = 1.0
        p[..., 0] = 1.0 - 1e-6 * (channels - 1)
        # Background channel is perfect, foreground channels empty/empty.
    for term in TERMS:
        value = keras.ops.convert_to_numpy(SegmentationLoss(**{term: 1.0}).call(y, p))
        assert np.all(np.isfinite(value))
        np.testing.assert_allclose(value, 0.0, atol=1e-3)


@pytest.mark.parametrize("channels", [1, 3])
def test_saturated_probabilities_never_nan(channels: int) -> None:
    y, p = make_batch(channels, seed=2)
    hard = np.eye(channels, dtype="float32")[p.argmax(-1)] if channels > 1 else np.round(p)
    wrong = 1.0 - y if channels == 1 else y[..., ::-1].copy()
    for pred in (hard, wrong, np.zeros_like(p), np.ones_like(p)):
        value = float(SegmentationLoss(bce=1.0, dice=1.0, iou=1.0)(y, pred))
        assert np.isfinite(value)
    # Perfect prediction of empty truth with smooth=0 would be 0/0; smooth=1 keeps it at 0.
    assert float(SegmentationLoss(dice=1.0)(np.zeros_like(y), np.zeros_like(y))) == 0.0


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({}, "loss.bce"),
        ({"bce": 0.0, "dice": 0.0, "iou": 0.0}, "loss.bce"),
        ({"bce": -0.1, "dice": 1.0}, "loss.bce"),
        ({"dice": -1.0, "bce": 1.0}, "loss.dice"),
        ({"iou": float("nan"), "bce": 1.0}, "loss.iou"),
        ({"dice": 1.0, "smooth": -1.0}, "loss.smooth"),
    ],
)
def test_invalid_weights_raise_config_error(kwargs: dict, field: str) -> None:
    with pytest.raises(ConfigError, match=field.replace(".", r"\.")):
        SegmentationLoss(**kwargs)


def test_unknown_preset_raises_config_error() -> None:
    with pytest.raises(ConfigError, match="bce_dice"):
        SegmentationLoss.from_preset("focal")


def test_loss_serialization_round_trip() -> None:
    y, p = make_batch(3, seed=3)
    loss = SegmentationLoss(bce=0.3, dice=0.7, iou=0.1, smooth=2.0, name="my_loss")
    restored = keras.losses.deserialize(keras.losses.serialize(loss))
    assert isinstance(restored, SegmentationLoss)
    assert restored.get_config() == loss.get_config()
    assert restored.name == "my_loss"
    assert float(restored(y, p)) == pytest.approx(float(loss(y, p)), rel=1e-6)


# ----------------------------------------------------------------------------- metrics


@pytest.mark.parametrize("channels", [1, 3])
def test_metrics_match_reference(channels: int) -> None:
    y, p = make_batch(channels)
    metrics = default_metrics()
    assert [m.name for m in metrics] == [
        "dice",
        "iou",
        "sensitivity",
        "specificity",
        "precision",
        "binary_accuracy",
    ]
    for m in metrics:
        m.update_state(y, p)
    got, expected = metric_values(metrics), ref_metrics(y, p)
    assert got == pytest.approx(expected, abs=1e-6)
    assert all(np.isfinite(v) for v in got.values())


@pytest.mark.parametrize("channels", [1, 3])
def test_per_image_empty_conventions(channels: int) -> None:
    y, p = make_batch(channels)
    expected = ref_per_image(y, p)
    assert expected["dice"][:2].tolist() == [1.0, 0.0]  # the reference itself follows the rule
    for cls in (Dice, IoU):
        for i, want in enumerate([1.0, 0.0, expected[cls().name][2]]):
            metric = cls()
            metric.update_state(y[i : i + 1], p[i : i + 1])
            assert float(metric.result()) == pytest.approx(want, abs=1e-6)


def test_pooled_empty_conventions() -> None:
    empty = np.zeros((2, H, W, 1), "float32")
    nothing = np.full_like(empty, 0.1)
    metrics = default_metrics()
    for m in metrics:
        m.update_state(empty, nothing)
    # No foreground anywhere and none predicted: every metric is a perfect 1.0.
    assert metric_values(metrics) == dict.fromkeys(metric_values(metrics), 1.0)
    # Empty truth, something predicted: precision 0, recall still 1 (nothing to find).
    some = nothing.copy()
    some[0, 0, 0, 0] = 0.9
    sens, prec, spec = Sensitivity(), Precision(), Specificity()
    for m in (sens, prec, spec):
        m.update_state(empty, some)
    assert float(sens.result()) == 1.0
    assert float(prec.result()) == 0.0
    assert float(spec.result()) == pytest.approx(1 - 1 / (2 * H * W))
    # All-foreground truth: specificity has no negatives to judge, stays 1.0.
    spec_full = Specificity()
    spec_full.update_state(np.ones_like(empty), np.ones_like(empty))
    assert float(spec_full.result()) == 1.0


def test_threshold_is_respected() -> None:
    y = np.ones((1, H, W, 1), "float32")
    p = np.full_like(y, 0.6)
    assert float(Dice(threshold=0.5)(y, p)) == 1.0
    assert float(Dice(threshold=0.7)(y, p)) == 0.0


@pytest.mark.parametrize("channels", [1, 3])
def test_metrics_accumulate_over_batches_and_reset(channels: int) -> None:
    y1, p1 = make_batch(channels, seed=4)
    y2, p2 = make_batch(channels, seed=5)
    y2, p2 = y2[1:], p2[1:]  # unequal batch sizes: per-image means must weight by image
    metrics = default_metrics()
    for m in metrics:
        m.update_state(y1, p1)
        m.update_state(y2, p2)
    expected = ref_metrics(np.concatenate([y1, y2]), np.concatenate([p1, p2]))
    assert metric_values(metrics) == pytest.approx(expected, abs=1e-6)
    for m in metrics:
        m.reset_state()
        assert all(float(v) == 0.0 for v in m.variables)
        m.update_state(y2, p2)
    assert metric_values(metrics) == pytest.approx(ref_metrics(y2, p2), abs=1e-6)


def test_per_image_sample_weight() -> None:
    y, p = make_batch(1)
    dice = Dice()
    dice.update_state(y, p, sample_weight=np.array([0.0, 1.0, 3.0]))
    per_image = ref_per_image(y, p)["dice"]
    assert float(dice.result()) == pytest.approx((per_image[1] + 3 * per_image[2]) / 4, abs=1e-6)


@pytest.mark.parametrize("cls", [Dice, IoU, Sensitivity, Specificity, Precision, PixelAccuracy])
def test_metric_config_round_trip(cls: type[keras.metrics.Metric]) -> None:
    y, p = make_batch(3, seed=6)
    metric = cls(threshold=0.3, name="custom")
    clone = cls.from_config(metric.get_config())
    assert clone.get_config() == metric.get_config()
    assert clone.threshold == 0.3 and clone.name == "custom"
    assert float(clone(y, p)) == pytest.approx(float(metric(y, p)), abs=1e-7)
    restored = keras.metrics.deserialize(keras.metrics.serialize(metric))
    assert type(restored) is cls


# ----------------------------------------------------------------------------- Keras fit


def _tiny_model(channels: int) -> keras.Model:
    inputs = keras.Input((H, W, 1))
    x = keras.layers.Conv2D(4, 3, padding="same", activation="relu")(inputs)
    activation = "sigmoid" if channels == 1 else "softmax"
    outputs = keras.layers.Conv2D(channels, 1, activation=activation)(x)
    return keras.Model(inputs, outputs)


@pytest.mark.parametrize("channels", [1, 3])
def test_fit_graph_mode_and_keras_save_load(channels: int, tmp_path) -> None:
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(7)
    x = rng.random((8, H, W, 1)).astype("float32")
    if channels == 1:
        y = (x > 0.6).astype("float32")
    else:
        y = np.eye(channels, dtype="float32")[np.digitize(x[..., 0], [0.5, 0.8])]
    model = _tiny_model(channels)
    model.compile(
        optimizer="adam", loss=SegmentationLoss(bce=0.5, dice=0.5), metrics=default_metrics()
    )
    assert not model.run_eagerly
    history = model.fit(x, y, batch_size=4, epochs=1, verbose=0).history
    keys = {"loss", "dice", "iou", "sensitivity", "specificity", "precision", "binary_accuracy"}
    assert keys <= set(history)
    assert all(np.isfinite(history[k][0]) for k in keys)
    for k in keys - {"loss"}:
        assert 0.0 <= history[k][0] <= 1.0

    # Evaluation in graph mode equals the NumPy reference on the model's own predictions.
    evaluated = model.evaluate(x, y, batch_size=4, verbose=0, return_dict=True)
    expected = ref_metrics(y, model.predict(x, verbose=0))
    assert {k: evaluated[k] for k in expected} == pytest.approx(expected, abs=1e-5)

    path = tmp_path / "model.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert isinstance(loaded.loss, SegmentationLoss)
    assert loaded.loss.get_config() == model.loss.get_config()
    reloaded = loaded.evaluate(x, y, batch_size=4, verbose=0, return_dict=True)
    assert reloaded == pytest.approx(evaluated, abs=1e-5)


@pytest.mark.parametrize("channels", [1, 3])
def test_integer_masks_accepted(channels: int) -> None:
    """uint8 masks straight from image files must work for metrics and loss alike."""
    y, p = make_batch(channels, seed=8)
    metrics = default_metrics()
    for m in metrics:
        m.update_state(y.astype("uint8"), p)
    assert metric_values(metrics) == pytest.approx(ref_metrics(y, p), abs=1e-6)
    loss = SegmentationLoss(bce=0.5, dice=0.5)
    assert float(loss(y.astype("uint8"), p)) == pytest.approx(float(loss(y, p)), rel=1e-6)
