"""Preprocessing (seg.data.preprocess): each operation against a reference or a property, one
code path for training, evaluation and inference, mask thresholding and colour maps, the spec
saved with a model, and the config checks."""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path
from types import SimpleNamespace

import cv2
import numpy as np
import pytest
import tensorflow as tf

import seg.inference.predictor
from seg.data.io import decode_image, load_image, load_mask, prepare_image, read_raw
from seg.data.pairs import Pair, find_pairs
from seg.data.pipeline import Preprocessing, make_dataset
from seg.data.preprocess import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    Clahe,
    ImagePreprocess,
    MaskPreprocess,
    binarize,
    for_display,
    preprocess_image,
)
from seg.errors import CheckpointError, ConfigError, DatasetError
from seg.inference.predictor import predict_files
from tests.support.data import circle_mask, write_image

RNG = np.random.default_rng(0)


def _rgb(h: int = 16, w: int = 20, low: float = 0.0, high: float = 1.0) -> np.ndarray:
    return RNG.uniform(low, high, (h, w, 3)).astype(np.float32)


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a.astype(bool), b.astype(bool)
    return float((a & b).sum() / max((a | b).sum(), 1))


def _laplacian_energy(image: np.ndarray) -> float:
    """High-frequency energy: variance of the Laplacian, summed over channels."""
    return float(sum(cv2.Laplacian(image[..., c], cv2.CV_32F).var() for c in range(image.shape[2])))


def _smooth_image(h: int = 32, w: int = 32) -> np.ndarray:
    """A blurred RGB pattern with real edges, in (0.1, 0.9): room for every op to act."""
    base = np.zeros((h, w, 3), np.float32)
    base[:, : w // 2] = (0.7, 0.5, 0.3)
    base[h // 4 : 3 * h // 4, w // 4 : 3 * w // 4] = (0.2, 0.4, 0.6)
    return np.clip(cv2.GaussianBlur(base, (0, 0), 2.0) + _rgb(h, w, -0.05, 0.05), 0.1, 0.9)


# --------------------------------------------------------------------------- image operations


@pytest.mark.parametrize("channels", [1, 3])
def test_default_spec_changes_nothing(channels: int) -> None:
    image = _rgb()[..., :channels]
    out = preprocess_image(image, channels, ImagePreprocess())
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out, image)


def test_gamma_2_darkens_mid_grey_to_a_quarter() -> None:
    grey = np.full((4, 4, 1), 0.5, np.float32)
    out = preprocess_image(grey, 1, ImagePreprocess(gamma=2.0))
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, 0.25, atol=1e-7)
    image = _rgb()
    np.testing.assert_allclose(
        preprocess_image(image, 3, ImagePreprocess(gamma=0.5)), np.sqrt(image), atol=1e-6
    )


def test_invert_maps_x_to_one_minus_x() -> None:
    image = _rgb()
    out = preprocess_image(image, 3, ImagePreprocess(invert=True))
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, 1.0 - image, atol=1e-7)


def test_invert_comes_before_gamma() -> None:
    grey = np.full((2, 2, 1), 0.2, np.float32)
    out = preprocess_image(grey, 1, ImagePreprocess(invert=True, gamma=2.0))
    np.testing.assert_allclose(out, 0.8**2, atol=1e-6)  # not 1 - 0.2 ** 2


def test_standardize_matches_tensorflow_per_image_standardization() -> None:
    image = _rgb(12, 10, 0.2, 0.6)
    out = preprocess_image(image, 3, ImagePreprocess(normalize="standardize"))
    assert out.dtype == np.float32
    assert abs(out.mean()) < 1e-5 and out.std() == pytest.approx(1.0, abs=1e-4)
    reference = tf.image.per_image_standardization(image).numpy()
    np.testing.assert_allclose(out, reference, atol=1e-5)
    flat = preprocess_image(
        np.full((8, 8, 3), 0.7, np.float32), 3, ImagePreprocess(normalize="standardize")
    )
    np.testing.assert_allclose(flat, 0.0, atol=1e-6)  # no division by zero


def test_imagenet_uses_imagenet_mean_and_std() -> None:
    assert IMAGENET_MEAN == (0.485, 0.456, 0.406)
    assert IMAGENET_STD == (0.229, 0.224, 0.225)
    mean = np.broadcast_to(np.array(IMAGENET_MEAN, np.float32), (4, 4, 3))
    spec = ImagePreprocess(normalize="imagenet")
    np.testing.assert_allclose(preprocess_image(mean, 3, spec), 0.0, atol=1e-6)
    white = preprocess_image(np.ones((2, 2, 3), np.float32), 3, spec)
    assert white.dtype == np.float32
    expected = (1.0 - np.array(IMAGENET_MEAN)) / np.array(IMAGENET_STD)
    np.testing.assert_allclose(white[0, 0], expected, rtol=1e-6)


