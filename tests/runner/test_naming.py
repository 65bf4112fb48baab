"""What runs are called and where they go (seg.runner.naming, seg.tracking.runs): names that
tell runs apart in the MLflow UI's run list, unique within their experiment."""

from __future__ import annotations

from pathlib import Path

import mlflow
from mlflow.tracking import MlflowClient

from seg.runner.naming import data_experiment, data_label, train_name
from seg.tracking.runs import unique_run_name
from tests.support.compose import compose_run


def test_a_training_run_is_named_by_its_model_loss_and_design_overrides() -> None:
    overrides = [
        "model=attention_unet",
        "loss=bce_iou",
        "trainer.learning_rate=0.003",
        "paths.output_dir=/somewhere",  # where, not what: never in a name
        "dataset.root=/data",
        "mlflow.experiment_name=x",
        "hydra.run.dir=/tmp/x",
        "trainer.threads=1",
    ]
    cfg = compose_run("train", overrides)
    assert train_name(cfg, overrides) == "attention_unet bce_iou learning_rate=0.003"
    assert train_name(compose_run("train", []), []) == "unet bce_dice"


def test_an_evaluation_on_a_folder_is_named_and_filed_by_its_data(tmp_path: Path) -> None:
    folder = tmp_path / "cervix" / "test"
    (folder / "images").mkdir(parents=True)
    cfg = compose_run("eval", ["checkpoint=m.keras", f"data_dir={folder}"])
    assert data_label(cfg) == "test"
    assert data_experiment(cfg) == "cervix test"  # a part's name alone says too little
    cfg = compose_run("eval", ["checkpoint=m.keras", f"data_dir={tmp_path / 'cervix'}"])
    assert data_experiment(cfg) == "cervix"
    split = compose_run("eval", ["checkpoint=m.keras", "split=valid"])
    assert data_label(split) == "valid"
    assert data_experiment(split) == str(split.mlflow.experiment_name)


def test_a_name_taken_in_the_experiment_gets_the_next_number(sqlite_store: str) -> None:
    assert unique_run_name(sqlite_store, "cells", "unet bce_dice") == "unet bce_dice"  # no exp.
    client = MlflowClient(sqlite_store)
    experiment = client.create_experiment("cells")
    for name in ("unet bce_dice", "unet bce_dice (2)", "unet bce_dice lr=1", "it's"):
        client.create_run(experiment, run_name=name)
    assert unique_run_name(sqlite_store, "cells", "unet bce_dice") == "unet bce_dice (3)"
    assert unique_run_name(sqlite_store, "cells", "unet") == "unet"
    assert unique_run_name(sqlite_store, "cells", "it's") == "it's (2)"  # quoted in the query
    mlflow.set_tracking_uri(None)
