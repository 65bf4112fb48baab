"""CompoundLoss terms (SSIM, focal, Tversky, focal Tversky, and weighted sums) and the soft /
per-image / pooled metric variants, against NumPy references, empty masks included."""

from __future__ import annotations

import re

import keras
import numpy as np
import pytest
import tensorflow as tf

from seg.config.loss import TERMS, normalize_terms
from seg.errors import ConfigError
from seg.evaluation.metrics import (
    Dice,
    IoU,
    PixelAccuracy,
    Precision,
    Recall,
    Sensitivity,
    Specificity,
)
from seg.losses import CompoundLoss, SegmentationLoss
from tests.support.compose import compose_run
from tests.support.references import (
    EPS,
    H,
    W,
    make_batch,
    ratio,
    ref_ce,
    ref_dice_loss,
    ref_iou_loss,
)

# ----------------------------------------------------------------------------- references


def ref_ssim(y: np.ndarray, p: np.ndarray, window: int = 11, sigma: float = 1.5) -> np.ndarray:
    """Brute force: the Gaussian-weighted statistics at every valid window position."""
    g = np.exp(-0.5 * ((np.arange(window) - (window - 1) / 2) / sigma) ** 2)
    k = np.outer(g, g) / np.outer(g, g).sum()
    c1, c2 = 0.01**2, 0.03**2
    out = []
    for t, q in zip(y[..., 0].astype(float), p[..., 0].astype(float), strict=True):
        values = []
        for i in range(t.shape[0] - window + 1):
            for j in range(t.shape[1] - window + 1):
                a, b = t[i : i + window, j : j + window], q[i : i + window, j : j + window]
                ma, mb = (k * a).sum(), (k * b).sum()
                va, vb = (k * a * a).sum() - ma**2, (k * b * b).sum() - mb**2
                cov = (k * a * b).sum() - ma * mb
                values.append(
                    (2 * ma * mb + c1) * (2 * cov + c2) / ((ma**2 + mb**2 + c1) * (va + vb + c2))
                )
        out.append(np.mean(values))
    return np.array(out)


def ref_focal(y, p, gamma=2.0, alpha=None) -> np.ndarray:
    p = np.clip(p.astype(float), EPS, 1 - EPS)
    p_t = np.where(y > 0.5, p, 1 - p)
    loss = -((1 - p_t) ** gamma) * np.log(p_t)
    if alpha is not None:
        loss *= np.where(y > 0.5, alpha, 1 - alpha)
    return loss.mean(axis=(1, 2, 3))


def ref_tversky_index(y, p, alpha=0.3, beta=0.7, smooth=1.0) -> np.ndarray:
    y, p = y.astype(float), p.astype(float)
    tp = (y * p).sum(axis=(1, 2, 3))
    fp = ((1 - y) * p).sum(axis=(1, 2, 3))
    fn = (y * (1 - p)).sum(axis=(1, 2, 3))
    return (tp + smooth) / (tp + alpha * fp + beta * fn + smooth)


REFERENCES = {
    "bce": lambda y, p, **_: ref_ce(y, p),
    "dice": lambda y, p, smooth: ref_dice_loss(y, p, smooth),
    "iou": lambda y, p, smooth: ref_iou_loss(y, p, smooth),
    "ssim": lambda y, p, window, sigma: 1 - ref_ssim(y, p, window, sigma),
    "focal": lambda y, p, gamma, alpha: ref_focal(y, p, gamma, alpha),
    "tversky": lambda y, p, alpha, beta, smooth: 1 - ref_tversky_index(y, p, alpha, beta, smooth),
    "focal_tversky": lambda y, p, alpha, beta, gamma, smooth: (
        np.maximum(1 - ref_tversky_index(y, p, alpha, beta, smooth), EPS) ** gamma
    ),
}


def _loss(y: np.ndarray, p: np.ndarray, **term) -> np.ndarray:
    """Per-image values of a one-term CompoundLoss."""
    return keras.ops.convert_to_numpy(
        CompoundLoss([term]).call(keras.ops.convert_to_tensor(y), keras.ops.convert_to_tensor(p))
    )


# ----------------------------------------------------------------------------- losses


