"""trainer.mixed_precision (Keras mixed_float16 / mixed_bfloat16) and trainer.jit_compile (XLA):
a couple of training steps on tiny data, float32 outputs, the global policy left as it was."""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np
import pytest
from omegaconf import OmegaConf

from seg.errors import ConfigError
from seg.evaluation.metrics import default_metrics
from seg.losses import CategoricalLoss, SegmentationLoss
from seg.training.factory import build_model, check_float32_outputs, dtype_policy
from seg.training.precision import auto_policy, cpu_flags, precision_policy

SIZE = (16, 16)
UNET = OmegaConf.create(
    {
        "_target_": "seg.models.unet.build_unet",
        "base_filters": 4,
        "num_layers": 2,
        "base_kernels": [3, 3],
        "dilation": [1, 1],
        "dropout_rate": 0.0,
        "batch_norm": True,
        "activation": "relu",
    }
)


def _data(classes: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    x = rng.random((4, *SIZE, 3)).astype("float32")
    labels = np.digitize(x[..., 0], [0.4, 0.7]) % max(classes, 2)
    y = labels[..., None].astype("float32") if classes == 1 else np.eye(classes)[labels]
    return x, y.astype("float32")


def _compiled(classes: int, policy: str, jit: bool) -> keras.Model:
    keras.utils.set_random_seed(0)
    model = build_model(UNET, SIZE, 3, classes, policy)
    loss = SegmentationLoss(bce=0.5, dice=0.5) if classes == 1 else CategoricalLoss(ce=1, dice=1)
    names = [f"c{k}" for k in range(classes)] if classes > 1 else ()
    model.compile(
        optimizer=keras.optimizers.Adam(1e-2),
        loss=loss,
        metrics=default_metrics(class_names=names),
        jit_compile=jit,
    )
    return model


def _train_two_steps(model: keras.Model, classes: int) -> dict[str, list[float]]:
    x, y = _data(classes)
    history = model.fit(x, y, batch_size=2, epochs=1, verbose=0).history
    assert all(np.isfinite(v[0]) for v in history.values()), history
    return history


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_mixed_precision_trains_with_float32_outputs(tmp_path, dtype: str) -> None:
    classes = 3
    before = keras.config.dtype_policy().name
    model = _compiled(classes, precision_policy(True, dtype), jit=False)
    assert keras.config.dtype_policy().name == before == "float32"  # restored after building
    conv = model.get_layer("enc1_conv1")
    assert conv.compute_dtype == dtype and conv.variable_dtype == "float32"
    assert model.get_layer("mask").compute_dtype == "float32"
    # Loss scaling only where float16's narrow exponent needs it; bfloat16 has float32's range.
    scaled = isinstance(model.optimizer, keras.optimizers.LossScaleOptimizer)
    assert scaled == (dtype == "float16")
    history = _train_two_steps(model, classes)
    assert history["loss"][0] > 0
    x, _ = _data(classes)
    probs = model.predict(x, verbose=0)
    assert probs.dtype == np.float32 and probs.shape == (4, *SIZE, classes)
    assert np.all(np.isfinite(probs))
    # A checkpoint reloads as it was trained (float16 layers) under the restored policy.
    path = tmp_path / "mixed.keras"
    model.save(path)
    loaded = keras.saving.load_model(path, compile=False)
    assert loaded.get_layer("enc1_conv1").compute_dtype == dtype
    np.testing.assert_allclose(loaded.predict(x, verbose=0), probs, atol=1e-3)


def test_precision_policy_is_float32_when_off_and_auto_follows_the_device() -> None:
    import tensorflow as tf

    assert precision_policy(False, "bfloat16") == "float32"
    assert precision_policy(True, "float16") == "mixed_float16"
    gpu = bool(tf.config.list_logical_devices("GPU"))
    assert precision_policy(True, "auto") == ("mixed_float16" if gpu else "mixed_bfloat16")


def test_xla_jit_compile_trains_and_predicts_like_the_eager_model() -> None:
    model = _compiled(3, "float32", jit=True)
    assert model.jit_compile is True
    _train_two_steps(model, 3)
    x, _ = _data(3)
    compiled = model.predict(x, verbose=0)
    assert compiled.dtype == np.float32
    eager = keras.ops.convert_to_numpy(model(x, training=False))
    np.testing.assert_allclose(compiled, eager, atol=1e-5)


def test_dtype_policy_is_restored_even_when_building_fails() -> None:
    with pytest.raises(RuntimeError), dtype_policy("mixed_float16"):
        assert keras.config.dtype_policy().name == "mixed_float16"
        raise RuntimeError("a builder failed")
    assert keras.config.dtype_policy().name == "float32"


def test_a_float16_output_layer_is_refused_naming_the_model() -> None:
    with dtype_policy("mixed_float16"):
        inputs = keras.Input((*SIZE, 3))
        outputs = keras.layers.Conv2D(2, 1, activation="softmax")(inputs)  # float16 softmax
        model = keras.Model(inputs, outputs)
    with pytest.raises(ConfigError, match=r"model\._target_=my\.builder: outputs are float16"):
        check_float32_outputs(model, "my.builder")


def test_auto_precision_follows_what_the_machine_computes_fast() -> None:
    assert auto_policy([(8, 6)], set())[0] == "mixed_bfloat16"  # Ampere and later
    assert auto_policy([(7, 5)], set())[0] == "mixed_float16"  # tensor cores, no bfloat16
    assert auto_policy([(6, 1)], set())[0] == "float32"
    assert auto_policy([(8, 0), (7, 0)], set())[0] == "mixed_float16"  # the weakest decides
    assert auto_policy([], {"avx2", "avx512f", "avx512_bf16"})[0] == "mixed_bfloat16"
    assert auto_policy([], {"amx_bf16", "amx_tile"})[0] == "mixed_bfloat16"
    assert auto_policy([], {"avx2", "avx512f"})[0] == "float32"
    assert precision_policy("auto") in ("float32", "mixed_bfloat16", "mixed_float16")
    assert precision_policy("False") == precision_policy(False) == "float32"
    assert precision_policy("true", "bfloat16") == "mixed_bfloat16"


def test_cpu_flags_are_read_from_cpuinfo(tmp_path: Path) -> None:
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nflags\t\t: fpu sse avx512_bf16\n")
    assert cpu_flags(cpuinfo) == {"fpu", "sse", "avx512_bf16"}
    assert cpu_flags(tmp_path / "absent") == set()
