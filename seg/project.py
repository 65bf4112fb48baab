"""A project of one's own (``seg init DIR``): the folder a researcher works in, whose configs
compose with seg's through Hydra's search path (``conf/`` in the directory a command runs
in; seg/conf/train.yaml says so), so that seg's own files are never edited.

    DIR/conf/dataset/<name>.yaml     the dataset: where it is, its size, channels, classes
    DIR/conf/experiment/example.yaml an experiment, runnable at once on seg's demo data
    DIR/README.md                    the commands: plan, train, compare in the MLflow UI
    DIR/.gitignore                   the store, the runs' outputs

Nothing is overwritten: a file already there is kept and said so.
"""

from __future__ import annotations

import re
from pathlib import Path

from seg.errors import ConfigError
from seg.files import folder_problem, write_text_whole

_DATASET = """\
# The dataset {name}: <root>/{{train,valid,test}}/{{images,masks}}, each mask named like its
# image (seg-plan reads it and writes an experiment for it: see README.md). Every key of seg's
# dataset group can be set here (docs: reference/config.md, "dataset").
defaults:
  - folder  # seg's folder dataset: its schema and defaults
  - _self_

name: {name}  # also the MLflow experiment's name
root: ${{paths.root_dir}}/data/{name}  # put the data here, or point elsewhere
image_size: [256, 256]  # [height, width] the model sees
channels: 3  # 1 grey, 3 RGB
num_classes: 1  # 1: binary masks; more: index or colour-coded masks
"""

_EXPERIMENT = """\
# @package _global_
# An experiment: the groups and settings of a run, by name. This one trains on seg's embedded
# demo data so that it runs at once:
#   seg-train experiment=example
# For your data, use your dataset instead (conf/dataset/{name}.yaml):
#   seg-train experiment=example dataset={name}
defaults:
  - override /dataset: demo
  - override /model: unet
  - override /loss: bce_dice
  - override /augmentation: basic

trainer:
  time_budget: 10  # minutes of training; the learning-rate schedule ends with it
mlflow:
  experiment_name: example
"""

_README = """\
# {title}

A segmentation project run with [seg](https://pypi.org/project/seg/). Its configs are in
`conf/` and compose with seg's own: run the commands below in this folder.

```bash
seg-plan dataset={name}                       # read the data, write conf/experiment/{name}.yaml
seg-train experiment={name}                   # train, evaluate and infer it (or experiment=example)
mlflow ui --backend-store-uri sqlite:///mlflow.db --host 127.0.0.1 --port 5000   # compare runs
```

Put the data in `data/{name}/{{train,valid,test}}/{{images,masks}}` (or set `root:` in
`conf/dataset/{name}.yaml`). Runs go to `mlflow.db` and `outputs/` here.
"""

_GITIGNORE = """\
mlflow.db
mlflow.db.lock
mlruns/
outputs/
multirun/
"""


def project_files(name: str) -> dict[str, str]:
    """The files of a new project for the dataset ``name``, by path relative to its folder."""
    return {
        f"conf/dataset/{name}.yaml": _DATASET.format(name=name),
        "conf/experiment/example.yaml": _EXPERIMENT.format(name=name),
        "README.md": _README.format(title=name.replace("_", " "), name=name),
        ".gitignore": _GITIGNORE,
    }


def dataset_name(folder: Path, given: str | None) -> str:
    """``given``, or the folder's name, as a config name (letters, digits, _ and -)."""
    name = given or folder.resolve().name
    if not re.fullmatch(r"[A-Za-z][A-Za-z0-9_-]*", name):
        where = f"--dataset {name}" if given else f"DIR {folder} (its name {name!r})"
        raise ConfigError(
            f"{where}: a dataset name is letters, digits, _ and -, starting with a letter (it "
            "names a config file and an MLflow experiment); give one with --dataset NAME"
        )
    return name


def init_project(folder: Path, name: str | None = None) -> list[str]:
    """Write a project into ``folder`` (made if missing); the lines saying what was done."""
    folder = Path(folder).expanduser()
    if problem := folder_problem(folder, "DIR"):
        raise ConfigError(problem)
    name = dataset_name(folder, name)
    said = []
    for relative, text in project_files(name).items():
        path = folder / relative
        if path.exists():
            said.append(f"kept     {path} (already there)")
            continue
        write_text_whole(path, text)
        said.append(f"written  {path}")
    said.append(f"next: cd {folder} && seg-train experiment=example")
    return said