@pytest.mark.parametrize(
    "term",
    [
        {"name": "bce"},
        {"name": "dice", "smooth": 1.0},
        {"name": "iou", "smooth": 0.5},
        {"name": "ssim"},
        {"name": "ssim", "window": 5, "sigma": 1.0},
        {"name": "focal"},
        {"name": "focal", "gamma": 1.0, "alpha": 0.25},
        {"name": "tversky"},
        {"name": "tversky", "alpha": 0.7, "beta": 0.3, "smooth": 0.1},
        {"name": "focal_tversky"},
        {"name": "focal_tversky", "gamma": 2.0},
    ],
    ids=lambda t: "-".join(f"{v}" for v in t.values()),
)
def test_each_term_matches_its_numpy_reference(term: dict) -> None:
    """make_batch's images: empty truth + near-empty prediction, empty truth + a predicted
    square, random/random; per image, so the empty ones are checked on their own."""
    y, p = make_batch(1)
    (spec,) = normalize_terms([term])
    params = {k: v for k, v in spec.items() if k not in ("name", "weight")}
    got = _loss(y, p, **term)
    assert got.shape == (3,) and np.isfinite(got).all()
    np.testing.assert_allclose(got, REFERENCES[term["name"]](y, p, **params), rtol=1e-4, atol=1e-6)


def test_ssim_matches_tensorflow() -> None:
    y, p = make_batch(1, seed=3)
    expected = tf.image.ssim(y, p, max_val=1.0, filter_size=11, filter_sigma=1.5).numpy()
    np.testing.assert_allclose(1 - _loss(y, p, name="ssim"), expected, rtol=1e-4, atol=1e-5)
    # identical maps: SSIM 1, loss 0 (empty masks too)
    np.testing.assert_allclose(_loss(y, y, name="ssim"), 0.0, atol=1e-5)


def test_term_identities() -> None:
    y, p = make_batch(1, seed=1)
    # Tversky with alpha = beta = 0.5 is the dice loss (of twice the smoothing: the index is
    # (TP + s) / (TP + (FP + FN)/2 + s)); focal with gamma 0 is BCE
    np.testing.assert_allclose(
        _loss(y, p, name="tversky", alpha=0.5, beta=0.5),
        _loss(y, p, name="dice", smooth=2.0),
        rtol=1e-5,
    )
    np.testing.assert_allclose(
        _loss(y, p, name="focal", gamma=0.0), _loss(y, p, name="bce"), rtol=1e-5
    )
    # focal Tversky with gamma 1 is the Tversky loss
    np.testing.assert_allclose(
        _loss(y, p, name="focal_tversky", gamma=1.0), _loss(y, p, name="tversky"), rtol=1e-5
    )
    # beta > alpha punishes missed foreground more than the dice loss does, false alarms less
    truth = np.zeros((1, H, W, 1), np.float32)
    truth[0, :4, :4] = 1
    missed = truth * 0.1
    extra = np.where(truth > 0, 1.0, 0.3).astype(np.float32)
    recall_heavy = {"name": "tversky", "alpha": 0.1, "beta": 0.9}
    assert _loss(truth, missed, **recall_heavy)[0] > _loss(truth, missed, name="dice")[0]
    assert _loss(truth, extra, **recall_heavy)[0] < _loss(truth, extra, name="dice")[0]


def test_weighted_sum_and_legacy_equivalence() -> None:
    y, p = make_batch(1, seed=2)
    terms = [
        {"name": "bce", "weight": 0.5},
        {"name": "tversky", "weight": 0.25, "alpha": 0.3, "beta": 0.7},
        {"name": "tversky", "weight": 0.25, "alpha": 0.6, "beta": 0.4},
    ]
    loss = CompoundLoss(terms)
    expected = (
        0.5 * ref_ce(y, p)
        + 0.25 * (1 - ref_tversky_index(y, p, 0.3, 0.7))
        + 0.25 * (1 - ref_tversky_index(y, p, 0.6, 0.4))
    ).mean()
    assert float(loss(y, p)) == pytest.approx(expected, rel=1e-5)
    hybrid = CompoundLoss([{"name": n, "weight": 1 / 3} for n in ("bce", "ssim", "iou")])
    expected = np.mean((ref_ce(y, p) + 1 - ref_ssim(y, p) + ref_iou_loss(y, p)) / 3)
    assert float(hybrid(y, p)) == pytest.approx(expected, rel=1e-4)
    bce_dice = CompoundLoss([{"name": "bce", "weight": 0.5}, {"name": "dice", "weight": 0.5}])
    assert float(bce_dice(y, p)) == pytest.approx(
        float(SegmentationLoss.from_preset("bce_dice")(y, p)), rel=1e-6
    )


