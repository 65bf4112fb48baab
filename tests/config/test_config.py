"""Configs compose for every group option; typos and bad values fail early, naming the key."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from seg.cli import CONF_DIR
from seg.config.loss import CategoricalLossConfig, loss_options
from seg.config.validation import validate
from seg.errors import ConfigError
from tests.support.cli import run_cli
from tests.support.compose import compose_run, group_options

BINARY_LOSSES, CATEGORICAL_LOSSES = loss_options()["binary"], loss_options()["categorical"]

GROUPS = [
    "dataset",
    "model",
    "loss",
    "augmentation",
    "callbacks",
    "trainer",
    "inference",
    "mlflow",
    "paths",
    "debug",
    "hparams_search",
]


@pytest.mark.parametrize(("group", "option"), [(g, o) for g in GROUPS for o in group_options(g)])
def test_every_group_option_composes_and_validates(group: str, option: str) -> None:
    overrides = [f"{group}={option}"]
    if group == "dataset" and option == "folder":
        overrides.append("dataset.root=/data/somewhere")
    if group == "loss" and option in CATEGORICAL_LOSSES:
        overrides.append("dataset.num_classes=3")
    cfg = compose_run("train", overrides)
    validate(cfg)
    OmegaConf.to_container(cfg, resolve=True)  # every interpolation resolves


def test_paths_are_absolute_and_run_dirs_unique_per_run() -> None:
    cfg = compose_run("train", [])
    assert Path(cfg.paths.root_dir).is_absolute()
    assert Path(cfg.paths.log_dir).is_absolute()
    assert cfg.mlflow.tracking_uri.startswith("sqlite:////")


@pytest.mark.parametrize("name", ["eval", "infer"])
def test_eval_and_infer_compose_with_a_checkpoint(name: str) -> None:
    cfg = compose_run(name, ["checkpoint=/models/m.keras", "input=/images"])
    validate(cfg)
    assert cfg.stages == ["evaluate"] if name == "eval" else ["infer"]


@pytest.mark.parametrize(
    ("override", "key"),
    [
        ("trainer.epochs=0", "trainer.epochs"),
        ("trainer.batch_size=-2", "trainer.batch_size"),
        ("trainer.learning_rate=0", "trainer.learning_rate"),
        ("dataset.image_size=[64]", "dataset.image_size"),
        ("dataset.channels=2", "dataset.channels"),
        ("augmentation.hflip.p=1.5", "augmentation.hflip.p"),
        ("augmentation.zoom.min_scale=0", "augmentation.zoom.min_scale"),
        ("augmentation.elastic.sigma=0", "augmentation.elastic.sigma"),
        ("augmentation.barrel.amount=[0.3,0.1]", "augmentation.barrel.amount"),
        ("augmentation.gamma.gamma=[0,1]", "augmentation.gamma.gamma"),
        ("inference.threshold=1.0", "inference.threshold"),
        ("inference.overlay_color=[300,0,0]", "inference.overlay_color"),
        ("dataset.mask_threshold=1.2", "dataset.mask_threshold"),
        ("dataset.input_niceness=20", "dataset.input_niceness"),
        ("mlflow.outage_wait=-1", "mlflow.outage_wait"),
        ("dataset.class_names=[a,b]", "dataset.class_names"),  # num_classes=1
        ("inference.palette=[[0,0,256]]", "inference.palette"),
        ("inference.tile_size=[0,64]", "inference.tile_size"),
        ("inference.tile_overlap=1.0", "inference.tile_overlap"),
        ("inference.tile_sigma=0", "inference.tile_sigma"),
        ("inference.postprocess.min_size=-1", "inference.postprocess.min_size"),
        ("inference.postprocess.blur_sigma=-0.5", "inference.postprocess.blur_sigma"),
        ("inference.tta=[rot90]", "inference.tta"),  # with image_size [64,128], below
        ("trainer.threads=0", "trainer.threads"),
        ("trainer.logical_cpus=0", "trainer.logical_cpus"),
        ("trainer.resume=yesterday", "trainer.resume"),
        ("optimized_metric=val_loss", "optimized_direction"),
        ("trainer.strategy=multi_worker", "keras-team/keras#20585"),
    ],
)
def test_out_of_range_values_name_the_key(override: str, key: str) -> None:
    extra = ["dataset.image_size=[64,128]"] if override.startswith("inference.tta") else []
    cfg = compose_run("train", [override, *extra])
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        validate(cfg)


def test_loss_options_are_the_listed_binary_and_categorical_ones() -> None:
    assert set(group_options("loss")) == {*BINARY_LOSSES, *CATEGORICAL_LOSSES}
    for option in CATEGORICAL_LOSSES:
        cfg = compose_run("train", [f"loss={option}", "dataset.num_classes=3"])
        assert OmegaConf.get_type(cfg.loss) is CategoricalLossConfig


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (
            ["dataset.num_classes=3"],
            "bce_dice is a binary (sigmoid) loss but dataset.num_classes=3"
            " (softmax): use a categorical loss, loss=categorical_dice | cce | cce_dice | focal",
        ),
        (["loss=focal"], "focal is a categorical (softmax) loss but dataset.num_classes=1"),
        (["loss=cce", "dataset.num_classes=3", "loss.class_weights=[1,2]"], "loss.class_weights"),
        (["loss=focal", "dataset.num_classes=3", "loss.gamma=-1"], "loss.gamma"),
        (["dataset.num_classes=3", "loss=cce", "dataset.class_names=[bg,a,a]"], "distinct"),
        (["dataset.num_classes=3", "loss=cce", "dataset.class_names=[bg,a,b c]"], "letters"),
        (
            ["dataset.num_classes=3", "loss=cce", "inference.palette=[[0,0,0],[1,1,1]]"],
            "inference.palette: one colour per class",
        ),
    ],
)
def test_multiclass_settings_that_do_not_fit_name_the_key(overrides, message: str) -> None:
    cfg = compose_run("train", overrides)
    with pytest.raises(ConfigError, match=re.escape(message)):
        validate(cfg)


def test_multiclass_settings_validate() -> None:
    cfg = compose_run(
        "train",
        [
            "dataset.num_classes=3",
            "loss=focal",
            "loss.class_weights=[1,2,3]",
            "dataset.class_names=[bg,nucleus,cyto-plasm]",
            "inference.palette=[[0,0,0],[255,0,0],[0,255,0]]",
        ],
    )
    validate(cfg)
    assert cfg.loss._target_ == "seg.losses.CategoricalLoss"


def test_inference_options_compose_typed() -> None:
    cfg = compose_run(
        "infer",
        [
            "checkpoint=m.keras",
            "input=x",
            "inference.tiling=on",
            "inference.tile_size=[512,512]",
            "inference.tta=[hflip,rot90]",
            "inference.postprocess.method=otsu",
            "inference.postprocess.fill_holes=true",
        ],
    )
    validate(cfg)
    assert cfg.inference.tta == ["hflip", "rot90"]
    assert cfg.inference.postprocess.fill_holes is True


@pytest.mark.parametrize(
    "override",
    [
        "inference.tiling=maybe",
        "inference.tta=[spin]",
        "inference.postprocess.fill_hole=true",
        "inference.postprocess.method=triangle",
        "inference.tile_overlapp=0.5",
    ],
)
def test_inference_typos_fail_at_composition(override: str) -> None:
    from hydra.errors import ConfigCompositionException

    key = override.split("=")[0].split(".")[-1]
    with pytest.raises(ConfigCompositionException, match=re.escape(key)):
        compose_run("infer", ["checkpoint=m.keras", "input=x", override])


def test_without_train_stage_a_checkpoint_is_required() -> None:
    cfg = compose_run("train", ["stages=[evaluate]"])
    with pytest.raises(ConfigError, match="checkpoint"):
        validate(cfg)


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (
            ["model.base_filterz=8"],
            "error: model.base_filterz: no such key of model; did you mean model.base_filters?",
        ),
        (["trainer.epochs=ten"], "error: trainer.epochs=ten: expected integer"),
        (["model=nope"], "error: model=nope: no such option; choose one of attention_unet, "),
        (["stages=[train,evalute]"], "evalute: expected one of train, evaluate, infer"),
        (["trainer.optimizer=adamx"], "error: trainer.optimizer=adamx: expected one of adam, "),
        (["loss=bce_dise"], "error: loss=bce_dise: no such option; did you mean loss=bce_dice?"),
    ],
)
def test_cli_config_errors_are_one_line_with_exit_2(tmp_path: Path, args, expected: str) -> None:
    """As a user sees them (no HYDRA_FULL_ERROR): the key, what was found and the closest
    key or the options; never Hydra's '+key' advice, which would add the typo."""
    proc = run_cli("seg-train", *args, cwd=tmp_path, check=False, timeout=120, full_error=False)
    assert proc.returncode == 2
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and expected in lines[0], proc.stderr
    assert "To append" not in proc.stderr and "search path" not in proc.stderr
    assert not (tmp_path / "mlflow.db").exists()  # nothing started


