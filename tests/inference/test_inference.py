"""Batched inference on files (seg.inference.predictor) and overlays (seg.inference.visualize)."""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import keras
import numpy as np
import pytest

from seg.data.classes import DEFAULT_PALETTE
from seg.data.io import load_image
from seg.errors import DatasetError
from seg.inference.outputs import OutputStyle, collect_inputs, write_outputs
from seg.inference.predictor import Prediction, model_geometry, predict_files, to_labels
from seg.inference.visualize import overlay, to_uint8_rgb
from tests.support.data import write_image

# --------------------------------------------------------------------------- labels and pictures


def test_to_labels_binary_and_multiclass() -> None:
    probs = np.array([[0.2, 0.5], [0.51, 0.9]], np.float32)[..., None]
    labels = to_labels(probs)
    assert labels.dtype == np.uint8 and labels.shape == (2, 2)
    np.testing.assert_array_equal(labels, [[0, 0], [1, 1]])
    np.testing.assert_array_equal(to_labels(probs, threshold=0.3), [[0, 1], [1, 1]])

    softmax = np.zeros((2, 3, 3), np.float32)
    softmax[..., 0] = 0.5
    softmax[0, 1] = (0.1, 0.6, 0.3)
    softmax[1, 2] = (0.2, 0.2, 0.6)
    labels = to_labels(softmax)
    assert labels.shape == (2, 3) and labels.dtype == np.uint8
    np.testing.assert_array_equal(labels, [[0, 1, 0], [0, 0, 2]])


@pytest.mark.parametrize("white", [np.float32(1.0), np.uint8(255)])
@pytest.mark.parametrize("color", [(255, 0, 0), (0, 200, 255), (10, 10, 10)])
def test_overlay_of_white_image_never_wraps(white, color: tuple[int, int, int]) -> None:
    image = np.full((6, 8, 3), white)
    mask = np.zeros((6, 8), bool)
    mask[2:4, 3:6] = True
    out = overlay(image, mask, color, alpha=0.5)
    assert out.dtype == np.uint8 and out.shape == (6, 8, 3)
    for c in range(3):
        inside = out[..., c][mask]
        assert inside.min() >= min(color[c], 255) and inside.max() <= 255
        assert abs(int(inside[0]) - (255 + color[c]) / 2) <= 0.5
    np.testing.assert_array_equal(out[~mask], 255)


def test_overlay_leaves_unmasked_pixels_and_accepts_grey_and_channel_masks() -> None:
    rng = np.random.default_rng(0)
    image = rng.random((5, 7)).astype(np.float32)  # grey float
    mask = np.zeros((5, 7, 1), np.uint8)
    mask[1, 2, 0] = 1
    out = overlay(image, mask, (0, 255, 0), alpha=0.4)
    assert out.shape == (5, 7, 3)
    expected = to_uint8_rgb(image)
    keep = np.ones((5, 7), bool)
    keep[1, 2] = False
    np.testing.assert_array_equal(out[keep], expected[keep])
    blended = 0.6 * expected[1, 2].astype(float) + 0.4 * np.array([0, 255, 0])
    np.testing.assert_array_equal(out[1, 2], np.rint(blended))
    # alpha 0: the image unchanged; the input is never modified in place.
    before = image.copy()
    np.testing.assert_array_equal(overlay(image, mask, (255, 0, 0), 0.0), expected)
    np.testing.assert_array_equal(image, before)


def test_error_overlay_colours_each_kind_of_pixel() -> None:
    from seg.inference.visualize import ERROR_COLORS, error_overlay

    image = np.zeros((1, 5, 3), np.float32)
    truth = np.array([[0, 1, 0, 1, 2]])
    pred = np.array([[0, 1, 2, 0, 1]])  # background, correct, FP, FN, wrong class
    out = error_overlay(image, truth, pred, alpha=1.0)
    expected = [
        (0, 0, 0),
        *(ERROR_COLORS[k] for k in ("correct", "false_positive", "false_negative", "wrong_class")),
    ]
    np.testing.assert_array_equal(out[0], expected)


