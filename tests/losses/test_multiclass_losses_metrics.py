"""Categorical losses and per-class metrics of softmax models against NumPy references,
including classes absent from an image (never NaN)."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from seg.errors import ConfigError
from seg.evaluation.metrics import Dice, IoU, default_metrics
from seg.losses import CategoricalLoss

EPS = 1e-7
H = W = 12
K = 4


def make_batch(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """3 images, K classes; class 3 appears in no truth; image 0 is background only and
    predicted so; image 1 predicts class 3 somewhere (absent from its truth)."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, K - 1, (3, H, W))
    labels[0] = 0
    y = np.eye(K, dtype="float32")[labels]
    logits = rng.normal(size=(3, H, W, K))
    logits[0, ..., 0] += 12.0
    logits[1, :3, :3, 3] += 12.0
    p = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
    return y, p.astype("float32")


# ----------------------------------------------------------------------------- references


def ref_ce(y, p, w=None, gamma=0.0):
    """Per image: mean over pixels of -sum_c w_c y_c (1 - p_c)^gamma log p_c."""
    w = np.ones(y.shape[-1]) if w is None else np.asarray(w, float)
    q = np.clip(p.astype("float64"), EPS, 1 - EPS)
    return (-(w * y * (1 - q) ** gamma * np.log(q)).sum(-1)).mean(axis=(1, 2))


def ref_dice_loss(y, p, include_background=False, smooth=1.0):
    inter = (y * p).sum(axis=(1, 2))
    dice = (2 * inter + smooth) / (y.sum(axis=(1, 2)) + p.sum(axis=(1, 2)) + smooth)
    return 1 - (dice if include_background else dice[:, 1:]).mean(-1)


def per_image(loss: CategoricalLoss, y, p) -> np.ndarray:
    return keras.ops.convert_to_numpy(loss.call(keras.ops.array(y), keras.ops.array(p)))


# ----------------------------------------------------------------------------- losses


@pytest.mark.parametrize("weights", [None, [0.2, 1.0, 3.0, 0.5]])
def test_crossentropy_and_focal_match_reference(weights) -> None:
    y, p = make_batch()
    ce = per_image(CategoricalLoss(ce=1.0, class_weights=weights), y, p)
    np.testing.assert_allclose(ce, ref_ce(y, p, weights), rtol=1e-5)
    for gamma in (0.0, 1.0, 2.0, 3.5):
        focal = per_image(CategoricalLoss(focal=1.0, gamma=gamma, class_weights=weights), y, p)
        np.testing.assert_allclose(focal, ref_ce(y, p, weights, gamma), rtol=1e-5)
        if gamma == 0.0:  # focal with gamma 0 is the (weighted) crossentropy
            np.testing.assert_allclose(focal, ce, rtol=1e-6)
        else:  # it down-weights every pixel, most the confident ones
            assert np.all(focal < ce)


@pytest.mark.parametrize("include_background", [False, True])
def test_soft_dice_matches_reference(include_background: bool) -> None:
    y, p = make_batch(1)
    loss = CategoricalLoss(dice=1.0, include_background=include_background, smooth=1.0)
    expected = ref_dice_loss(y, p, include_background)
    np.testing.assert_allclose(per_image(loss, y, p), expected, rtol=1e-5, atol=1e-6)
    # Keras reduces the per-image values with a plain mean over the batch.
    assert float(loss(y, p)) == pytest.approx(expected.mean(), rel=1e-5)


def test_terms_combine_linearly_as_the_presets_do() -> None:
    y, p = make_batch(2)
    ce, dice = ref_ce(y, p), ref_dice_loss(y, p)
    focal = ref_ce(y, p, gamma=2.0)
    both = float(CategoricalLoss(ce=0.5, dice=0.5)(y, p))  # conf/loss/cce_dice.yaml
    assert both == pytest.approx((0.5 * ce + 0.5 * dice).mean(), rel=1e-5)
    mixed = float(CategoricalLoss(ce=0.2, dice=1.5, focal=3.0)(y, p))
    assert mixed == pytest.approx((0.2 * ce + 1.5 * dice + 3.0 * focal).mean(), rel=1e-5)


