"""Every architecture of seg.models, binary and multiclass: builds from its config, trains, learns
a fixed batch, round-trips through a .keras file, takes non-square input, rejects bad sizes
naming the multiple; plus deep supervision, pretrained-encoder weights and freezing, window
attention and the CLI. Models are the tiny ones of conf/debug/model/fast_<model>.yaml."""

from __future__ import annotations

from functools import cache
from pathlib import Path

import keras
import numpy as np
import pytest
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig, OmegaConf

from seg.cli import CONF_DIR
from seg.config.model import MODEL_SCHEMAS
from seg.config.validation import validate
from seg.errors import ConfigError
from seg.models.encoders import set_encoder_trainable
from seg.models.layers import DeepSupervision, WindowAttention
from seg.training.factory import build_model
from tests.support.cli import run_cli, tracking_uri
from tests.support.compose import compose_run as compose_run_config

SIZE = 32
BINARY, MULTICLASS = (1, 1), (3, 3)  # (num_classes, channels)
DEEP_SUPERVISION = ("model.deep_supervision=true",)
FROZEN = ("model.freeze_encoder=true",)
PRETRAINED = ("deeplabv3plus", "efficient_unet", "transunet")
# Over 10 s per case on 2 cores, mostly TensorFlow tracing the training step of a large graph.
SLOW = {"u2net", "multires_unet", "swin_unet", *PRETRAINED}


def _case(name: str, kind: str) -> object:
    """Every model binary and multiclass; models with an ImageNet encoder train it in the
    binary case and keep it frozen in the multiclass one (both modes, and half the cost)."""
    extra = FROZEN if name in PRETRAINED and kind == "multiclass" else ()
    classes = BINARY if kind == "binary" else MULTICLASS
    return pytest.param(
        name,
        extra,
        classes,
        id=f"{name}-{kind}" + ("-frozen" if extra else ""),
        marks=[pytest.mark.slow] if name in SLOW else [],
    )


CASES = [_case(name, kind) for name in MODEL_SCHEMAS for kind in ("binary", "multiclass")]
LEARN_STEPS = 30
# Adam learning rates for the fixed-batch check, where 3e-3 learns too slowly (tried: 3e-3, 1e-2).
LEARNING_RATE = {"u2net": 1e-2, "efficient_unet": 1e-2, "sharp_unet": 1e-2}


@cache
def model_config(name: str, extra: tuple[str, ...] = ()) -> DictConfig:
    """The composed ``model`` node of ``model=<name> debug=fast`` (the real Hydra API)."""
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        cfg = compose("train", overrides=[f"model={name}", "debug=fast", *extra])
    return cfg.model


def build(
    name: str,
    extra: tuple[str, ...] = (),
    size: tuple[int, int] = (SIZE, SIZE),
    channels: int = 1,
    num_classes: int = 1,
) -> keras.Model:
    keras.utils.set_random_seed(0)
    return build_model(model_config(name, extra), size, channels, num_classes)


def _blobs(rng: np.random.Generator, n: int, size: tuple[int, int]) -> np.ndarray:
    """(n, height, width) smooth random blobs in [0, 1]: repeated periodic 3x3 box blurs of
    noise, each image stretched to the full range."""
    field = rng.random((n, *size))
    for _ in range(6):
        field = (
            sum(np.roll(field, (dy, dx), axis=(1, 2)) for dy in (-1, 0, 1) for dx in (-1, 0, 1))
            / 9.0
        )
    lo, hi = field.min(axis=(1, 2), keepdims=True), field.max(axis=(1, 2), keepdims=True)
    return ((field - lo) / (hi - lo)).astype(np.float32)


