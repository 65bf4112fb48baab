"""The loss group: binary, compound and categorical losses; the terms a compound loss sums
and their parameters; its checks. (Free of Keras: ``loss.terms`` is checked before TensorFlow
loads. The functions of the terms are in :mod:`seg.losses.terms`.)

=============  =========================================================  ==================
term           per image                                                   parameters
=============  =========================================================  ==================
bce            mean pixel binary crossentropy                              -
dice           1 - soft dice                                               smooth
iou            1 - soft Jaccard                                            smooth
ssim           1 - SSIM of truth and probabilities (Gaussian window)       window, sigma
focal          mean pixel ``-a_t (1 - p_t)^gamma log p_t`` (Lin 2017)      gamma, alpha
tversky        1 - (TP + s) / (TP + alpha FP + beta FN + s) (Salehi 2017)  alpha, beta, smooth
focal_tversky  (1 - Tversky index)^gamma (Abraham & Khan 2019)             alpha, beta, gamma,
                                                                           smooth
=============  =========================================================  ==================

``focal``'s ``alpha`` weighs foreground pixels (background: 1 - alpha); null: no weighting.
``tversky``'s ``alpha`` weighs false positives and ``beta`` false negatives (0.5/0.5 = dice).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from functools import cache
from pathlib import Path
from typing import Any

from omegaconf import MISSING, DictConfig, OmegaConf

from seg.config import CONF_DIR
from seg.config.bounds import require, require_in
from seg.config.targets import check_target
from seg.errors import ConfigError

#: term -> its parameters and their defaults
TERMS: dict[str, dict[str, Any]] = {
    "bce": {},
    "dice": {"smooth": 1.0},
    "iou": {"smooth": 1.0},
    "ssim": {"window": 11, "sigma": 1.5},
    "focal": {"gamma": 2.0, "alpha": None},
    "tversky": {"alpha": 0.3, "beta": 0.7, "smooth": 1.0},
    "focal_tversky": {"alpha": 0.3, "beta": 0.7, "gamma": 0.75, "smooth": 1.0},
}


# The term names as the schema's type (loss.terms[i].name): derived from the table above.
LossTerm = StrEnum("LossTerm", {name: name for name in TERMS})


@dataclass
class LossConfig:
    """Binary losses (one sigmoid channel, dataset.num_classes=1): seg.losses.SegmentationLoss."""

    _target_: str = "seg.losses.SegmentationLoss"
    name: str = MISSING
    bce: float = 0.0
    dice: float = 0.0
    iou: float = 0.0
    smooth: float = 1.0


@dataclass
class LossTermConfig:
    """One weighted term; a parameter left null takes the term's default, and a parameter the
    term does not take fails validation (loss.terms[i].<param>)."""

    name: LossTerm = MISSING
    weight: float = 1.0
    smooth: float | None = None  # dice, iou, tversky, focal_tversky
    alpha: float | None = None  # tversky: FP weight; focal: foreground weight
    beta: float | None = None  # tversky: FN weight
    gamma: float | None = None  # focal: focusing; focal_tversky: exponent
    window: int | None = None  # ssim: Gaussian window side (odd)
    sigma: float | None = None  # ssim: its standard deviation


@dataclass
class CompoundLossConfig:
    """Any weighted sum of binary loss terms: seg.losses.CompoundLoss (dataset.num_classes=1)."""

    _target_: str = "seg.losses.CompoundLoss"
    name: str = MISSING
    terms: list[LossTermConfig] = MISSING


@dataclass
class CategoricalLossConfig:
    """Softmax losses (dataset.num_classes > 1): seg.losses.CategoricalLoss."""

    _target_: str = "seg.losses.CategoricalLoss"
    name: str = MISSING
    ce: float = 0.0  # categorical crossentropy
    dice: float = 0.0  # 1 - soft dice, per image, mean over classes
    focal: float = 0.0  # focal loss (Lin et al. 2017)
    gamma: float = 2.0  # focal focusing parameter; 0 = (weighted) crossentropy
    class_weights: list[float] | None = None  # per class, for ce and focal (focal's alpha)
    include_background: bool = False  # class 0 in the dice mean
    smooth: float = 1.0


def _number(value: Any, key: str, low: float = 0.0, high: float | None = None) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError) as err:
        raise ConfigError(f"{key}: a number, got {value!r}") from err
    require_in(number, key, low, high)  # also refuses NaN
    return number


def _check_param(name: str, value: Any, key: str) -> Any:
    if name == "window":
        if int(value) != value or value < 3 or value % 2 == 0:
            raise ConfigError(f"{key}: an odd window size >= 3, got {value}")
        return int(value)
    if name == "sigma":
        require_in(_number(value, key), key, 0.0, low_open=True)
        return float(value)
    if name == "alpha" and value is not None:
        return _number(value, key, 0.0, 1.0)
    return _number(value, key)


def normalize_terms(
    terms: Sequence[Mapping[str, Any]], key: str = "loss.terms"
) -> list[dict[str, Any]]:
    """Every term as ``{name, weight, <all its parameters>}`` with defaults filled in; a
    parameter that is not the term's (set, i.e. not None) fails naming ``key[i].param``."""
    if not terms:
        raise ConfigError(f"{key}: list at least one term, e.g. [{{name: bce, weight: 1}}]")
    out = []
    for i, term in enumerate(terms):
        where = f"{key}[{i}]"
        # None is "not set" (the schema's default for every parameter): the term's default
        term = {k: v for k, v in dict(term).items() if v is not None}
        name = str(term.pop("name", ""))
        if name not in TERMS:
            raise ConfigError(
                f"{where}.name: {name!r} is not a loss term; choose one of {', '.join(TERMS)}"
            )
        weight = _number(term.pop("weight", 1.0), f"{where}.weight")
        params = dict(TERMS[name])
        for param, value in term.items():
            if param not in params:
                raise ConfigError(
                    f"{where}.{param}: not a parameter of {name} (it takes "
                    f"{', '.join(params) or 'none'})"
                )
            params[param] = _check_param(param, value, f"{where}.{param}")
        out.append({"name": name, "weight": weight, **params})
    if sum(t["weight"] for t in out) <= 0:
        raise ConfigError(f"{key}: all weights are 0; at least one must be > 0")
    return out