def test_gradients_are_finite_on_perfect_and_empty_images() -> None:
    y = np.zeros((2, H, W, 1), np.float32)
    y[1, 4:9, 4:9] = 1
    p = tf.Variable(np.clip(y, 1e-7, 1 - 1e-7))
    loss = CompoundLoss([{"name": n} for n in TERMS])
    with tf.GradientTape() as tape:
        value = loss(y, p)
    grad = tape.gradient(value, p).numpy()
    assert np.isfinite(float(value)) and np.isfinite(grad).all()


def test_serialization_and_training_in_graph_mode(tmp_path) -> None:
    keras.utils.set_random_seed(0)
    x = np.random.default_rng(0).random((8, H, W, 1)).astype(np.float32)
    y = (x > 0.6).astype(np.float32)
    inputs = keras.Input((H, W, 1))
    hidden = keras.layers.Conv2D(4, 3, padding="same", activation="relu")(inputs)
    model = keras.Model(inputs, keras.layers.Conv2D(1, 1, activation="sigmoid")(hidden))
    loss = CompoundLoss(
        [
            {"name": "focal", "weight": 0.5, "alpha": 0.25},
            {"name": "ssim", "weight": 0.25, "window": 7},
            {"name": "focal_tversky", "weight": 0.25},
        ],
        name="mine",
    )
    model.compile("adam", loss)
    history = model.fit(x, y, batch_size=4, epochs=2, verbose=0).history
    assert np.isfinite(history["loss"]).all()
    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras")
    assert isinstance(loaded.loss, CompoundLoss) and loaded.loss.name == "mine"
    assert loaded.loss.get_config() == loss.get_config()
    assert loaded.loss.terms[1] == {"name": "ssim", "weight": 0.25, "window": 7, "sigma": 1.5}
    assert float(loaded.loss(y, model.predict(x, verbose=0))) == pytest.approx(
        float(loss(y, model.predict(x, verbose=0))), rel=1e-6
    )


def test_multichannel_output_is_refused() -> None:
    y, p = make_batch(3)
    with pytest.raises(ConfigError, match="categorical"):
        CompoundLoss([{"name": "dice"}])(y, p)


