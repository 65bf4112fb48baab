"""The config: one typed schema per config group, their registration in Hydra's ConfigStore,
the checks a type cannot express, and the allow-list of what ``_target_`` may build.

The YAML files in ``seg/conf`` hold the values, these dataclasses the types. Nothing here
imports TensorFlow, so a misspelt key fails in a second. May import only :mod:`seg.errors`
(and OmegaConf/Hydra): every other package reads the config, none is read by it.
"""

from pathlib import Path

# The YAML configs, shipped inside the package (seg/conf) so that an installed wheel has them.
CONF_DIR = str(Path(__file__).resolve().parent.parent / "conf")
