"""The allow-list of what a config's ``_target_`` may build.

A target is ``<module>.<name>``. The module must be listed here by its exact name (checked
before anything is imported), and the object must be a class or function *defined* in it: a
name a module merely imports (its ``keras``, ``os``, a helper from another module) is refused.
Keras namespaces admit only classes of their own kind (a ``Layer`` from ``keras.layers``, ...)
defined in that namespace's package, so their ``get``/``deserialize`` functions, which rebuild
any Keras object, and ``keras.layers.TFSMLayer``, which loads a SavedModel, are refused, as is
``keras.layers.Lambda``, which runs Python given to it. So ``os.system``,
``keras.saving.load_model`` or ``keras.utils.get_file`` can never be named by a config, be it
typed on the command line or read back from a shared tracking server.

Free of Keras imports until a target is located, so config validation checks the module in
a second.
"""

from __future__ import annotations

import importlib
import inspect
from typing import Any

from seg.config import MODEL_SCHEMAS
from seg.errors import ConfigError

# This project's modules whose classes and functions a config builds: the model builders
# (conf/model: model._target_, one module per architecture of the schema) and the losses
# (conf/loss: loss._target_).
SEG_TARGET_MODULES = frozenset({"seg.losses", *(f"seg.models.{name}" for name in MODEL_SCHEMAS)})
# Keras' public namespaces a target may name -> the base class its targets must subclass.
KERAS_TARGET_BASES = {
    "keras.layers": "Layer",
    "keras.losses": "Loss",
    "keras.metrics": "Metric",
    "keras.optimizers": "Optimizer",
    "keras.initializers": "Initializer",
    "keras.regularizers": "Regularizer",
}
ALLOWED = (
    "classes and functions defined in seg.losses or a seg.models.<architecture> module, or "
    "Keras classes of " + ", ".join(KERAS_TARGET_BASES)
)


def _split(target: str, key: str) -> tuple[str, str]:
    """(module, name) of an allowed module; a ConfigError naming ``key`` otherwise."""
    module, _, name = str(target).rpartition(".")
    where = f"{key}._target_={target}"
    if module not in SEG_TARGET_MODULES and module not in KERAS_TARGET_BASES:
        raise ConfigError(f"{where}: not allowed; a config may build only {ALLOWED}")
    if not name or name.startswith("_"):
        raise ConfigError(f"{where}: not allowed; a private name cannot be built")
    return module, name


def check_target(target: str, key: str) -> None:
    """The module check of :func:`locate`, without importing anything (config validation)."""
    _split(target, key)


def _refusal(obj: Any, module: str) -> str | None:
    """Why ``obj``, found as ``<module>.<name>``, may not be built; None if it may."""
    if inspect.ismodule(obj):
        return "it is a module"
    if module in SEG_TARGET_MODULES:
        if not (inspect.isclass(obj) or inspect.isfunction(obj)):
            return "it is not a class or function"
        if obj.__module__ != module:
            return f"it is defined in {obj.__module__}, not in {module}"
        return None
    import keras

    base = getattr(importlib.import_module(module), KERAS_TARGET_BASES[module])
    home = "keras.src." + module.removeprefix("keras.")
    if not inspect.isclass(obj) or not issubclass(obj, base):
        return f"only {base.__name__} classes may be built from {module}"
    if obj.__module__ != home and not obj.__module__.startswith(f"{home}."):
        return f"it is defined in {obj.__module__}, outside {home}"
    if issubclass(obj, keras.layers.Lambda):
        return "it runs Python code given to it"
    return None


def locate(target: str, key: str) -> Any:
    """The class or function ``target`` names, if the allow-list admits it; ``key`` names
    the config node in the error."""
    module, name = _split(target, key)
    where = f"{key}._target_={target}"
    try:
        obj = getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError) as err:
        raise ConfigError(f"{where}: no such object ({err})") from err
    problem = _refusal(obj, module)
    if problem is not None:
        raise ConfigError(f"{where}: not allowed, {problem}; a config may build only {ALLOWED}")
    return obj
