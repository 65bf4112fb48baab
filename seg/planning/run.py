"""``seg-plan``: the fingerprint of a dataset's train and valid splits, the plan made from it,
both printed, and the experiment file written (atomically; an existing one is kept unless
``overwrite=true``)."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from pathlib import Path

import yaml
from omegaconf import DictConfig

from seg.config.dataset import validate_dataset
from seg.data.dataset import dataset_root, load_split, mask_preprocess
from seg.errors import ConfigError, DatasetError
from seg.files import folder_problem, write_text_whole
from seg.planning.fingerprint import describe, fingerprint
from seg.planning.plan import Choice, experiment_yaml, plan

log = logging.getLogger(__name__)
SPLITS = ("train", "valid")  # what the plan reads (the test split stays unseen)


def experiment_path(cfg: DictConfig, name: str) -> Path:
    folder = Path(str(cfg.conf_dir)).expanduser().resolve() / "experiment"
    if problem := folder_problem(folder, "conf_dir"):
        raise ConfigError(problem)
    path = folder / f"{name}.yaml"
    if path.exists() and not cfg.overwrite:
        raise ConfigError(
            f"{path}: an experiment of that name exists; name another "
            "(name=...) or replace it with overwrite=true"
        )
    return path


# Given to seg-plan, but said in the experiment by the plan itself.
_NOT_CARRIED = ("dataset.root", "dataset.name")


def carried(overrides: Sequence[str]) -> list[Choice]:
    """The dataset settings given to seg-plan (how masks are read, the classes, ...): the
    experiment keeps them, or a training of it would read the data otherwise than the plan."""
    kept = []
    for override in overrides:
        key, _, value = override.lstrip("+~").partition("=")
        if key.startswith("dataset.") and key not in _NOT_CARRIED:
            kept.append(Choice(key, yaml.safe_load(value), "as given to seg-plan"))
    return kept


def run_plan(cfg: DictConfig, overrides: Sequence[str] = (), dataset: str = "folder") -> Path:
    """Read, plan, print, write; the experiment file's path. ``overrides``: seg-plan's own
    (the dataset settings among them are carried into the experiment); ``dataset``: the
    dataset config it composed (``folder``, or one of the project's, whose settings the
    experiment then keeps by naming it)."""
    validate_dataset(cfg.dataset)
    data = cfg.dataset
    name = str(cfg.name or data.name)
    path = experiment_path(cfg, name)
    root = dataset_root(data)
    splits = {}
    for split in SPLITS:
        try:
            splits[split] = load_split(data, split, root)
        except DatasetError:
            if split == "train":
                raise
    start = time.perf_counter()
    fp = fingerprint(
        splits, float(data.mask_threshold), int(data.num_classes), mask_preprocess(data)
    )
    log.info("read %d pairs in %.1f s", sum(fp.pairs.values()), time.perf_counter() - start)
    given = carried(overrides)
    planned = [
        c
        for c in plan(fp, float(cfg.budget), int(data.num_classes))
        if c.key not in {g.key for g in given}
    ]
    choices = [*planned, *given]
    text = experiment_yaml(name, root, fp, choices, float(cfg.budget), path.parent.parent, dataset)
    write_text_whole(path, text)
    print(
        "\n".join(
            [
                "fingerprint:",
                *(f"  {line}" for line in describe(fp)),
                "plan:",
                *(f"  {c.key}={c.value}  ({c.why})" for c in choices),
                f"written: {path}",
                f"train it: seg-train --config-dir {path.parent.parent} experiment={name}",
            ]
        )
    )
    return path
