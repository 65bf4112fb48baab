"""The terms a binary compound loss (seg.losses.CompoundLoss) sums, and their parameters.

Kept free of Keras so the config validation can check ``loss.terms`` before TensorFlow loads.

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
from typing import Any

from seg.bounds import require_in
from seg.errors import ConfigError

__all__ = ["TERMS", "normalize_terms"]

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


def normalize_terms(terms: Sequence[Mapping[str, Any]], key: str = "loss.terms"
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
            raise ConfigError(f"{where}.name: {name!r} is not a loss term; choose one of "
                              f"{', '.join(TERMS)}")
        weight = _number(term.pop("weight", 1.0), f"{where}.weight")
        params = dict(TERMS[name])
        for param, value in term.items():
            if param not in params:
                raise ConfigError(f"{where}.{param}: not a parameter of {name} (it takes "
                                  f"{', '.join(params) or 'none'})")
            params[param] = _check_param(param, value, f"{where}.{param}")
        out.append({"name": name, "weight": weight, **params})
    if sum(t["weight"] for t in out) <= 0:
        raise ConfigError(f"{key}: all weights are 0; at least one must be > 0")
    return out
