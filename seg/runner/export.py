"""``seg-export``: a trained model for deployment, checked by the runtime that will run it.

The model (a run id, a models:/ or runs:/ URI, or a .keras file) is rebuilt in float32 (a
model trained under mixed precision computes in bfloat16 or float16, which ONNX Runtime and
TFLite do not take on every device), written by Keras' ``Model.export`` as a TensorFlow
SavedModel, ONNX (tf2onnx) or TFLite (LiteRT) file, and then loaded by that format's own
runtime (TensorFlow, onnxruntime, the TFLite interpreter), fed the same images as Keras, and
compared: the largest absolute difference is written down. Beside the model go its
``preprocessing.json`` (how seg prepares an image for it) and a README of the input/output
contract. The folder is written whole: under a temporary name, renamed when complete.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import shutil
import warnings
from pathlib import Path
from typing import Any

import numpy as np
from omegaconf import DictConfig

from seg import __version__
from seg.errors import ConfigError
from seg.files import folder_problem, write_text_whole
from seg.runner.context import Context

log = logging.getLogger(__name__)

# Format -> (the file or folder in the export, Keras' name of the format, modules it needs).
FORMATS: dict[str, tuple[str, str, tuple[str, ...]]] = {
    "saved_model": ("saved_model", "tf_saved_model", ()),
    "onnx": ("model.onnx", "onnx", ("tf2onnx", "onnxruntime")),
    "tflite": ("model.tflite", "litert", ()),
}
CHECK_IMAGES = 2  # random images fed to Keras and to the exported model
MAX_DIFF = 1e-4  # the largest difference of probabilities allowed between the two


def check_export(cfg: DictConfig) -> Path:
    """The output folder can be written (and is new, or overwrite=true), the format's
    libraries are installed: before TensorFlow loads the model."""
    out = Path(str(cfg.output)).expanduser().resolve()
    if problem := folder_problem(out, "output"):
        raise ConfigError(problem)
    if out.exists() and any(out.iterdir()) and not cfg.overwrite:
        raise ConfigError(f"output={out}: not empty; name a new folder, or set overwrite=true")
    _, _, needs = FORMATS[str(cfg.format)]
    missing = [m for m in needs if importlib.util.find_spec(m) is None]
    if missing:
        raise ConfigError(
            f"format={cfg.format}: needs {', '.join(missing)}; install them with "
            "pip install 'seg[export]'"
        )
    return out


def float32_copy(model: Any) -> Any:
    """The model rebuilt with every layer computing in float32, with its weights."""
    import keras  # TensorFlow: loaded with the model by now

    def float32(node: Any) -> Any:
        if isinstance(node, dict):
            if node.get("class_name") == "DTypePolicy":
                return {**node, "config": {**node["config"], "name": "float32"}}
            return {k: float32(v) for k, v in node.items()}
        return [float32(v) for v in node] if isinstance(node, list) else node

    copy = keras.Model.from_config(float32(model.get_config()))
    copy.set_weights(model.get_weights())
    return copy


def _run_exported(fmt: str, path: Path, images: np.ndarray) -> np.ndarray:
    """Probabilities from the exported file, by the format's own runtime."""
    if fmt == "saved_model":
        # The runtimes load only here: TensorFlow off seg-export's start-up (a bad argument
        # is refused in a second), onnxruntime an optional extra (seg[export]).
        import tensorflow as tf

        loaded = tf.saved_model.load(str(path))  # kept while serving: it owns the variables
        return np.asarray(loaded.serve(images))
    if fmt == "onnx":
        import onnxruntime  # as above

        session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        return session.run(None, {session.get_inputs()[0].name: images})[0]
    import tensorflow as tf  # as above

    interpreter = tf.lite.Interpreter(model_path=str(path))
    inputs, outputs = interpreter.get_input_details()[0], interpreter.get_output_details()[0]
    interpreter.resize_tensor_input(inputs["index"], images.shape)
    interpreter.allocate_tensors()
    interpreter.set_tensor(inputs["index"], images)
    interpreter.invoke()
    return interpreter.get_tensor(outputs["index"])


def _contract(cfg: DictConfig, model: Any, diff: float, name: str) -> str:
    height, width, channels = model.input_shape[1:]
    classes = int(model.output_shape[-1])
    output = (
        "(batch, height, width, 1) float32: the probability of the foreground per pixel"
        if classes == 1
        else f"(batch, height, width, {classes}) float32: a probability per class per pixel"
    )
    return f"""# {name}: a segmentation model exported by seg {__version__}

From `checkpoint={cfg.checkpoint}`, as `{cfg.format}` (`{FORMATS[str(cfg.format)][0]}`),
computing in float32.

- **Input**: `(batch, {height}, {width}, {channels})` float32, the image as seg prepares it:
  resized to {width}x{height} (width x height; area when shrinking, linear when enlarging),
  {"grey" if channels == 1 else "RGB"}, then the steps of `preprocessing.json` (`image`: by
  default values in [0, 1], i.e. 8-bit pixels / 255).
- **Output**: `{output}`. A mask: the probability above a threshold (seg-infer's
  `inference.threshold`, 0.5 by default) for one class, else the class of the highest
  probability; resized back to the image's size.
- **Checked**: on {CHECK_IMAGES} random images this export's own runtime gave probabilities
  within {diff:.2e} (largest absolute difference) of Keras'.

`preprocessing.json` is seg's record of how training read images and masks; seg-infer
reads it to prepare images the same way.
"""


def run_export(cfg: DictConfig) -> Path:
    """Export, check, write; the export folder."""
    out = check_export(cfg)
    from seg.training.startup import import_tensorflow  # TensorFlow: once the checks passed

    import_tensorflow()
    ctx = Context(cfg, out, tracker=None)
    model = float32_copy(ctx.trained_or_loaded_model())
    fmt = str(cfg.format)
    target, keras_format, _ = FORMATS[fmt]
    tmp = out.with_name(f".{out.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        rng = np.random.default_rng(0)
        images = rng.random((CHECK_IMAGES, *model.input_shape[1:]), dtype=np.float32)
        expected = np.asarray(model.predict(images, verbose=0))  # (ONNX exports called models)
        with warnings.catch_warnings():  # Keras' tf2onnx shim pokes at NumPy's np.object
            warnings.simplefilter("ignore", FutureWarning)
            model.export(str(tmp / target), format=keras_format, verbose=False)
        diff = float(np.abs(_run_exported(fmt, tmp / target, images) - expected).max())
        if not diff <= MAX_DIFF:
            raise ConfigError(
                f"format={fmt}: the export predicts up to {diff:.3g} away from Keras "
                f"(allowed {MAX_DIFF}); this model does not export faithfully to {fmt}"
            )
        prep = ctx.preprocessing.to_dict()
        write_text_whole(
            tmp / "preprocessing.json", json.dumps(prep, indent=2, sort_keys=True) + "\n"
        )
        facts = {"checkpoint": str(cfg.checkpoint), "format": fmt, "max_abs_diff": diff}
        write_text_whole(tmp / "export.json", json.dumps(facts, indent=2) + "\n")
        write_text_whole(tmp / "README.md", _contract(cfg, model, diff, out.name))
        if out.exists():
            shutil.rmtree(out)
        tmp.rename(out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"exported {cfg.checkpoint} as {fmt} to {out}: max |diff| vs Keras {diff:.2e}")
    return out
