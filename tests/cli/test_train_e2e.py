"""seg-train / seg-eval / seg-infer end to end: real Hydra CLI, real TensorFlow, real MLflow
SQLite store in a temporary folder; the MLflow contract checked through MlflowClient."""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path

import cv2
import keras
import mlflow
import numpy as np
import onnxruntime
import pytest
import tensorflow as tf
from mlflow.tracking import MlflowClient

from seg.runner.export import float32_copy
from tests.support.cli import run_cli, tracking_uri
from tests.support.data import circle_mask, image_from_mask, write_image

# One worker runs the whole module under pytest-xdist: its module-scoped fixture is built once.
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("test_train_e2e")]

FAST = ["debug=fast"]
# The demo dataset as debug=fast configures it, for seg-eval (which has no debug group).
FAST_DEMO = ["dataset.image_size=[32,32]", "dataset.limit=16"]


@dataclass
class TrainedRun:
    cwd: Path
    uri: str
    client: MlflowClient
    run: mlflow.entities.Run

    @property
    def run_id(self) -> str:
        return self.run.info.run_id

    @property
    def output_dir(self) -> Path:
        return Path(self.run.data.tags["seg.output_dir"])


def _runs(client: MlflowClient, experiment: str = "demo_cells") -> list[mlflow.entities.Run]:
    exp = client.get_experiment_by_name(experiment)
    return client.search_runs([exp.experiment_id], order_by=["attributes.start_time ASC"])


# A slide larger than the 32-pixel model input, masked by sliding windows after every epoch.
LARGE_IMAGE = "callbacks.epoch_masks.large_image=large_slide.png"


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> TrainedRun:
    cwd = tmp_path_factory.mktemp("train")
    rng = np.random.default_rng(0)
    write_image(cwd / "large_slide.png", image_from_mask(circle_mask(96, 80, (40, 50), 12), rng))
    run_cli("seg-train", *FAST, LARGE_IMAGE, cwd=cwd)
    client = MlflowClient(tracking_uri(cwd))
    mlflow.set_tracking_uri(tracking_uri(cwd))
    (run,) = _runs(client)
    return TrainedRun(cwd, tracking_uri(cwd), client, run)


def _artifacts(client: MlflowClient, run_id: str, path: str | None = None) -> set[str]:
    found = set()
    for info in client.list_artifacts(run_id, path):
        found.add(info.path)
        if info.is_dir:
            found |= _artifacts(client, run_id, info.path)
    return found


def test_run_finishes_with_params_and_tags(trained: TrainedRun) -> None:
    run = trained.run
    assert run.info.status == "FINISHED"
    params = run.data.params
    assert params["model.base_filters"] == "4"  # from debug=fast
    assert params["loss.name"] == "bce_dice"
    assert params["trainer.epochs"] == "2"
    assert float(params["trainer.learning_rate"]) == pytest.approx(1e-3)
    tags = run.data.tags
    assert tags["seg.overrides"] == f"debug=fast {LARGE_IMAGE}"
    # The name says what the run is: model, loss and the overrides of its design (not where
    # its files are); where things are on this machine are tags, so that comparing runs shows
    # what differs in their design.
    assert run.info.run_name == "unet bce_dice debug=fast"
    experiment = trained.client.get_experiment(run.info.experiment_id)
    assert experiment.tags["mlflow.experimentKind"] == "custom_model_development"  # not GenAI
    assert tags["seg.best.val_dice"] and "best_val_dice" not in run.data.metrics
    assert not any(k.startswith("paths.") for k in params)
    assert "callbacks.epoch_masks.large_image" not in params
    assert tags["seg.config.paths.output_dir"] == tags["seg.output_dir"]
    assert tags["seg.config.callbacks.epoch_masks.large_image"] == "large_slide.png"
    assert trained.output_dir.is_dir()
    assert trained.output_dir.is_relative_to(trained.cwd / "outputs" / "train" / "runs")
    assert tags["seg.stages"] == "train,evaluate,infer"