@pytest.mark.parametrize(
    ("terms", "message"),
    [
        ([], "loss.terms: list at least one"),
        ([{"name": "bce", "alpha": 0.3}], "loss.terms[0].alpha: not a parameter of bce"),
        (
            [{"name": "dice"}, {"name": "tversky", "gamma": 2}],
            "loss.terms[1].gamma: not a parameter of tversky (it takes alpha, beta, smooth)",
        ),
        ([{"name": "lovasz"}], "loss.terms[0].name: 'lovasz' is not a loss term"),
        ([{"name": "ssim", "window": 4}], "loss.terms[0].window: an odd window size"),
        ([{"name": "focal", "alpha": 1.5}], "loss.terms[0].alpha: must be in [0.0, 1.0]"),
        ([{"name": "bce", "weight": -1}], "loss.terms[0].weight: must be >= 0.0"),
        ([{"name": "bce", "weight": 0}], "all weights are 0"),
    ],
)
def test_bad_terms_name_the_key(terms, message: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        normalize_terms(terms)


# ----------------------------------------------------------------------------- config


def test_combo_from_the_command_line_composes_and_builds() -> None:
    from seg.config.validation import validate
    from seg.training.factory import build_loss

    cfg = compose_run(
        "train",
        [
            "loss=combo",
            "loss.terms=[{name:bce,weight:0.5},{name:tversky,weight:0.5,alpha:0.3,beta:0.7}]",
        ],
    )
    validate(cfg)
    loss = build_loss(cfg.loss)
    assert isinstance(loss, CompoundLoss)
    assert loss.terms == [
        {"name": "bce", "weight": 0.5},
        {"name": "tversky", "weight": 0.5, "alpha": 0.3, "beta": 0.7, "smooth": 1.0},
    ]
    for preset in ("ssim", "bce_ssim_iou", "binary_focal", "tversky", "focal_tversky"):
        assert isinstance(build_loss(compose_run("train", [f"loss={preset}"]).loss), CompoundLoss)


@pytest.mark.parametrize(
    ("override", "key"),
    [
        ("loss.terms=[{name:bce,wieght:0.5}]", "wieght"),
        ("loss.terms=[{name:lovasz}]", "lovasz"),
        ("loss.terms=[{name:tversky,alpha:high}]", "alpha"),
    ],
)
def test_combo_typos_fail_at_composition(override: str, key: str) -> None:
    from hydra.errors import ConfigCompositionException

    with pytest.raises(ConfigCompositionException, match=key):
        compose_run("train", ["loss=combo", override])


def test_combo_term_parameter_of_another_term_fails_validation() -> None:
    from seg.config.validation import validate

    cfg = compose_run("train", ["loss=combo", "loss.terms=[{name:bce,beta:0.7}]"])
    with pytest.raises(ConfigError, match=re.escape("loss.terms[0].beta")):
        validate(cfg)
    cfg = compose_run("train", ["loss=tversky", "dataset.num_classes=3"])
    with pytest.raises(ConfigError, match="binary"):
        validate(cfg)


# ----------------------------------------------------------------------------- metric variants


def ref_counts(y, p, soft: bool, threshold: float = 0.5):
    t = (y > 0.5).astype(float)
    q = p.astype(float) if soft else (p > threshold).astype(float)
    axes = (1, 2, 3)
    return (
        (t * q).sum(axes),
        ((1 - t) * q).sum(axes),
        (t * (1 - q)).sum(axes),
        ((1 - t) * (1 - q)).sum(axes),
    )


SCORES = {
    Dice: lambda tp, fp, fn, tn: ratio(2 * tp, 2 * tp + fp + fn),
    IoU: lambda tp, fp, fn, tn: ratio(tp, tp + fp + fn),
    Precision: lambda tp, fp, fn, tn: ratio(tp, tp + fp),
    Sensitivity: lambda tp, fp, fn, tn: ratio(tp, tp + fn),
    Recall: lambda tp, fp, fn, tn: ratio(tp, tp + fn),
    Specificity: lambda tp, fp, fn, tn: ratio(tn, tn + fp),
    PixelAccuracy: lambda tp, fp, fn, tn: ratio(tp + tn, tp + fp + fn + tn),
}


@pytest.mark.parametrize("cls", list(SCORES), ids=lambda c: c.__name__)
@pytest.mark.parametrize("soft", [False, True])
@pytest.mark.parametrize("per_image", [False, True])
def test_metric_variants_match_reference(cls, soft: bool, per_image: bool) -> None:
    y, p = make_batch(1, seed=5)
    metric = cls(soft=soft, per_image=per_image)
    metric.update_state(y[:2], p[:2])  # two batches, one with the empty-truth images
    metric.update_state(y[2:], p[2:])
    counts = ref_counts(y, p, soft)
    if per_image:
        expected = SCORES[cls](*counts).mean()
    else:
        expected = float(SCORES[cls](*(c.sum() for c in counts)))
    assert float(metric.result()) == pytest.approx(expected, abs=1e-6)
    clone = cls.from_config(metric.get_config())
    assert clone.soft == soft and clone.per_image == per_image


def test_metric_defaults_keep_their_style() -> None:
    assert Dice().per_image and IoU().per_image
    assert not any(m().per_image for m in (Precision, Sensitivity, Specificity, PixelAccuracy))
    assert Recall().name == "recall" and not Dice().soft
    # an empty truth with a faint prediction: soft dice 0, hard dice 1 (nothing above 0.5)
    y = np.zeros((1, H, W, 1), np.float32)
    p = np.full_like(y, 0.01)
    assert float(Dice()(y, p)) == 1.0
    assert float(Dice(soft=True)(y, p)) == 0.0
    assert float(Dice(soft=True)(y, np.zeros_like(y))) == 1.0


def test_soft_multiclass_accuracy_is_the_probability_of_the_true_class() -> None:
    y, p = make_batch(3, seed=6)
    metric = PixelAccuracy(soft=True)
    metric.update_state(y, p)
    assert float(metric.result()) == pytest.approx(float((y * p).sum(-1).mean()), abs=1e-6)
    per_class = Dice(soft=True, class_id=2)
    per_class.update_state(y, p)
    t, q = y[..., 2], p[..., 2]
    expected = ratio(2 * (t * q).sum((1, 2)), t.sum((1, 2)) + q.sum((1, 2))).mean()
    assert float(per_class.result()) == pytest.approx(expected, abs=1e-6)