@cache
def loss_options() -> dict[str, tuple[str, ...]]:
    """The options of the loss group (seg/conf/loss/*.yaml) by output kind, ``binary`` or
    ``categorical``: read from the schema each YAML pulls in, so a new loss file needs no
    listing here."""
    found: dict[str, list[str]] = {"binary": [], "categorical": []}
    for path in sorted(Path(CONF_DIR, "loss").glob("*.yaml")):
        defaults = [str(d) for d in OmegaConf.load(path).get("defaults", [])]
        kind = "categorical" if any("/categorical" in d for d in defaults) else "binary"
        found[kind].append(path.stem)
    return {kind: tuple(names) for kind, names in found.items()}


def validate_loss(cfg: DictConfig) -> None:
    """The loss fits the output: binary losses for one sigmoid channel, categorical losses for
    a softmax over dataset.num_classes > 1 (no silent reinterpretation of either)."""
    loss = cfg.get("loss")
    if loss is None:
        return
    check_target(loss._target_, "loss")
    classes = cfg.dataset.num_classes
    kind = OmegaConf.get_type(loss)
    binary, categorical = (" | ".join(loss_options()[k]) for k in ("binary", "categorical"))
    if kind is CompoundLossConfig:
        normalize_terms(OmegaConf.to_container(loss.terms, enum_to_str=True))
    if kind in (LossConfig, CompoundLossConfig):
        require(
            classes == 1,
            "loss",
            (
                f"{loss.name} is a binary (sigmoid) loss but dataset.num_classes={classes} "
                f"(softmax): use a categorical loss, loss={categorical}"
            ),
        )
    if kind is not CategoricalLossConfig:
        return
    require(
        classes > 1,
        "loss",
        (
            f"{loss.name} is a categorical (softmax) loss but dataset.num_classes=1 (one "
            f"sigmoid channel): use a binary loss, loss={binary}, or set "
            "dataset.num_classes"
        ),
    )
    require_in(loss.gamma, "loss.gamma", 0)
    weights = loss.get("class_weights")
    if weights is not None:
        weights = list(weights)
        require(
            len(weights) == classes and all(w >= 0 for w in weights),
            "loss.class_weights",
            f"one weight >= 0 per class (dataset.num_classes={classes}), got {weights}",
        )
