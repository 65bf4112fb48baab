"""Sliding-window inference (seg.inference.tiling), test-time augmentation
(seg.inference.tta) and the Predictor that chooses between resizing and tiling
(seg.inference.predictor)."""

from __future__ import annotations

import logging
from pathlib import Path

import keras
import numpy as np
import pytest

from seg.config.inference import TTA_OPS, check_tta
from seg.errors import ConfigError
from seg.inference.predictor import InferenceSettings, Predictor, predict_batch
from seg.inference.tiling import gaussian_weights, sliding_window, tile_grid, tile_starts
from seg.inference.tta import with_tta
from tests.support.data import write_image

# --------------------------------------------------------------------------- the grid


@pytest.mark.parametrize("length", [16, 17, 40, 64, 100, 257])
@pytest.mark.parametrize("overlap", [0.0, 0.25, 0.5, 0.9])
def test_tile_starts_cover_with_the_requested_overlap(length: int, overlap: float) -> None:
    tile = 16
    starts = tile_starts(length, tile, overlap)
    assert starts[0] == 0 and starts[-1] == length - tile  # flush with both borders
    assert starts == sorted(set(starts))
    covered = np.zeros(length, int)
    for s in starts:
        covered[s : s + tile] += 1
    assert covered.min() >= 1
    gaps = np.diff(starts)
    if len(gaps):  # neighbours share at least overlap * tile pixels, spread evenly
        assert (tile - gaps).min() >= int(np.floor(overlap * tile)) - 1
        assert gaps.max() - gaps.min() <= 1


def test_tile_starts_small_images_and_bad_overlap() -> None:
    assert tile_starts(10, 16, 0.5) == [0]
    assert tile_starts(16, 16, 0.5) == [0]
    assert tile_grid((20, 40), (16, 16), 0.0) == [
        (0, 0),
        (0, 12),
        (0, 24),
        (4, 0),
        (4, 12),
        (4, 24),
    ]
    with pytest.raises(ValueError, match="overlap"):
        tile_starts(40, 16, 1.0)


def test_gaussian_weights() -> None:
    w = gaussian_weights((16, 24), 0.125)
    assert w.shape == (16, 24) and w.dtype == np.float32
    assert w.max() == pytest.approx(1.0, abs=1e-3) and w.min() > 0
    np.testing.assert_allclose(w, w[::-1], rtol=1e-6)  # symmetric
    np.testing.assert_allclose(w, w[:, ::-1], rtol=1e-6)
    row = w[8]
    assert (np.diff(row[:12]) > 0).all() and (np.diff(row[12:]) < 0).all()  # falls off
    # separable: the outer product of its centre row and column, sigma scaled per side
    np.testing.assert_allclose(w, np.outer(w[:, 11], w[7]) / w[7, 11], rtol=1e-5, atol=1e-6)
    assert row[0] / row[11] == pytest.approx(np.exp(-0.5 * (11.5 / 3) ** 2), rel=0.02)
    np.testing.assert_array_equal(gaussian_weights((4, 5), 0.0), np.ones((4, 5)))


# --------------------------------------------------------------------------- blending


def _counting(fn):
    calls: list[int] = []

    def predict(batch: np.ndarray) -> np.ndarray:
        calls.append(len(batch))
        return fn(batch)

    return predict, calls


