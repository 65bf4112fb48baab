"""Tests for seg.models.unet.build_unet: shapes, per-level kernels, validation, I/O, learning."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from seg.errors import ConfigError
from seg.models.unet import build_unet

SMALL = {"base_filters": 4, "num_layers": 3}


def _conv(model: keras.Model, name: str) -> keras.layers.Conv2D:
    layer = model.get_layer(name)
    assert type(layer) is keras.layers.Conv2D
    return layer


@pytest.fixture(autouse=True)
def _seed() -> None:
    keras.utils.set_random_seed(0)


@pytest.mark.parametrize(
    ("shape", "num_classes"),
    [((32, 32, 1), 1), ((32, 64, 3), 1), ((32, 48, 1), 3), ((64, 32, 3), 3)],
)
def test_output_shape_and_activation(shape: tuple[int, int, int], num_classes: int) -> None:
    model = build_unet(shape, num_classes=num_classes, **SMALL)
    assert model.input_shape == (None, *shape)
    assert model.output_shape == (None, shape[0], shape[1], num_classes)
    x = np.random.default_rng(0).random((2, *shape), dtype=np.float32)
    y = np.asarray(model.predict(x, verbose=0))
    assert y.shape == (2, shape[0], shape[1], num_classes)
    assert np.all(y >= 0) and np.all(y <= 1)
    if num_classes == 1:
        assert model.get_layer("mask").activation is keras.activations.sigmoid
    else:
        assert model.get_layer("mask").activation is keras.activations.softmax
        np.testing.assert_allclose(y.sum(axis=-1), 1.0, atol=1e-5)


def test_kernels_shrink_and_dilation_decreases_per_level() -> None:
    model = build_unet((32, 32, 1), base_filters=4, num_layers=4, base_kernels=(7, 7), dilation=3)
    encoder = ["enc1", "enc2", "enc3", "bottleneck"]
    kernels = [_conv(model, f"{p}_conv{i}").kernel_size for p in encoder for i in (1, 2)]
    dilations = [_conv(model, f"{p}_conv{i}").dilation_rate for p in encoder for i in (1, 2)]
    assert kernels == [(7, 7)] * 2 + [(5, 5)] * 2 + [(3, 3)] * 4
    assert dilations == [(3, 3)] * 2 + [(2, 2)] * 2 + [(1, 1)] * 4
    # The decoder mirrors the encoder level it joins.
    for level, kernel, rate in [(1, (7, 7), (3, 3)), (2, (5, 5), (2, 2)), (3, (3, 3), (1, 1))]:
        for i in (1, 2):
            conv = _conv(model, f"dec{level}_conv{i}")
            assert (conv.kernel_size, conv.dilation_rate) == (kernel, rate)
    # Filters double per level; every 3x3+ conv keeps the spatial size ('same' padding).
    assert [_conv(model, f"{p}_conv1").filters for p in encoder] == [4, 8, 16, 32]
    n_conv = sum(type(layer) is keras.layers.Conv2D for layer in model.layers)
    assert n_conv == 2 * (2 * 4 - 1) + 1


def test_non_square_kernel_and_dilation_per_axis() -> None:
    model = build_unet(
        (32, 32, 1), base_filters=4, num_layers=3, base_kernels=[9, 5], dilation=[2, 1]
    )
    assert [_conv(model, f"enc{i}_conv1").kernel_size for i in (1, 2)] == [(9, 5), (7, 3)]
    assert _conv(model, "bottleneck_conv1").kernel_size == (5, 3)
    assert [_conv(model, f"enc{i}_conv1").dilation_rate for i in (1, 2)] == [(2, 1), (1, 1)]


def test_bad_image_size_names_num_layers_and_multiple() -> None:
    with pytest.raises(ConfigError) as err:
        build_unet((100, 128, 3), num_layers=5)
    message = str(err.value)
    assert "model.num_layers=5" in message
    assert "divisible by 16" in message
    assert "100x128" in message
    # Width is checked too, not just height.
    with pytest.raises(ConfigError, match="divisible by 8"):
        build_unet((32, 36, 1), num_layers=4)


@pytest.mark.parametrize(
    ("kwargs", "key"),
    [
        ({"num_layers": 1}, "model.num_layers"),
        ({"base_filters": 0}, "model.base_filters"),
        ({"num_classes": 0}, "dataset.num_classes"),
        ({"base_kernels": (4, 3)}, "model.base_kernels"),
        ({"base_kernels": (3,)}, "model.base_kernels"),
        ({"base_kernels": (-1, -1)}, "model.base_kernels"),
        ({"dilation": 0}, "model.dilation"),
        ({"dilation": (1, 0)}, "model.dilation"),
        ({"dropout_rate": 1.0}, "model.dropout_rate"),
        ({"dropout_rate": -0.1}, "model.dropout_rate"),
        ({"input_shape": (32, 32)}, "dataset.image_size"),
        ({"input_shape": (32, 32, 0)}, "dataset.channels"),
    ],
)
def test_invalid_arguments_name_their_key(kwargs: dict, key: str) -> None:
    args = {"input_shape": (32, 32, 1), **SMALL, **kwargs}
    with pytest.raises(ConfigError, match=key):
        build_unet(**args)


def test_unknown_activation_is_config_error() -> None:
    with pytest.raises(ConfigError, match=r"model\.activation.*'swishy'"):
        build_unet((32, 32, 1), activation="swishy", **SMALL)


@pytest.mark.parametrize("activation", ["mish", "elu", "gelu"])
def test_other_activations_build_and_run(activation: str) -> None:
    model = build_unet((32, 32, 1), activation=activation, **SMALL)
    assert model.get_layer("enc1_act1").activation is keras.activations.get(activation)
    y = np.asarray(model(np.full((1, 32, 32, 1), 0.5, np.float32)))
    assert np.all(np.isfinite(y))


def test_output_layer_is_float32_mask_even_under_mixed_precision() -> None:
    model = build_unet((32, 32, 1), **SMALL)
    assert model.output_names == ["mask"]
    assert model.layers[-1].name == "mask"
    assert model.get_layer("mask").dtype == "float32"
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy("mixed_float16")
    try:
        mixed = build_unet((32, 32, 1), **SMALL)
        assert mixed.get_layer("enc1_conv1").compute_dtype == "float16"
        assert mixed.get_layer("mask").compute_dtype == "float32"
        assert mixed.outputs[0].dtype == "float32"
    finally:
        keras.config.set_dtype_policy(previous)


def test_optional_layers_follow_flags() -> None:
    plain = build_unet((32, 32, 1), batch_norm=False, dropout_rate=0.0, **SMALL)
    kinds = {type(layer) for layer in plain.layers}
    assert keras.layers.BatchNormalization not in kinds
    assert keras.layers.SpatialDropout2D not in kinds
    assert plain.get_layer("enc1_conv1").use_bias
    full = build_unet((32, 32, 1), batch_norm=True, dropout_rate=0.2, **SMALL)
    drops = [layer for layer in full.layers if type(layer) is keras.layers.SpatialDropout2D]
    # One per conv block: 2 encoder levels + bottleneck + 2 decoder levels.
    assert len(drops) == 5 and all(d.rate == 0.2 for d in drops)
    assert not full.get_layer("enc1_conv1").use_bias  # BN's beta replaces the bias


def test_save_and_reload_keras_file_gives_identical_predictions(tmp_path) -> None:
    model = build_unet(
        (32, 48, 3),
        num_classes=3,
        base_filters=4,
        num_layers=3,
        base_kernels=(5, 5),
        dilation=2,
        dropout_rate=0.1,
        activation="mish",
        name="roundtrip",
    )
    path = tmp_path / "model.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)  # safe_mode=True, no custom_objects
    assert loaded.name == "roundtrip"
    assert loaded.get_layer("mask").dtype == "float32"
    assert loaded.get_layer("enc1_conv1").dilation_rate == (2, 2)
    x = np.random.default_rng(1).random((3, 32, 48, 3), dtype=np.float32)
    np.testing.assert_allclose(
        loaded.predict(x, verbose=0), model.predict(x, verbose=0), rtol=1e-6, atol=1e-6
    )


def _blob_batch(n: int = 4, size: int = 32) -> tuple[np.ndarray, np.ndarray]:
    """Smoothed noise in [0, 1] and its >0.5 mask: a task with real, learnable structure."""
    rng = np.random.default_rng(0)
    image = rng.random((n, size, size))
    for _ in range(6):  # repeated 3x3 box blur (periodic) -> smooth blobs
        image = (
            sum(np.roll(image, (dy, dx), axis=(1, 2)) for dy in (-1, 0, 1) for dx in (-1, 0, 1))
            / 9.0
        )
    lo = image.min(axis=(1, 2), keepdims=True)
    hi = image.max(axis=(1, 2), keepdims=True)
    image = ((image - lo) / (hi - lo))[..., None].astype(np.float32)
    mask = (image > 0.5).astype(np.float32)
    return image, mask


@pytest.mark.parametrize("batch_norm", [True, False])
def test_it_learns_a_tiny_batch(batch_norm: bool) -> None:
    x, y = _blob_batch()
    assert 0.2 < y.mean() < 0.8  # both classes present
    model = build_unet((32, 32, 1), base_filters=4, num_layers=3, batch_norm=batch_norm)
    model.compile(optimizer=keras.optimizers.Adam(1e-2), loss="binary_crossentropy")
    losses = [float(model.train_on_batch(x, y)) for _ in range(30)]
    # Each reported loss is the batch loss before that step's update, in training mode.
    assert np.isfinite(losses).all()
    assert losses[-1] < 0.7 * losses[0], losses
    if not batch_norm:
        # Inference mode agrees. (With BN, 30 steps are too few for the 0.99-momentum moving
        # statistics to catch up, so only the training-mode loss is meaningful there.)
        accuracy = float(((model.predict(x, verbose=0) > 0.5) == y).mean())
        assert accuracy > 0.8, accuracy


def test_accepts_hydra_listconfig_arguments() -> None:
    """hydra.utils.instantiate passes YAML lists as ListConfig, not list/tuple."""
    from omegaconf import OmegaConf

    cfg = OmegaConf.create({"base_kernels": [5, 5], "dilation": [2, 2], "shape": [32, 32, 1]})
    model = build_unet(cfg.shape, base_kernels=cfg.base_kernels, dilation=cfg.dilation, **SMALL)
    assert _conv(model, "enc1_conv1").kernel_size == (5, 5)
    assert _conv(model, "enc2_conv1").dilation_rate == (1, 1)


def test_batch_norm_momentum_is_configurable() -> None:
    """0.9 by default: Keras' 0.99 leaves validation masks empty for the first epochs."""
    for momentum in (None, 0.8):
        kwargs = {} if momentum is None else {"bn_momentum": momentum}
        model = build_unet((32, 32, 3), base_filters=4, num_layers=3, **kwargs)
        bns = [
            layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)
        ]
        assert bns and all(bn.momentum == (momentum or 0.9) for bn in bns)
    with pytest.raises(ConfigError, match=r"model\.bn_momentum"):
        build_unet((32, 32, 3), bn_momentum=1.0)
