"""The `_target_` allow-list (seg.config.targets): everything conf/ and the schemas build still
builds; anything else is one ConfigError naming the key, before its module is imported."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from omegaconf import OmegaConf

import seg.losses
from seg.config.loss import loss_options
from seg.config.model import MODEL_SCHEMAS
from seg.config.targets import SEG_TARGET_MODULES, check_target, locate
from seg.config.validation import validate
from seg.errors import ConfigError
from seg.training.factory import build_loss
from tests.support.cli import run_cli
from tests.support.compose import compose_run, group_options


@pytest.mark.parametrize("name", group_options("model"))
def test_every_model_config_target_is_allowed(name: str) -> None:
    target = compose_run("train", [f"model={name}"]).model._target_
    builder = locate(target, "model")
    assert callable(builder) and builder.__module__ in SEG_TARGET_MODULES
    assert f"{builder.__module__}.{builder.__name__}" == target


def test_every_schema_default_target_is_allowed() -> None:
    targets = [OmegaConf.structured(s)._target_ for s in MODEL_SCHEMAS.values()]
    targets += [
        "seg.losses.SegmentationLoss",
        "seg.losses.CompoundLoss",
        "seg.losses.CategoricalLoss",
    ]
    for target in targets:
        assert locate(target, "model").__name__ == target.rpartition(".")[2]


@pytest.mark.parametrize("name", group_options("loss"))
def test_every_loss_config_builds(name: str) -> None:
    classes = ["dataset.num_classes=3"] if name in loss_options()["categorical"] else []
    cfg = compose_run("train", [f"loss={name}", *classes])
    loss = build_loss(cfg.loss)
    assert type(loss).__module__.startswith("seg.losses.")  # defined in the package


def test_keras_classes_of_the_listed_namespaces_are_allowed() -> None:
    import keras

    assert locate("keras.losses.BinaryCrossentropy", "loss") is keras.losses.BinaryCrossentropy
    assert locate("keras.layers.Conv2D", "x") is keras.layers.Conv2D
    assert locate("keras.optimizers.AdamW", "x") is keras.optimizers.AdamW


# target -> the reason in the error (after "<key>._target_=<target>: not allowed")
REFUSED = {
    "os.system": "; a config may build only classes and functions defined in seg.losses",
    "subprocess.Popen": "; a config may build only",
    "builtins.eval": "; a config may build only",
    "keras.saving.load_model": "; a config may build only",
    "keras.utils.get_file": "; a config may build only",
    "keras.models.load_model": "; a config may build only",
    "seg.tracking.tracker.subprocess": "; a config may build only",  # seg, but not on the list
    "seg.training.callbacks.keras": ", it is a module",
    "seg.training.callbacks.np": ", it is a module",
    # a package's public names only, not its submodules' paths
    "seg.losses.binary.CompoundLoss": "; a config may build only",
    "seg.models.efficient_unet.build_encoder": ", it is defined in seg.models.encoders",
    "seg.losses._private": "; a private name cannot be built",
    "keras.layers.Lambda": ", it runs Python code given to it",
    "keras.layers.TFSMLayer": ", it is defined in keras.src.export",
    "keras.layers.deserialize": ", only Layer classes may be built from keras.layers",
    "keras.losses.get": ", only Loss classes may be built from keras.losses",
    "keras.losses.binary_crossentropy": ", only Loss classes may be built from keras.losses",
}


@pytest.mark.parametrize("target", sorted(REFUSED))
def test_a_target_off_the_list_is_one_error_naming_the_key(target: str) -> None:
    with pytest.raises(ConfigError) as err:
        locate(target, "model")
    message = str(err.value)
    assert message.startswith(f"model._target_={target}: not allowed{REFUSED[target]}")
    assert "\n" not in message


def test_names_a_listed_module_merely_imports_are_refused(monkeypatch) -> None:
    """As if seg.losses imported os and subprocess: what they bring in is not seg's."""
    monkeypatch.setattr(seg.losses, "os", os, raising=False)
    monkeypatch.setattr(seg.losses, "system", os.system, raising=False)
    monkeypatch.setattr(seg.losses, "Popen", subprocess.Popen, raising=False)
    for target, reason in [
        ("seg.losses.os", "it is a module"),
        ("seg.losses.system", "it is not a class or function"),
        ("seg.losses.Popen", "it is defined in subprocess"),
    ]:
        with pytest.raises(
            ConfigError, match=re.escape(f"loss._target_={target}: not allowed, {reason}")
        ):
            locate(target, "loss")


def test_a_refused_module_is_never_imported() -> None:
    sys.modules.pop("this", None)  # importing `this` prints the Zen of Python
    with pytest.raises(ConfigError, match="not allowed"):
        locate("this.s", "model")
    assert "this" not in sys.modules


def test_validation_refuses_a_target_before_anything_runs() -> None:
    cfg = compose_run("train", ["model._target_=os.system"])
    with pytest.raises(ConfigError, match=re.escape("model._target_=os.system: not allowed")):
        validate(cfg)
    cfg = compose_run("train", ["loss._target_=keras.saving.load_model"])
    with pytest.raises(ConfigError, match=re.escape("loss._target_=keras.saving.load_model")):
        validate(cfg)
    check_target("seg.models.unet.build_unet", "model")  # the default passes


def test_seg_train_refuses_a_target_with_one_line_and_no_run(tmp_path: Path) -> None:
    proc = run_cli(
        "seg-train", "debug=fast", "model._target_=subprocess.Popen", cwd=tmp_path, check=False
    )
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert "model._target_=subprocess.Popen: not allowed; a config may build only" in last
    assert not (tmp_path / "mlflow.db").exists()  # refused before a run was opened