def test_to_uint8_rgb_rounds_and_clips() -> None:
    values = np.array([[-0.2, 0.0, 0.304, 0.5], [0.999, 1.0, 1.2, 3.0]], np.float32)
    out = to_uint8_rgb(values)
    assert out.dtype == np.uint8 and out.shape == (2, 4, 3)
    np.testing.assert_array_equal(out[..., 0], [[0, 0, 78, 128], [255, 255, 255, 255]])
    np.testing.assert_array_equal(out[..., 0], out[..., 2])
    assert to_uint8_rgb(values[..., None]).shape == (2, 4, 3)
    rgb = np.arange(24, dtype=np.uint8).reshape(2, 4, 3)
    np.testing.assert_array_equal(to_uint8_rgb(rgb), rgb)  # uint8 passes through
    np.testing.assert_array_equal(to_uint8_rgb(np.array([[True, False]]))[0, :, 0], [255, 0])


# --------------------------------------------------------------------------- prediction


@pytest.fixture(scope="module")
def red_model() -> keras.Model:
    """16x16x3 -> 16x16x1 with p = sigmoid(8 * (red - 0.5)): a pixel-wise 'red detector'."""
    model = keras.Sequential(
        [keras.Input((16, 16, 3)), keras.layers.Conv2D(1, 1, activation="sigmoid")]
    )
    model.layers[-1].set_weights(
        [np.array([8.0, 0.0, 0.0], np.float32).reshape(1, 1, 3, 1), np.array([-4.0], np.float32)]
    )
    return model


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


@pytest.fixture
def odd_sized_files(tmp_path: Path) -> list[Path]:
    """Three RGB files of different sizes: red left half (20x30), uniform (40x16, 12x12)."""
    half = np.zeros((20, 30, 3), np.uint8)
    half[:, :15, 0] = 255
    uniform = np.zeros((40, 16, 3), np.uint8)
    uniform[..., 0] = 191
    small = np.full((12, 12, 3), 64, np.uint8)
    return [
        write_image(tmp_path / "in" / "a_half.png", half),
        write_image(tmp_path / "in" / "b_tall.png", uniform),
        write_image(tmp_path / "in" / "c_small.png", small),
    ]


def test_model_geometry(red_model) -> None:
    assert model_geometry(red_model) == ((16, 16), 3)


@pytest.mark.parametrize("batch_size", [1, 2, 4])
def test_predict_files_returns_probabilities_at_original_size(
    red_model, odd_sized_files: list[Path], batch_size: int
) -> None:
    preds = list(predict_files(red_model, odd_sized_files, batch_size=batch_size, progress=False))
    assert [p.path for p in preds] == odd_sized_files
    shapes = [(20, 30), (40, 16), (12, 12)]
    for pred, path, shape in zip(preds, odd_sized_files, shapes, strict=True):
        assert pred.probs.shape == (*shape, 1) and pred.probs.dtype == np.float32
        assert pred.image.shape == (*shape, 3)
        np.testing.assert_allclose(pred.image, load_image(path, None, 3), atol=1e-6)
        assert pred.probs.min() >= 0.0 and pred.probs.max() <= 1.0
    half, tall, small = (p.probs[..., 0] for p in preds)
    # Left half red -> high probability, right half black -> low: rows and columns not swapped.
    high, low = _sigmoid(4.0), _sigmoid(-4.0)
    np.testing.assert_allclose(half[:, :12], high, atol=1e-4)
    np.testing.assert_allclose(half[:, 18:], low, atol=1e-4)
    np.testing.assert_allclose(tall, _sigmoid(8 * 191 / 255 - 4), atol=1e-4)
    np.testing.assert_allclose(small, _sigmoid(8 * 64 / 255 - 4), atol=1e-4)


def test_predict_files_grey_model_and_progress(tmp_path: Path, odd_sized_files, capsys) -> None:
    model = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Conv2D(2, 1)])
    model.layers[-1].set_weights(
        [np.array([[1.0, -1.0]], np.float32).reshape(1, 1, 1, 2), np.zeros(2, np.float32)]
    )
    preds = list(predict_files(model, odd_sized_files[1:], batch_size=3, progress=True))
    assert [p.probs.shape for p in preds] == [(40, 16, 2), (12, 12, 2)]
    assert [p.image.shape for p in preds] == [(40, 16, 1), (12, 12, 1)]
    np.testing.assert_allclose(preds[1].probs[..., 0], 64 / 255, atol=1e-4)
    assert "inference" in capsys.readouterr().err