def test_the_run_says_where_its_time_went(trained: TrainedRun) -> None:
    """time_<phase> metrics in seconds: the phases add up to no more than the whole run, and
    the overhead is the run minus the work (fit, evaluate, infer)."""
    times = {k: v for k, v in trained.run.data.metrics.items() if k.startswith("time_")}
    phases = ("startup", "preflight", "open_run", "train", "fit", "log_model", "evaluate", "infer")
    assert {f"time_{p}" for p in phases} | {"time_total", "time_overhead"} <= set(times)
    assert all(v >= 0 for v in times.values())
    assert times["time_fit"] < times["time_train"] < times["time_total"]
    work = times["time_fit"] + times["time_evaluate"] + times["time_infer"]
    assert times["time_overhead"] == pytest.approx(times["time_total"] - work, abs=1e-6)
    outside_stages = ("startup", "preflight", "open_run")
    stages = ("train", "evaluate", "infer")
    assert sum(times[f"time_{p}"] for p in (*outside_stages, *stages)) <= times["time_total"]


def test_one_metric_point_per_epoch_under_keras_names(trained: TrainedRun) -> None:
    for key in [
        "loss",
        "val_loss",
        "dice",
        "val_dice",
        "iou",
        "val_iou",
        "sensitivity",
        "val_specificity",
        "val_precision",
        "binary_accuracy",
        "lr",
        "epoch_time",
    ]:
        history = trained.client.get_metric_history(trained.run_id, key)
        assert [m.step for m in history] == [0, 1], key
        assert all(np.isfinite(m.value) for m in history), key


