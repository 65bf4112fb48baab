"""NumPy evaluation: confusion, scores, summaries and CSV output."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from seg.evaluation import METRICS, Confusion, Evaluation, confusion, scores

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
    assert missed["precision"] == 1.0  # nothing predicted, so nothing predicted wrongly
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
        "precision": r(tp, p.sum()),
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
        assert set(row) == {"file", *METRICS, "fg_truth", "fg_pred"}
        assert {m: row[m] for m in METRICS} == pytest.approx(_np_scores(t, p))
        assert row["fg_truth"] == pytest.approx(t.mean())
        assert row["fg_pred"] == pytest.approx(p.mean())
    assert rows[0]["dice"] == 1.0
    rows[0]["dice"] = -1.0  # returned rows are copies
    assert ev.per_image_rows()[0]["dice"] == 1.0
    assert ev.add("x", TRUTH, PRED) == scores(confusion(TRUTH, PRED))


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
        *METRICS,
        *(f"{m}_std" for m in METRICS),
        *(f"{m}_pooled" for m in METRICS),
    }
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
        assert reader.fieldnames == ["file", *METRICS, "fg_truth", "fg_pred"]
        rows = list(reader)
    assert len(rows) == 4
    for written, row in zip(rows, ev.per_image_rows(), strict=True):
        assert written["file"] == row["file"]
        for key in [*METRICS, "fg_truth", "fg_pred"]:
            assert float(written[key]) == row[key]  # full precision round trip

    summary = ev.summary()
    with summary_path.open(newline="") as fh:
        reader = csv.DictReader(fh)
        assert reader.fieldnames == ["metric", "mean", "std", "pooled"]
        table = list(reader)
    assert [r["metric"] for r in table] == list(METRICS)
    for r in table:
        m = r["metric"]
        assert float(r["mean"]) == summary[m]
        assert float(r["std"]) == summary[f"{m}_std"]
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
            want = (t == p).mean() if m == "accuracy" else np.mean(
                [s[m] for s in per_class.values()])
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
    assert len(summary) == 1 + 3 * len(METRICS) * (1 + 3)


def test_multiclass_csvs_have_per_class_columns_and_rows(tmp_path: Path) -> None:
    ev, _, _ = _multiclass_evaluation()
    ev.write_csv(tmp_path / "per_image.csv", tmp_path / "evaluation.csv")
    with (tmp_path / "per_image.csv").open(newline="") as fh:
        reader = csv.DictReader(fh)
        per_class = [f"{m}_{n}" for n in NAMES[1:] for m in METRICS]
        assert reader.fieldnames == ["file", *METRICS, "fg_truth", "fg_pred", *per_class]
        assert len(list(reader)) == 3
    with (tmp_path / "evaluation.csv").open(newline="") as fh:
        table = {r["metric"]: r for r in csv.DictReader(fh)}
    assert list(table) == [*METRICS, *per_class]
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
