"""Multirun sweeps through the real seg-train CLI: a parent MLflow run per sweep with its jobs
as children, for the basic grid, joblib's parallel processes, Optuna and Ray; launcher configs.

Every job is tiny (debug=fast: 32 px, 16 pairs; one epoch, train stage only) and the SQLite
store is brand new in tmp_path.
"""

from __future__ import annotations

import csv
import importlib.util
from pathlib import Path

import pytest
import yaml
from mlflow.entities import Run
from mlflow.tracking import MlflowClient

from tests.support.cli import run_cli, tracking_uri

# One epoch of the train stage only, no images or plots: what the sweep machinery needs, in
# seconds per job.
TINY = [
    "debug=fast",
    "trainer.epochs=1",
    "stages=[train]",
    "callbacks.epoch_masks=null",
    "callbacks.curves=false",
    "mlflow.log_model=false",
]
# The demo data as debug=fast shapes it, for seg-eval (which has no debug group).
TINY_DATA = ["dataset.image_size=[32,32]", "dataset.limit=16"]


def _sweep(
    tmp_path: Path, *overrides: str, multirun: bool = True, sweep_dir: Path | None = None
) -> MlflowClient:
    """Run the sweep in tmp_path (its SQLite store, outputs and demo cache are there)."""
    where = [f"hydra.sweep.dir={sweep_dir}"] if sweep_dir else []
    run_cli("seg-train", *(["-m"] if multirun else []), *TINY, *overrides, *where, cwd=tmp_path)
    return MlflowClient(tracking_uri(tmp_path))


def _parent_and_children(client: MlflowClient) -> tuple[Run, list[Run]]:
    exp = client.get_experiment_by_name("demo_cells")
    (parent,) = client.search_runs([exp.experiment_id], "tags.`seg.kind` = 'sweep'")
    children = client.search_runs(
        [exp.experiment_id], f"tags.`mlflow.parentRunId` = '{parent.info.run_id}'"
    )
    all_runs = client.search_runs([exp.experiment_id])
    assert len(all_runs) == len(children) + 1  # no stray run outside the sweep
    return parent, sorted(children, key=lambda r: int(r.data.tags["seg.job_num"]))


def _table(sweep_dir: Path) -> list[dict[str, str]]:
    with (sweep_dir / "sweep_runs.csv").open() as f:
        return list(csv.DictReader(f))


def _check_summary(
    parent: Run,
    children: list[Run],
    sweep_dir: Path,
    client: MlflowClient,
) -> None:
    """The parent holds the table of its children and names the best one."""
    assert parent.info.status == "FINISHED"
    assert all(c.info.status == "FINISHED" for c in children)
    assert parent.data.metrics["jobs"] == len(children)
    assert parent.data.metrics["jobs_finished"] == len(children)
    objectives = {c.info.run_id: c.data.metrics["objective"] for c in children}
    best = max(objectives, key=objectives.get)
    assert parent.data.tags["seg.best_run_id"] == best
    assert parent.data.metrics["best_val_dice"] == pytest.approx(objectives[best])
    for child in children:  # the objective is the best validation dice over epochs
        assert child.data.metrics["objective"] == pytest.approx(
            float(child.data.tags["seg.best.val_dice"]), rel=1e-5
        )
    rows = _table(sweep_dir)
    assert [r["run_id"] for r in rows] == [c.info.run_id for c in children]
    assert all(r["status"] == "FINISHED" for r in rows)
    assert float(rows[0]["best.val_dice"]) == pytest.approx(
        float(children[0].data.tags["seg.best.val_dice"])
    )
    artifacts = {a.path for a in client.list_artifacts(parent.info.run_id)}
    assert "sweep_runs.csv" in artifacts
    assert ("multirun.yaml" in artifacts) == (sweep_dir / "multirun.yaml").is_file()
    # The comparison a researcher reads without opening the children, and the swept keys
    # marked on the parent and on each child (what to pick in the UI's compare view).
    drawn = {a.path for a in client.list_artifacts(parent.info.run_id, "comparison")}
    assert {
        "comparison/parallel_coordinates.png",
        "comparison/objective_vs_params.png",
        "comparison/validation_curves.png",
        "comparison/ranked.html",
    } <= drawn
    swept = parent.data.tags["seg.swept"]
    assert swept and all(c.data.tags["seg.swept"] == swept for c in children)