def test_sharpen_increases_high_frequency_energy() -> None:
    image = _smooth_image()
    out = preprocess_image(image, 3, ImagePreprocess(sharpen=1.5))
    assert out.dtype == np.float32 and out.min() >= 0.0 and out.max() <= 1.0
    assert _laplacian_energy(out) > 2.0 * _laplacian_energy(image)
    # Unsharp mask: flat regions stay put (the mean barely moves).
    assert abs(out.mean() - image.mean()) < 0.01


def test_linear_contrast_matches_tensorflow_and_stretches() -> None:
    low = _rgb(16, 16, 0.45, 0.55)  # low contrast: no clipping at factor 3
    out = preprocess_image(low, 3, ImagePreprocess(contrast=3.0))
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, tf.image.adjust_contrast(low, 3.0).numpy(), atol=1e-6)
    np.testing.assert_allclose(out.std(axis=(0, 1)), 3.0 * low.std(axis=(0, 1)), rtol=1e-4)
    assert preprocess_image(low, 3, ImagePreprocess(contrast=0.5)).std() < low.std()


@pytest.mark.parametrize("channels", [1, 3])
def test_clahe_increases_contrast_of_a_low_contrast_image(channels: int) -> None:
    # A dim gradient with faint texture: CLAHE spreads its few grey levels.
    ramp = np.linspace(0.45, 0.50, 64, dtype=np.float32)[None, :, None]
    image = np.repeat(np.repeat(ramp, 64, axis=0), channels, axis=2)
    image = image + RNG.uniform(-0.01, 0.01, image.shape).astype(np.float32)
    spec = ImagePreprocess(clahe=Clahe(clip_limit=4.0, tile_grid=(2, 2)))
    out = preprocess_image(image, channels, spec)
    assert out.dtype == np.float32 and out.shape == image.shape
    assert out.std() > 2.0 * image.std()
    weaker = preprocess_image(image, channels, ImagePreprocess(clahe=Clahe(1.5, (2, 2))))
    assert image.std() < weaker.std() < out.std()  # the clip limit limits the stretch
    if channels == 1:  # grey: exactly OpenCV's CLAHE on 8-bit levels
        levels = np.rint(image[..., 0] * 255).astype(np.uint8)
        reference = cv2.createCLAHE(4.0, (2, 2)).apply(levels) / 255.0
        np.testing.assert_allclose(out[..., 0], reference, atol=1e-6)


def test_clahe_on_colour_keeps_the_hue() -> None:
    image = np.zeros((32, 32, 3), np.float32)
    image[..., 0] = np.linspace(0.3, 0.4, 32)[None, :]  # reddish, dim, low contrast
    image[..., 1] = image[..., 0] * 0.5
    image[..., 2] = image[..., 0] * 0.25
    out = preprocess_image(image, 3, ImagePreprocess(clahe=Clahe(2.0, (2, 2))))
    assert out[..., 0].std() > image[..., 0].std()
    assert (out[..., 0] >= out[..., 1]).all() and (out[..., 1] >= out[..., 2]).all()


