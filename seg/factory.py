"""Building models, losses and optimizers from their config nodes.

Objects named by ``_target_`` are imported only from an allow-list of modules (this project's
and Keras'), so a config read back from a shared tracking server cannot run arbitrary code.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import Any

import keras
from omegaconf import DictConfig, OmegaConf

from seg.errors import ConfigError

ALLOWED_TARGET_PREFIXES = ("seg.", "keras.")

OPTIMIZERS: dict[str, type[keras.optimizers.Optimizer]] = {
    "adam": keras.optimizers.Adam,
    "adamw": keras.optimizers.AdamW,
    "sgd": keras.optimizers.SGD,
    "rmsprop": keras.optimizers.RMSprop,
    "nadam": keras.optimizers.Nadam,
}


def plain(node: DictConfig | Mapping[str, Any]) -> dict[str, Any]:
    """A config node as plain Python values (enums as strings, interpolations resolved)."""
    if isinstance(node, DictConfig):
        return OmegaConf.to_container(node, resolve=True, enum_to_str=True)  # type: ignore[return-value]
    return dict(node)


def locate(target: str, key: str) -> Any:
    """Import ``package.module.name`` if it is on the allow-list; ``key`` names the config key."""
    if not target.startswith(ALLOWED_TARGET_PREFIXES):
        raise ConfigError(
            f"{key}._target_={target}: only targets in {', '.join(ALLOWED_TARGET_PREFIXES)} "
            "may be built from a config"
        )
    module_name, _, attribute = target.rpartition(".")
    try:
        return getattr(importlib.import_module(module_name), attribute)
    except (ImportError, AttributeError) as err:
        raise ConfigError(f"{key}._target_={target}: no such object ({err})") from err


def instantiate(node: DictConfig | Mapping[str, Any], key: str, **extra: Any) -> Any:
    """Call the node's ``_target_`` with the node's other fields and ``extra``."""
    spec = plain(node)
    target = spec.pop("_target_", None)
    if not target:
        raise ConfigError(f"{key}: missing _target_")
    return locate(target, key)(**spec, **extra)


def build_model(
    node: DictConfig, image_size: tuple[int, int], channels: int, num_classes: int
) -> keras.Model:
    return instantiate(
        node, "model", input_shape=(*image_size, channels), num_classes=num_classes
    )


def build_loss(node: DictConfig) -> keras.losses.Loss:
    return instantiate(node, "loss")


def build_optimizer(trainer: DictConfig) -> keras.optimizers.Optimizer:
    """The configured optimizer with learning rate, clipping and decay where it applies."""
    name = str(getattr(trainer.optimizer, "value", trainer.optimizer))
    kwargs: dict[str, Any] = {"learning_rate": trainer.learning_rate}
    if trainer.clipvalue is not None:
        kwargs["clipvalue"] = trainer.clipvalue
    if trainer.clipnorm is not None:
        kwargs["clipnorm"] = trainer.clipnorm
    if name in ("adamw", "sgd") and trainer.weight_decay:
        kwargs["weight_decay"] = trainer.weight_decay
    if name in ("sgd", "rmsprop"):
        kwargs["momentum"] = trainer.momentum
    return OPTIMIZERS[name](**kwargs)
