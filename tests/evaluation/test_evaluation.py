"""NumPy evaluation: confusion, scores, summaries and CSV output."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from seg.evaluation.scoring import (
    DISTANCES,
    METRICS,
    SCORES,
    SOFT_METRICS,
    Confusion,
    Evaluation,
    Extremes,
    ThresholdSweep,
    confusion,
    scores,
)
from seg.evaluation.surface_distance import hd95_asd, surface

TRUTH = np.array(
    [
        [1, 1, 0, 0],
        [1, 1, 0, 0],
        [0, 0, 0, 0],
    ]
)
PRED = np.array(
    [
        [1, 0, 0, 0],
        [1, 1, 1, 1],
        [0, 0, 0, 0],
    ]
)


def test_confusion_hand_computed() -> None:
    c = confusion(TRUTH, PRED)
    assert c == Confusion(tp=3, fp=2, fn=1, tn=6)
    assert confusion(TRUTH.astype(bool), PRED.astype(bool)) == c
    assert confusion(TRUTH.astype(np.uint8), PRED.astype(np.float32)) == c
    assert isinstance(c.tp, int)


def test_scores_hand_computed() -> None:
    s = scores(Confusion(tp=3, fp=2, fn=1, tn=6))
    assert s == pytest.approx(
        {
            "dice": 6 / 9,
            "iou": 3 / 6,
            "precision": 3 / 5,
            "recall": 3 / 4,
            "specificity": 6 / 8,
            "accuracy": 9 / 12,
        }
    )
    assert list(s) == list(METRICS)


def test_empty_mask_conventions() -> None:
    empty = np.zeros((4, 4), bool)
    some = empty.copy()
    some[0, 0] = True
    assert scores(confusion(empty, empty)) == dict.fromkeys(METRICS, 1.0)
    s = scores(confusion(empty, some))
    assert s["dice"] == 0.0 and s["iou"] == 0.0 and s["precision"] == 0.0
    assert s["recall"] == 1.0  # nothing to find
    assert s["specificity"] == pytest.approx(15 / 16)
    missed = scores(confusion(some, empty))
    assert missed["dice"] == 0.0 and missed["recall"] == 0.0
    assert missed["precision"] == 0.0  # an empty mask where there was something: not precise
    full = np.ones((2, 2), bool)
    assert scores(confusion(full, full))["specificity"] == 1.0
    # Degenerate zero-size image: still no NaN.
    assert all(np.isfinite(v) for v in scores(Confusion(0, 0, 0, 0)).values())


def test_invalid_masks_rejected() -> None:
    with pytest.raises(ValueError, match="shape"):
        confusion(np.zeros((2, 2)), np.zeros((2, 3)))
    with pytest.raises(ValueError, match="0/1"):
        confusion(np.full((2, 2), 255), np.zeros((2, 2)))
    with pytest.raises(ValueError, match="0/1"):
        confusion(np.zeros((2, 2)), np.full((2, 2), 0.7))


def _random_evaluation(seed: int = 0) -> tuple[Evaluation, list[np.ndarray], list[np.ndarray]]:
    rng = np.random.default_rng(seed)
    truths = [rng.random((8, 8)) < 0.3 for _ in range(4)]
    preds = [rng.random((8, 8)) < 0.3 for _ in range(4)]
    truths[0][:] = False
    preds[0][:] = False  # empty/empty image scores 1.0 and must be in the means
    ev = Evaluation()
    for i, (t, p) in enumerate(zip(truths, preds, strict=True)):
        ev.add(f"img{i}.png", t, p)
    return ev, truths, preds


def _np_scores(t: np.ndarray, p: np.ndarray) -> dict[str, float]:
    """Independent reference via NumPy set operations."""
    tp, fp = np.sum(t & p), np.sum(~t & p)
    tn = np.sum(~t & ~p)

    def r(a, b):
        return a / b if b else 1.0

    return {
        "dice": r(2 * tp, t.sum() + p.sum()),
        "iou": r(tp, np.sum(t | p)),
        "precision": r(tp, p.sum()) if p.sum() else float(t.sum() == 0),
        "recall": r(tp, t.sum()),
        "specificity": r(tn, tn + fp),
        "accuracy": float(np.mean(t == p)),
    }


def test_add_returns_scores_and_records_rows() -> None:
    ev, truths, preds = _random_evaluation()
    rows = ev.per_image_rows()
    assert len(ev) == len(rows) == 4
    assert [r["file"] for r in rows] == [f"img{i}.png" for i in range(4)]
    for row, t, p in zip(rows, truths, preds, strict=True):
        assert set(row) == {"file", *SCORES, "fg_truth", "fg_pred"}
        assert {m: row[m] for m in METRICS} == pytest.approx(_np_scores(t, p))
        assert row["fg_truth"] == pytest.approx(t.mean())
        assert row["fg_pred"] == pytest.approx(p.mean())
    assert rows[0]["dice"] == 1.0
    rows[0]["dice"] = -1.0  # returned rows are copies
    assert ev.per_image_rows()[0]["dice"] == 1.0
    added = ev.add("x", TRUTH, PRED)
    assert {m: added[m] for m in METRICS} == scores(confusion(TRUTH, PRED))
    # without probabilities, the 0/1 prediction is its own probability map
    assert added["soft_dice"] == added["dice"] and added["soft_iou"] == added["iou"]


def test_summary_matches_numpy() -> None:
    ev, truths, preds = _random_evaluation()
    summary = ev.summary()
    per_image = [_np_scores(t, p) for t, p in zip(truths, preds, strict=True)]
    pooled = _np_scores(np.stack(truths), np.stack(preds))
    assert summary["num_images"] == 4
    for m in METRICS:
        values = np.array([s[m] for s in per_image])
        assert summary[m] == pytest.approx(values.mean())
        assert summary[f"{m}_std"] == pytest.approx(values.std(ddof=0))
        assert summary[f"{m}_pooled"] == pytest.approx(pooled[m])
    assert set(summary) == {
        "num_images",
        *SCORES,
        *(f"{m}_std" for m in SCORES),
        *(f"{m}_median" for m in SCORES),
        *(f"{m}_pooled" for m in (*METRICS, *SOFT_METRICS)),  # distances have no pooled value
    }
    for m in SCORES:
        assert summary[f"{m}_median"] == pytest.approx(
            np.median([r[m] for r in ev.per_image_rows()])
        )
    assert all(np.isfinite(v) for v in summary.values())
    # Per-image mean and pooled differ here, which is why both are reported.
    assert summary["dice"] != pytest.approx(summary["dice_pooled"])


def test_summary_of_nothing_raises() -> None:
    with pytest.raises(ValueError, match="no images"):
        Evaluation().summary()


def test_write_csv(tmp_path: Path) -> None:
    ev, _, _ = _random_evaluation()
    per_image_path = tmp_path / "out" / "per_image.csv"
    summary_path = tmp_path / "out" / "evaluation.csv"
    ev.write_csv(per_image_path, summary_path)

    with per_image_path.open(newline="") as fh:
        reader = csv.DictReader(fh)
        assert reader.fieldnames == ["file", *SCORES, "fg_truth", "fg_pred"]
        rows = list(reader)
    assert len(rows) == 4
    for written, row in zip(rows, ev.per_image_rows(), strict=True):
        assert written["file"] == row["file"]
        for key in [*SCORES, "fg_truth", "fg_pred"]:
            assert float(written[key]) == row[key]  # full precision round trip

    summary = ev.summary()
    with summary_path.open(newline="") as fh:
        reader = csv.DictReader(fh)
        assert reader.fieldnames == ["metric", "mean", "std", "median", "pooled"]
        table = list(reader)
    assert [r["metric"] for r in table] == list(SCORES)
    for r in table:
        m = r["metric"]
        assert float(r["mean"]) == summary[m]
        assert float(r["std"]) == summary[f"{m}_std"]
        assert float(r["median"]) == summary[f"{m}_median"]
        if m in DISTANCES:
            assert r["pooled"] == ""
        else:
            assert float(r["pooled"]) == summary[f"{m}_pooled"]


# --------------------------------------------------------------------------- multiclass

NAMES = ["bg", "nucleus", "cyto", "debris"]  # debris (3) is in no truth and no prediction


def _multiclass_evaluation() -> tuple[Evaluation, list[np.ndarray], list[np.ndarray]]:
    rng = np.random.default_rng(3)
    truths = [rng.integers(0, 3, (6, 7)) for _ in range(3)]
    preds = [np.where(rng.random((6, 7)) < 0.7, t, rng.integers(0, 3, (6, 7))) for t in truths]
    truths[0][:] = 0  # background only, predicted with some cyto
    preds[0][:] = 0
    preds[0][0, :3] = 2
    ev = Evaluation(NAMES)
    for i, (t, p) in enumerate(zip(truths, preds, strict=True)):
        ev.add(f"img{i}.png", t.astype(np.uint8), p.astype(np.uint8))
    return ev, truths, preds


def test_multiclass_rows_score_each_class_and_their_mean() -> None:
    ev, truths, preds = _multiclass_evaluation()
    for row, t, p in zip(ev.per_image_rows(), truths, preds, strict=True):
        per_class = {name: _np_scores(t == k, p == k) for k, name in enumerate(NAMES) if k}
        for name, expected in per_class.items():
            assert {m: row[f"{m}_{name}"] for m in METRICS} == pytest.approx(expected), name
        assert row["dice_debris"] == 1.0  # absent from truth and prediction: nothing to find
        for m in METRICS:
            want = (
                (t == p).mean() if m == "accuracy" else np.mean([s[m] for s in per_class.values()])
            )
            assert row[m] == pytest.approx(want), m
        assert row["fg_truth"] == pytest.approx((t > 0).mean())
        assert row["fg_pred"] == pytest.approx((p > 0).mean())
    first = ev.per_image_rows()[0]
    assert first["dice_nucleus"] == 1.0 and first["dice_cyto"] == 0.0  # cyto predicted, absent


def test_multiclass_summary_means_stds_and_pooled_per_class() -> None:
    ev, truths, preds = _multiclass_evaluation()
    summary = ev.summary()
    t_all, p_all = np.stack(truths), np.stack(preds)
    pooled = {name: _np_scores(t_all == k, p_all == k) for k, name in enumerate(NAMES) if k}
    rows = ev.per_image_rows()
    for name, expected in pooled.items():
        for m in METRICS:
            key = f"{m}_{name}"
            values = np.array([r[key] for r in rows])
            assert summary[key] == pytest.approx(values.mean())
            assert summary[f"{key}_std"] == pytest.approx(values.std())
            assert summary[f"{key}_pooled"] == pytest.approx(expected[m])
    assert summary["dice_pooled"] == pytest.approx(np.mean([s["dice"] for s in pooled.values()]))
    assert summary["accuracy_pooled"] == pytest.approx((t_all == p_all).mean())
    assert summary["num_images"] == 3
    assert all(np.isfinite(v) for v in summary.values())
    groups = 1 + 3  # the mean over classes and each class
    ratios = len(METRICS) + len(SOFT_METRICS)
    assert len(summary) == 1 + groups * (3 * len(SCORES) + ratios)


def test_multiclass_csvs_have_per_class_columns_and_rows(tmp_path: Path) -> None:
    ev, _, _ = _multiclass_evaluation()
    ev.write_csv(tmp_path / "per_image.csv", tmp_path / "evaluation.csv")
    with (tmp_path / "per_image.csv").open(newline="") as fh:
        reader = csv.DictReader(fh)
        per_class = [f"{m}_{n}" for n in NAMES[1:] for m in SCORES]
        assert reader.fieldnames == ["file", *SCORES, "fg_truth", "fg_pred", *per_class]
        assert len(list(reader)) == 3
    with (tmp_path / "evaluation.csv").open(newline="") as fh:
        table = {r["metric"]: r for r in csv.DictReader(fh)}
    assert list(table) == [*SCORES, *per_class]
    summary = ev.summary()
    assert float(table["iou_cyto"]["pooled"]) == summary["iou_cyto_pooled"]
    assert float(table["dice_nucleus"]["std"]) == summary["dice_nucleus_std"]


def test_multiclass_labels_out_of_range_or_mismatched_rejected() -> None:
    ev = Evaluation(["bg", "a", "b"])
    with pytest.raises(ValueError, match=r"class indices 0\.\.2"):
        ev.add("x", np.full((2, 2), 3), np.zeros((2, 2)))
    with pytest.raises(ValueError, match="shape"):
        ev.add("x", np.zeros((2, 2)), np.zeros((2, 3)))
    assert Evaluation(["only"]).class_names is None  # one class: binary


# --------------------------------------------------------------------------- surface distances


def _brute_surface(mask: np.ndarray) -> list[tuple[int, int]]:
    """Mask pixels with a 4-neighbour outside the mask or outside the image."""
    h, w = mask.shape
    points = []
    for y in range(h):
        for x in range(w):
            if mask[y, x] and any(
                not (0 <= y + dy < h and 0 <= x + dx < w) or not mask[y + dy, x + dx]
                for dy, dx in ((1, 0), (-1, 0), (0, 1), (0, -1))
            ):
                points.append((y, x))
    return points


def _brute_hd95_asd(truth: np.ndarray, pred: np.ndarray) -> tuple[float, float]:
    st, sp = _brute_surface(truth), _brute_surface(pred)

    def directed(a, b):
        return np.array([min(np.hypot(y - v, x - u) for v, u in b) for y, x in a])

    d_tp, d_pt = directed(st, sp), directed(sp, st)
    hd95 = max(np.percentile(d_tp, 95), np.percentile(d_pt, 95))
    return float(hd95), float(np.concatenate([d_tp, d_pt]).mean())


@pytest.mark.parametrize("seed", range(6))
def test_hd95_and_asd_match_brute_force(seed: int) -> None:
    rng = np.random.default_rng(seed)
    shape = (int(rng.integers(5, 14)), int(rng.integers(5, 14)))
    truth = rng.random(shape) < 0.35
    pred = np.roll(truth, int(rng.integers(-2, 3)), axis=1) ^ (rng.random(shape) < 0.1)
    truth[0, 0] = pred[-1, -1] = True  # never empty
    np.testing.assert_array_equal(
        surface(truth),
        np.isin(
            np.arange(truth.size).reshape(shape),
            [y * shape[1] + x for y, x in _brute_surface(truth)],
        ),
    )
    assert hd95_asd(truth, pred) == pytest.approx(_brute_hd95_asd(truth, pred), abs=1e-9)
    assert hd95_asd(truth, truth) == (0.0, 0.0)


def test_hd95_and_asd_hand_computed_and_empty_masks() -> None:
    truth = np.zeros((10, 10), bool)
    truth[2:5, 2:5] = True
    shifted = np.roll(truth, 3, axis=1)  # the same square 3 px to the right
    hd95, asd = hd95_asd(truth, shifted)
    assert hd95 == pytest.approx(3.0) and 1.0 < asd < 3.0
    empty = np.zeros_like(truth)
    assert hd95_asd(empty, empty) == (0.0, 0.0)
    diagonal = np.hypot(10, 10)
    assert hd95_asd(truth, empty) == (diagonal, diagonal)
    assert hd95_asd(empty, truth) == (diagonal, diagonal)


def test_rows_hold_distances_and_soft_scores() -> None:
    rng = np.random.default_rng(5)
    truth = rng.random((12, 12)) < 0.4
    probs = np.clip(truth * 0.7 + rng.random((12, 12)) * 0.4, 0, 1)
    pred = probs > 0.5
    ev = Evaluation()
    row = ev.add("a.png", truth, pred, probs[..., None])
    assert (row["hd95"], row["asd"]) == pytest.approx(_brute_hd95_asd(truth, pred))
    tp = (truth * probs).sum()
    assert row["soft_dice"] == pytest.approx(2 * tp / (truth.sum() + probs.sum()))
    assert row["soft_iou"] == pytest.approx(tp / (truth.sum() + probs.sum() - tp))
    empty = np.zeros((12, 12), bool)
    nothing = ev.add("empty.png", empty, empty, np.zeros((12, 12)))
    assert nothing["hd95"] == 0.0 and nothing["soft_dice"] == 1.0
    missed = ev.add("missed.png", truth, empty, np.zeros((12, 12)))
    assert missed["hd95"] == missed["asd"] == pytest.approx(np.hypot(12, 12))
    summary = ev.summary()
    assert all(np.isfinite(v) for v in summary.values())
    soft_pooled = 2 * tp / (2 * truth.sum() + probs.sum())
    assert summary["soft_dice_pooled"] == pytest.approx(soft_pooled)
    assert summary["hd95"] == pytest.approx(np.mean([row["hd95"], 0.0, np.hypot(12, 12)]))


def test_multiclass_distances_per_class() -> None:
    truth = np.zeros((8, 8), np.uint8)
    truth[1:4, 1:4] = 1
    truth[5:7, 5:7] = 2
    pred = np.roll(truth, 1, axis=0)
    probs = np.eye(3, dtype=np.float32)[pred]
    row = Evaluation(["bg", "a", "b"]).add("m.png", truth, pred, probs)
    for k, name in ((1, "a"), (2, "b")):
        assert (row[f"hd95_{name}"], row[f"asd_{name}"]) == pytest.approx(
            _brute_hd95_asd(truth == k, pred == k)
        )
    assert row["hd95"] == pytest.approx((row["hd95_a"] + row["hd95_b"]) / 2)
    assert row["soft_dice_a"] == row["dice_a"]  # one-hot probabilities


# --------------------------------------------------------------------------- threshold sweep


def test_threshold_sweep_matches_thresholding_each_image() -> None:
    rng = np.random.default_rng(7)
    truths = [rng.random((9, 11)) < 0.3 for _ in range(3)]
    probs = [np.clip(t * 0.5 + rng.random(t.shape) * 0.6, 0, 1) for t in truths]
    truths.append(np.zeros((9, 11), bool))  # empty truth
    probs.append(rng.random((9, 11)) * 0.3)
    sweep = ThresholdSweep([0.1, 0.25, 0.5, 0.8])
    for t, p in zip(truths, probs, strict=True):
        sweep.add(t, p)
    curves = sweep.curves()
    for i, th in enumerate(sweep.thresholds):
        per_image = [scores(confusion(t, p > th)) for t, p in zip(truths, probs, strict=True)]
        assert curves["mean_dice"][i] == pytest.approx(np.mean([s["dice"] for s in per_image]))
        pooled = scores(confusion(np.stack(truths), np.stack(probs) > th))
        assert curves["pooled_dice"][i] == pytest.approx(pooled["dice"])
        assert curves["precision"][i] == pytest.approx(pooled["precision"])
        assert curves["recall"][i] == pytest.approx(pooled["recall"])
    best, dice = sweep.best()
    assert dice == pytest.approx(curves["mean_dice"].max())
    assert best == sweep.thresholds[int(np.argmax(curves["mean_dice"]))]
    assert len(ThresholdSweep().thresholds) == 49  # 0.02 ... 0.98


def test_threshold_sweep_finds_the_threshold_of_an_underconfident_model() -> None:
    truth = np.zeros((20, 20), bool)
    truth[5:15, 5:15] = True
    sweep = ThresholdSweep()
    sweep.add(truth, np.where(truth, 0.35, 0.1))
    best, dice = sweep.best()
    assert 0.1 <= best < 0.35 and dice == 1.0


# --------------------------------------------------------------------------- gallery


def test_extremes_keep_the_worst_and_best_as_thumbnails() -> None:
    extremes = Extremes(k=2, max_side=16)
    scores_by_name = {f"i{i}": s for i, s in enumerate([0.5, 0.9, 0.1, 0.7, 0.3, 0.95])}
    for name, score in scores_by_name.items():
        image = np.full((40, 20, 3), score, np.float32)
        mask = np.zeros((40, 20), np.uint8)
        mask[:10] = 1
        extremes.add(name, score, image, mask, mask)
    assert [c.name for c in extremes.worst()] == ["i2", "i4"]
    assert [c.name for c in extremes.best()] == ["i5", "i1"]
    case = extremes.worst()[0]
    assert case.image.shape == (16, 8, 3) and case.truth.shape == (16, 8)
    assert case.score == 0.1 and set(np.unique(case.truth)) == {0, 1}
    few = Extremes(k=3)
    for name in ("a", "b"):
        few.add(name, 0.5, np.zeros((4, 4, 3)), np.zeros((4, 4)), np.zeros((4, 4)))
    assert len(few.worst()) == 2 and few.best() == []  # never shown twice


# --------------------------------------------------------------------------- figures


def test_figures_are_written(tmp_path: Path) -> None:
    import cv2

    from seg.evaluation.reports import plot_distribution, plot_gallery, plot_threshold_sweep

    extremes = Extremes(k=2)
    truth = np.zeros((30, 40), np.uint8)
    truth[5:20, 5:20] = 1
    for i in range(5):
        extremes.add(
            f"c{i}", i / 4, np.full((30, 40, 3), 0.5, np.float32), truth, np.roll(truth, i, axis=1)
        )
    sweep = ThresholdSweep()
    sweep.add(truth, np.where(truth, 0.7, 0.2))
    paths = [
        plot_distribution([0.1, 0.5, 0.9], tmp_path / "d.png"),
        plot_gallery(extremes.worst(), extremes.best(), tmp_path / "g.png"),
        plot_threshold_sweep(sweep.curves(), sweep.best(), 0.5, tmp_path / "t.png"),
    ]
    shapes = [cv2.imread(str(p)).shape for p in paths]
    assert all(len(s) == 3 and min(s[:2]) > 100 for s in shapes)
    assert shapes[1][0] > 3.5 * 260 > shapes[1][0] / 1.2  # four rows of 2.6 inch at 100 dpi
