"""Building models, losses and optimizers from their config nodes.

Objects named by ``_target_`` come only from the allow-list of :mod:`seg.config.targets`, so
a config (one read back from a shared tracking server included) cannot run arbitrary code.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import keras
from omegaconf import DictConfig, OmegaConf

from seg.config.targets import locate
from seg.errors import ConfigError
from seg.models.blocks import InputShapeChecked, input_shape_only
from seg.training.optimizers import FusedAdam, FusedAdamW
from seg.training.schedules import ScheduleLR

# The optimizers whose update seg runs as one fused kernel (seg.training.optimizers).
FUSED_OPTIMIZERS: dict[str, type[keras.optimizers.Optimizer]] = {
    "adam": FusedAdam,
    "adamw": FusedAdamW,
}


def optimizer_class(name: str) -> type[keras.optimizers.Optimizer]:
    """The optimizer a ``trainer.optimizer`` name denotes (the schema's enum holds the names):
    seg's fused version where there is one, else keras.optimizers' class of that name, case
    aside (rmsprop -> RMSprop)."""
    if name.lower() in FUSED_OPTIMIZERS:
        return FUSED_OPTIMIZERS[name.lower()]
    classes = {
        n.lower(): c
        for n, c in vars(keras.optimizers).items()
        if isinstance(c, type) and issubclass(c, keras.optimizers.Optimizer)
    }
    return classes[name.lower()]


def plain(node: DictConfig | Mapping[str, Any]) -> dict[str, Any]:
    """A config node as plain Python values (enums as strings, interpolations resolved)."""
    if isinstance(node, DictConfig):
        return OmegaConf.to_container(node, resolve=True, enum_to_str=True)  # type: ignore[return-value]
    return dict(node)


def instantiate(node: DictConfig | Mapping[str, Any], key: str, **extra: Any) -> Any:
    """Call the node's ``_target_`` with the node's other fields and ``extra``."""
    spec = plain(node)
    target = spec.pop("_target_", None)
    if not target:
        raise ConfigError(f"{key}: missing _target_")
    built = locate(target, key)
    _check_arguments(built, spec, key, target)
    return built(**spec, **extra)


def _check_arguments(built: Any, spec: Mapping[str, Any], key: str, target: str) -> None:
    """A config key the target does not take is one error naming it (not a TypeError from
    inside the call): e.g. ``+model.foo=1``."""
    try:
        parameters = inspect.signature(built).parameters
    except (TypeError, ValueError):  # a builtin without a signature: let the call decide
        return
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()):
        return
    unknown = [name for name in spec if name not in parameters]
    if unknown:
        raise ConfigError(
            f"{key}.{unknown[0]}: not an argument of {target} (it takes "
            f"{', '.join(n for n in parameters if n not in ('self', 'input_shape'))})"
        )


@contextmanager
def dtype_policy(policy: str) -> Iterator[None]:
    """Keras' global dtype policy set to ``policy`` while a model is built (its layers keep
    it: e.g. float16 compute, float32 weights), restored after, so nothing built later in the
    process (a reloaded checkpoint, the next run of a sweep) inherits it by accident."""
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(policy)
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)


def build_model(
    node: DictConfig,
    image_size: tuple[int, int],
    channels: int,
    num_classes: int,
    policy: str = "float32",
) -> keras.Model:
    """The configured model under the dtype ``policy`` (see :func:`precision_policy`); its
    outputs stay float32 (a low-precision softmax/sigmoid saturates and its loss overflows)."""
    with dtype_policy(policy):
        model = instantiate(
            node, "model", input_shape=(*image_size, channels), num_classes=num_classes
        )
    check_float32_outputs(model, str(node.get("_target_")))
    return model


def check_model_input_shape(
    node: DictConfig, image_size: tuple[int, int], channels: int, num_classes: int
) -> bool:
    """The architecture's size rule for this input (ConfigError naming the key), checked by the
    builder itself, which stops before building any layer. False: the builder never checked
    its input shape (a model of one's own), so it was built whole to find out."""
    with input_shape_only():
        try:
            instantiate(node, "model", input_shape=(*image_size, channels), num_classes=num_classes)
        except InputShapeChecked:
            return True
    return False


def check_float32_outputs(model: keras.Model, target: str) -> None:
    """Under mixed precision every builder must keep its output layer in float32."""
    wrong = [str(t.dtype) for t in model.outputs if str(t.dtype) != "float32"]
    if wrong:
        raise ConfigError(
            f"model._target_={target}: outputs are {', '.join(wrong)} under "
            "trainer.mixed_precision=true; its builder must create the output layer with "
            "dtype='float32' (or train with trainer.mixed_precision=false)"
        )


def build_loss(node: DictConfig) -> keras.losses.Loss:
    return instantiate(node, "loss")


def build_schedule(trainer: DictConfig, total_steps: int) -> float | ScheduleLR:
    """trainer.learning_rate as trainer.schedule shapes it over ``total_steps`` (a plain
    number for a constant rate without warm-up)."""
    node = plain(trainer.schedule)
    if node["name"] == "constant" and not node["warmup"]:
        return float(trainer.learning_rate)
    return ScheduleLR(trainer.learning_rate, total_steps, **node)


def schedule_of(optimizer: keras.optimizers.Optimizer) -> ScheduleLR | None:
    """The optimizer's learning-rate schedule of seg's (inside a LossScaleOptimizer too)."""
    inner = getattr(optimizer, "inner_optimizer", optimizer)
    rate = getattr(inner, "_learning_rate", None)
    return rate if isinstance(rate, ScheduleLR) else None


def build_optimizer(trainer: DictConfig, total_steps: int = 1) -> keras.optimizers.Optimizer:
    """The configured optimizer with its learning rate (or schedule over ``total_steps``),
    clipping, decay and momentum where they apply."""
    name = str(getattr(trainer.optimizer, "value", trainer.optimizer))
    kwargs: dict[str, Any] = {"learning_rate": build_schedule(trainer, total_steps)}
    if trainer.clipvalue is not None:
        kwargs["clipvalue"] = trainer.clipvalue
    if trainer.clipnorm is not None:
        kwargs["clipnorm"] = trainer.clipnorm
    if name in ("adamw", "sgd") and trainer.weight_decay:
        kwargs["weight_decay"] = trainer.weight_decay
    if name in ("sgd", "rmsprop"):
        kwargs["momentum"] = trainer.momentum
    if name == "sgd":
        kwargs["nesterov"] = bool(trainer.get("nesterov", False))
    return optimizer_class(name)(**kwargs)