@pytest.mark.slow
def test_grid_sweep_has_one_parent_with_four_children(tmp_path: Path) -> None:
    client = _sweep(tmp_path, "model.base_filters=4,8", "loss=bce_dice,bce_iou")
    parent, children = _parent_and_children(client)
    sweep_dir = Path(parent.data.tags["seg.sweep_dir"])  # the default: unique per sweep
    assert sweep_dir.parent == tmp_path / "outputs" / "train" / "multiruns"
    assert len(children) == 4
    assert sorted(
        (c.data.params["model.base_filters"], c.data.params["loss.name"]) for c in children
    ) == [("4", "bce_dice"), ("4", "bce_iou"), ("8", "bce_dice"), ("8", "bce_iou")]
    assert [c.info.run_name for c in children] == [
        "#0 model.base_filters=4 loss=bce_dice",
        "#1 model.base_filters=4 loss=bce_iou",
        "#2 model.base_filters=8 loss=bce_dice",
        "#3 model.base_filters=8 loss=bce_iou",
    ]
    assert parent.data.params["sweep.model.base_filters"] == "4,8"
    assert parent.data.params["sweep.planned_jobs"] == "4"
    assert parent.data.tags["seg.swept"] == "model.base_filters,loss"
    dirs = {c.data.tags["seg.output_dir"] for c in children}
    assert dirs == {str(sweep_dir / str(n)) for n in range(4)}
    _check_summary(parent, children, sweep_dir, client)
    rows = _table(sweep_dir)
    # Params that differ between jobs come first, right after the metrics.
    params = [c for c in rows[0] if c.startswith("params.")]
    varying = [c for c in params if len({r[c] for r in rows}) > 1]
    assert {"params.model.base_filters", "params.loss.name"} <= set(varying)
    assert params[: len(varying)] == varying


@pytest.mark.slow
def test_joblib_parallel_jobs_into_a_fresh_sqlite_store(tmp_path: Path) -> None:
    assert not (tmp_path / "mlflow.db").exists()
    sweep_dir = tmp_path / "sweep"
    client = _sweep(
        tmp_path,
        "hydra/launcher=joblib",
        "hydra.launcher.n_jobs=4",
        "model.base_filters=4,8",
        "loss=bce_dice,bce_iou",
        sweep_dir=sweep_dir,
    )
    parent, children = _parent_and_children(client)
    assert len(children) == 4
    assert parent.data.params["sweep.launcher"] == "JoblibLauncher"
    assert parent.data.params["sweep.parallel_jobs"] == "4"
    _check_summary(parent, children, sweep_dir, client)
    # Four jobs on this machine's cores: each job's TensorFlow got its share of the threads.
    logs = "".join(p.read_text() for p in sweep_dir.glob("*/*.log"))
    assert logs.count("TensorFlow threads:") == 4
    assert "database is locked" not in logs


