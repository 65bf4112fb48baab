"""TensorFlow's share of the cores per parallel job, global batch size, and training under
MirroredStrategy on two logical CPU devices (a real subprocess run)."""

from __future__ import annotations

from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient
from omegaconf import OmegaConf

from seg.machine import threads_per_job
from seg.runner.sweep import job_run_name, job_threads
from seg.training.distribute import global_batch_size
from tests.support.cli import run_cli, tracking_uri


@pytest.mark.parametrize(
    ("jobs", "cores", "threads"),
    [
        (1, 2, None),
        (2, 2, 1),
        (4, 2, 1),
        (2, 8, 4),
        (3, 8, 2),
    ],
)
def test_parallel_jobs_share_the_cores(jobs: int, cores: int, threads: int | None) -> None:
    assert threads_per_job(jobs, cores) == threads


def test_job_threads_follow_the_launcher(monkeypatch) -> None:
    monkeypatch.setattr("seg.machine.cpu_count", lambda: 8)
    joblib = OmegaConf.create({"_target_": "JoblibLauncher", "n_jobs": 4})
    assert job_threads(joblib) == 2
    assert job_threads(OmegaConf.create({"n_jobs": -1})) == 1  # joblib: one job per core
    ray = OmegaConf.create({"ray": {"init": {}, "remote": {"num_cpus": 3}}})
    assert job_threads(ray) == 3
    assert job_threads(OmegaConf.create({"_target_": "BasicLauncher"})) is None


def test_batch_size_is_global_unless_per_replica() -> None:
    assert global_batch_size(8, per_replica=False, replicas=2) == 8  # 4 per replica
    assert global_batch_size(8, per_replica=True, replicas=2) == 16
    assert global_batch_size(8, per_replica=True, replicas=1) == 8


def test_sweep_jobs_are_named_by_what_the_sweep_varies(monkeypatch) -> None:
    monkeypatch.setenv("SEG_SWEEP_KEYS", "model.base_filters,loss")
    overrides = ["debug=fast", "model.base_filters=8", "loss=bce_iou"]
    assert job_run_name(3, overrides) == "#3 model.base_filters=8 loss=bce_iou"
    monkeypatch.delenv("SEG_SWEEP_KEYS")
    assert job_run_name(0, overrides) == "#0 debug=fast model.base_filters=8 loss=bce_iou"


@pytest.mark.slow
def test_mirrored_strategy_trains_on_two_logical_cpus(tmp_path: Path) -> None:
    run_cli(
        "seg-train",
        "debug=fast",
        "trainer.strategy=mirrored",
        "trainer.logical_cpus=2",
        "trainer.batch_size=2",
        "trainer.batch_size_per_replica=true",
        "trainer.epochs=2",
        "trainer.steps_per_epoch=2",
        "stages=[train,evaluate]",
        "callbacks.epoch_masks=null",
        "callbacks.curves=false",
        "mlflow.log_model=false",
        cwd=tmp_path,
    )
    client = MlflowClient(tracking_uri(tmp_path))
    (run,) = client.search_runs([client.get_experiment_by_name("demo_cells").experiment_id])
    assert run.info.status == "FINISHED"
    assert run.data.params["trainer.strategy"] == "mirrored"
    assert run.data.tags["seg.replicas"] == "2"  # two replicas really trained in sync
    assert run.data.tags["seg.global_batch_size"] == "4"  # 2 per replica x 2 replicas
    assert [m.step for m in client.get_metric_history(run.info.run_id, "val_dice")] == [0, 1]
    assert 0.0 <= run.data.metrics["test_dice"] <= 1.0  # the mirrored model evaluates
