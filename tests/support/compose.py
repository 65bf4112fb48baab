"""Configs composed the way the entry points compose them, with the real Hydra API."""

from __future__ import annotations

from pathlib import Path

from hydra import compose, initialize_config_dir
from omegaconf import DictConfig, open_dict

from seg.cli import CONF_DIR


def group_options(group: str) -> list[str]:
    """The options of a config group: its YAML files."""
    return sorted(p.stem for p in (Path(CONF_DIR) / group).glob("*.yaml"))


def compose_run(config_name: str, overrides: list[str]) -> DictConfig:
    """The composed config of an entry point (``train``, ``eval``, ``infer``) with
    ``overrides``, its hydra:... interpolations resolved as a launched run would see them."""
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        cfg = compose(config_name, overrides=overrides, return_hydra_config=True)
    # Resolve hydra:... interpolations the way a launched run would see them.
    with open_dict(cfg):
        cfg.hydra.runtime.output_dir = "/tmp/seg-test-output"
        cfg.hydra.runtime.cwd = "/tmp/seg-test-cwd"
    from hydra.core.hydra_config import HydraConfig

    HydraConfig.instance().set_config(cfg)
    with open_dict(cfg):
        del cfg["hydra"]
    return cfg