def test_cli_range_error_exits_2_with_one_line(tmp_path: Path) -> None:
    proc = run_cli("seg-train", "trainer.epochs=0", cwd=tmp_path, check=False, timeout=120)
    assert proc.returncode == 2
    assert "trainer.epochs: must be >= 1, got 0" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_seg_eval_requires_a_checkpoint(tmp_path: Path) -> None:
    proc = run_cli("seg-eval", cwd=tmp_path, check=False, timeout=120)
    assert proc.returncode != 0
    assert "checkpoint" in proc.stderr


def test_two_runs_started_together_get_their_own_directories(tmp_path: Path) -> None:
    """Run dirs carry a random suffix, so launches within one second never share a dir."""
    import subprocess

    from tests.support.cli import BIN

    procs = [
        subprocess.Popen(
            [str(BIN / "seg-train"), "trainer.epochs=0"],
            cwd=tmp_path,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for _ in range(2)
    ]
    assert [p.wait(timeout=120) for p in procs] == [2, 2]  # both stop at validation
    dirs = sorted((tmp_path / "outputs" / "train" / "runs").iterdir())
    assert len(dirs) == 2
    assert all((d / ".hydra" / "config.yaml").is_file() for d in dirs)


@pytest.mark.parametrize(
    ("value", "target"),
    [
        ("true", "latest"),
        ("True", "latest"),
        ("latest", "latest"),
        ("false", None),
        ("0123456789abcdef0123456789abcdef", "0123456789abcdef0123456789abcdef"),
    ],
)
def test_trainer_resume_accepts_true_or_a_run_id(value: str, target: str | None) -> None:
    from seg.config.trainer import resume_target

    cfg = compose_run("train", [f"trainer.resume={value}"])
    validate(cfg)
    assert resume_target(cfg.trainer.resume) == target


def test_optuna_search_composes_with_its_search_space_and_direction() -> None:
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        cfg = compose(
            "train",
            overrides=[
                "hparams_search=optuna",
                "optimized_metric=val_loss",
                "optimized_direction=minimize",
            ],
            return_hydra_config=True,
        )
    sweeper = cfg.hydra.sweeper
    assert sweeper._target_.endswith("OptunaSweeper")
    assert sweeper.sampler._target_ == "optuna.samplers.TPESampler"
    assert str(sweeper.direction) == "minimize"  # follows optimized_direction
    assert set(sweeper.params) == {
        "trainer.learning_rate",
        "model.base_filters",
        "model.num_layers",
        "loss",
        "augmentation",
    }
    assert str(cfg.hydra.mode) == "RunMode.MULTIRUN"
