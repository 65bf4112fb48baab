"""Model files load in Keras' safe mode: Python code in a .keras file (a Lambda layer) is refused
unless trust_checkpoint=true; a file naming a class outside Keras and seg is refused always;
files from a run are downloaded into a temporary folder that is removed afterwards."""

from __future__ import annotations

import json
import re
import tempfile
import zipfile
from pathlib import Path

import keras
import numpy as np
import pytest
from hydra import compose, initialize_config_dir

from seg.cli import CONF_DIR
from seg.data.pipeline import Preprocessing
from seg.errors import CheckpointError
from seg.runner.context import Context
from seg.tracking.models import load_model_and_preprocessing
from seg.tracking.tracker import Tracker
from seg.training.model_files import load_model_file
from tests.support.cli import run_cli
from tests.support.data import write_image

SIZE = 16


def _lambda_model() -> keras.Model:
    inputs = keras.Input((SIZE, SIZE, 3))
    x = keras.layers.Conv2D(1, 1, activation="sigmoid")(inputs)
    return keras.Model(inputs, keras.layers.Lambda(lambda t: t * 1.0)(x))


@pytest.fixture(scope="module")
def lambda_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("lambda") / "lambda.keras"
    _lambda_model().save(path)
    return path


def _refusal(label: str, path: Path | str) -> str:
    return (
        f"{label}: {path} holds Python code (a Lambda layer or function) that Keras' "
        "safe mode does not run; only if you trust its source, load it with "
        "trust_checkpoint=true"
    )


def test_a_lambda_layer_is_refused_unless_trusted(lambda_file: Path) -> None:
    label = f"checkpoint={lambda_file}"
    with pytest.raises(CheckpointError) as err:
        load_model_file(lambda_file, label)
    assert str(err.value) == _refusal(label, lambda_file)
    model = load_model_file(lambda_file, label, trust=True)
    assert model.predict(np.zeros((1, SIZE, SIZE, 3)), verbose=0).shape == (1, SIZE, SIZE, 1)


def _infer_config(checkpoint: Path, *overrides: str):
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        return compose("infer", overrides=[f"checkpoint={checkpoint}", "input=unused", *overrides])


def test_the_config_key_is_the_opt_in(lambda_file: Path, caplog) -> None:
    ctx = Context(_infer_config(lambda_file), Path("unused"), tracker=None)
    with pytest.raises(CheckpointError, match=re.escape("load it with trust_checkpoint=true")):
        ctx.trained_or_loaded_model()
    ctx = Context(_infer_config(lambda_file, "trust_checkpoint=true"), Path("unused"), None)
    assert isinstance(ctx.trained_or_loaded_model(), keras.Model)


def _crafted(source: Path, out: Path, module: str, name: str) -> Path:
    """A copy of ``source`` whose first Conv2D layer is declared as ``module.name``."""
    with zipfile.ZipFile(source) as zin, zipfile.ZipFile(out, "w") as zout:
        for item in zin.infolist():
            data = zin.read(item.filename)
            if item.filename == "config.json":
                config = json.loads(data)
                layer = next(
                    lay for lay in config["config"]["layers"] if lay["class_name"] == "Conv2D"
                )
                layer.update(module=module, class_name=name, registered_name=None)
                data = json.dumps(config).encode()
            zout.writestr(item, data)
    return out


UNKNOWN = (
    "{path} names '{name}', which is neither a Keras object nor one of seg's registered "
    "ones; it is not loaded"
)


@pytest.mark.parametrize(
    "module, name, reason",
    [
        ("os", "system", UNKNOWN),
        ("builtins", "eval", UNKNOWN),
        ("subprocess", "Popen", UNKNOWN),
        # Keras' own non-modeling API (downloads a URL of the file's choice): Keras refuses it.
        (
            "keras.utils",
            "get_file",
            "cannot load {path} as a Keras model (Cannot deserialize "
            "`keras.utils.get_file` because it is not a modeling function",
        ),
    ],
)
def test_a_class_outside_keras_and_seg_is_refused_even_when_trusted(
    tmp_path: Path, module: str, name: str, reason: str
) -> None:
    plain = keras.Sequential([keras.Input((SIZE, SIZE, 3)), keras.layers.Conv2D(1, 1)])
    plain.save(tmp_path / "plain.keras")
    crafted = _crafted(tmp_path / "plain.keras", tmp_path / "crafted.keras", module, name)
    for trust in (False, True):
        with pytest.raises(CheckpointError) as err:
            load_model_file(crafted, "checkpoint=crafted.keras", trust=trust)
        expected = reason.format(name=name, path=crafted)
        assert str(err.value).startswith(f"checkpoint=crafted.keras: {expected}"), str(err.value)
        assert "\n" not in str(err.value)


def test_a_run_model_is_downloaded_to_a_removed_temp_dir_and_checked_alike(
    tmp_path: Path, monkeypatch, sqlite_store: str
) -> None:
    """Through a real MLflow store: a Lambda model logged to a run is refused by run id,
    loads with trust; each time into a temporary folder that is gone afterwards."""
    monkeypatch.chdir(tmp_path)  # the store's default artifact root is ./mlruns
    uri = sqlite_store
    with Tracker(uri, "trust") as run:
        run.log_keras_model(_lambda_model(), np.zeros((1, SIZE, SIZE, 3), np.float32))
    temp = tmp_path / "temp"
    temp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(temp))
    before = sorted(tmp_path.iterdir())
    with pytest.raises(CheckpointError) as err:
        load_model_and_preprocessing(run.run_id, uri)
    message = str(err.value)
    assert message.startswith(f"checkpoint={run.run_id}: {temp}/seg-model-")
    assert message.endswith("load it with trust_checkpoint=true")
    assert list(temp.iterdir()) == []
    loaded = load_model_and_preprocessing(run.run_id, uri, trust=True)
    assert isinstance(loaded.model, keras.Model)
    assert list(temp.iterdir()) == [] and sorted(tmp_path.iterdir()) == before


def test_a_preprocessing_spec_carries_no_targets() -> None:
    """preprocessing.json read back from a run is plain values: a `_target_` in it is
    refused as malformed, never built."""
    spec = Preprocessing(size=(SIZE, SIZE), channels=3, num_classes=1, mask_threshold=0.5).to_dict()
    spec["image"]["_target_"] = "os.system"
    with pytest.raises(CheckpointError, match="malformed preprocessing spec"):
        Preprocessing.from_dict(spec, "runs:/x/preprocessing.json")


@pytest.mark.slow
def test_seg_infer_refuses_a_lambda_checkpoint_in_one_line(
    lambda_file: Path, tmp_path: Path
) -> None:
    rng = np.random.default_rng(0)
    write_image(tmp_path / "in" / "a.png", rng.integers(0, 255, (SIZE, SIZE, 3), np.uint8))
    args = (f"checkpoint={lambda_file}", f"input={tmp_path / 'in'}", f"output={tmp_path / 'out'}")
    proc = run_cli("seg-infer", *args, cwd=tmp_path, check=False)
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr
    assert (
        proc.stderr.strip()
        .splitlines()[-1]
        .endswith(_refusal(f"checkpoint={lambda_file}", lambda_file))
    )
    assert not (tmp_path / "out").exists()
