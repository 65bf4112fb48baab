"""Bad input fails before any MLflow run opens or any output is written, with one line naming
the file or key and the fix; the image and mask formats that must work, work.

Most cases call the checks a run makes before it opens (seg.runner.preflight) on a config composed
by Hydra; a few drive the real CLIs in a subprocess to show the exit code, the single error line and
the empty store. Config errors (unknown keys, wrong types, unknown group choices, epochs / batch
size / learning rate <= 0) are tested in tests/test_config.py.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import pytest
import tifffile
from PIL import Image

from seg.cli import CONF_DIR
from seg.data.io import load_image, load_mask, read_raw
from seg.errors import CheckpointError, ConfigError, DatasetError, SegError
from seg.runner.context import Context
from seg.runner.preflight import check_files, check_model
from seg.runner.resume import find_run_to_resume
from tests.support.cli import run_cli, tracking_uri
from tests.support.compose import compose_run
from tests.support.data import circle_mask, image_from_mask, write_image
from tests.support.outcomes import error_lines, hydra_files_only, runs_in_store

SIZE = 32
UNKNOWN_RUN = "0123456789abcdef0123456789abcdef"


# --------------------------------------------------------------------------- helpers


def _truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _as_jpeg(png: Path) -> Path:
    """Replace a PNG by the same picture as JPEG (same stem)."""
    jpeg = png.with_suffix(".jpg")
    assert cv2.imwrite(str(jpeg), cv2.imread(str(png), cv2.IMREAD_UNCHANGED))
    png.unlink()
    return jpeg


def _fill_masks(root: Path, split: str, value: int) -> None:
    for mask in (root / split / "masks").iterdir():
        write_image(mask, np.full((SIZE, SIZE), value, np.uint8))


@dataclass(frozen=True)
class Case:
    """A bad input: ``damage`` spoils a good 3-pair dataset (root, tmp_path) and returns extra
    overrides; the check raises ``error`` whose one line holds every ``expected`` text (paths
    relative to tmp_path are written as {tmp})."""

    damage: Callable[[Path, Path], list[str] | None]
    expected: tuple[str, ...]
    error: type[SegError] = DatasetError
    config: str = "train"
    overrides: tuple[str, ...] = field(default=())


def _rm(path: str) -> Callable[[Path, Path], None]:
    return lambda root, tmp: shutil.rmtree(root / path)


def _unlink(*paths: str) -> Callable[[Path, Path], None]:
    def damage(root: Path, tmp: Path) -> None:
        for p in paths:
            (root / p).unlink()

    return damage


def _pairing(root: Path, tmp: Path) -> None:
    (root / "train/masks/sample_000.png").unlink()
    shutil.copy(root / "train/masks/sample_001.png", root / "train/masks/extra.png")


def _two_splits(root: Path, tmp: Path) -> None:
    (root / "train/masks/sample_000.png").unlink()
    (root / "valid/images/sample_002.png").unlink()


def _empty_images(root: Path, tmp: Path) -> None:
    for kind in ("images", "masks"):
        for f in (root / "train" / kind).iterdir():
            f.unlink()


def _write(relative: str, content: bytes) -> Callable[[Path, Path], None]:
    def damage(root: Path, tmp: Path) -> None:
        (root / relative).write_bytes(content)

    return damage


def _truncated(relative: str, jpeg: bool = False) -> Callable[[Path, Path], None]:
    def damage(root: Path, tmp: Path) -> None:
        path = root / relative
        _truncate(_as_jpeg(path) if jpeg else path)

    return damage


def _size_mismatch(root: Path, tmp: Path) -> None:
    write_image(root / "valid/masks/sample_001.png", circle_mask(SIZE, 40, (20, 16), 6))


def _color_coded(unknown: bool) -> Callable[[Path, Path], list[str]]:
    """Masks coloured red/green on black; ``unknown``: one mask also has blue pixels."""

    def damage(root: Path, tmp: Path) -> list[str]:
        for split in ("train", "valid", "test"):
            for mask in (root / split / "masks").iterdir():
                rgb = np.zeros((SIZE, SIZE, 3), np.uint8)
                rgb[:10] = (255, 0, 0)
                rgb[-10:] = (0, 255, 0)
                write_image(mask, rgb)
        if unknown:
            rgb[10:12] = (0, 0, 255)
            write_image(root / "train/masks/sample_002.png", rgb)
        return [
            "dataset.num_classes=3",
            "loss=cce_dice",
            "dataset.mask.colors=[{color:[0,0,0],label:0},{color:[255,0,0],label:1},"
            "{color:[0,255,0],label:2}]",
        ]

    return damage


def _missing_dir(key: str) -> Callable[[Path, Path], list[str]]:
    return lambda root, tmp: [f"{key}={tmp / 'nowhere'}"]


def _empty_input(root: Path, tmp: Path) -> list[str]:
    (tmp / "empty").mkdir()
    return [f"input={tmp / 'empty'}"]


def _corrupt_input(root: Path, tmp: Path) -> list[str]:
    folder = root / "test" / "images"
    (folder / "sample_001.png").write_bytes(b"")
    _truncate(folder / "sample_002.png")
    return [f"input={folder}"]


def _output_is_a_file(root: Path, tmp: Path) -> list[str]:
    (tmp / "taken.png").write_bytes(b"x")
    return [f"input={root / 'test/images'}", f"output={tmp / 'taken.png'}"]


def _garbage_keras(root: Path, tmp: Path) -> list[str]:
    (tmp / "model.keras").write_bytes(b"PK\x03\x04 not really a zip")
    return [f"checkpoint={tmp / 'model.keras'}"]


def _nothing(root: Path, tmp: Path) -> None:
    return None


def _recode_mask(relative: str, foreground: int | tuple[int, int, int]) -> Callable:
    """One mask of the dataset coded another way: its foreground ``foreground`` (a grey level,
    or an RGB colour) on 0, where the others hold 255 on 0."""

    def damage(root: Path, tmp: Path) -> None:
        path = root / relative
        marked = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE) > 0
        if isinstance(foreground, tuple):
            recoded = np.zeros((*marked.shape, 3), np.uint8)
            recoded[marked] = foreground
        else:
            recoded = (marked * foreground).astype(np.uint8)
        write_image(path, recoded)

    return damage


def _float_tiff_0_255(root: Path, tmp: Path) -> None:
    """An image saved as float TIFF holding 0-255 levels (read as [0, 1]: all white)."""
    png = root / "train/images/sample_001.png"
    levels = cv2.cvtColor(cv2.imread(str(png)), cv2.COLOR_BGR2RGB).astype(np.float32)
    tifffile.imwrite(png.with_suffix(".tif"), levels)
    png.unlink()


_MASK = "{tmp}/ds/train/masks"
CASES: dict[str, Case] = {
    # dataset folders
    "missing_dataset_root": Case(
        _missing_dir("dataset.root"),
        ("dataset.root={tmp}/nowhere: folder not found", "it must hold"),
    ),
    "missing_split_folder": Case(
        _rm("valid"),
        ("{tmp}/ds/valid: split folder not found", "check dataset.root and dataset.splits"),
    ),
    "missing_masks_folder": Case(
        _rm("train/masks"), (f"{_MASK}: folder not found", "check dataset.root")
    ),
    "empty_images_folder": Case(
        _empty_images, ("{tmp}/ds/train/images: no images", "check dataset.root")
    ),
    # pairing
    "image_without_mask_and_mask_without_image": Case(
        _pairing,
        (
            "sample_000.png",
            "have no mask",
            "extra.png",
            "have no image",
            "A mask must have its image's file stem",
        ),
    ),
    "pairing_errors_in_two_splits_at_once": Case(
        _two_splits,
        (
            "2 problems",
            "{tmp}/ds/train/images have no mask",
            "sample_002.png",
            "{tmp}/ds/valid/masks have no image",
        ),
    ),
    # files that do not decode
    "zero_byte_image": Case(
        _write("train/images/sample_001.png", b""),
        ("{tmp}/ds/train/images/sample_001.png: empty file (0 bytes)", "replace or remove it"),
    ),
    "zero_byte_mask": Case(
        _write("valid/masks/sample_000.png", b""),
        ("{tmp}/ds/valid/masks/sample_000.png: empty file", "replace or remove it"),
    ),
    "truncated_png_image": Case(
        _truncated("train/images/sample_002.png"),
        ("{tmp}/ds/train/images/sample_002.png: not a readable image", "replace or remove it"),
    ),
    "truncated_jpeg_image": Case(
        _truncated("valid/images/sample_000.png", jpeg=True),
        (
            "{tmp}/ds/valid/images/sample_000.jpg: not a readable",
            "truncated",
            "replace or remove it",
        ),
    ),
    "truncated_jpeg_mask": Case(
        _truncated("train/masks/sample_000.png", jpeg=True),
        ("{tmp}/ds/train/masks/sample_000.jpg: not a readable",),
    ),
    "non_image_file_named_png": Case(
        _write("train/images/sample_000.png", b"hello, world"),
        ("{tmp}/ds/train/images/sample_000.png: not a readable", "unsupported format"),
    ),
    # mask contents
    "mask_size_differs_from_image": Case(
        _size_mismatch,
        (
            "{tmp}/ds/valid/masks/sample_001.png: mask is 40x32 px",
            "sample_001.png is 32x32",
            "resize or replace it",
        ),
    ),
    "train_masks_all_background": Case(
        lambda root, tmp: _fill_masks(root, "train", 0),
        ("{tmp}/ds/train: no foreground pixel in all 3 masks", "check dataset.mask_threshold"),
    ),
    "train_masks_all_foreground": Case(
        lambda root, tmp: _fill_masks(root, "train", 255), ("every pixel is foreground", "inverted")
    ),
    "mask_colour_not_in_colour_map": Case(
        _color_coded(unknown=True),
        (
            "{tmp}/ds/train/masks/sample_002.png: mask colours not in dataset.mask.colors",
            "[0, 0, 255]",
            "dataset.mask.unknown_colors=background|nearest",
        ),
    ),
    "mask_values_beyond_num_classes": Case(
        lambda root, tmp: ["dataset.num_classes=3", "loss=cce_dice"],
        ("mask values 255 are not class indices 0..2", "check dataset.num_classes"),
    ),
    # files that decode but would be read wrong (silently, before these checks)
    "binary_mask_coded_0_2_among_0_255": Case(
        _recode_mask("train/masks/sample_001.png", 2),
        (
            "{tmp}/ds/train/masks/sample_001.png: values 0, 2 found",
            "this mask is all background",
            "a binary mask holds 0 and 1, or 0 and 255",
        ),
    ),
    "red_mask_among_white_ones": Case(
        _recode_mask("valid/masks/sample_002.png", (255, 0, 0)),
        (
            "{tmp}/ds/valid/masks/sample_002.png: colours (0, 0, 0), (255, 0, 0) found",
            "all background",
            "dataset.mask.colors",
        ),
    ),
    "float_tiff_image_holding_0_255": Case(
        _float_tiff_0_255,
        (
            "{tmp}/ds/train/images/sample_001.tif: float pixels from 0 to 2",
            "(0-255 levels saved as float?)",
            "read as [0, 1]",
        ),
    ),
    # other inputs of seg-train
    "large_image_missing": Case(
        lambda root, tmp: [f"callbacks.epoch_masks.large_image={tmp / 'slide.png'}"],
        (
            "callbacks.epoch_masks.large_image: {tmp}/slide.png: file not found",
            "name an image file, or null",
        ),
    ),
    # seg-eval
    "eval_data_dir_missing": Case(
        _missing_dir("data_dir"),
        ("data_dir={tmp}/nowhere: folder not found", "name a folder holding images/ and masks/"),
        config="eval",
    ),
    "eval_split_missing": Case(
        _nothing,
        ("{tmp}/ds/holdout: split folder not found",),
        config="eval",
        overrides=("split=holdout",),
    ),
    # seg-infer
    "infer_input_without_images": Case(
        _empty_input, ("input={tmp}/empty: no image files", "name a folder"), config="infer"
    ),
    "infer_input_zero_byte_and_truncated": Case(
        _corrupt_input,
        (
            "2 problems",
            "{tmp}/ds/test/images/sample_001.png: empty file",
            "{tmp}/ds/test/images/sample_002.png: not a readable image",
        ),
        config="infer",
    ),
    "infer_output_is_a_file": Case(
        _output_is_a_file, ("output={tmp}/taken.png", "not a folder"), config="infer"
    ),
}

MODEL_CASES: dict[str, Case] = {
    "image_size_not_a_multiple_unet": Case(
        _nothing,
        (
            "model.num_layers=3 needs image height and width divisible by 4",
            "got 30x30",
            "use dataset.image_size multiples of 4",
        ),
        ConfigError,
        overrides=("dataset.image_size=[30,30]",),
    ),
    "image_size_below_minimum_deeplabv3plus": Case(
        _nothing,
        ("model=deeplabv3plus", "at least 32x32", "larger dataset.image_size"),
        ConfigError,
        overrides=("model=deeplabv3plus", "dataset.image_size=[16,16]"),
    ),
    "image_size_not_a_multiple_swin_unet": Case(
        _nothing,
        ("model=swin_unet", "divisible by 8", "got 36x36"),
        ConfigError,
        overrides=("model=swin_unet", "dataset.image_size=[36,36]"),
    ),
    "checkpoint_file_missing": Case(
        lambda root, tmp: [f"checkpoint={tmp / 'gone.keras'}"],
        ("checkpoint={tmp}/gone.keras: file not found",),
        CheckpointError,
        config="eval",
    ),
    "checkpoint_unreadable_model_file": Case(
        _garbage_keras,
        (
            "checkpoint={tmp}/model.keras: {tmp}/model.keras is not a Keras model file",
            "save the model again",
        ),
        CheckpointError,
        config="infer",
    ),
    "checkpoint_run_id_not_in_store": Case(
        lambda root, tmp: [f"checkpoint={UNKNOWN_RUN}"],
        (f"checkpoint={UNKNOWN_RUN}: no such model in the tracking store", "check the run id"),
        CheckpointError,
        config="eval",
    ),
}


def _config(tmp_path: Path, case: Case, extra: list[str] | None):
    """The case's config (debug=fast for seg-train) on the dataset in tmp_path/ds; a key given
    twice keeps its last value."""
    root = tmp_path / "ds"
    overrides = [
        f"dataset.root={root}",
        f"mlflow.tracking_uri={tracking_uri(tmp_path)}",
        "dataset=folder",
        f"dataset.image_size=[{SIZE},{SIZE}]",
    ]
    if case.config == "train":
        overrides.insert(0, "debug=fast")
    else:
        overrides.append(f"checkpoint={tmp_path / 'model.keras'}")
    if case.config == "infer":
        overrides.append(f"input={root / 'test' / 'images'}")
    merged = {o.split("=", 1)[0]: o for o in [*overrides, *case.overrides, *(extra or [])]}
    return compose_run(case.config, list(merged.values()))


def _check_fails(
    tmp_path: Path, case: Case, make_dataset_tree, check: Callable[[object], None]
) -> str:
    make_dataset_tree(tmp_path / "ds", n=3, size=(SIZE, SIZE))
    cfg = _config(tmp_path, case, case.damage(tmp_path / "ds", tmp_path))
    with pytest.raises(case.error) as info:
        check(cfg)
    message = str(info.value)
    assert "\n" not in message  # one line
    for text in case.expected:
        assert text.format(tmp=tmp_path) in message, message
    # nothing half-written: no run in the store, no output directory
    assert runs_in_store(tmp_path) == []
    assert not (tmp_path / "out").exists()
    return message


@pytest.mark.parametrize("name", list(CASES))
def test_bad_files_fail_before_the_run_naming_file_and_fix(
    tmp_path: Path, make_dataset_tree, name: str
) -> None:
    _check_fails(tmp_path, CASES[name], make_dataset_tree, check_files)


@pytest.mark.parametrize("name", list(MODEL_CASES))
def test_bad_model_inputs_fail_before_the_run(tmp_path: Path, make_dataset_tree, name: str) -> None:
    case = MODEL_CASES[name]
    _check_fails(
        tmp_path,
        case,
        make_dataset_tree,
        lambda cfg: check_model(Context(cfg, tmp_path / "out", tracker=None)),
    )


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory) -> Path:
    """A .keras file of a tiny binary UNet (no preprocessing.json beside it)."""
    from seg.models.unet import build_unet

    path = tmp_path_factory.mktemp("model") / "tiny.keras"
    build_unet((SIZE, SIZE, 3), base_filters=2, num_layers=2).save(path)
    return path


def test_a_checkpoint_of_other_classes_fails_before_the_run(
    tmp_path: Path, make_dataset_tree, tiny_model: Path
) -> None:
    case = Case(
        _nothing,
        ("dataset.num_classes=3 but the model predicts 1 class", "set dataset.num_classes=1"),
        ConfigError,
        config="eval",
        overrides=(f"checkpoint={tiny_model}", "dataset.num_classes=3", "loss=cce_dice"),
    )
    _check_fails(
        tmp_path,
        case,
        make_dataset_tree,
        lambda cfg: check_model(Context(cfg, tmp_path / "out", tracker=None)),
    )


def test_a_good_checkpoint_is_loaded_once_for_the_stages(
    tmp_path: Path, make_dataset_tree, tiny_model: Path
) -> None:
    make_dataset_tree(tmp_path / "ds", n=2, size=(SIZE, SIZE))
    cfg = _config(tmp_path, Case(_nothing, (), config="eval"), [f"checkpoint={tiny_model}"])
    check_files(cfg)
    ctx = Context(cfg, tmp_path / "out", tracker=None)
    check_model(ctx)
    assert ctx.model is not None and ctx.model.output_shape == (None, SIZE, SIZE, 1)
    assert ctx.trained_or_loaded_model() is ctx.model  # the stages reuse it
    assert runs_in_store(tmp_path) == [] and not (tmp_path / "out").exists()


@pytest.mark.parametrize("model", sorted(p.stem for p in (Path(CONF_DIR) / "model").glob("*.yaml")))
def test_every_architecture_checks_its_size_without_building(model: str) -> None:
    from seg.training.factory import check_model_input_shape

    cfg = compose_run("train", ["debug=fast", f"model={model}"])
    assert check_model_input_shape(cfg.model, (SIZE, SIZE), 3, 1)  # stopped at the check


def test_resume_of_a_run_id_not_in_the_store(tmp_path: Path, make_dataset_tree) -> None:
    case = Case(
        _nothing,
        (f"trainer.resume={UNKNOWN_RUN}: no such run in sqlite:///{{tmp}}",),
        ConfigError,
        overrides=(f"trainer.resume={UNKNOWN_RUN}",),
    )
    _check_fails(tmp_path, case, make_dataset_tree, find_run_to_resume)


def test_degenerate_masks_of_a_test_split_only_warn(
    tmp_path: Path, make_dataset_tree, caplog
) -> None:
    """A test set of healthy cases (no foreground) is legitimate: evaluation goes on."""
    root = make_dataset_tree(tmp_path / "ds", n=3, size=(SIZE, SIZE))
    _fill_masks(root, "test", 0)
    cfg = _config(tmp_path, Case(_nothing, (), config="eval"), None)
    with caplog.at_level(logging.WARNING):
        check_files(cfg)
    assert f"{root / 'test'}: no foreground pixel in all 3 masks" in caplog.text


def test_a_class_absent_from_every_train_mask_warns(
    tmp_path: Path, make_dataset_tree, caplog
) -> None:
    root = make_dataset_tree(tmp_path / "ds", n=3, size=(SIZE, SIZE))
    extra = _color_coded(unknown=False)(root, tmp_path)
    for mask in (root / "train" / "masks").iterdir():  # red (class 1) on black only
        rgb = np.zeros((SIZE, SIZE, 3), np.uint8)
        rgb[:10] = (255, 0, 0)
        write_image(mask, rgb)
    with caplog.at_level(logging.WARNING):
        check_files(_config(tmp_path, Case(_nothing, ()), extra))
    assert "class(es) 2 never occur in its masks (dataset.num_classes=3)" in caplog.text


def test_verify_false_skips_decoding_but_not_pairing(tmp_path: Path, make_dataset_tree) -> None:
    root = make_dataset_tree(tmp_path / "ds", n=3, size=(SIZE, SIZE))
    (root / "train/images/sample_000.png").write_bytes(b"")
    check_files(_config(tmp_path, Case(_nothing, ()), ["dataset.verify=false"]))
    (root / "train/masks/sample_001.png").unlink()
    with pytest.raises(DatasetError, match="have no mask"):
        check_files(_config(tmp_path, Case(_nothing, ()), ["dataset.verify=false"]))


# --------------------------------------------------------------------------- formats that work


def _palette_png(path: Path, indices: np.ndarray, colours: list[tuple[int, int, int]]) -> Path:
    image = Image.fromarray(indices.astype(np.uint8), mode="P")
    flat = [c for rgb in colours for c in rgb]
    image.putpalette(flat + [0] * (768 - len(flat)))
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path)
    return path


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a > 0, b > 0
    return float((a & b).sum() / max(1, (a | b).sum()))


def _image_variants(rgb: np.ndarray) -> dict[str, Callable[[Path], Path]]:
    grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    rgba = np.dstack([rgb, np.full(grey.shape, 255, np.uint8)])
    levels = (grey // 64).astype(np.uint8)  # 4 palette entries
    return {
        "rgb_8bit": lambda p: write_image(p.with_suffix(".png"), rgb),
        "rgb_16bit": lambda p: write_image(p.with_suffix(".png"), rgb.astype(np.uint16) * 257),
        "grey": lambda p: write_image(p.with_suffix(".png"), grey),
        "grey_16bit": lambda p: write_image(p.with_suffix(".tif"), grey.astype(np.uint16) * 257),
        "rgba": lambda p: write_image(p.with_suffix(".png"), rgba),
        "palette": lambda p: _palette_png(
            p.with_suffix(".png"),
            levels,
            [(0, 0, 0), (90, 30, 30), (160, 120, 60), (250, 240, 200)],
        ),
        "jpeg": lambda p: write_image(p.with_suffix(".jpg"), rgb),
    }


def _mask_variants(truth: np.ndarray) -> dict[str, Callable[[Path], Path]]:
    ones = (truth > 0).astype(np.uint8)
    return {
        "0_255_png": lambda p: write_image(p.with_suffix(".png"), ones * 255),
        "0_1_png": lambda p: write_image(p.with_suffix(".png"), ones),
        "0_65535_png": lambda p: write_image(p.with_suffix(".png"), ones.astype(np.uint16) * 65535),
        "0_255_in_16bit_png": lambda p: write_image(
            p.with_suffix(".png"), ones.astype(np.uint16) * 255
        ),
        "0_255_jpeg": lambda p: write_image(
            p.with_suffix(".jpg"), ones * 255, IMWRITE_JPEG_QUALITY=60
        ),
        "0_1_jpeg": lambda p: write_image(p.with_suffix(".jpg"), ones),  # OpenCV's quality 95
        # indices 0/1 shown dark red on black: OpenCV's grey of that colour is 38, background
        "palette_indices": lambda p: _palette_png(
            p.with_suffix(".png"), ones, [(0, 0, 0), (128, 0, 0)]
        ),
        "rgb_white_on_black": lambda p: write_image(
            p.with_suffix(".png"), np.dstack([ones * 255] * 3)
        ),
    }


def test_image_and_mask_formats_that_must_work(tmp_path: Path) -> None:
    """Every image format with every mask format passes the checks of a training run, and
    each reads as the picture and the circle it holds."""
    rng = np.random.default_rng(0)
    truth = circle_mask(SIZE, SIZE, (15, 17), 9)
    rgb = image_from_mask(truth, rng)
    images, masks = _image_variants(rgb), _mask_variants(truth)
    root = tmp_path / "ds"
    for split in ("train", "valid"):
        for i, (image_kind, mask_kind) in enumerate(
            (a, b) for a in images for b in list(masks)[:: 1 if split == "train" else 3]
        ):
            name = f"{i:02d}_{image_kind}_{mask_kind}"
            images[image_kind](root / split / "images" / name)
            masks[mask_kind](root / split / "masks" / name)
    cfg = _config(tmp_path, Case(_nothing, (), overrides=("stages=[train]",)), None)
    check_files(cfg)  # nothing raised
    for mask in (root / "train" / "masks").iterdir():
        labels = load_mask(mask, None, 0.5)
        assert _iou(labels, truth) > 0.9, mask.name
    for image in (root / "valid" / "images").iterdir():
        loaded = load_image(image, (SIZE, SIZE), 3)
        assert loaded.shape == (SIZE, SIZE, 3) and 0.0 <= loaded.min() <= loaded.max() <= 1.0
        # the same picture whatever the format (palette: 4 levels; jpeg: compression)
        assert np.corrcoef(loaded.mean(-1).ravel(), rgb.mean(-1).ravel())[0, 1] > 0.8, image


def test_0_1_jpeg_mask_is_read_as_labels_not_as_dark_grey(tmp_path: Path) -> None:
    """JPEG noise lifts a 0/1 mask's maximum above 1: the old "max <= 1 means 0/1" rule read
    it on the 0..255 scale and found no foreground at all. (Below quality ~55 JPEG erases a 0/1
    mask altogether; the train split check then reports masks without foreground.)"""
    truth = circle_mask(64, 64, (31, 33), 18) > 0
    path = write_image(tmp_path / "m.jpg", truth.astype(np.uint8))  # OpenCV's quality 95
    raw = read_raw(path)
    assert raw.max() > 1  # the file really is noisy
    assert _iou(load_mask(path, None, 0.5), truth) > 0.95


def test_palette_index_masks_give_their_indices(tmp_path: Path) -> None:
    labels = np.zeros((20, 30), np.uint8)
    labels[:, 10:20] = 1
    labels[:, 20:] = 2
    palette = [(0, 0, 0), (200, 30, 30), (30, 30, 200)]
    path = _palette_png(tmp_path / "idx.png", labels, palette)
    assert read_raw(path).shape == (20, 30, 3)  # as an image: its colours
    np.testing.assert_array_equal(load_mask(path, None, 0.5, num_classes=3), labels)
    # colour-coded masks keep the colours: the colour map decides
    from seg.data.preprocess import MaskPreprocess

    spec = MaskPreprocess(colors=(((0, 0, 0), 0), ((200, 30, 30), 2), ((30, 30, 200), 1)))
    np.testing.assert_array_equal(load_mask(path, None, 0.5, 3, spec), (3 - labels) % 3)


# --------------------------------------------------------------------------- real CLIs


@pytest.mark.slow
def test_seg_train_with_a_bad_dataset_exits_2_before_any_run(
    tmp_path: Path, make_dataset_tree
) -> None:
    root = make_dataset_tree(tmp_path / "ds", n=2, size=(SIZE, SIZE))
    (root / "train/masks/sample_001.png").unlink()
    (root / "valid/images/sample_000.png").write_bytes(b"")
    proc = run_cli(
        "seg-train",
        "debug=fast",
        "dataset=folder",
        f"dataset.root={root}",
        f"dataset.image_size=[{SIZE},{SIZE}]",
        cwd=tmp_path,
        check=False,
    )
    assert proc.returncode == 2
    (line,) = error_lines(proc.stderr)
    assert "sample_001.png" in line and "no mask" in line
    assert f"{root / 'valid/images/sample_000.png'}: empty file" in line
    assert "Traceback" not in proc.stderr
    assert runs_in_store(tmp_path) == []
    hydra_files_only(tmp_path)


@pytest.mark.slow
def test_seg_eval_with_an_unknown_run_id_exits_2_before_any_run(tmp_path: Path) -> None:
    proc = run_cli(
        "seg-eval",
        f"checkpoint={UNKNOWN_RUN}",
        "dataset.image_size=[32,32]",
        "dataset.limit=4",
        cwd=tmp_path,
        check=False,
    )
    assert proc.returncode == 2
    (line,) = error_lines(proc.stderr)
    assert f"checkpoint={UNKNOWN_RUN}: no such model in the tracking store" in line
    assert runs_in_store(tmp_path) == []
    hydra_files_only(tmp_path)


@pytest.mark.slow
def test_seg_infer_with_a_corrupt_input_exits_2_writing_nothing(tmp_path: Path) -> None:
    images = tmp_path / "in"
    write_image(images / "good.png", np.zeros((SIZE, SIZE, 3), np.uint8))
    (images / "bad.jpg").write_bytes(b"\xff\xd8\xff\xe0 cut short")
    out = tmp_path / "predicted"
    proc = run_cli(
        "seg-infer",
        f"checkpoint={tmp_path / 'model.keras'}",
        f"input={images}",
        f"output={out}",
        cwd=tmp_path,
        check=False,
    )
    assert proc.returncode == 2
    (line,) = error_lines(proc.stderr)
    assert f"{images / 'bad.jpg'}: not a readable image" in line
    assert not out.exists()
    assert runs_in_store(tmp_path) == []
    hydra_files_only(tmp_path)


@pytest.mark.slow
def test_a_sweep_job_with_a_bad_dataset_is_a_failed_child(
    tmp_path: Path, make_dataset_tree
) -> None:
    """Sweep jobs check inside their run: the bad job shows in the sweep as a FAILED child."""
    root = make_dataset_tree(tmp_path / "ds", n=2, size=(SIZE, SIZE))
    (root / "train/masks/sample_001.png").unlink()
    proc = run_cli(
        "seg-train",
        "-m",
        "debug=fast",
        "dataset=folder",
        f"dataset.root={root}",
        f"dataset.image_size=[{SIZE},{SIZE}]",
        "model.base_filters=4",
        cwd=tmp_path,
        check=False,
    )
    assert proc.returncode == 1  # the sweep ran to its end and says a job failed
    runs = runs_in_store(tmp_path)
    (child,) = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    assert child.info.status == "FAILED"
    assert "sample_001.png" in child.data.tags["seg.error"]


def test_readings_applied_to_a_dataset_are_said_in_one_line_with_a_count(
    tmp_path: Path, make_dataset_tree, caplog
) -> None:
    """Photos turned by their EXIF orientation, whose masks were drawn on the turned picture,
    fit them; masks of 0/1 beside masks of 0/255 both read as binary: each said once."""
    root = make_dataset_tree(tmp_path / "ds", n=3, size=(SIZE, SIZE))
    rng = np.random.default_rng(1)
    shown_mask = circle_mask(SIZE, SIZE + 8, (20, 14), 7)  # 40 wide, 32 high as displayed
    stored = np.rot90(image_from_mask(shown_mask, rng), 1)  # the camera's pixels: 32 x 40
    exif = Image.Exif()
    exif[0x0112] = 6  # shown turned 90 degrees clockwise
    (root / "train/images/sample_000.png").unlink()
    Image.fromarray(np.ascontiguousarray(stored)).save(
        root / "train/images/sample_000.jpg", exif=exif, quality=95
    )
    write_image(root / "train/masks/sample_000.png", shown_mask)
    write_image(root / "train/masks/sample_001.png", (circle_mask(SIZE, SIZE, (9, 9), 5) > 0) * 1)
    cfg = _config(tmp_path, Case(_nothing, (), overrides=("stages=[train]",)), None)
    with caplog.at_level(logging.INFO, logger="seg"):
        check_files(cfg)  # nothing raised: the turned photo fits its mask
    said = [r.getMessage() for r in caplog.records]
    assert any("1 files carry an EXIF orientation" in m for m in said), said
    assert any("binary masks of 2 conventions" in m and "1 hold 0/1" in m for m in said), said
    loaded = load_image(root / "train/images/sample_000.jpg", None, 3)
    assert loaded.shape == (SIZE, SIZE + 8, 3)