def test_absent_classes_and_saturated_probabilities_never_nan() -> None:
    y, p = make_batch(3)
    hard = np.eye(K, dtype="float32")[p.argmax(-1)]  # exact 0/1 probabilities
    wrong = np.roll(y, 1, axis=-1)
    loss = CategoricalLoss(ce=1.0, dice=1.0, focal=1.0, include_background=True)
    for pred in (p, hard, wrong, np.zeros_like(p)):
        assert np.all(np.isfinite(per_image(loss, y, pred)))
    # A perfect prediction: every class present is matched, absent ones (class 3, and all
    # foreground classes of image 0) are empty/empty = 1, so the loss is ~0, not NaN.
    assert per_image(loss, y, y) == pytest.approx(np.zeros(3), abs=1e-5)


def test_gradient_is_finite_on_saturated_softmax() -> None:
    import tensorflow as tf

    y, _ = make_batch(4)
    logits = tf.Variable(np.where(y > 0, -30.0, 30.0).astype("float32"))  # all wrong, saturated
    loss = CategoricalLoss(ce=1.0, dice=1.0, focal=1.0)
    with tf.GradientTape() as tape:
        value = loss(y, tf.nn.softmax(logits))
    grad = tape.gradient(value, logits).numpy()
    assert np.isfinite(float(value)) and np.all(np.isfinite(grad))


@pytest.mark.parametrize(
    ("kwargs", "key"),
    [
        ({}, "loss.ce"),
        ({"ce": -1.0}, "loss.ce"),
        ({"focal": 1.0, "gamma": -2.0}, "loss.gamma"),
        ({"ce": 1.0, "class_weights": [1.0, -1.0]}, "loss.class_weights"),
        ({"dice": 1.0, "smooth": float("nan")}, "loss.smooth"),
    ],
)
def test_invalid_settings_raise_config_error(kwargs: dict, key: str) -> None:
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        CategoricalLoss(**kwargs)


def test_outputs_that_do_not_fit_name_the_setting() -> None:
    y, p = make_batch()
    with pytest.raises(ConfigError, match=r"binary loss for dataset\.num_classes=1"):
        CategoricalLoss(ce=1.0, name="cce")(y[..., :1], p[..., :1])
    with pytest.raises(ConfigError, match=r"loss\.class_weights: 2 weights for 4 classes"):
        CategoricalLoss(ce=1.0, class_weights=[1.0, 2.0])(y, p)


def test_serialization_round_trip() -> None:
    y, p = make_batch(5)
    loss = CategoricalLoss(
        ce=0.3,
        dice=0.7,
        focal=0.2,
        gamma=1.5,
        class_weights=[1, 2, 3, 4],
        include_background=True,
        smooth=2.0,
        name="mine",
    )
    restored = keras.losses.deserialize(keras.losses.serialize(loss))
    assert isinstance(restored, CategoricalLoss)
    assert restored.get_config() == loss.get_config() and restored.name == "mine"
    assert float(restored(y, p)) == pytest.approx(float(loss(y, p)), rel=1e-6)


# ----------------------------------------------------------------------------- metrics


def ratio(num, den):
    num, den = np.asarray(num, float), np.asarray(den, float)
    return np.where(den > 0, num / np.where(den > 0, den, 1), 1.0)


def ref_class_scores(y, p, k) -> dict[str, np.ndarray]:
    """Per image hard dice/IoU of class k (argmax prediction), empty/empty = 1."""
    t, q = y.argmax(-1) == k, p.argmax(-1) == k
    inter = (t & q).sum(axis=(1, 2))
    ts, qs = t.sum(axis=(1, 2)), q.sum(axis=(1, 2))
    return {"dice": ratio(2 * inter, ts + qs), "iou": ratio(inter, ts + qs - inter)}