@pytest.mark.slow
def test_optuna_search_logs_trials_as_children_and_the_result_on_the_parent(
    tmp_path: Path,
) -> None:
    sweep_dir = tmp_path / "sweep"
    # The configured search space, with smaller models (overridden as a user would).
    client = _sweep(
        tmp_path,
        "hparams_search=optuna",
        "hydra.sweeper.n_trials=3",
        "model.base_filters=choice(4,8)",
        "model.num_layers=choice(2,3)",
        multirun=False,
        sweep_dir=sweep_dir,
    )
    parent, children = _parent_and_children(client)
    assert len(children) == 3
    assert parent.data.params["sweep.sweeper"] == "OptunaSweeper"
    assert parent.data.params["search.model.base_filters"] == "choice(4,8)"
    assert parent.data.params["search.loss"] == "choice(bce_dice, bce_iou, dice)"
    assert {c.data.params["model.base_filters"] for c in children} <= {"4", "8"}
    _check_summary(parent, children, sweep_dir, client)
    results = yaml.safe_load((sweep_dir / "optimization_results.yaml").read_text())
    assert results["best_value"] == pytest.approx(parent.data.metrics["best_val_dice"])
    best = client.get_run(parent.data.tags["seg.best_run_id"])
    for key, value in results["best_params"].items():  # the trial Optuna calls best
        param = {"loss": "loss.name", "augmentation": "augmentation.name"}.get(key, key)
        assert best.data.params[param] == str(value)
    assert "optimization_results.yaml" in {
        a.path for a in client.list_artifacts(parent.info.run_id)
    }


@pytest.mark.slow
@pytest.mark.skipif(
    importlib.util.find_spec("hydra_plugins.hydra_ray_launcher") is None,
    reason="hydra-ray-launcher not installed (pip install -e '.[ray]')",
)
@pytest.mark.long
def test_ray_launcher_on_a_local_ray_instance(tmp_path: Path) -> None:
    sweep_dir = tmp_path / "sweep"
    client = _sweep(
        tmp_path,
        "hydra/launcher=ray",
        "+hydra.launcher.ray.init.num_cpus=2",
        "+hydra.launcher.ray.init.include_dashboard=false",
        "model.base_filters=4,8",
        sweep_dir=sweep_dir,
    )
    parent, children = _parent_and_children(client)
    assert len(children) == 2
    assert parent.data.params["sweep.launcher"] == "RayLauncher"
    _check_summary(parent, children, sweep_dir, client)


@pytest.mark.parametrize(
    ("launcher", "target"),
    [
        ("slurm", "hydra_plugins.hydra_submitit_launcher.submitit_launcher.SlurmLauncher"),
        ("ray", "hydra_plugins.hydra_ray_launcher.ray_launcher.RayLauncher"),
        ("joblib", "hydra_plugins.hydra_joblib_launcher.joblib_launcher.JoblibLauncher"),
    ],
)
def test_launcher_configs_compose(tmp_path: Path, launcher: str, target: str) -> None:
    proc = run_cli(
        "seg-train", f"hydra/launcher={launcher}", "--cfg", "hydra", cwd=tmp_path, timeout=120
    )
    launcher_cfg = yaml.safe_load(proc.stdout)["hydra"]["launcher"]
    assert launcher_cfg["_target_"] == target
    callbacks = yaml.safe_load(proc.stdout)["hydra"]["callbacks"]
    assert callbacks["mlflow_sweep"]["_target_"] == "seg.runner.sweep.MlflowSweep"


@pytest.mark.slow
def test_a_sweep_crowns_its_best_jobs_registered_model_champion(tmp_path: Path) -> None:
    """mlflow.register_model: every job registers its model; the sweep gives the best job's
    version the alias champion, which seg-eval then takes as its checkpoint."""
    client = _sweep(
        tmp_path, "model.base_filters=4,8", "mlflow.log_model=true", "mlflow.register_model=cells"
    )
    parent, children = _parent_and_children(client)
    versions = client.search_model_versions("name='cells'")
    assert sorted(v.run_id for v in versions) == sorted(c.info.run_id for c in children)
    champion = client.get_model_version_by_alias("cells", "champion")
    assert champion.run_id == parent.data.tags["seg.best_run_id"]
    assert (
        parent.data.tags["seg.champion"] == f"models:/cells@champion (version {champion.version})"
    )
    run_cli("seg-eval", "checkpoint=models:/cells@champion", *TINY_DATA, cwd=tmp_path)
    (evaluation,) = client.search_runs([parent.info.experiment_id], "tags.`seg.task` = 'eval'")
    assert evaluation.data.tags["mlflow.parentRunId"] == champion.run_id  # under its training
