"""Named experiments (conf/experiment): each composes with the published knobs on the real
config keys, validates, and pap_smear_herlev_128 trains through the real CLI on real data."""

from __future__ import annotations

from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from seg.cli import CONF_DIR
from seg.config.validation import validate
from tests.support.cli import run_cli, tracking_uri
from tests.support.compose import compose_run
from tests.support.data import SHARED_DATA

# experiment -> the values it must set (dotted keys of the composed config)
EXPECTED = {
    "pap_smear_herlev_128": {
        "dataset.name": "pap_smear_herlev_128",
        "dataset.image_size": [128, 128],
        "model.base_filters": 16,
        "model.num_layers": 7,
        "model.dropout_rate": 0.07,
        "loss.name": "bce_iou",
        "trainer.learning_rate": 1e-4,
        "trainer.batch_size": 4,
        "trainer.clipvalue": 0.5,
        "callbacks.early_stopping.patience": 10,
        "augmentation.name": "none",
    },
    "sipakmed_metaplastic_unet": {
        "dataset.image_size": [256, 256],
        "model.base_filters": 16,
        "model.num_layers": 7,
        "loss.name": "bce_iou",
        "trainer.learning_rate": 1e-3,
        "trainer.batch_size": 4,
    },
    "clustered_cervical_cell_unet": {
        "dataset.image_size": [512, 512],
        "model.base_kernels": [9, 9],
        "model.dilation": [3, 3],
        "model.num_layers": 8,
        "loss.name": "bce_dice",
        "trainer.learning_rate": 7e-5,
        "callbacks.reduce_lr.factor": 0.3,
        "callbacks.reduce_lr.patience": 4,
    },
    "pap_smear_unet": {
        "dataset.image_size": [512, 512],
        "augmentation.name": "strong",
        "augmentation.elastic.p": 0.25,
        "augmentation.hue.p": 0.0,
    },
    "breast_cancer_unet": {"dataset.image_size": [512, 512], "model.base_kernels": [5, 5]},
    "skin_cancer_unet": {
        "dataset.image_size": [512, 512],
        "augmentation.name": "strong",
        "augmentation.hue.p": 0.3,
    },
}


def test_every_experiment_file_is_covered() -> None:
    assert sorted(p.stem for p in (Path(CONF_DIR) / "experiment").glob("*.yaml")) == sorted(
        EXPECTED
    )


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_experiment_composes_with_its_published_setup(name: str) -> None:
    cfg = compose_run("train", [f"experiment={name}"])
    validate(cfg)
    for key, value in EXPECTED[name].items():
        actual = cfg
        for part in key.split("."):
            actual = actual[part]
        actual = list(actual) if key.endswith(("image_size", "kernels", "dilation")) else actual
        assert actual == pytest.approx(value) if isinstance(value, float) else actual == value, key
    levels = cfg.model.num_layers - 1  # every pooling halves: sides must divide by 2**levels
    assert all(side % 2**levels == 0 for side in cfg.dataset.image_size)
    assert Path(cfg.dataset.root).is_absolute()


def test_herlev_root_is_beside_the_project_and_overridable() -> None:
    cfg = compose_run("train", ["experiment=pap_smear_herlev_128"])
    assert cfg.dataset.root == f"{cfg.paths.root_dir}/../shared/data/pap_smear_herlev_128"
    cfg = compose_run("train", ["experiment=pap_smear_herlev_128", "dataset.root=/data/by_cell"])
    assert cfg.dataset.root == "/data/by_cell"
    cfg = compose_run("train", ["experiment=pap_smear_herlev_128", "debug=fast"])
    assert list(cfg.dataset.image_size) == [32, 32]  # debug profiles still win


@pytest.mark.slow
def test_seg_train_runs_the_herlev_experiment_on_real_data(tmp_path: Path) -> None:
    root = SHARED_DATA / "pap_smear_herlev_128"
    if not root.is_dir():
        pytest.skip(f"real data not available: {root}")
    run_dir = tmp_path / "run"
    run_cli(
        "seg-train",
        "experiment=pap_smear_herlev_128",
        f"dataset.root={root}",
        "dataset.limit=4",
        "trainer.epochs=1",
        "mlflow.log_model=false",
        "callbacks.epoch_masks.num_images=1",
        "inference.log_samples=1",
        f"hydra.run.dir={run_dir}",
        cwd=tmp_path,
    )
    client = MlflowClient(tracking_uri(tmp_path))
    (run,) = client.search_runs(
        [client.get_experiment_by_name("pap_smear_herlev_128").experiment_id]
    )
    assert run.info.status == "FINISHED"
    params = run.data.params
    assert params["model.num_layers"] == "7" and params["loss.name"] == "bce_iou"
    assert params["dataset.image_size"] == "[128, 128]"
    assert "test_iou" in run.data.metrics and "test_dice" in run.data.metrics
    assert (run_dir / "evaluation" / "evaluation.csv").is_file()
