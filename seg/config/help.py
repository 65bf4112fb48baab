"""The ``--help`` of each entry point: what the command does, its config groups with their
options (seg's and the project's own in ``conf/``), five example commands and where the docs
are. Hydra shows it through ``hydra.help.template`` (``${seg_help:<command>}``, a resolver
registered in seg.config.registration); its own template would list the internal schema/*
groups and dump the whole config."""

from __future__ import annotations

import textwrap
from pathlib import Path

CONF_DIR = Path(__file__).resolve().parents[1] / "conf"
WIDTH = 96  # columns of the help

_WHAT = {
    "train": "seg-train: train a model, evaluate it on the test split and infer the test images, "
    "all logged to one MLflow run (seg-train -m ...: a sweep, one child run per job).",
    "eval": "seg-eval: evaluate a trained model (checkpoint=<run id | models:/... | file.keras>) "
    "on a split of the dataset or a folder with masks; logged as a run nested under the "
    "training run.",
    "infer": "seg-infer: write masks and overlays for a folder, a glob or one image of any size "
    "(tiled when large), with a trained model (checkpoint=...).",
    "export": "seg-export: a trained model for deployment (checkpoint=...): a TensorFlow "
    "SavedModel, ONNX or TFLite file computing in float32, its preprocessing and a README of "
    "its input and output, checked against Keras by the format's own runtime.",
    "plan": "seg-plan: read a dataset once (sizes, intensities, foreground, objects) and write "
    "an experiment planned for it into conf/experiment/<name>.yaml, each choice with its "
    "reason.",
}
_GROUPS = {
    "train": ("dataset", "model", "loss", "augmentation", "trainer", "callbacks", "inference",
              "experiment", "hparams_search", "debug", "mlflow"),
    "eval": ("dataset", "inference", "mlflow"),
    "infer": ("dataset", "inference", "mlflow"),
    "export": ("dataset",),
    "plan": ("dataset",),
}  # fmt: skip
_EXAMPLES = {
    "train": (
        "seg-train                                          # the demo data, the default UNet",
        "seg-train model=attention_unet loss=bce_iou trainer.epochs=50",
        "seg-train dataset=folder dataset.root=/data/pap dataset.image_size=[256,256]",
        "seg-train experiment=pap_smear_herlev_128 trainer.time_budget=30",
        "seg-train -m model.base_filters=8,16 loss=bce_dice,bce_iou   # a sweep of 4 runs",
    ),
    "eval": (
        "seg-eval checkpoint=<run id>                       # the test split",
        "seg-eval checkpoint=<run id> split=valid",
        "seg-eval checkpoint=<run id> data_dir=/data/other  # images/ and masks/ of a folder",
        "seg-eval checkpoint=models:/cells@champion",
        "seg-eval checkpoint=outputs/train/runs/<dir>/checkpoints/best.keras",
    ),
    "infer": (
        "seg-infer checkpoint=<run id> input=/data/new output=masks",
        "seg-infer checkpoint=<run id> input='/data/slides/*.tif' output=masks",
        "seg-infer checkpoint=<run id> input=image.png output=out inference.tta=true",
        "seg-infer checkpoint=<run id> input=big.png output=out inference.tile_size=[512,512]",
        "seg-infer checkpoint=best.keras input=/data/new output=masks inference.threshold=0.4",
    ),
    "export": (
        "seg-export checkpoint=<run id> output=exported       # a TensorFlow SavedModel",
        "seg-export checkpoint=<run id> format=onnx output=exported_onnx",
        "seg-export checkpoint=<run id> format=tflite output=exported_tflite",
        "seg-export checkpoint=models:/cells@champion format=onnx output=champion",
        "seg-export checkpoint=best.keras format=onnx output=out overwrite=true",
    ),
    "plan": (
        "seg-plan dataset.root=/data/pap dataset.name=pap   # writes conf/experiment/pap.yaml",
        "seg-plan dataset=pap                               # a dataset of conf/dataset/",
        "seg-plan dataset.root=/data/pap budget=60          # planned for an hour of training",
        "seg-plan dataset.root=/data/cells dataset.num_classes=3",
        "seg-plan dataset.root=/data/pap name=pap_v2 overwrite=true",
    ),
}


def group_options(group: str, project: Path = Path("conf")) -> list[str]:
    """The options of a config group: seg's YAML files and the project's own."""
    found = {p.stem for folder in (CONF_DIR, project) for p in (folder / group).glob("*.yaml")}
    return sorted(found)


def help_text(command: str) -> str:
    """The help of ``seg-<command>`` (``$`` doubled: Hydra substitutes its own $NAMES in it)."""
    groups = "\n".join(
        textwrap.fill(
            f"{group:15s} {', '.join(group_options(group)) or '(none yet)'}",
            WIDTH,
            initial_indent="  ",
            subsequent_indent=" " * 18,
        )
        for group in _GROUPS[command]
    )
    examples = "\n".join(f"  {line}" for line in _EXAMPLES[command])
    return f"""{textwrap.fill(_WHAT[command], WIDTH)}

Config groups (group=option; yours in ./conf/<group>/ join them):
{groups}

Any key of the config: key=value (seg-{command} --cfg job prints the whole composed config;
a new key of a dict needs +key=value).

Examples:
{examples}

Docs: docs/index.md (mkdocs serve), every key: docs/reference/config.md.
Shell completion (bash): eval "$$(seg-{command} -sc install=bash)"
"""
