"""Bad input of every kind through the real CLIs, each refused as a user meets it: exit code 2,
one error line naming the key or file, what was found and what to do, no traceback, and
nothing left behind (no MLflow store or run, no output beyond Hydra's own files). The classes
of issue 23: data that would be read wrong, places that cannot be written, config errors that
must be found before a run opens. (More cases of each class are checked below the CLI, where
a test can reach them faster: tests/runner/test_bad_input.py, test_bad_places.py,
tests/config/test_checked_before_run.py, tests/test_files.py.)"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import tifffile

from tests.support.cli import run_cli
from tests.support.data import circle_mask, image_from_mask, write_image
from tests.support.outcomes import error_lines, hydra_files_only, runs_in_store

pytestmark = pytest.mark.slow
SIZE = 32


def _dataset(root: Path) -> Path:
    rng = np.random.default_rng(0)
    for split in ("train", "valid", "test"):
        for i in range(3):
            mask = circle_mask(SIZE, SIZE, (10 + 4 * i, 16), 6)
            write_image(root / split / "images" / f"c{i}.png", image_from_mask(mask, rng))
            write_image(root / split / "masks" / f"c{i}.png", mask)
    return root


@dataclass(frozen=True)
class Case:
    command: str
    prepare: Callable[[Path], list[str]]  # makes the bad input under tmp; the overrides
    expected: tuple[str, ...]  # in the one error line ({tmp}: the test's folder)


def _on_data(*extra: str, damage: Callable[[Path], None] = lambda root: None):
    def prepare(tmp: Path) -> list[str]:
        root = _dataset(tmp / "ds")
        damage(root)
        return ["debug=fast", "dataset=folder", f"dataset.root={root}", *extra]

    return prepare


def _mask_values(value: int) -> Callable[[Path], None]:
    def damage(root: Path) -> None:
        path = root / "train" / "masks" / "c1.png"
        write_image(path, (circle_mask(SIZE, SIZE, (16, 16), 8) > 0).astype(np.uint8) * value)

    return damage


def _float_image(low: float, high: float) -> Callable[[Path], None]:
    def damage(root: Path) -> None:
        (root / "valid" / "images" / "c2.png").unlink()
        pixels = np.linspace(low, high, SIZE * SIZE * 3, dtype=np.float32)
        tifffile.imwrite(root / "valid" / "images" / "c2.tif", pixels.reshape(SIZE, SIZE, 3))

    return damage


def _file(tmp: Path, name: str = "taken") -> Path:
    (tmp / name).write_text("a file, not a folder")
    return tmp / name


def _folder_with_a_file(tmp: Path) -> Path:
    (tmp / "out").mkdir()
    _file(tmp / "out", "earlier_export.onnx")
    return tmp / "out"


def _model_file(tmp: Path) -> Path:
    (tmp / "model.keras").write_bytes(b"PK not really a model")
    return tmp / "model.keras"


CASES = {
    # data that would be read wrong
    "mask_0_100_among_0_255": Case(
        "seg-train",
        _on_data(damage=_mask_values(100)),
        ("{tmp}/ds/train/masks/c1.png: values 0, 100 found", "all background"),
    ),
    "mask_0_1_beside_0_255_with_a_0_3_one": Case(
        "seg-train",
        _on_data(damage=_mask_values(3)),
        ("values 0, 3 found", "a binary mask holds 0 and 1, or 0 and 255"),
    ),
    "float_image_of_hounsfield_units": Case(
        "seg-train",
        _on_data(damage=_float_image(-1000.0, 3000.0)),
        ("{tmp}/ds/valid/images/c2.tif: float pixels from -1000 to 3000 found", "[0, 1]"),
    ),
    "float_image_of_0_255_levels": Case(
        "seg-train",
        _on_data(damage=_float_image(0.0, 255.0)),
        ("(0-255 levels saved as float?)",),
    ),
    # places that cannot be written, or are not what they should be
    "dataset_root_is_a_file": Case(
        "seg-train",
        lambda tmp: ["debug=fast", "dataset=folder", f"dataset.root={_file(tmp)}"],
        ("dataset.root={tmp}/taken: is a file, not a folder",),
    ),
    "demo_cache_under_a_file": Case(
        "seg-train",
        lambda tmp: ["debug=fast", f"paths.cache_dir={_file(tmp)}/cache"],
        ("{tmp}/taken is a file, not a folder",),
    ),
    "store_path_is_a_folder": Case(
        "seg-train",
        lambda tmp: ["debug=fast", f"mlflow.tracking_uri=sqlite:///{tmp}"],
        ("mlflow.tracking_uri=sqlite:///{tmp}: {tmp} is a folder", "name the database file"),
    ),
    "infer_output_under_a_file": Case(
        "seg-infer",
        lambda tmp: [
            f"checkpoint={_model_file(tmp)}",
            f"input={_dataset(tmp / 'ds') / 'test' / 'images'}",
            f"output={_file(tmp)}/masks",
        ],
        ("output={tmp}/taken/masks: {tmp}/taken is a file, not a folder",),
    ),
    "export_into_a_folder_not_empty": Case(
        "seg-export",
        lambda tmp: [
            f"checkpoint={_model_file(tmp)}",
            f"output={_folder_with_a_file(tmp)}",
        ],
        ("output={tmp}/out: not empty", "overwrite=true"),
    ),
    "plan_into_a_conf_dir_under_a_file": Case(
        "seg-plan",
        lambda tmp: [f"dataset.root={_dataset(tmp / 'ds')}", f"conf_dir={_file(tmp)}"],
        ("conf_dir={tmp}/taken/experiment: {tmp}/taken is a file, not a folder",),
    ),
    # config errors that must be found before a run opens
    "register_without_a_logged_model": Case(
        "seg-train",
        lambda tmp: ["debug=fast", "mlflow.log_model=false", "mlflow.register_model=cells"],
        ("mlflow.register_model: registers the run's logged model",),
    ),
    "batch_norm_momentum_of_1": Case(
        "seg-train",
        lambda tmp: ["debug=fast", "model.bn_momentum=1.0"],
        ("model.bn_momentum: must be in [0, 1), got 1.0",),
    ),
    "time_budget_of_nothing": Case(
        "seg-train",
        lambda tmp: ["debug=fast", "trainer.time_budget=0:00"],
        ("trainer.time_budget: minutes (e.g. 30) or H:MM",),
    ),
    "a_model_builder_as_the_loss": Case(
        "seg-train",
        lambda tmp: ["debug=fast", "loss._target_=seg.models.unet.build_unet"],
        ("loss._target_=seg.models.unet.build_unet: builds from seg.models.unet",),
    ),
}


@pytest.mark.parametrize("name", list(CASES))
def test_refused_in_one_line_before_anything_is_left(tmp_path: Path, name: str) -> None:
    case = CASES[name]
    overrides = case.prepare(tmp_path)
    proc = run_cli(case.command, *overrides, cwd=tmp_path, check=False, full_error=False)
    assert proc.returncode == 2, proc.stderr
    lines = error_lines(proc.stderr)
    assert len(lines) == 1, proc.stderr
    for text in case.expected:
        assert text.format(tmp=tmp_path) in lines[0], lines[0]
    assert "Traceback" not in proc.stderr
    assert runs_in_store(tmp_path) == [] and not (tmp_path / "mlflow.db").exists()
    hydra_files_only(tmp_path)
