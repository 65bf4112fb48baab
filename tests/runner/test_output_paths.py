"""No input name writes outside the output folder: seg-infer names outputs after input stems
only; datasets_prep keeps annotation-named files inside --src and outputs inside --dst."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import cv2
import keras
import numpy as np
import pytest

from datasets_prep import polygons
from seg.data.io import write_png
from seg.errors import DatasetError, SegError
from seg.inference.outputs import OutputStyle, collect_inputs, write_outputs
from seg.inference.predictor import Prediction
from tests.support.cli import run_cli
from tests.support.data import write_image

SIZE = 16
KINDS = ("masks", "overlays", "contours", "colored_masks")
# Hostile but legal file names; each must give <stem>.png in every output folder.
HOSTILE = [
    "..png",
    "...png",
    "-rf.png",
    "a b.png",
    "ünïcødé 画像.png",
    "$(touch x).png",
    "x;rm -rf ~.png",
    "a\\..\\..\\b.png",
]


def _files_under(root: Path) -> set[Path]:
    return {p.resolve() for p in root.rglob("*") if p.is_file()}


def _prediction(path: Path) -> Prediction:
    rng = np.random.default_rng(0)
    return Prediction(
        path, rng.random((SIZE, SIZE, 3), np.float32), rng.random((SIZE, SIZE, 1), np.float32)
    )


def test_outputs_are_named_after_the_stem_and_stay_inside(tmp_path: Path) -> None:
    out = tmp_path / "sandbox" / "out"
    for name in HOSTILE:
        written = write_outputs(_prediction(tmp_path / "in" / name), out, OutputStyle())
        stem = Path(name).stem
        assert {p.parent.name for p in written.values()} == set(KINDS)
        for path in written.values():
            assert path.name == f"{stem}.png" and path.parent.parent == out
            assert path.resolve().is_relative_to(out.resolve())
    assert all(p.is_relative_to(out.resolve()) for p in _files_under(tmp_path / "sandbox"))
    assert len(list((out / "masks").iterdir())) == len(HOSTILE)  # no temporary files left


def test_a_symlink_in_the_output_folder_is_replaced_not_followed(tmp_path: Path) -> None:
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    link = tmp_path / "out" / "masks" / "a.png"
    link.parent.mkdir(parents=True)
    link.symlink_to(victim)
    write_png(link, np.zeros((4, 4), np.uint8))
    assert victim.read_text() == "precious"
    assert not link.is_symlink() and cv2.imread(str(link)) is not None


def test_inputs_sharing_a_stem_are_refused_naming_both(tmp_path: Path) -> None:
    """a.png and a.jpg (or dir1/a.png and dir2/a.png from a glob) would write one file."""
    image = np.zeros((SIZE, SIZE, 3), np.uint8)
    for rel in ("one/a.png", "one/a.jpg", "two/a.png", "two/b.png"):
        write_image(tmp_path / rel, image)
    with pytest.raises(
        DatasetError,
        match=re.escape(
            f"input={tmp_path / 'one'}: {tmp_path / 'one' / 'a.jpg'} and "
            f"{tmp_path / 'one' / 'a.png'} have the same name stem 'a'"
        ),
    ):
        collect_inputs(str(tmp_path / "one"))
    with pytest.raises(DatasetError, match="have the same name stem 'a'"):
        collect_inputs(str(tmp_path / "*" / "a.png"))
    assert collect_inputs(str(tmp_path / "two" / "*.png")) == [
        tmp_path / "two" / "a.png",
        tmp_path / "two" / "b.png",
    ]


@pytest.mark.slow
def test_seg_infer_with_hostile_names_writes_only_inside_the_output(tmp_path: Path) -> None:
    """A glob over hostile names and a symlink to an image outside the input folder."""
    model = keras.Sequential(
        [keras.Input((SIZE, SIZE, 3)), keras.layers.Conv2D(1, 1, activation="sigmoid")]
    )
    model.save(tmp_path / "model.keras")
    rng = np.random.default_rng(0)
    inputs, outside = tmp_path / "in", tmp_path / "elsewhere" / "secret.png"
    write_image(outside, rng.integers(0, 255, (SIZE, SIZE, 3), np.uint8))
    for name in HOSTILE:
        write_image(inputs / name, rng.integers(0, 255, (SIZE, SIZE, 3), np.uint8))
    os.symlink(outside, inputs / "link.png")
    before = _files_under(tmp_path)
    out = tmp_path / "sandbox" / "out"
    run_cli(
        "seg-infer",
        f"checkpoint={tmp_path / 'model.keras'}",
        f"input={inputs}/*.png",
        f"output={out}",
        cwd=tmp_path,
    )
    stems = sorted([*(Path(n).stem for n in HOSTILE if not n.startswith(".")), "link"])
    for kind in KINDS:  # a glob's '*' skips hidden names, as a folder input does
        assert sorted(p.stem for p in (out / kind).iterdir()) == stems
    new = _files_under(tmp_path) - before
    written = {p for p in new if "sandbox" in p.parts}
    assert len(written) == len(KINDS) * len(stems)
    # Everything else is the run's own: Hydra's run dir, the store and its artifacts.
    own = [(tmp_path / d).resolve() for d in ("outputs", "mlruns", "mlartifacts", "cache")]
    others = [p for p in new - written if not p.name.startswith("mlflow.db")]
    assert all(any(p.is_relative_to(d) for d in own) for p in others), sorted(others)
    assert outside.read_bytes() and (inputs / "-rf.png").is_file()


# --- datasets_prep --------------------------------------------------------------------------


def _coco(src: Path, file_name: str) -> Path:
    coco = {
        "images": [{"id": 1, "file_name": file_name, "height": 8, "width": 8}],
        "annotations": [
            {"id": 1, "image_id": 1, "category_id": 1, "segmentation": [[1, 1, 6, 1, 6, 6]]}
        ],
        "categories": [{"id": 1, "name": "cell"}],
    }
    src.mkdir(parents=True, exist_ok=True)
    (src / "annotations.json").write_text(json.dumps(coco))
    return src / "annotations.json"


@pytest.fixture
def evil_image(tmp_path: Path) -> Path:
    """An image outside every source folder that a hostile annotation points at."""
    return write_image(tmp_path / "evil.png", np.full((8, 8, 3), 9, np.uint8))


@pytest.mark.parametrize("file_name", ["../../evil.png", "images/../../../evil.png", "ABS"])
def test_coco_file_names_cannot_leave_the_images_folder(
    tmp_path: Path, evil_image: Path, file_name: str
) -> None:
    file_name = str(evil_image) if file_name == "ABS" else file_name
    src = tmp_path / "a" / "b"
    (src / "images").mkdir(parents=True)
    annotations = _coco(src, file_name)
    with pytest.raises(SegError) as err:
        polygons.main(["--src", str(annotations), "--dst", str(tmp_path / "dst")])
    assert str(err.value) == (
        f"{annotations}: image file_name {file_name!r} leads outside the "
        "images folder; COCO file names are relative to it (--images-dir)"
    )
    assert not (tmp_path / "dst").exists()


def _labelme(src: Path, image_path: str) -> Path:
    record = {
        "shapes": [{"label": "cell", "points": [[1, 1], [6, 1], [6, 6]]}],
        "imagePath": image_path,
        "imageData": None,
    }
    (src / "x.json").write_text(json.dumps(record))
    return src / "x.json"


def test_labelme_image_paths_stay_inside_src(tmp_path: Path, evil_image: Path) -> None:
    src = tmp_path / "src" / "json"
    src.mkdir(parents=True)
    for image_path in ("../../evil.png", str(evil_image)):
        json_file = _labelme(src, image_path)
        with pytest.raises(SegError) as err:
            polygons.main(["--src", str(src), "--dst", str(tmp_path / "dst")])
        assert str(err.value) == (
            f"{json_file}: imagePath {image_path!r} leads outside "
            f"--src {src}; keep the images inside the source folder"
        )
    # A relative path up from the JSON's folder is fine while it stays inside --src.
    write_image(src.parent / "images" / "cell 1.png", np.full((8, 8, 3), 9, np.uint8))
    (src / "sub").mkdir()
    _labelme(src / "sub", "../../images/cell 1.png")
    (src / "x.json").unlink()
    polygons.main(
        ["--src", str(src.parent), "--dst", str(tmp_path / "dst"), "--fractions", "1", "0", "0"]
    )
    assert sorted(p.name for p in (tmp_path / "dst").rglob("*.png")) == ["cell 1.png"] * 2


@pytest.mark.parametrize("name", ["..png", ".hidden.png"])
def test_annotation_names_that_would_hide_or_escape_are_refused(tmp_path: Path, name: str) -> None:
    """'..png' has the stem '.': written, it would be a hidden file seg's loader skips."""
    src = tmp_path / "coco"
    write_image(src / "images" / name, np.full((8, 8, 3), 9, np.uint8))
    _coco(src, name)
    with pytest.raises(SegError) as err:
        polygons.main(["--src", str(src), "--dst", str(tmp_path / "dst")])
    stem = Path(name).stem
    assert str(err.value) == (
        f"{src / 'images' / name}: output name {stem!r} is not a plain file name (it is "
        "empty, starts with '.' or holds a path separator); rename the source file"
    )
    assert not list((tmp_path / "dst").rglob("*.png"))