def blob_batch(
    n: int, num_classes: int, channels: int, size: tuple[int, int] = (SIZE, SIZE), seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Images and masks with real, learnable structure. Binary: the bright blobs of a grey
    image. Multiclass: class 1 where the first channel's blobs are bright, else class 2 where
    the second channel's are, else background (the third channel is their mean)."""
    rng = np.random.default_rng(seed)
    if num_classes == 1:
        image = _blobs(rng, n, size)
        return np.repeat(image[..., None], channels, -1), (image > 0.5)[..., None].astype("f4")
    first, second = _blobs(rng, n, size), _blobs(rng, n, size)
    labels = np.where(first > 0.6, 1, np.where(second > 0.6, 2, 0))
    image = np.stack([first, second, (first + second) / 2], axis=-1)[..., :channels]
    return image, np.eye(num_classes, dtype=np.float32)[labels]


@pytest.mark.parametrize(("name", "extra", "classes"), CASES)
def test_builds_trains_learns_and_round_trips(tmp_path: Path, name, extra, classes) -> None:
    """One model per case (building and tracing dominate the cost): a non-square input; two
    training steps as seg-train runs them; it learns a fixed batch; the trained model saved
    as .keras reloads (safe mode) and predicts identically."""
    num_classes, channels = classes
    size = (SIZE, 2 * SIZE)
    model = build(name, extra, size, channels=channels, num_classes=num_classes)
    assert model.output_names == ["mask"]
    assert model.output_shape == (None, *size, num_classes)
    assert model.get_layer("mask").dtype_policy.compute_dtype == "float32"
    x, y = blob_batch(8, num_classes, channels, size)
    probabilities = np.asarray(model(x[:2], training=False))
    assert np.all((probabilities >= 0) & (probabilities <= 1))
    if num_classes > 1:
        np.testing.assert_allclose(probabilities.sum(-1), 1.0, atol=1e-5)

    loss = "binary_crossentropy" if num_classes == 1 else "categorical_crossentropy"
    model.compile(optimizer=keras.optimizers.Adam(LEARNING_RATE.get(name, 3e-3)), loss=loss)
    # Slot variables created now rather than inside the first traced step, which would make
    # TensorFlow trace the step twice (this halves the test's time for the larger models).
    model.optimizer.build(model.trainable_variables)
    before = [w.copy() for w in model.get_weights()]
    frozen = extra == FROZEN
    if frozen:
        encoder = model.get_layer("encoder")
        assert not encoder.trainable and not encoder.trainable_weights
        encoder_before = [w.copy() for w in encoder.get_weights()]
    two = model.fit(x, y, batch_size=4, epochs=1, verbose=0)  # two steps, as seg-train does
    assert int(model.optimizer.iterations) == 2
    assert np.isfinite(two.history["loss"]).all()
    assert any(not np.array_equal(a, b) for a, b in zip(before, model.get_weights(), strict=True))

    # It can learn: LEARN_STEPS steps on a fixed batch (one per epoch). The first step's loss
    # (training mode, before its update) is the untrained baseline. The end point is the loss
    # in training mode (the last steps) or in inference mode (what evaluation and inference
    # use: the final head of a deep-supervised model, BN moving statistics), whichever shows
    # the learning better; either is only low if the model fits the batch.
    fixed = model.fit(x[:4], y[:4], batch_size=4, epochs=LEARN_STEPS, shuffle=False, verbose=0)
    losses = fixed.history["loss"]
    assert np.isfinite(losses).all(), losses
    inference = keras.losses.get(loss)(y[:4], model(x[:4], training=False))  # eager: no trace
    learned = min(np.mean(losses[-3:]), float(np.mean(inference)))
    assert learned < 0.8 * losses[0], (learned, losses)

    if frozen:  # only the decoder learned; the encoder's BN statistics did not move either
        for kept, now in zip(encoder_before, encoder.get_weights(), strict=True):
            np.testing.assert_array_equal(kept, now)

    path = tmp_path / "model.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)  # safe_mode=True; custom layers are registered
    assert loaded.output_names == ["mask"]
    np.testing.assert_allclose(
        np.asarray(loaded(x[4:], training=False)),
        np.asarray(model(x[4:], training=False)),
        rtol=1e-5,
        atol=1e-6,
    )
    if frozen:  # still frozen after loading; unfrozen in one call for fine-tuning
        assert not loaded.get_layer("encoder").trainable
        set_encoder_trainable(loaded, True)
        assert len(loaded.get_layer("encoder").trainable_weights) > 100


# A size each model rejects (for its debug=fast config) and the multiple it must name.
BAD_SIZES = {
    **{
        name: ((SIZE, SIZE + 2), 4)
        for name in (  # num_layers=3: two poolings
            "unet",
            "attention_unet",
            "unet_plus_plus",
            "unet3plus",
            "multires_unet",
            "sharp_unet",
        )
    },
    "u2net": ((48, SIZE), 32),
    "deeplabv3plus": ((40, SIZE), 16),
    "efficient_unet": ((48, SIZE), 32),
    "swin_unet": ((36, SIZE), 8),  # patch_size 2, three stages
    "transunet": ((SIZE, 40), 16),
}


@pytest.mark.parametrize("name", list(MODEL_SCHEMAS))
def test_bad_size_is_a_config_error_naming_the_multiple(name: str) -> None:
    size, multiple = BAD_SIZES[name]
    with pytest.raises(ConfigError, match=f"divisible by {multiple}") as err:
        build(name, size=size)
    assert f"{size[0]}x{size[1]}" in str(err.value)
    assert "dataset.image_size" in str(err.value)


def test_swin_windows_must_tile_every_stage() -> None:
    # 40 is a multiple of 8, but stage 2 (40 / 4 = 10 tokens) is not tiled by 4-wide windows.
    with pytest.raises(ConfigError, match=r"model.window_size=4.*multiples of 32"):
        build("swin_unet", size=(40, 40))


def test_pretrained_models_are_at_least_32_pixels() -> None:
    with pytest.raises(ConfigError, match="at least 32x32"):
        build("deeplabv3plus", size=(16, 16))


@pytest.mark.parametrize("name", list(MODEL_SCHEMAS))
def test_model_choice_composes_into_its_schema(name: str) -> None:
    cfg = compose_run_config("train", [f"model={name}"])
    assert OmegaConf.get_type(cfg.model) is MODEL_SCHEMAS[name]
    validate(cfg)
    with pytest.raises(Exception, match="nope"):
        compose_run_config("train", [f"model={name}", "model.nope=1"])


def test_deep_supervision_trains_every_head_and_infers_with_the_final_one() -> None:
    model = build("unet_plus_plus", DEEP_SUPERVISION)
    assert isinstance(model.get_layer("mask"), DeepSupervision)
    names = [f"head_x0{j}" for j in (1, 2)]  # num_layers=3: two top nodes, the deepest last
    heads = keras.Model(model.input, [model.get_layer(n).output for n in names])
    x, _ = blob_batch(16, 1, 1)
    per_head = np.stack([np.asarray(h) for h in heads(x, training=True)], axis=1)
    trained = np.asarray(model(x, training=True))  # BN in training mode, like the heads above
    chosen = [
        int(np.argmin(np.abs(per_head[i] - trained[i]).reshape(2, -1).max(-1)))
        for i in range(len(x))
    ]
    for i, head in enumerate(chosen):  # each image is exactly one head's prediction
        np.testing.assert_allclose(trained[i], per_head[i, head], atol=1e-6)
    assert set(chosen) == {0, 1}  # both heads get trained (chance of one only: 2 / 2**16)
    final = np.asarray(heads(x, training=False)[-1])
    np.testing.assert_allclose(np.asarray(model(x, training=False)), final, atol=1e-6)


def test_window_attention_stays_inside_its_shifted_window() -> None:
    """A pixel change reaches only the pixels of its window; after the cyclic shift, the mask
    keeps the pixels that the shift brought together from opposite borders apart."""
    keras.utils.set_random_seed(0)
    x = np.random.default_rng(0).random((1, 8, 8, 4), dtype=np.float32)
    moved = x.copy()
    moved[0, 0, 0] += 1.0
    for shift, region in [((0, 0), np.s_[:4, :4]), ((2, 2), np.s_[:2, :2])]:
        layer = WindowAttention(num_heads=2, window=(4, 4), shift=shift)
        changed = np.abs(np.asarray(layer(moved)) - np.asarray(layer(x)))[0].max(-1) > 1e-6
        expected = np.zeros((8, 8), bool)
        expected[region] = True
        np.testing.assert_array_equal(changed, expected)


# Pretrained encoders: a local file (never a download), freezing.


def _resnet_file(tmp_path: Path, legacy: bool) -> tuple[Path, np.ndarray]:
    """A ResNet50 (no top) weights file like keras.applications' ImageNet one, random weights:
    the legacy .h5 layout of the published files, or Keras 3's .weights.h5."""
    keras.utils.set_random_seed(7)
    base = keras.applications.ResNet50(include_top=False, weights=None, input_shape=(SIZE, SIZE, 3))
    if legacy:
        import h5py
        from keras.src.legacy.saving.legacy_h5_format import save_weights_to_hdf5_group

        path = tmp_path / "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5"
        with h5py.File(path, "w") as f:
            save_weights_to_hdf5_group(f, base)
    else:
        path = tmp_path / "resnet50.weights.h5"
        base.save_weights(path)
    return path, base.get_layer("conv1_conv").get_weights()[0]


@pytest.mark.parametrize("legacy", [True, False], ids=["h5", "weights.h5"])
def test_local_imagenet_file_is_loaded_into_the_encoder(tmp_path: Path, legacy: bool) -> None:
    path, kernel = _resnet_file(tmp_path, legacy)
    model = build("deeplabv3plus", (f"model.weights={path}",))
    loaded = model.get_layer("encoder").get_layer("conv1_conv").get_weights()[0]
    np.testing.assert_array_equal(loaded, kernel)
    assert model.get_layer("encoder").trainable  # freeze_encoder=false by default


@pytest.mark.parametrize("name", ["deeplabv3plus", "efficient_unet", "transunet"])
def test_imagenet_without_a_local_file_is_one_clear_error(tmp_path: Path, name: str) -> None:
    with pytest.raises(
        ConfigError,
        match=r"model.weights=imagenet: nothing is downloaded.*"
        r"download https://.*_notop\.h5 and pass its path",
    ):
        build(name, ("model.weights=imagenet",))
    with pytest.raises(ConfigError, match="file not found"):
        build(name, (f"model.weights={tmp_path / 'missing.h5'}",))


def test_weights_are_checked_when_the_config_is_validated(tmp_path: Path) -> None:
    missing = compose_run_config(
        "train", ["model=efficient_unet", "model.variant=b3", "model.weights=imagenet"]
    )
    path = tmp_path / "efficientnetb0_notop.h5"
    path.write_bytes(b"")
    normalised = compose_run_config(
        "train",
        ["model=efficient_unet", f"model.weights={path}", "dataset.preprocess.normalize=imagenet"],
    )
    with pytest.raises(ConfigError, match=r"efficientnetb3_notop\.h5"):
        validate(missing)
    with pytest.raises(ConfigError, match=r"dataset\.preprocess\.normalize: must be unit"):
        validate(normalised)


def test_a_mismatched_weights_file_names_the_expected_one(tmp_path: Path) -> None:
    other = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    path = tmp_path / "other.weights.h5"
    other.save_weights(path)
    with pytest.raises(ConfigError, match="resnet50_weights_tf_dim_ordering_tf_kernels_notop"):
        build("transunet", (f"model.weights={path}",))


def test_efficientnet_imagenet_file_normalises_like_keras(tmp_path: Path) -> None:
    """Keras' EfficientNet files hold the ImageNet std as the Normalization variance (Keras
    compensates only when it downloads them itself); a file given by path is corrected."""
    base = keras.applications.EfficientNetB0(
        include_top=False, weights=None, input_shape=(SIZE, SIZE, 3)
    )
    norm = next(la for la in base.layers if isinstance(la, keras.layers.Normalization))
    std = np.array([0.229, 0.224, 0.225], np.float32)
    norm.adapt_mean.assign(np.array([0.485, 0.456, 0.406], np.float32))
    norm.adapt_variance.assign(std)
    path = tmp_path / "efficientnetb0_notop.weights.h5"
    base.save_weights(path)
    model = build("efficient_unet", (f"model.weights={path}",), channels=3)
    loaded = next(
        la for la in model.get_layer("encoder").layers if isinstance(la, keras.layers.Normalization)
    )
    np.testing.assert_allclose(np.asarray(loaded.variance).reshape(-1), std**2, rtol=1e-6)
    # ... and the model computes (x - mean) / std on its [0, 1] input.
    image = np.full((1, SIZE, SIZE, 3), 0.5, np.float32)
    encoder = model.get_layer("encoder")
    scaled = keras.Model(encoder.input, loaded.output)(model.get_layer("imagenet_input")(image))
    np.testing.assert_allclose(
        np.asarray(scaled)[0, 0, 0], (0.5 - np.array([0.485, 0.456, 0.406])) / std, rtol=1e-4
    )


# The CLI: model choice is a sweepable Hydra option; deep supervision runs end to end.


@pytest.mark.slow
def test_seg_train_sweeps_over_models(tmp_path: Path) -> None:
    from mlflow.tracking import MlflowClient

    uri = tracking_uri(tmp_path)
    run_cli(
        "seg-train",
        "-m",
        "model=unet,attention_unet",
        "debug=fast",
        "trainer.epochs=1",
        "stages=[train]",
        "callbacks.epoch_masks=null",
        "mlflow.log_model=false",
        f"mlflow.tracking_uri={uri}",
        cwd=tmp_path,
    )
    client = MlflowClient(uri)
    runs = client.search_runs([client.get_experiment_by_name("demo_cells").experiment_id])
    runs = [r for r in runs if "mlflow.parentRunId" in r.data.tags]  # the jobs, not the sweep
    assert sorted(r.data.params["model._target_"] for r in runs) == [
        "seg.models.attention_unet.build_attention_unet",
        "seg.models.unet.build_unet",
    ]
    assert all(r.info.status == "FINISHED" for r in runs)
    assert all(r.data.params["model.base_filters"] == "4" for r in runs)  # debug=fast's model


@pytest.mark.slow
def test_seg_train_with_deep_supervision_end_to_end(tmp_path: Path) -> None:
    from mlflow.tracking import MlflowClient

    uri = tracking_uri(tmp_path)
    run_cli(
        "seg-train",
        "model=unet_plus_plus",
        "model.deep_supervision=true",
        "debug=fast",
        "trainer.epochs=1",
        f"mlflow.tracking_uri={uri}",
        cwd=tmp_path,
    )
    client = MlflowClient(uri)
    (run,) = client.search_runs([client.get_experiment_by_name("demo_cells").experiment_id])
    assert run.info.status == "FINISHED"
    assert run.data.params["model.deep_supervision"] == "True"
    assert np.isfinite(run.data.metrics["test_dice"])
    masks = Path(run.data.tags["seg.output_dir"]) / "inference" / "masks"
    assert len(list(masks.glob("*.png"))) == 16  # evaluated and inferred with one output