@pytest.mark.parametrize("shape", [(50, 70), (16, 16), (9, 40), (5, 5), (33, 17)])
@pytest.mark.parametrize("sigma", [0.125, 0.0])
def test_pixelwise_model_tiled_equals_whole_everywhere(shape, sigma: float) -> None:
    """A model without context gives every tile the whole image's values: blending, padding
    (images smaller than a tile) and cropping must reproduce them exactly."""
    rng = np.random.default_rng(0)
    image = rng.random((*shape, 3)).astype(np.float32)
    predict, calls = _counting(lambda b: np.stack([b[..., 0] * b[..., 1], b[..., 2]], -1))
    out = sliding_window(image, predict, (16, 16), overlap=0.5, batch_size=3, sigma=sigma)
    assert out.shape == (*shape, 2) and out.dtype == np.float32
    np.testing.assert_allclose(out[..., 0], image[..., 0] * image[..., 1], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(out[..., 1], image[..., 2], rtol=1e-5, atol=1e-6)
    padded = (max(16, shape[0]), max(16, shape[1]))
    tiles = len(tile_grid(padded, (16, 16), 0.5))
    assert sum(calls) == tiles and max(calls) <= 3 and len(calls) == -(-tiles // 3)


def test_constant_model_has_no_seams() -> None:
    image = np.zeros((100, 130, 1), np.float32)
    out = sliding_window(
        image,
        lambda b: np.full((*b.shape[:3], 1), 0.3, np.float32),
        (32, 32),
        overlap=0.25,
        batch_size=4,
    )
    np.testing.assert_allclose(out, 0.3, rtol=1e-6)


def test_batch_size_does_not_change_the_result() -> None:
    image = np.random.default_rng(1).random((45, 61, 1)).astype(np.float32)

    def predict(b: np.ndarray) -> np.ndarray:  # depends on the tile's content: a tile mean
        return np.broadcast_to(b.mean(axis=(1, 2), keepdims=True), b.shape).copy()

    one = sliding_window(image, predict, (16, 16), 0.25, batch_size=1)
    many = sliding_window(image, predict, (16, 16), 0.25, batch_size=64)
    np.testing.assert_array_equal(one, many)


def _context_model(size=(None, None), seed: int = 0) -> keras.Model:
    """Two 5x5 convolutions (context radius 4), sigmoid: the whole image and a tile differ
    only within 4 px of the tile's edges."""
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((*size, 1))
    x = keras.layers.Conv2D(4, 5, padding="same", activation="tanh")(inputs)
    outputs = keras.layers.Conv2D(1, 5, padding="same", activation="sigmoid")(x)
    return keras.Model(inputs, outputs)


def test_tiled_equals_whole_image_inference_of_a_conv_model() -> None:
    model = _context_model()
    image = np.random.default_rng(2).random((96, 120, 1)).astype(np.float32)
    whole = predict_batch(model, image[None])[0]
    predict = lambda b: predict_batch(model, b)  # noqa: E731
    tiled = sliding_window(image, predict, (32, 32), overlap=0.5, batch_size=8)
    diff = np.abs(tiled - whole)[..., 0]
    # Pixels whose every covering tile sees their whole context are exact ...
    corners = tile_grid(image.shape[:2], (32, 32), 0.5)
    exact = np.zeros(image.shape[:2], bool)
    for y in range(96):
        for x in range(120):
            covering = [(ty, tx) for ty, tx in corners if ty <= y < ty + 32 and tx <= x < tx + 32]
            exact[y, x] = all(
                (ty == 0 or y - ty >= 4)
                and (ty + 32 == 96 or ty + 32 - y > 4)
                and (tx == 0 or x - tx >= 4)
                and (tx + 32 == 120 or tx + 32 - x > 4)
                for ty, tx in covering
            )
    assert exact.mean() > 0.4
    assert diff[exact].max() < 1e-5
    # ... and the rest stays close: the Gaussian weights tiles down near their edges,
    # better than a plain mean of the overlapping tiles.
    uniform = sliding_window(image, predict, (32, 32), overlap=0.5, batch_size=8, sigma=0.0)
    assert diff.max() < 0.05
    assert diff.mean() < np.abs(uniform - whole).mean()


# --------------------------------------------------------------------------- TTA


def _ramp_model(batch: np.ndarray) -> np.ndarray:
    """Not equivariant: the image times a ramp along x plus twice a ramp along y."""
    _, h, w, _ = batch.shape
    ramp = np.arange(w)[None, :] / (w - 1) + 2 * np.arange(h)[:, None] / (h - 1)
    return (batch[..., :1] * ramp[None, :, :, None]).astype(np.float32)


@pytest.mark.parametrize("op", TTA_OPS)
def test_tta_inverts_each_transform(op: str) -> None:
    batch = np.ones((2, 6, 6, 1), np.float32)
    out = with_tta(_ramp_model, [op])(batch)
    plain = _ramp_model(batch)
    flipped = {
        "hflip": plain[:, :, ::-1],
        "vflip": plain[:, ::-1],
        "rot90": np.rot90(plain, -1, (1, 2)),
        "rot180": plain[:, ::-1, ::-1],
        "rot270": np.rot90(plain, 1, (1, 2)),
    }[op]
    # f(T x) mapped back with T^-1: for a constant image, the ramp transformed by T^-1
    np.testing.assert_allclose(out, (plain + flipped) / 2, rtol=1e-6)


def test_tta_of_a_symmetric_model_is_its_plain_prediction() -> None:
    """A 3x3 kernel with the symmetries of the square commutes with flips and quarter turns."""
    kernel = np.array([[1, 2, 1], [2, 4, 2], [1, 2, 1]], np.float32) / 8
    inputs = keras.Input((24, 24, 1))
    outputs = keras.layers.Conv2D(1, 3, padding="same", activation="sigmoid")(inputs)
    model = keras.Model(inputs, outputs)
    model.layers[-1].set_weights([kernel[..., None, None], np.array([-1.0], np.float32)])
    batch = np.random.default_rng(3).random((3, 24, 24, 1)).astype(np.float32)
    plain = predict_batch(model, batch)
    averaged = with_tta(lambda b: predict_batch(model, b), TTA_OPS)(batch)
    np.testing.assert_allclose(averaged, plain, atol=1e-6)
    assert np.abs(plain - 0.5).max() > 0.1  # not trivially constant


def test_check_tta() -> None:
    assert check_tta(["hflip", "rot90"], (16, 16)) == ("hflip", "rot90")
    assert check_tta(["rot90"], (None, None)) == ("rot90",)
    assert check_tta(["rot180", "vflip"], (16, 32)) == ("rot180", "vflip")
    with pytest.raises(ConfigError, match=r"inference\.tta.*rot90.*16x32"):
        check_tta(["rot90"], (16, 32))
    with pytest.raises(ConfigError, match="unknown"):
        check_tta(["spin"], (16, 16))
    with pytest.raises(ConfigError, match="once"):
        check_tta(["hflip", "hflip"], (16, 16))


# --------------------------------------------------------------------------- the Predictor


def _pixel_model(size=(16, 16)) -> keras.Model:
    """p = sigmoid(8 * (red - 0.5)): no context, so tiled and resized are comparable."""
    model = keras.Sequential(
        [keras.Input((*size, 3)), keras.layers.Conv2D(1, 1, activation="sigmoid")]
    )
    model.layers[-1].set_weights(
        [np.array([8.0, 0, 0], np.float32).reshape(1, 1, 3, 1), np.array([-4.0], np.float32)]
    )
    return model


def _sigmoid(x):
    return 1 / (1 + np.exp(-x))


@pytest.fixture
def stripes(tmp_path: Path) -> Path:
    """64x48 RGB: red columns of 2 px every 6 px: fine detail that resizing to 16 px blurs."""
    image = np.zeros((64, 48, 3), np.uint8)
    image[:, ::6, 0] = image[:, 1::6, 0] = 255
    return write_image(tmp_path / "stripes.png", image)


def test_auto_tiles_large_images_at_their_own_resolution(
    stripes: Path, tmp_path: Path, caplog
) -> None:
    small = write_image(tmp_path / "small.png", np.full((12, 10, 3), 200, np.uint8))
    predictor = Predictor(_pixel_model(), InferenceSettings(batch_size=4))
    with caplog.at_level(logging.WARNING):
        big, little = predictor.predict_files([stripes, small], progress=False)
    assert big.tiled and not little.tiled
    assert "inference.tile_size" in caplog.text and "stripes.png" in caplog.text
    expected = _sigmoid(8 * (big.image[..., 0] - 0.5))
    np.testing.assert_allclose(big.probs[..., 0], expected, atol=1e-5)  # stripes kept
    np.testing.assert_allclose(little.probs, _sigmoid(8 * 200 / 255 - 4), atol=1e-4)
    off = Predictor(_pixel_model(), InferenceSettings(tiling="off"))
    (resized,) = off.predict_files([stripes], progress=False)
    assert not resized.tiled and resized.probs.shape == (64, 48, 1)
    assert np.abs(resized.probs - big.probs).max() > 0.3  # resizing to 16 px blurs them


def test_tiling_on_and_tile_size_rescales(stripes: Path) -> None:
    image = np.zeros((40, 40, 3), np.float32)
    image[:20, :, 0] = 1.0
    on = Predictor(_pixel_model(), InferenceSettings(tiling="on"))
    assert on.tiles((8, 8)) and on.tiles((100, 100))
    probs = on.predict_tiled(image)
    np.testing.assert_allclose(probs[:18, :, 0], _sigmoid(4.0), atol=1e-5)
    # tile_size=32: 32 image pixels per 16-pixel model input, probabilities back at 40x40
    scaled = Predictor(_pixel_model(), InferenceSettings(tile_size=(32, 32)))
    assert not scaled.tiles((32, 32)) and scaled.tiles((33, 8))
    probs = scaled.predict_tiled(image)
    assert probs.shape == (40, 40, 1)
    np.testing.assert_allclose(probs[:16, :, 0], _sigmoid(4.0), atol=1e-4)
    np.testing.assert_allclose(probs[24:, :, 0], _sigmoid(-4.0), atol=1e-4)


def test_bitwise_blending_is_the_and_of_tiled_and_whole(stripes: Path) -> None:
    plain = Predictor(_pixel_model(), InferenceSettings())
    anded = Predictor(_pixel_model(), InferenceSettings(bitwise_blending=True))
    (tiled,) = plain.predict_files([stripes], progress=False)
    (both,) = anded.predict_files([stripes], progress=False)
    whole = plain.predict_resized([tiled.image])[0]
    np.testing.assert_allclose(both.probs, np.minimum(tiled.probs, whole), atol=1e-6)
    masks = [p > 0.5 for p in (tiled.probs, whole, both.probs)]
    np.testing.assert_array_equal(masks[2], masks[0] & masks[1])


def test_free_size_model_takes_whole_images_padded(tmp_path: Path) -> None:
    model = _context_model()
    model_rgb = keras.Sequential(
        [keras.Input((None, None, 3)), keras.layers.Lambda(lambda x: x[..., :1]), model]
    )
    image = np.random.default_rng(4).random((30, 45, 3)).astype(np.float32)
    off = Predictor(model_rgb, InferenceSettings(tiling="off", pad_multiple=16))
    assert off.prepare(image).shape == (32, 48, 3)
    (probs,) = off.predict_resized([image])
    assert probs.shape == (30, 45, 1)
    reference = predict_batch(model, image[None, ..., :1])[0]
    # equal away from the padded bottom/right border (context radius 4)
    np.testing.assert_allclose(probs[:26, :41], reference[:26, :41], atol=1e-5)
    # auto: tiles of the training size when larger; no tile size known -> never tiles
    auto = Predictor(model_rgb, InferenceSettings(), training_size=(16, 16))
    assert auto.tiles((30, 45)) and not auto.tiles((16, 16))
    assert not Predictor(model_rgb, InferenceSettings()).tiles((4000, 4000))
    with pytest.raises(ConfigError, match=r"inference\.tile_size"):
        Predictor(model_rgb, InferenceSettings(tiling="on"))


def test_predictor_refuses_bad_settings() -> None:
    softmax = keras.Sequential([keras.Input((16, 16, 3)), keras.layers.Conv2D(3, 1)])
    with pytest.raises(ConfigError, match="bitwise_blending"):
        Predictor(softmax, InferenceSettings(bitwise_blending=True))
    with pytest.raises(ConfigError, match=r"inference\.tta"):
        Predictor(_pixel_model((16, 32)), InferenceSettings(tta=("rot90",)))
    with pytest.raises(ConfigError, match="tiling"):
        Predictor(_pixel_model(), InferenceSettings(tiling="maybe"))


def test_predictor_applies_tta(stripes: Path) -> None:
    """A pixel-wise model is equivariant to every transform: TTA changes nothing."""
    plain = Predictor(_pixel_model(), InferenceSettings())
    tta = Predictor(_pixel_model(), InferenceSettings(tta=TTA_OPS))
    (a,) = plain.predict_files([stripes], progress=False)
    (b,) = tta.predict_files([stripes], progress=False)
    np.testing.assert_allclose(a.probs, b.probs, atol=1e-6)


@pytest.mark.parametrize(("batch_size", "read_ahead"), [(1, 1), (2, 4), (8, 2)])
def test_mixed_sizes_come_back_in_order(tmp_path: Path, batch_size: int, read_ahead: int) -> None:
    rng = np.random.default_rng(5)
    sizes = [(12, 12), (40, 30), (16, 16), (10, 14), (33, 17), (8, 8)]
    paths = [
        write_image(tmp_path / f"{i}.png", rng.integers(0, 255, (*s, 3), dtype=np.uint8))
        for i, s in enumerate(sizes)
    ]
    predictor = Predictor(_pixel_model(), InferenceSettings(batch_size=batch_size))
    preds = list(predictor.predict_files(paths, progress=False, read_ahead=read_ahead))
    assert [p.path for p in preds] == paths
    assert [p.tiled for p in preds] == [False, True, False, False, True, False]
    for pred, size in zip(preds, sizes, strict=True):
        assert pred.probs.shape == (*size, 1)
    np.testing.assert_allclose(
        preds[1].probs[..., 0], _sigmoid(8 * preds[1].image[..., 0] - 4), atol=1e-5
    )


def test_auto_resizes_the_dataset_splits_as_training_did() -> None:
    """seg-train's evaluate/infer stages and seg-eval split=: the images training fed whole
    are resized the same way under tiling=auto; other inputs are tiled."""
    from types import SimpleNamespace

    from omegaconf import OmegaConf

    from seg.config.inference import InferenceConfig
    from seg.data.preprocess import ImagePreprocess
    from seg.runner.stages.infer import build_predictor

    cfg = OmegaConf.create({"inference": OmegaConf.structured(InferenceConfig)})
    ctx = SimpleNamespace(
        cfg=cfg, preprocessing=SimpleNamespace(image=ImagePreprocess(), size=(16, 16))
    )
    assert not build_predictor(ctx, _pixel_model(), dataset_split=True).tiles((64, 64))
    assert build_predictor(ctx, _pixel_model(), dataset_split=False).tiles((64, 64))
    cfg.inference.tiling = "on"
    assert build_predictor(ctx, _pixel_model(), dataset_split=True).tiles((64, 64))