# --------------------------------------------------------------------------- writing


def _inside(path: Path, folder: Path) -> bool:
    return Path(os.path.realpath(path)).is_relative_to(os.path.realpath(folder))


def _prediction(name: str, shape: tuple[int, int] = (10, 14), classes: int = 1) -> Prediction:
    rng = np.random.default_rng(0)
    probs = rng.random((*shape, classes)).astype(np.float32)
    if classes > 1:
        probs /= probs.sum(-1, keepdims=True)
    return Prediction(Path(name), rng.random((*shape, 3)).astype(np.float32), probs)


def test_write_outputs_masks_overlays_and_probabilities(tmp_path: Path) -> None:
    pred = _prediction("some/dir/case_01.jpg")
    out = tmp_path / "out"
    written = write_outputs(pred, out, OutputStyle(threshold=0.5, save_probabilities=True))
    assert written == {
        "mask": out / "masks" / "case_01.png",
        "overlay": out / "overlays" / "case_01.png",
        "contours": out / "contours" / "case_01.png",
        "colored_mask": out / "colored_masks" / "case_01.png",
        "probabilities": out / "probabilities" / "case_01.png",
    }
    mask = cv2.imread(str(written["mask"]), cv2.IMREAD_UNCHANGED)
    assert mask.dtype == np.uint8 and mask.shape == (10, 14)
    np.testing.assert_array_equal(mask, (pred.probs[..., 0] > 0.5) * 255)

    shown = cv2.imread(str(written["overlay"]), cv2.IMREAD_UNCHANGED)
    assert shown.shape == (10, 14, 3)
    expected = overlay(pred.image, mask > 0, (255, 0, 0), 0.4)
    np.testing.assert_array_equal(cv2.cvtColor(shown, cv2.COLOR_BGR2RGB), expected)

    probs = cv2.imread(str(written["probabilities"]), cv2.IMREAD_UNCHANGED)
    assert probs.dtype == np.uint16 and probs.shape == (10, 14)
    np.testing.assert_allclose(probs / 65535, pred.probs[..., 0], atol=1 / 65535)

    colored = _read_rgb(written["colored_mask"])  # foreground in overlay_color, rest black
    np.testing.assert_array_equal(colored[mask > 0], np.tile([255, 0, 0], ((mask > 0).sum(), 1)))
    assert not colored[mask == 0].any()
    drawn = _read_rgb(written["contours"])
    changed = (drawn != to_uint8_rgb(pred.image)).any(-1)
    assert changed.any() and (drawn[changed] == (255, 0, 0)).all()
    # outlines lie on boundary pixels of the objects (OpenCV: outside the image is background)
    inner = cv2.erode(
        (mask > 0).astype(np.uint8),
        np.ones((3, 3), np.uint8),
        borderType=cv2.BORDER_CONSTANT,
        borderValue=0,
    )
    assert not (changed & (inner > 0)).any() and not (changed & (mask == 0)).any()


def test_write_outputs_optional_pictures_can_be_switched_off(tmp_path: Path) -> None:
    style = OutputStyle(save_contours=False, save_colored_masks=False)
    assert set(write_outputs(_prediction("a.png"), tmp_path, style)) == {"mask", "overlay"}


def _read_rgb(path: Path) -> np.ndarray:
    return cv2.cvtColor(cv2.imread(str(path), cv2.IMREAD_UNCHANGED), cv2.COLOR_BGR2RGB)