def test_colour_conversions_give_the_documented_channels() -> None:
    pixels = np.array(
        [[[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [1.0, 1.0, 1.0], [0.0, 0.0, 0.0]]], np.float32
    )  # red, green, white, black
    hsv = preprocess_image(pixels, 3, ImagePreprocess(color="hsv"))
    np.testing.assert_allclose(hsv[0, 0], [0.0, 1.0, 1.0], atol=1e-6)
    np.testing.assert_allclose(hsv[0, 1], [120 / 360, 1.0, 1.0], atol=1e-6)
    np.testing.assert_allclose(hsv[0, 2, 1:], [0.0, 1.0], atol=1e-6)
    lab = preprocess_image(pixels, 3, ImagePreprocess(color="lab"))
    np.testing.assert_allclose(lab[0, 2], [1.0, 128 / 255, 128 / 255], atol=2e-3)  # white
    np.testing.assert_allclose(lab[0, 3], [0.0, 128 / 255, 128 / 255], atol=2e-3)  # black
    assert lab[0, 0, 1] > 0.8 and lab[0, 1, 1] < 0.2  # a*: red positive, green negative
    for out in (hsv, lab):
        assert out.dtype == np.float32 and out.min() >= 0.0 and out.max() <= 1.0
    luma = np.array([0.299, 0.587, 1.0, 0.0], np.float32)
    grey3 = preprocess_image(pixels, 3, ImagePreprocess(color="grey"))
    assert grey3.shape == (1, 4, 3)
    for c in range(3):
        np.testing.assert_allclose(grey3[0, :, c], luma, atol=1e-3)
    np.testing.assert_array_equal(preprocess_image(pixels, 3, ImagePreprocess(color="rgb")), pixels)


def test_grey_model_decodes_luma_and_can_repeat_it(tmp_path: Path) -> None:
    rgb = np.zeros((6, 8, 3), np.uint8)
    rgb[..., 0] = 255
    path = write_image(tmp_path / "red.png", rgb)
    one = load_image(path, None, 1, ImagePreprocess(color="grey"))
    three = load_image(path, None, 3, ImagePreprocess(color="grey"))
    assert one.shape == (6, 8, 1) and three.shape == (6, 8, 3)
    np.testing.assert_allclose(one[..., 0], 0.299, atol=2 / 255)
    for c in range(3):
        np.testing.assert_array_equal(three[..., c], one[..., 0])
    np.testing.assert_array_equal(load_image(path, None, 1), one)  # auto = grey for 1 channel


def test_for_display_keeps_unit_images_and_stretches_normalised_ones() -> None:
    image = _rgb()
    assert for_display(image) is image
    shown = for_display(preprocess_image(image, 3, ImagePreprocess(normalize="imagenet")))
    assert shown.min() == pytest.approx(0.0) and shown.max() == pytest.approx(1.0)


# --------------------------------------------------------------------------- one code path

FULL = ImagePreprocess(
    invert=True,
    gamma=1.4,
    contrast=1.3,
    clahe=Clahe(2.5, (2, 3)),
    sharpen=0.8,
    sharpen_sigma=1.5,
    color="lab",
    normalize="standardize",
)


@pytest.mark.parametrize(
    ("spec", "channels"),
    [
        (FULL, 3),
        (ImagePreprocess(gamma=0.7, color="grey", normalize="imagenet"), 3),
        (ImagePreprocess(sharpen=1.0, clahe=Clahe()), 1),
        (ImagePreprocess(), 3),
    ],
    ids=["full-lab", "grey-imagenet", "grey-1ch", "default"],
)
def test_training_evaluation_and_inference_see_identical_arrays(
    tmp_path: Path, write_pair, monkeypatch: pytest.MonkeyPatch, spec, channels: int
) -> None:
    rng = np.random.default_rng(3)
    mask = circle_mask(40, 52, (20, 22), 12)
    image = np.clip(
        np.where(mask[..., None] > 0, 170.0, 70.0) + rng.normal(0, 25, (40, 52, 3)), 0, 255
    ).astype(np.uint8)
    image_path, _ = write_pair(tmp_path, "case", image, mask, image_suffix=".jpg")
    pairs = find_pairs(tmp_path / "images", tmp_path / "masks")
    size = (24, 32)  # not the file's size: resizing is part of the path
    prep = Preprocessing(size, channels, 1, 0.5, image=spec)

    # Training: the tf.data pipeline (and the sample the epoch-mask callback loads).
    ((batch, _),) = list(make_dataset(pairs, prep, batch_size=1))
    trained_on = batch.numpy()[0]
    loaded, _ = prep.load_pair(str(pairs[0].image).encode(), str(pairs[0].mask).encode())
    np.testing.assert_array_equal(trained_on, loaded)

    # Evaluation and inference: predict_files (what both stages call) with the model's spec.
    seen = []

    def fake_predict(model, batch: np.ndarray) -> np.ndarray:
        seen.append(batch.copy())
        return np.zeros((*batch.shape[:3], 1), np.float32)

    monkeypatch.setattr(seg.inference.predictor, "predict_batch", fake_predict)
    model = SimpleNamespace(input_shape=(None, *size, channels))
    (pred,) = list(predict_files(model, [image_path], 1, progress=False, preprocess=spec))
    assert seen[0].dtype == np.float32 and seen[0].shape == (1, *size, channels)
    np.testing.assert_array_equal(seen[0][0], trained_on)  # exactly, to the bit
    # The picture kept for overlays is the decoded file, before preprocessing.
    np.testing.assert_array_equal(pred.image, decode_image(read_raw(image_path), channels, spec))
    np.testing.assert_array_equal(prepare_image(pred.image, size, channels, spec), trained_on)


def test_predict_files_rejects_a_spec_the_model_cannot_take(odd_file: Path) -> None:
    model = SimpleNamespace(input_shape=(None, 8, 8, 1))
    with pytest.raises(ConfigError, match=r"dataset\.preprocess\.color"):
        list(
            predict_files(
                model, [odd_file], 1, progress=False, preprocess=ImagePreprocess(color="hsv")
            )
        )


@pytest.fixture
def odd_file(tmp_path: Path) -> Path:
    return write_image(tmp_path / "x.png", np.zeros((5, 7, 3), np.uint8))


# --------------------------------------------------------------------------- binary masks


def _noisy_jpeg_mask(
    path: Path, background: int, foreground: int, seed: int = 0, shape: np.ndarray | None = None
) -> tuple[Path, np.ndarray]:
    truth = circle_mask(64, 64, (28, 34), 17) > 0 if shape is None else shape
    rng = np.random.default_rng(seed)
    grey = np.where(truth, float(foreground), float(background)) + rng.normal(0, 6, truth.shape)
    write_image(path, np.clip(grey, 0, 255).astype(np.uint8), IMWRITE_JPEG_QUALITY=60)
    return path, truth


@pytest.mark.parametrize("method", ["otsu", "triangle"])
def test_auto_threshold_recovers_a_noisy_bimodal_jpeg_mask(tmp_path: Path, method: str) -> None:
    # Foreground at 130/255: the fixed 0.5 threshold loses most of it, Otsu/triangle do not.
    path, truth = _noisy_jpeg_mask(tmp_path / "m.jpg", background=30, foreground=130)
    assert len(np.unique(read_raw(path))) > 10  # really noisy
    fixed = load_mask(path, None, 0.5)
    auto = load_mask(path, None, 0.5, spec=MaskPreprocess(binarize=method))
    assert auto.dtype == np.uint8 and set(np.unique(auto)) == {0, 1}
    assert _iou(auto, truth) > 0.93
    assert _iou(fixed, truth) < 0.8
    # Resized for training: still binary and in place.
    small = load_mask(path, (32, 32), 0.5, spec=MaskPreprocess(binarize=method))
    assert set(np.unique(small)) == {0, 1}
    expected = cv2.resize(truth.astype(np.uint8), (32, 32), interpolation=cv2.INTER_AREA) > 0.5
    assert _iou(small, expected) > 0.9


def test_otsu_on_16_bit_and_0_1_masks() -> None:
    truth = circle_mask(32, 32, (16, 16), 8) > 0
    deep = np.where(truth, 40000, 9000).astype(np.uint16)
    np.testing.assert_array_equal(binarize(deep, 0.9, MaskPreprocess(binarize="otsu")), truth)
    ones = truth.astype(np.uint8)
    np.testing.assert_array_equal(binarize(ones, 0.5, MaskPreprocess(binarize="otsu")), truth)


@pytest.mark.parametrize("method", ["otsu", "triangle"])
@pytest.mark.parametrize("level", [0, 8, 255])
def test_auto_threshold_falls_back_to_fixed_on_nearly_constant_masks(
    tmp_path: Path, method: str, level: int
) -> None:
    # An all-background (or all-foreground) JPEG: Otsu would split its compression noise in
    # two and invent a foreground; the fixed threshold decides instead.
    flat = np.zeros((48, 48), bool)
    path, _ = _noisy_jpeg_mask(tmp_path / "flat.jpg", level, level, shape=flat)
    assert read_raw(path).max() > read_raw(path).min()  # noisy, not perfectly flat
    mask = load_mask(path, None, 0.5, spec=MaskPreprocess(binarize=method))
    assert set(np.unique(mask)) == ({1} if level == 255 else {0})


def test_an_inverted_mask_makes_the_dark_class_the_foreground() -> None:
    mask = np.array([[0, 255], [255, 255]], np.uint8)  # black object on white
    np.testing.assert_array_equal(
        binarize(mask, 0.5, MaskPreprocess(invert=True)), [[1, 0], [0, 0]]
    )
    otsu = MaskPreprocess(binarize="otsu", invert=True)
    np.testing.assert_array_equal(binarize(mask, 0.5, otsu), [[1, 0], [0, 0]])
    assert MaskPreprocess.from_dict({"binarize": "fixed"}).invert is False  # older specs


def test_invert_is_refused_for_colour_coded_and_multiclass_masks() -> None:
    from seg.config.validation import validate
    from tests.support.compose import compose_run

    for extra in (
        ["dataset.num_classes=3", "loss=cce"],
        ["dataset.mask.colors=[{color: [255, 0, 0], label: 1}]"],
    ):
        cfg = compose_run("train", ["dataset.mask.invert=true", *extra])
        with pytest.raises(ConfigError, match=r"dataset\.mask\.invert: inverts binary grey"):
            validate(cfg)


def test_blur_before_thresholding_removes_speckle() -> None:
    truth = circle_mask(48, 48, (24, 24), 12) > 0
    speckled = (truth * 255).astype(np.uint8)
    specks = np.zeros_like(truth)
    specks[1::5, 1::5] = True  # isolated bright pixels, kept a few pixels off the cell
    speckled[specks & ~(circle_mask(48, 48, (24, 24), 15) > 0)] = 255
    plain = binarize(speckled, 0.5, MaskPreprocess())
    blurred = binarize(speckled, 0.5, MaskPreprocess(blur=5))
    assert (plain & ~truth).sum() > 20
    assert (blurred & ~truth).sum() == 0
    assert _iou(blurred, truth) > 0.9


# --------------------------------------------------------------------------- colour maps

PALETTE = MaskPreprocess(colors=(((0, 0, 0), 0), ((255, 0, 0), 1), ((0, 255, 0), 2)))


def _colour_mask(h: int = 16, w: int = 24) -> tuple[np.ndarray, np.ndarray]:
    """(HxW class indices, the same as an RGB colour-coded mask: black, red, green)."""
    labels = np.zeros((h, w), np.uint8)
    labels[:, w // 3 :] = 1
    labels[h // 2 :, 2 * w // 3 :] = 2
    labels[2, 2] = 2
    rgb = np.array([[0, 0, 0], [255, 0, 0], [0, 255, 0]], np.uint8)[labels]
    return labels, rgb


def test_colour_coded_mask_becomes_indices_and_one_hot(tmp_path: Path, write_pair) -> None:
    labels, rgb = _colour_mask()
    _, mask_path = write_pair(tmp_path, "a", (labels * 80).astype(np.uint8), rgb)
    np.testing.assert_array_equal(load_mask(mask_path, None, 0.5, 3, PALETTE), labels)
    resized = load_mask(mask_path, (8, 12), 0.5, 3, PALETTE)
    np.testing.assert_array_equal(
        resized, cv2.resize(labels, (12, 8), interpolation=cv2.INTER_NEAREST_EXACT)
    )
    pairs = find_pairs(tmp_path / "images", tmp_path / "masks")
    prep = Preprocessing((16, 24), 3, 3, 0.5, mask=PALETTE)
    ((_, masks),) = list(make_dataset(pairs, prep, batch_size=1))
    masks = masks.numpy()
    assert masks.shape == (1, 16, 24, 3) and set(np.unique(masks)) == {0.0, 1.0}
    np.testing.assert_array_equal(masks.sum(-1), 1.0)
    np.testing.assert_array_equal(masks[0].argmax(-1), labels)


def test_colour_coded_binary_mask(tmp_path: Path) -> None:
    truth = circle_mask(20, 20, (10, 10), 6) > 0
    rgb = np.where(truth[..., None], np.array([200, 30, 90], np.uint8), np.uint8(255))
    path = write_image(tmp_path / "m.png", rgb.astype(np.uint8))
    spec = MaskPreprocess(colors=(((255, 255, 255), 0), ((200, 30, 90), 1)))
    np.testing.assert_array_equal(load_mask(path, None, 0.5, 1, spec), truth)


def test_unknown_colour_is_an_error_naming_file_and_colour(tmp_path: Path, write_pair) -> None:
    labels, rgb = _colour_mask()
    rgb[0, :5] = (0, 0, 255)  # blue: not in the map
    rgb[1, 0] = (254, 0, 0)  # a near-red typo
    _, path = write_pair(tmp_path, "bad", labels, rgb)
    with pytest.raises(DatasetError) as info:
        load_mask(path, None, 0.5, 3, PALETTE)
    message = str(info.value)
    assert str(path) in message
    assert "[0, 0, 255] (5 px)" in message and "[254, 0, 0] (1 px)" in message
    assert "dataset.mask.colors" in message and "unknown_colors" in message
    # In training the same error stops the pipeline, naming the file.
    prep = Preprocessing((16, 24), 3, 3, 0.5, mask=PALETTE)
    with pytest.raises(tf.errors.OpError, match=re.escape(str(path))):
        list(make_dataset([Pair(tmp_path / "images" / "bad.png", path)], prep, batch_size=1))


def test_unknown_colour_to_background_or_nearest(tmp_path: Path, caplog) -> None:
    labels, rgb = _colour_mask()
    rgb[0, :5] = (0, 0, 255)  # blue: unknown, nearest to black
    rgb[1, 0] = (250, 10, 0)  # near red
    path = write_image(tmp_path / "m.png", rgb)
    background = MaskPreprocess(colors=PALETTE.colors, unknown_colors="background")
    with caplog.at_level(logging.WARNING, logger="seg.data.preprocess"):
        out = load_mask(path, None, 0.5, 3, background)
        load_mask(path, None, 0.5, 3, background)
    assert out[0, :5].tolist() == [0] * 5 and out[1, 0] == 0
    np.testing.assert_array_equal(out[2:], labels[2:])
    warnings = [r for r in caplog.records if str(path) in r.getMessage()]
    assert len(warnings) == 1  # once per file, not once per epoch
    nearest = load_mask(
        path, None, 0.5, 3, MaskPreprocess(colors=PALETTE.colors, unknown_colors="nearest")
    )
    assert nearest[1, 0] == 1  # (250, 10, 0) is red
    assert nearest[0, 0] == 0  # blue: 255 from black, 255 * sqrt(2) from red and green
    np.testing.assert_array_equal(nearest[2:], labels[2:])


# --------------------------------------------------------------------------- the saved spec

SPEC = Preprocessing(
    size=(48, 64),
    channels=3,
    num_classes=3,
    mask_threshold=0.4,
    image=ImagePreprocess(
        invert=True,
        gamma=1.2,
        contrast=1.1,
        clahe=Clahe(3.0, (4, 2)),
        sharpen=0.5,
        sharpen_sigma=2.0,
        color="hsv",
        normalize="standardize",
    ),
    mask=MaskPreprocess(colors=PALETTE.colors, unknown_colors="nearest"),
)


def test_preprocessing_round_trips_through_json() -> None:
    data = json.loads(json.dumps(SPEC.to_dict()))
    assert data["format"] == "seg.preprocessing" and data["version"] == 1
    assert data["image"]["clahe"] == {"clip_limit": 3.0, "tile_grid": [4, 2]}
    assert data["mask"]["colors"][1] == {"color": [255, 0, 0], "label": 1}
    assert Preprocessing.from_dict(data) == SPEC
    plain = Preprocessing((8, 8), 1, 1, 0.5)
    assert Preprocessing.from_dict(json.loads(json.dumps(plain.to_dict()))) == plain


@pytest.mark.parametrize(
    "change",
    [
        {"version": 99},
        {"format": "other"},
        {"image": {"gamma": 1.0, "sepia": True}},
        {"channels": None},
        {"image": {"color": "cmyk"}},
        {"mask": {"binarize": "magic"}},
    ],
)
def test_foreign_or_malformed_spec_is_a_checkpoint_error(change: dict) -> None:
    data = {**SPEC.to_dict(), **change}
    with pytest.raises(CheckpointError, match=r"model\.json"):
        Preprocessing.from_dict(data, "model.json")


def _tiny_keras(path: Path) -> Path:
    import keras

    model = keras.Sequential([keras.Input((8, 8, 3)), keras.layers.Conv2D(1, 1)])
    model.save(path)
    return path


def test_train_stage_saves_the_spec_and_a_keras_sibling_is_found(tmp_path: Path) -> None:
    from seg.runner.stages.train import _save_preprocessing
    from seg.tracking.models import PREPROCESSING_FILE, load_model_and_preprocessing

    logged = []
    ctx = SimpleNamespace(tracker=SimpleNamespace(log_artifact=logged.append))
    folder = tmp_path / "run" / "checkpoints"
    _save_preprocessing(ctx, SPEC, folder)
    assert logged == [folder / PREPROCESSING_FILE]  # logged to the MLflow run as well
    model_file = _tiny_keras(folder / "best.keras")
    loaded = load_model_and_preprocessing(str(model_file), "sqlite:///unused.db")
    assert loaded.model.input_shape == (None, 8, 8, 3)
    assert loaded.source == str(folder / PREPROCESSING_FILE)
    assert Preprocessing.from_dict(loaded.preprocessing) == SPEC

    (folder / PREPROCESSING_FILE).unlink()
    loaded = load_model_and_preprocessing(str(model_file), "sqlite:///unused.db")
    assert loaded.preprocessing is None and loaded.source is None
    (folder / PREPROCESSING_FILE).write_text("{not json")
    with pytest.raises(CheckpointError, match=re.escape(PREPROCESSING_FILE)):
        load_model_and_preprocessing(str(model_file), "sqlite:///unused.db")


def test_context_uses_the_model_spec_or_warns_and_uses_the_config(caplog) -> None:
    from omegaconf import OmegaConf

    from seg.config.dataset import DatasetConfig
    from seg.runner.context import Context

    data = OmegaConf.structured(
        DatasetConfig(
            name="t",
            root="/x",
            image_size=[48, 64],
            channels=3,
            num_classes=3,
            mask_threshold=0.5,
        )
    )
    ctx = Context(OmegaConf.create({"dataset": data, "checkpoint": "m.keras"}), Path("."), None)
    assert ctx._model_preprocessing(SPEC.to_dict(), "m.json") == SPEC
    with caplog.at_level(logging.WARNING, logger="seg.runner.context"):
        fallback = ctx._model_preprocessing(None, None)
    assert fallback == Preprocessing((48, 64), 3, 3, 0.5)
    assert any("no preprocessing.json" in r.getMessage() for r in caplog.records)


def _augmented_batch(
    tmp_path: Path, write_pair, spec: ImagePreprocess, channels: int, augmentation: dict | None
) -> np.ndarray:
    rng = np.random.default_rng(5)
    for i in range(4):
        image = rng.integers(40, 220, (20, 20, 3), dtype=np.uint8)
        write_pair(tmp_path, f"case{i}", image, circle_mask(20, 20, (10, 10), 5))
    pairs = find_pairs(tmp_path / "images", tmp_path / "masks")
    prep = Preprocessing((16, 16), channels, 1, 0.5, image=spec)
    ((images, _),) = list(
        make_dataset(pairs, prep, batch_size=4, training=True, augmentation=augmentation, seed=1)
    )
    assert images.shape == (4, 16, 16, channels)
    return images.numpy()


PHOTOMETRIC_P1 = {
    "brightness": {"p": 1.0, "range": 0.2},
    "contrast": {"p": 1.0, "range": 0.3},
    "hue": {"p": 1.0, "range": 0.1},
    "saturation": {"p": 1.0},
}


def test_photometric_augmentation_runs_before_normalisation(tmp_path: Path, write_pair) -> None:
    """Photometric ops need intensities in [0, 1]: training augments the working image and
    encodes after, so a standardised input is standardised after augmentation too."""
    spec = ImagePreprocess(normalize="standardize")
    plain = _augmented_batch(tmp_path, write_pair, spec, 3, None)
    augmented = _augmented_batch(tmp_path, write_pair, spec, 3, PHOTOMETRIC_P1)
    assert not np.allclose(np.sort(plain.ravel()), np.sort(augmented.ravel()), atol=1e-3)
    np.testing.assert_allclose(augmented.mean(axis=(1, 2, 3)), 0.0, atol=1e-4)
    np.testing.assert_allclose(augmented.std(axis=(1, 2, 3)), 1.0, atol=1e-3)


def test_grey_models_get_augmented_grey_repeated(tmp_path: Path, write_pair) -> None:
    """color=grey with 3 channels: augmented as one grey channel (colour ops left out), then
    repeated, so the three channels stay equal; Lab input is augmented and stays finite."""
    grey = _augmented_batch(
        tmp_path / "g", write_pair, ImagePreprocess(color="grey"), 3, PHOTOMETRIC_P1
    )
    np.testing.assert_array_equal(grey[..., 0], grey[..., 1])
    np.testing.assert_array_equal(grey[..., 0], grey[..., 2])
    lab = _augmented_batch(
        tmp_path / "l",
        write_pair,
        ImagePreprocess(color="lab", normalize="imagenet"),
        3,
        PHOTOMETRIC_P1,
    )
    assert np.isfinite(lab).all()


# --------------------------------------------------------------------------- config


def compose_run(overrides: list[str]):
    """seg-eval's config: the dataset group without the groups only training needs."""
    from tests.support.compose import compose_run as compose

    return compose("eval", ["checkpoint=/models/m.keras", *overrides])


@pytest.mark.parametrize(
    ("overrides", "key"),
    [
        (["dataset.preprocess.gamma=0"], "dataset.preprocess.gamma"),
        (["dataset.preprocess.contrast=-1"], "dataset.preprocess.contrast"),
        (["dataset.preprocess.sharpen=-0.5"], "dataset.preprocess.sharpen"),
        (["dataset.preprocess.sharpen_sigma=0"], "dataset.preprocess.sharpen_sigma"),
        (["dataset.preprocess.clahe.clip_limit=-1"], "dataset.preprocess.clahe.clip_limit"),
        (["dataset.preprocess.clahe.tile_grid=[8]"], "dataset.preprocess.clahe.tile_grid"),
        (["dataset.channels=1", "dataset.preprocess.color=hsv"], "dataset.preprocess.color"),
        (["dataset.channels=1", "dataset.preprocess.color=rgb"], "dataset.preprocess.color"),
        (
            ["dataset.channels=1", "dataset.preprocess.normalize=imagenet"],
            "dataset.preprocess.normalize",
        ),
        (
            ["dataset.preprocess.color=lab", "dataset.preprocess.normalize=imagenet"],
            "dataset.preprocess.normalize",
        ),
        (["dataset.mask.blur=4"], "dataset.mask.blur"),
        (["dataset.mask.colors=[{color:[0,0,300],label:1}]"], "dataset.mask.colors"),
        (["dataset.mask.colors=[{color:[0,0,0],label:2}]"], "dataset.mask.colors"),
        (
            ["dataset.mask.colors=[{color:[1,2,3],label:0},{color:[1,2,3],label:1}]"],
            "dataset.mask.colors",
        ),
        (["dataset.num_classes=3", "dataset.mask.binarize=otsu"], "dataset.mask.binarize"),
        (
            ["dataset.mask.colors=[{color:[9,9,9],label:1}]", "dataset.mask.blur=3"],
            "dataset.mask.blur",
        ),
    ],
)
def test_bad_preprocessing_values_name_the_key(overrides: list[str], key: str) -> None:
    from seg.config.validation import validate

    cfg = compose_run(overrides)
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        validate(cfg)


def test_preprocessing_overrides_compose_into_the_spec() -> None:
    from seg.config.validation import validate
    from seg.data.dataset import preprocessing_from_config

    cfg = compose_run(
        [
            "dataset.num_classes=3",
            "loss=cce_dice",
            "dataset.preprocess.clahe.clip_limit=3",
            "dataset.preprocess.clahe.tile_grid=[4,2]",
            "dataset.preprocess.color=grey",
            "dataset.preprocess.normalize=imagenet",
            "dataset.preprocess.gamma=0.8",
            "dataset.mask.colors=[{color:[0,0,0],label:0},{color:[255,0,0],label:1},"
            "{color:[0,255,0],label:2}]",
        ]
    )
    validate(cfg)
    prep = preprocessing_from_config(cfg.dataset)
    assert prep.image == ImagePreprocess(
        gamma=0.8, clahe=Clahe(3.0, (4, 2)), color="grey", normalize="imagenet"
    )
    assert prep.mask == PALETTE
    default = preprocessing_from_config(compose_run([]).dataset)
    assert default.image == ImagePreprocess() and default.mask == MaskPreprocess()


@pytest.mark.slow
def test_spec_is_found_for_run_ids_and_model_uris(tmp_path: Path, sqlite_store: str) -> None:
    """Through a real MLflow store: model metadata first, then the run's artifact, else None."""
    import keras

    from seg.tracking.models import load_model_and_preprocessing, write_preprocessing
    from seg.tracking.tracker import Tracker

    uri = sqlite_store
    spec = SPEC.to_dict()
    model = keras.Sequential([keras.Input((8, 8, 3)), keras.layers.Conv2D(1, 1)])
    sample = np.zeros((1, 8, 8, 3), np.float32)
    spec_file = write_preprocessing(tmp_path / "ck" / "preprocessing.json", spec)
    with Tracker(uri, "specs") as full:  # what the train stage logs
        full.log_artifact(spec_file)
        model_uri = full.log_keras_model(model, sample, preprocessing=spec)
    with Tracker(uri, "specs") as artifact_only:  # e.g. a model logged without metadata
        artifact_only.log_artifact(spec_file)
        artifact_only.log_keras_model(model, sample)
    with Tracker(uri, "specs") as bare:
        bare.log_keras_model(model, sample)

    for checkpoint in (full.run_id, f"runs:/{full.run_id}/model", model_uri):
        loaded = load_model_and_preprocessing(checkpoint, uri)
        assert Preprocessing.from_dict(loaded.preprocessing) == SPEC, checkpoint
        assert "model metadata" in loaded.source
    loaded = load_model_and_preprocessing(artifact_only.run_id, uri)
    assert loaded.preprocessing == spec
    assert loaded.source == f"runs:/{artifact_only.run_id}/preprocessing.json"
    loaded = load_model_and_preprocessing(f"runs:/{bare.run_id}/model", uri)
    assert loaded.preprocessing is None and loaded.model is not None