def test_final_test_metrics_match_the_csvs(trained: TrainedRun) -> None:
    metrics = trained.run.data.metrics
    for key in [
        "test_loss",
        "test_dice",
        "test_iou",
        "test_precision",
        "test_recall",
        "test_specificity",
        "test_dice_pooled",
        "test_iou_std",
    ]:
        assert key in metrics and np.isfinite(metrics[key]), key
    out = trained.output_dir / "evaluation"
    with (out / "per_image.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 16  # debug=fast: dataset.limit=16
    assert np.mean([float(r["dice"]) for r in rows]) == pytest.approx(metrics["test_dice"])
    with (out / "evaluation.csv").open() as f:
        summary = {r["metric"]: r for r in csv.DictReader(f)}
    assert float(summary["dice"]["pooled"]) == pytest.approx(metrics["test_dice_pooled"])


def test_evaluation_report_columns_distances_and_threshold_sweep(trained: TrainedRun) -> None:
    metrics = trained.run.data.metrics
    out = trained.output_dir / "evaluation"
    with (out / "per_image.csv").open() as f:
        reader = csv.DictReader(f)
        rows = list(reader)
    assert reader.fieldnames == [
        "file",
        "dice",
        "iou",
        "precision",
        "recall",
        "specificity",
        "accuracy",
        "soft_dice",
        "soft_iou",
        "hd95",
        "asd",
        "fg_truth",
        "fg_pred",
    ]
    hd95 = [float(r["hd95"]) for r in rows]
    assert all(np.isfinite(hd95)) and min(hd95) >= 0
    assert np.mean(hd95) == pytest.approx(metrics["test_hd95"])
    for key in [
        "test_asd",
        "test_asd_median",
        "test_soft_dice_pooled",
        "test_recall_std",
        "test_best_threshold",
        "test_best_threshold_dice",
    ]:
        assert key in metrics and np.isfinite(metrics[key]), key
    assert "test_hd95_pooled" not in metrics  # distances have no pooled value
    with (out / "threshold_sweep.csv").open() as f:
        sweep = list(csv.DictReader(f))
    best = max(sweep, key=lambda r: float(r["mean_dice"]))
    assert float(best["threshold"]) == pytest.approx(metrics["test_best_threshold"])
    assert metrics["test_best_threshold_dice"] >= metrics["test_dice"] - 1e-9
    gallery = cv2.imread(str(out / "gallery.png"))
    assert gallery is not None and gallery.shape[0] > gallery.shape[1]  # 8 rows of 4 panels


def test_per_epoch_masks_are_logged_as_images(trained: TrainedRun) -> None:
    images = [p for p in _artifacts(trained.client, trained.run_id, "images") if p.endswith(".png")]
    for key in ["val_masks", "val_mask_demo_0000", "val_mask_demo_0001", "val_large_large_slide"]:
        steps = sorted(
            int(p.split("+step+")[1].split("+")[0])
            for p in images
            if Path(p).name.startswith(f"{key}+")
        )
        assert steps == [0, 1], key
    # The grid is large enough to judge a mask where the UI shows it, its columns named.
    grid = next(p for p in images if Path(p).name.startswith("val_masks+step+0+"))
    local = trained.client.download_artifacts(trained.run_id, grid)
    height, width = cv2.imread(local).shape[:2]
    assert min(height, width) >= 512 and width >= 768


def test_artifacts(trained: TrainedRun) -> None:
    found = _artifacts(trained.client, trained.run_id)
    for path in [
        "config.yaml",
        "overrides.yaml",
        "curves/loss.png",
        "curves/dice.png",
        "train_history.csv",
        "evaluation.csv",
        "per_image.csv",
        "evaluation/samples.png",
        "evaluation/dice_distribution.png",
        "evaluation/gallery.png",
        "evaluation/threshold_sweep.png",
        "evaluation/threshold_sweep.csv",
        "inference/masks/demo_0000.png",
        "inference/overlays/demo_0000.png",
        "inference/contours/demo_0000.png",
        "inference/colored_masks/demo_0000.png",
    ]:
        assert path in found, path
    config = mlflow.artifacts.load_text(f"runs:/{trained.run_id}/config.yaml")
    assert "base_filters: 4" in config and "${" not in config  # resolved


def test_logged_model_predicts_like_the_saved_checkpoint(trained: TrainedRun) -> None:
    import keras

    logged = mlflow.keras.load_model(f"runs:/{trained.run_id}/model")
    saved = keras.saving.load_model(
        trained.output_dir / "checkpoints" / "best.keras", compile=False
    )
    x = np.random.default_rng(0).random((2, 32, 32, 3), dtype=np.float32)
    np.testing.assert_allclose(
        logged.predict(x, verbose=0), saved.predict(x, verbose=0), rtol=1e-5, atol=1e-6
    )
    signature = mlflow.models.get_model_info(f"runs:/{trained.run_id}/model").signature
    assert signature is not None
    assert list(signature.inputs.to_dict()[0]["tensor-spec"]["shape"]) == [-1, 32, 32, 3]


def test_inference_outputs_at_original_size(trained: TrainedRun) -> None:
    masks = sorted((trained.output_dir / "inference" / "masks").glob("*.png"))
    assert len(masks) == 16
    mask = cv2.imread(str(masks[0]), cv2.IMREAD_UNCHANGED)
    assert mask.shape == (32, 32) and set(np.unique(mask)) <= {0, 255}


@pytest.mark.parametrize("reference", ["run_id", "runs_uri", "models_uri", "keras_file"])
def test_seg_eval_reproduces_the_test_metrics(trained: TrainedRun, reference: str) -> None:
    checkpoint = {
        "run_id": trained.run_id,
        "runs_uri": f"runs:/{trained.run_id}/model",
        "models_uri": f"models:/{trained.run.outputs.model_outputs[0].model_id}",
        "keras_file": str(trained.output_dir / "checkpoints" / "best.keras"),
    }[reference]
    before = {r.info.run_id for r in _runs(trained.client)}
    run_cli("seg-eval", f"checkpoint={checkpoint}", "split=test", *FAST_DEMO, cwd=trained.cwd)
    (new,) = [r for r in _runs(trained.client) if r.info.run_id not in before]
    assert new.info.status == "FINISHED"
    assert new.data.tags["seg.task"] == "eval"
    if reference == "keras_file":  # a bare file: no training run to hang under
        assert "mlflow.parentRunId" not in new.data.tags
        assert new.info.run_name.startswith("eval best.keras on test")
    else:  # nested under the training run it evaluates, named for it
        assert new.data.tags["mlflow.parentRunId"] == trained.run_id
        assert new.info.run_name.startswith(f"eval {trained.run.info.run_name} on test")
    assert new.data.metrics["test_dice"] == pytest.approx(
        trained.run.data.metrics["test_dice"], abs=1e-6
    )
    artifacts = _artifacts(trained.client, new.info.run_id)
    assert {
        "per_image.csv",
        "evaluation.csv",
        "evaluation/gallery.png",
        "evaluation/dice_distribution.png",
        "evaluation/threshold_sweep.png",
    } <= artifacts
    for key in ("test_hd95", "test_best_threshold"):
        assert new.data.metrics[key] == pytest.approx(trained.run.data.metrics[key], abs=1e-6)


def test_seg_infer_writes_masks_for_a_folder(trained: TrainedRun, tmp_path: Path) -> None:
    images = trained.cwd / "cache"
    folder = next(images.rglob("test/images"))
    out = tmp_path / "predicted"
    run_cli(
        "seg-infer",
        f"checkpoint={trained.run_id}",
        f"input={folder}",
        f"output={out}",
        cwd=trained.cwd,
    )
    written = sorted(p.name for p in (out / "masks").glob("*.png"))
    assert written == sorted(p.name for p in folder.glob("*.png"))
    assert len(list((out / "overlays").glob("*.png"))) == len(written)
    expected = trained.output_dir / "inference" / "masks" / written[0]
    np.testing.assert_array_equal(
        cv2.imread(str(out / "masks" / written[0])), cv2.imread(str(expected))
    )


def test_seg_eval_on_a_folder_and_seg_infer_on_one_file(
    trained: TrainedRun, tmp_path: Path
) -> None:
    folder = next((trained.cwd / "cache").rglob("test/images")).parent
    before = {r.info.run_id for r in _runs(trained.client)}
    run_cli(
        "seg-eval",
        f"checkpoint={trained.run_id}",
        f"data_dir={folder}",
        *FAST_DEMO,
        cwd=trained.cwd,
    )
    (new,) = [r for r in _runs(trained.client) if r.info.run_id not in before]
    assert new.data.metrics["eval_num_images"] == len(list((folder / "images").iterdir()))
    assert new.data.tags["mlflow.parentRunId"] == trained.run_id
    assert new.info.run_name.startswith(f"eval {trained.run.info.run_name} on {folder.name}")
    # A bare model file evaluated on a folder: an experiment named for the data it reads.
    model_file = trained.output_dir / "checkpoints" / "best.keras"
    run_cli(
        "seg-eval", f"checkpoint={model_file}", f"data_dir={folder}", *FAST_DEMO, cwd=trained.cwd
    )
    experiment = trained.client.get_experiment_by_name(f"{folder.parent.name} {folder.name}")
    (bare,) = trained.client.search_runs([experiment.experiment_id])
    assert bare.info.run_name == f"eval best.keras on {folder.name}"
    image = sorted((folder / "images").iterdir())[0]
    run_cli(
        "seg-infer",
        f"checkpoint={trained.run_id}",
        f"input={image}",
        f"output={tmp_path}",
        cwd=trained.cwd,
    )
    assert sorted(p.name for p in (tmp_path / "masks").iterdir()) == [f"{image.stem}.png"]


def test_seg_infer_tiles_a_large_image_with_tta_and_post_processing(
    trained: TrainedRun, tmp_path: Path
) -> None:
    """A 96x72 image for a 32x32 model: predicted by sliding windows at its own size."""
    source = sorted(next((trained.cwd / "cache").rglob("test/images")).iterdir())[0]
    large = cv2.resize(cv2.imread(str(source)), (72, 96), interpolation=cv2.INTER_LINEAR)
    image = tmp_path / "in" / "big slide (1).png"
    image.parent.mkdir()
    cv2.imwrite(str(image), large)
    out = tmp_path / "out"
    before = {r.info.run_id for r in _runs(trained.client)}
    run_cli(
        "seg-infer",
        f"checkpoint={trained.run_id}",
        f"input='{image}'",
        f"output={out}",
        "inference.tta=[hflip,vflip,rot90]",
        "inference.postprocess.fill_holes=true",
        "inference.postprocess.min_size=4",
        "inference.save_probabilities=true",
        *FAST_DEMO,
        cwd=trained.cwd,
    )
    (new,) = [r for r in _runs(trained.client) if r.info.run_id not in before]
    assert new.data.metrics["inferred_images_tiled"] == 1
    mask = cv2.imread(str(out / "masks" / "big slide (1).png"), cv2.IMREAD_UNCHANGED)
    assert mask.shape == (96, 72) and set(np.unique(mask)) <= {0, 255}
    probs = cv2.imread(str(out / "probabilities" / "big slide (1).png"), cv2.IMREAD_UNCHANGED)
    assert probs.dtype == np.uint16 and probs.shape == (96, 72)
    for folder in ("overlays", "contours", "colored_masks"):
        assert cv2.imread(str(out / folder / "big slide (1).png")).shape == (96, 72, 3)
    assert new.data.params["inference.tta"] == "['hflip', 'vflip', 'rot90']"


def test_strong_augmentation_trains_and_logs_its_preview(tmp_path: Path) -> None:
    run_cli(
        "seg-train",
        *FAST,
        "augmentation=strong",
        "augmentation.preview=3",
        "trainer.epochs=1",
        "stages=[train]",
        "callbacks.epoch_masks=null",
        "mlflow.log_model=false",
        cwd=tmp_path,
    )
    client = MlflowClient(tracking_uri(tmp_path))
    (run,) = _runs(client)
    assert run.info.status == "FINISHED"
    assert run.data.params["augmentation.elastic.p"] == "0.25"
    assert "augmentation_preview.png" in _artifacts(client, run.info.run_id)
    preview = cv2.imread(str(Path(run.data.tags["seg.output_dir"]) / "augmentation_preview.png"))
    assert 3 * 32 <= preview.shape[0] < 4 * 32  # debug=fast: 32 px, a row per augmented pair


@pytest.mark.parametrize("fmt", ["saved_model", "onnx", "tflite"])
def test_seg_export_runs_in_its_own_runtime_like_keras(
    trained: TrainedRun, tmp_path: Path, fmt: str
) -> None:
    """Each format, loaded by its own runtime (not by seg), predicts what the training run's
    model predicts within 1e-4; the preprocessing and the contract lie beside it."""
    out = tmp_path / fmt
    run_cli("seg-export", f"checkpoint={trained.run_id}", f"format={fmt}", f"output={out}",
            cwd=trained.cwd)  # fmt: skip
    assert {"preprocessing.json", "README.md", "export.json"} <= {p.name for p in out.iterdir()}
    images = np.random.default_rng(3).random((3, 32, 32, 3), dtype=np.float32)
    model = keras.saving.load_model(trained.output_dir / "checkpoints" / "best.keras")
    # trained in bfloat16 where the CPU has it: the export computes in float32, so does this
    expected = np.asarray(float32_copy(model).predict(images, verbose=0), np.float32)
    if fmt == "saved_model":
        loaded = tf.saved_model.load(str(out / "saved_model"))
        got = np.asarray(loaded.serve(images))
    elif fmt == "onnx":
        session = onnxruntime.InferenceSession(str(out / "model.onnx"))
        got = session.run(None, {session.get_inputs()[0].name: images})[0]
    else:
        interpreter = tf.lite.Interpreter(model_path=str(out / "model.tflite"))
        details = interpreter.get_input_details()[0]
        interpreter.resize_tensor_input(details["index"], images.shape)
        interpreter.allocate_tensors()
        interpreter.set_tensor(details["index"], images)
        interpreter.invoke()
        got = interpreter.get_tensor(interpreter.get_output_details()[0]["index"])
    assert float(np.abs(got - expected).max()) < 1e-4
    said = json.loads((out / "export.json").read_text())
    assert said["format"] == fmt and said["max_abs_diff"] < 1e-4