@pytest.mark.parametrize("configured", [None, ((9, 9, 9), (0, 0, 255), (0, 255, 0))])
def test_write_outputs_multiclass_index_colour_masks_and_overlays(
    tmp_path: Path, configured
) -> None:
    pred = _prediction("m.png", classes=3)
    written = write_outputs(pred, tmp_path, OutputStyle(overlay_alpha=0.5, palette=configured))
    assert set(written) == {"mask", "overlay", "colored_mask", "contours"}
    assert written["colored_mask"] == tmp_path / "colored_masks" / "m.png"
    assert not (tmp_path / "probabilities").exists()
    labels = cv2.imread(str(written["mask"]), cv2.IMREAD_UNCHANGED)
    assert labels.ndim == 2 and labels.dtype == np.uint8  # an index PNG, as datasets store them
    np.testing.assert_array_equal(labels, pred.probs.argmax(-1))
    assert set(np.unique(labels)) == {0, 1, 2}
    palette = np.array(configured or DEFAULT_PALETTE[:3], np.uint8)
    colored = _read_rgb(written["colored_mask"])
    for k in range(3):
        assert (colored[labels == k] == palette[k]).all(), k
    shown = _read_rgb(written["overlay"]).astype(float)
    image = to_uint8_rgb(pred.image).astype(float)
    np.testing.assert_array_equal(shown[labels == 0], image[labels == 0])  # background as is
    for k in (1, 2):
        blended = np.rint(0.5 * image[labels == k] + 0.5 * palette[k])
        np.testing.assert_array_equal(shown[labels == k], blended)


@pytest.mark.parametrize(
    "name",
    [
        "..\u2215evil.png",  # division slash: looks like a separator, is not one
        "sub/../x.png",
        "..\\..\\evil.png",
        "{tmp}/absolute/../escape.png",
        "a/..",
        "..",
        "../../../../escape.png",
    ],
)
def test_write_outputs_cannot_escape_out_dir(tmp_path: Path, name: str) -> None:
    # Deep out_dir, and absolute names under tmp_path: even a broken implementation that lets a
    # name escape out_dir writes inside tmp_path, never elsewhere on the machine.
    out = tmp_path / "d1" / "d2" / "d3" / "d4" / "out"
    name = name.replace("{tmp}", str(tmp_path))
    written = write_outputs(_prediction(name), out, OutputStyle(save_probabilities=True))
    assert set(written) == {"mask", "overlay", "probabilities", "contours", "colored_mask"}
    for path in written.values():
        assert path.is_file()
        assert _inside(path, out), path
    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert len(files) == 5 and all(_inside(p, out) for p in files)


# --------------------------------------------------------------------------- inputs


def test_collect_inputs_folder_glob_and_file(tmp_path: Path) -> None:
    folder = tmp_path / "imgs"
    for name in ("b.png", "a.jpg", "c.PNG"):
        write_image(folder / name, np.zeros((4, 4), np.uint8))
    (folder / "notes.txt").write_text("x")
    (folder / ".hidden.png").write_bytes(b"")
    (folder / "sub.png").mkdir()  # a folder named like an image is not an input
    assert collect_inputs(str(folder)) == [folder / "a.jpg", folder / "b.png", folder / "c.PNG"]
    assert collect_inputs(str(folder / "*.png")) == [folder / "b.png"]
    assert collect_inputs(str(folder / "*")) == [
        folder / "a.jpg",
        folder / "b.png",
        folder / "c.PNG",
    ]
    assert collect_inputs(str(folder / "a.jpg")) == [folder / "a.jpg"]


@pytest.mark.parametrize("spec", ["missing_dir", "empty_dir", "empty_dir/*.png", "none.png"])
def test_collect_inputs_nothing_found_names_the_input(tmp_path: Path, spec: str) -> None:
    (tmp_path / "empty_dir").mkdir()
    (tmp_path / "empty_dir" / "readme.txt").write_text("x")
    full = str(tmp_path / spec)
    with pytest.raises(DatasetError) as info:
        collect_inputs(full)
    assert full in str(info.value)


def test_the_epoch_grid_is_large_enough_and_labelled() -> None:
    from seg.inference.visualize import comparison, labelled_grid

    rows = [comparison(np.zeros((20, 30, 3)), np.zeros((20, 30)), np.ones((20, 30)))] * 3
    grid = labelled_grid(rows, ("image", "truth", "prediction"), "epoch 4: validation masks")
    body = grid[60:]  # under the caption and the column names
    assert body.shape[0] >= 512 and body.shape[1] >= 768 and body.shape[1] % 94 == 0
    assert (grid[:60] < 128).any(axis=2).sum() > 100  # dark text drawn on the white bands
    scale = body.shape[1] // 94  # three 30-pixel tiles and two 2-pixel gaps
    assert (body[: 20 * scale, : 30 * scale] == 0).all()  # the black image, enlarged whole
