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

A package of one's own joins the list by installation, never by config: it names its modules
in the ``seg.targets`` entry-point group (``[project.entry-points."seg.targets"]
mylab = "mylab.callbacks"`` in its pyproject.toml); their classes and functions may then be
built like seg's own (a callback in ``callbacks.extra``, a model or a loss).

Free of Keras imports until a target is located, so config validation checks the module in
a second.
"""

from __future__ import annotations

import importlib
import inspect
from functools import cache
from importlib.metadata import entry_points
from typing import Any

from seg.config.model import MODEL_SCHEMAS
from seg.errors import ConfigError

# This project's modules whose classes and functions a config builds, derived from the
# registries they serve: the model builders (each architecture's schema names its builder by
# its ``_target_`` default), the losses (conf/loss: loss._target_), seg's own callbacks
# (callbacks.extra). A package admits what its submodules define (seg.losses.CompoundLoss is
# defined in seg.losses.binary).
SEG_TARGET_MODULES = frozenset(
    {
        "seg.losses",
        "seg.training.callbacks",
        *(schema._target_.rpartition(".")[0] for schema in MODEL_SCHEMAS.values()),
    }
)
# Keras' public namespaces a target may name -> the base class its targets must subclass.
KERAS_TARGET_BASES = {
    "keras.layers": "Layer",
    "keras.losses": "Loss",
    "keras.metrics": "Metric",
    "keras.optimizers": "Optimizer",
    "keras.initializers": "Initializer",
    "keras.regularizers": "Regularizer",
    "keras.callbacks": "Callback",
}
# Keras classes that run Python given to them, or send the run's values to a URL.
_REFUSED_KERAS = {
    "Lambda": "it runs Python code given to it",
    "LambdaCallback": "it runs Python code given to it",
    "RemoteMonitor": "it sends the run's logs to a URL",
}
ALLOWED = (
    "classes and functions defined in seg.losses, seg.training.callbacks or a "
    "seg.models.<architecture> module, or Keras classes of " + ", ".join(KERAS_TARGET_BASES)
)


@cache
def installed_target_modules() -> frozenset[str]:
    """Modules that installed packages add to the allow-list (the ``seg.targets`` entry points:
    installing a package is the trust decision, a config cannot extend the list)."""
    return frozenset(ep.value for ep in entry_points(group="seg.targets"))


def _seg_module(module: str) -> bool:
    return module in SEG_TARGET_MODULES or module in installed_target_modules()


def _split(target: str, key: str) -> tuple[str, str]:
    """(module, name) of an allowed module; a ConfigError naming ``key`` otherwise."""
    module, _, name = str(target).rpartition(".")
    where = f"{key}._target_={target}"
    if not _seg_module(module) and module not in KERAS_TARGET_BASES:
        raise ConfigError(f"{where}: not allowed; a config may build only {ALLOWED}")
    if not name or name.startswith("_"):
        raise ConfigError(f"{where}: not allowed; a private name cannot be built")
    return module, name


# What the config node at a key builds -> the modules of that kind (an installed package's
# modules may build anything: its entry point does not say what kind each module holds).
_MODEL_MODULES = frozenset(schema._target_.rpartition(".")[0] for schema in MODEL_SCHEMAS.values())
TARGET_KINDS: dict[str, tuple[str, frozenset[str]]] = {
    "model": ("a model builder of seg.models.<architecture>", _MODEL_MODULES),
    "loss": ("a loss of seg.losses or keras.losses", frozenset({"seg.losses", "keras.losses"})),
    "callbacks.extra": (
        "a callback of keras.callbacks or seg.training.callbacks",
        frozenset({"keras.callbacks", "seg.training.callbacks"}),
    ),
}


def _kind(key: str) -> tuple[str, frozenset[str]] | None:
    return next((k for prefix, k in TARGET_KINDS.items() if key.startswith(prefix)), None)


def check_target(target: str, key: str) -> None:
    """The module check of :func:`locate`, without importing anything (config validation),
    and that the module holds what the key builds (a loss for ``loss``, ...)."""
    module, _ = _split(target, key)
    kind = _kind(key)
    if kind is not None and module not in kind[1] and module not in installed_target_modules():
        raise ConfigError(
            f"{key}._target_={target}: builds from {module}, but {key} needs {kind[0]}"
        )


def _refusal(obj: Any, module: str) -> str | None:
    """Why ``obj``, found as ``<module>.<name>``, may not be built; None if it may."""
    if inspect.ismodule(obj):
        return "it is a module"
    if _seg_module(module):
        if not (inspect.isclass(obj) or inspect.isfunction(obj)):
            return "it is not a class or function"
        if obj.__module__ != module and not obj.__module__.startswith(f"{module}."):
            return f"it is defined in {obj.__module__}, not in {module}"
        return None
    base = getattr(importlib.import_module(module), KERAS_TARGET_BASES[module])
    home = "keras.src." + module.removeprefix("keras.")
    if not inspect.isclass(obj) or not issubclass(obj, base):
        return f"only {base.__name__} classes may be built from {module}"
    if obj.__module__ != home and not obj.__module__.startswith(f"{home}."):
        return f"it is defined in {obj.__module__}, outside {home}"
    refused = [
        why
        for cls in obj.__mro__
        for name, why in _REFUSED_KERAS.items()
        if cls.__name__ == name and cls.__module__.startswith("keras.")
    ]
    return refused[0] if refused else None


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