def test_per_class_metrics_match_reference_with_empty_conventions() -> None:
    y, p = make_batch()
    names = ["background", "nucleus", "cytoplasm", "debris"]
    metrics = default_metrics(class_names=names)
    assert [m.name for m in metrics] == [
        "dice",
        "iou",
        "dice_nucleus",
        "dice_cytoplasm",
        "dice_debris",
        "iou_nucleus",
        "iou_cytoplasm",
        "iou_debris",
        "sensitivity",
        "specificity",
        "precision",
        "binary_accuracy",
    ]
    for m in metrics:
        m.update_state(y, p)
    got = {m.name: float(m.result()) for m in metrics}
    assert all(np.isfinite(v) for v in got.values())
    for k, name in enumerate(names[1:], 1):
        ref = ref_class_scores(y, p, k)
        assert got[f"dice_{name}"] == pytest.approx(ref["dice"].mean(), abs=1e-6)
        assert got[f"iou_{name}"] == pytest.approx(ref["iou"].mean(), abs=1e-6)
    # debris (3) is in no truth: image 0 predicts none (1.0), image 1 predicts some (0.0).
    assert ref_class_scores(y, p, 3)["dice"][:2].tolist() == [1.0, 0.0]
    # The mean metric is the mean over foreground classes of the per-class ones, per image.
    mean = np.mean([ref_class_scores(y, p, k)["dice"] for k in (1, 2, 3)], axis=0).mean()
    assert got["dice"] == pytest.approx(mean, abs=1e-6)


def test_per_class_metric_config_round_trip_and_bad_class() -> None:
    y, p = make_batch(6)
    metric = IoU(name="iou_nucleus", class_id=1)
    clone = keras.metrics.deserialize(keras.metrics.serialize(metric))
    assert type(clone) is IoU and clone.class_id == 1 and clone.name == "iou_nucleus"
    assert float(clone(y, p)) == pytest.approx(float(metric(y, p)), abs=1e-7)
    with pytest.raises(ValueError, match="class_id=4"):
        Dice(class_id=4)(y, p)


# ----------------------------------------------------------------------------- Keras fit


def test_fit_evaluate_save_load_with_categorical_loss_and_per_class_metrics(tmp_path) -> None:
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(7)
    x = rng.random((8, H, W, 1)).astype("float32")
    y = np.eye(3, dtype="float32")[np.digitize(x[..., 0], [0.5, 0.8])]
    inputs = keras.Input((H, W, 1))
    hidden = keras.layers.Conv2D(4, 3, padding="same", activation="relu")(inputs)
    model = keras.Model(inputs, keras.layers.Conv2D(3, 1, activation="softmax")(hidden))
    model.compile(
        optimizer="adam",
        loss=CategoricalLoss(ce=0.5, dice=0.5),
        metrics=default_metrics(class_names=["bg", "a", "b"]),
    )
    history = model.fit(x, y, batch_size=4, epochs=1, verbose=0).history
    for key in ("loss", "dice", "dice_a", "dice_b", "iou_a", "iou_b"):
        assert np.isfinite(history[key][0]), key
    evaluated = model.evaluate(x, y, batch_size=4, verbose=0, return_dict=True)
    probs = model.predict(x, verbose=0)
    for k, name in ((1, "a"), (2, "b")):
        ref = ref_class_scores(y, probs, k)
        assert evaluated[f"dice_{name}"] == pytest.approx(ref["dice"].mean(), abs=1e-5)
        assert evaluated[f"iou_{name}"] == pytest.approx(ref["iou"].mean(), abs=1e-5)
    path = tmp_path / "model.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert loaded.loss.get_config() == model.loss.get_config()
    assert loaded.evaluate(x, y, batch_size=4, verbose=0, return_dict=True) == pytest.approx(
        evaluated, abs=1e-5
    )
