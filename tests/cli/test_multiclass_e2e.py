"""A 3-class seg-train run end to end (real Hydra CLI, TensorFlow, MLflow SQLite store) on a
tiny generated dataset with colour-coded masks, checked through MlflowClient; then seg-eval
of its model."""

from __future__ import annotations

import csv
from pathlib import Path

import cv2
import mlflow
import numpy as np
import pytest
from mlflow.tracking import MlflowClient

from seg.inference.visualize import overlay_labels
from tests.support.cli import run_cli, tracking_uri
from tests.support.data import SPLITS, write_image

pytestmark = pytest.mark.slow

NAMES = ["background", "disc", "square"]
COLORS = [(0, 0, 0), (255, 0, 0), (0, 0, 255)]  # of the mask files: the palette of the run
COLOR_MAP = (
    "[" + ",".join(f"{{color:[{r},{g},{b}],label:{k}}}" for k, (r, g, b) in enumerate(COLORS)) + "]"
)


def _write_dataset(root: Path, n: int = 6, size: int = 32) -> Path:
    """Discs (class 1) and squares (class 2) on a dark background, images tinted per class."""
    rng = np.random.default_rng(0)
    for split in SPLITS:
        for i in range(n):
            labels = np.zeros((size, size), np.uint8)
            centre = tuple(int(v) for v in rng.integers(8, size - 8, 2))
            cv2.circle(labels, centre, int(rng.integers(4, 8)), 1, thickness=-1)
            x, y = (int(v) for v in rng.integers(1, size - 10, 2))
            labels[y : y + 9, x : x + 9] = 2
            tint = np.array([(40, 40, 40), (200, 70, 60), (60, 70, 200)], np.float32)[labels]
            image = np.clip(tint + rng.normal(0, 12, tint.shape), 0, 255).astype(np.uint8)
            write_image(root / split / "images" / f"s{i}.png", image)
            write_image(root / split / "masks" / f"s{i}.png", np.array(COLORS, np.uint8)[labels])
    return root


def _dataset_args(root: Path) -> list[str]:
    return [
        "dataset=folder",
        f"dataset.root={root}",
        "dataset.num_classes=3",
        f"dataset.class_names=[{','.join(NAMES)}]",
        f"dataset.mask.colors={COLOR_MAP}",
        "loss=cce_dice",
    ]


def _runs(client: MlflowClient) -> list[mlflow.entities.Run]:
    exp = client.get_experiment_by_name("folder")
    return client.search_runs([exp.experiment_id], order_by=["attributes.start_time ASC"])


def test_three_class_run_logs_per_class_metrics_reports_and_colour_masks(tmp_path: Path) -> None:
    root = _write_dataset(tmp_path / "data")
    run_cli("seg-train", "debug=fast", *_dataset_args(root), cwd=tmp_path)
    client = MlflowClient(tracking_uri(tmp_path))
    mlflow.set_tracking_uri(tracking_uri(tmp_path))
    (run,) = _runs(client)
    run_id, out = run.info.run_id, Path(run.data.tags["seg.output_dir"])
    assert run.info.status == "FINISHED"
    assert run.data.params["loss._target_"] == "seg.losses.CategoricalLoss"

    # per-class Keras metrics, one point per epoch, named after the classes
    for key in [
        "dice",
        "val_dice",
        "dice_disc",
        "val_dice_disc",
        "val_dice_square",
        "iou_square",
        "val_iou_disc",
        "loss",
        "val_loss",
    ]:
        history = client.get_metric_history(run_id, key)
        assert [m.step for m in history] == [0, 1], key
        assert all(np.isfinite(m.value) for m in history), key
    assert not any("background" in k for k in run.data.metrics)  # foreground classes only

    # evaluation.csv: the means over classes, then rows per class, equal to the test_* metrics
    with (out / "evaluation" / "evaluation.csv").open() as f:
        table = {r["metric"]: r for r in csv.DictReader(f)}
    metrics = run.data.metrics
    for name in NAMES[1:]:
        for m in ("dice", "iou", "precision", "recall", "specificity", "accuracy"):
            key = f"{m}_{name}"
            assert float(table[key]["mean"]) == pytest.approx(metrics[f"test_{key}"]), key
            assert float(table[key]["pooled"]) == pytest.approx(metrics[f"test_{key}_pooled"])
    assert np.isfinite(metrics["test_loss"]) and metrics["test_num_images"] == 6
    with (out / "evaluation" / "per_image.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 6
    assert np.mean([float(r["iou_square"]) for r in rows]) == pytest.approx(
        metrics["test_iou_square"]
    )

    # colour masks (in the masks' own colours), index masks and overlays among the artifacts
    found = {a.path for a in client.list_artifacts(run_id, "inference/colored_masks")}
    assert "inference/colored_masks/s0.png" in found
    assert "evaluation.csv" in {a.path for a in client.list_artifacts(run_id)}
    labels = cv2.imread(str(out / "inference" / "masks" / "s0.png"), cv2.IMREAD_UNCHANGED)
    assert labels.ndim == 2 and set(np.unique(labels)) <= {0, 1, 2}
    colored = cv2.cvtColor(
        cv2.imread(str(out / "inference" / "colored_masks" / "s0.png")), cv2.COLOR_BGR2RGB
    )
    np.testing.assert_array_equal(colored, np.array(COLORS, np.uint8)[labels])

    # per-epoch masks: image | truth | prediction in the class colours, every epoch
    images = [a.path for a in client.list_artifacts(run_id, "images") if a.path.endswith(".png")]
    first = sorted(p for p in images if Path(p).name.startswith("val_mask_s0+"))
    assert [int(p.split("+step+")[1].split("+")[0]) for p in first] == [0, 1]
    panel = cv2.cvtColor(
        cv2.imread(
            mlflow.artifacts.download_artifacts(
                run_id=run_id, artifact_path=first[0], dst_path=str(tmp_path / "dl")
            )
        ),
        cv2.COLOR_BGR2RGB,
    )
    image = cv2.cvtColor(cv2.imread(str(root / "valid" / "images" / "s0.png")), cv2.COLOR_BGR2RGB)
    truth = (
        np.array(COLORS)[None, None]
        == cv2.cvtColor(cv2.imread(str(root / "valid" / "masks" / "s0.png")), cv2.COLOR_BGR2RGB)[
            :, :, None
        ]
    )
    truth_labels = truth.all(-1).argmax(-1)
    assert panel.shape == (32, 3 * 32 + 2 * 2, 3)
    np.testing.assert_array_equal(
        panel[:, 34:66], overlay_labels(image, truth_labels, np.array(COLORS), 0.4)
    )

    # seg-eval of the logged model reproduces the per-class test metrics ...
    run_cli(
        "seg-eval",
        f"checkpoint={run_id}",
        *_dataset_args(root),
        "dataset.image_size=[32,32]",
        cwd=tmp_path,
    )
    evaluated = _runs(client)[-1]
    assert evaluated.data.tags["seg.task"] == "eval"
    for key in ("test_dice", "test_dice_disc", "test_iou_square_pooled", "test_loss"):
        assert evaluated.data.metrics[key] == pytest.approx(metrics[key], abs=1e-6), key
    # ... and refuses to score it against masks read as binary
    proc = run_cli(
        "seg-eval",
        f"checkpoint={run_id}",
        "dataset=folder",
        f"dataset.root={root}",
        cwd=tmp_path,
        check=False,
    )
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "dataset.num_classes=1 but the model predicts 3 classes" in proc.stderr
