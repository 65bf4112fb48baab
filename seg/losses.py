"""Segmentation losses as weighted sums of terms: crossentropy, soft dice/Jaccard, SSIM, focal,
Tversky and focal Tversky.

Three serializable classes replace the legacy family of loss functions, so a saved `.keras`
model always reloads with the exact loss it was trained with (weights live in the config):
:class:`SegmentationLoss` for binary models (one sigmoid channel, the legacy presets below),
:class:`CompoundLoss` for binary models with any weighted sum of the terms of
:mod:`seg.loss_terms` (``loss=combo loss.terms=[...]`` and the presets ssim, bce_ssim_iou,
binary_focal, tversky, focal_tversky), and :class:`CategoricalLoss` for softmax models
(``dataset.num_classes > 1``). The config refuses
a binary loss for a softmax model and the reverse (``seg.config.validate``), so a loss name in
MLflow always means one thing.

Legacy presets, as ``(bce, dice, iou)`` weights:

=========  ===============  =====================================
preset     weights          meaning
=========  ===============  =====================================
bce        (1, 0, 0)        crossentropy only
dice       (0, 1, 0)        1 - soft dice
iou        (0, 0, 1)        1 - soft Jaccard
bce_dice   (0.5, 0.5, 0)    (BCE + dice loss) / 2
bce_iou    (0.5, 0, 0.5)    (BCE + IoU loss) / 2
=========  ===============  =====================================

Conventions: tensors are channels-last ``(batch, H, W, C)``; ``y_pred`` holds probabilities
(sigmoid for C == 1, softmax for C > 1), never logits. Dice and IoU are computed per image
and per channel, then averaged over channels, so one large image cannot drown out small
lesions in the others; ``smooth`` (1 by default, like the legacy ``dice_coef``) makes an
empty truth with an empty prediction a perfect score (loss 0), never NaN.
"""

from __future__ import annotations

from typing import Any

import keras
import numpy as np
from keras import ops

from seg.errors import ConfigError
from seg.loss_terms import normalize_terms

__all__ = ["PRESETS", "CategoricalLoss", "CompoundLoss", "SegmentationLoss"]

#: Legacy loss names mapped to ``(bce, dice, iou)`` weights.
PRESETS: dict[str, tuple[float, float, float]] = {
    "bce": (1.0, 0.0, 0.0),
    "dice": (0.0, 1.0, 0.0),
    "iou": (0.0, 0.0, 1.0),
    "bce_dice": (0.5, 0.5, 0.0),
    "bce_iou": (0.5, 0.0, 0.5),
}

_EPSILON = 1e-7


def _check_non_negative(field: str, value: float) -> float:
    try:
        value = float(value)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"loss.{field} must be a number, got {value!r}") from exc
    if not value >= 0.0:  # also rejects NaN
        raise ConfigError(f"loss.{field} must be >= 0, got {value}")
    return value


def _soft_overlap(y_true: Any, y_pred: Any) -> tuple[Any, Any]:
    """Per image and channel ``(sum(T*P), sum(T) + sum(P))``, shape ``(batch, C)``."""
    inter = ops.sum(y_true * y_pred, axis=(1, 2))
    sums = ops.sum(y_true, axis=(1, 2)) + ops.sum(y_pred, axis=(1, 2))
    return inter, sums


def _soft_dice(inter: Any, sums: Any, smooth: float) -> Any:
    return (2.0 * inter + smooth) / (sums + smooth)


@keras.saving.register_keras_serializable(package="seg")
class SegmentationLoss(keras.losses.Loss):
    """Per-image ``bce * CE + dice * (1 - soft dice) + iou * (1 - soft Jaccard)``.

    ``call`` returns one value per image, shape ``(batch,)``; Keras reduces over the batch.
    """

    def __init__(
        self,
        bce: float = 0.0,
        dice: float = 0.0,
        iou: float = 0.0,
        smooth: float = 1.0,
        name: str = "segmentation_loss",
        **kwargs: Any,
    ) -> None:
        self.bce = _check_non_negative("bce", bce)
        self.dice = _check_non_negative("dice", dice)
        self.iou = _check_non_negative("iou", iou)
        self.smooth = _check_non_negative("smooth", smooth)
        if self.bce + self.dice + self.iou <= 0.0:
            raise ConfigError(
                "loss.bce, loss.dice and loss.iou are all 0: at least one weight must be > 0"
            )
        super().__init__(name=name, **kwargs)

    @classmethod
    def from_preset(cls, preset: str, smooth: float = 1.0, **kwargs: Any) -> SegmentationLoss:
        """Build the loss for a legacy name (``bce``, ``dice``, ``iou``, ``bce_dice``, ...)."""
        if preset not in PRESETS:
            raise ConfigError(
                f"unknown loss preset {preset!r}; choose one of {', '.join(sorted(PRESETS))}"
            )
        bce, dice, iou = PRESETS[preset]
        return cls(bce=bce, dice=dice, iou=iou, smooth=smooth, **kwargs)

    def call(self, y_true: Any, y_pred: Any) -> Any:
        y_true = ops.cast(y_true, y_pred.dtype)
        total = ops.zeros_like(y_pred[:, 0, 0, 0])
        if self.bce > 0.0:
            total = total + self.bce * self._crossentropy(y_true, y_pred)
        if self.dice > 0.0 or self.iou > 0.0:
            # Per image and channel: sums over the spatial axes only.
            inter, sums = _soft_overlap(y_true, y_pred)
            if self.dice > 0.0:
                dice = _soft_dice(inter, sums, self.smooth)
                total = total + self.dice * (1.0 - ops.mean(dice, axis=-1))
            if self.iou > 0.0:
                jaccard = (inter + self.smooth) / (sums - inter + self.smooth)
                total = total + self.iou * (1.0 - ops.mean(jaccard, axis=-1))
        return total

    @staticmethod
    def _crossentropy(y_true: Any, y_pred: Any) -> Any:
        """Mean per-pixel crossentropy of each image; clipped so log(0) never happens."""
        p = ops.clip(y_pred, _EPSILON, 1.0 - _EPSILON)
        if y_pred.shape[-1] == 1:
            ce = -(y_true * ops.log(p) + (1.0 - y_true) * ops.log(1.0 - p))
            return ops.mean(ce, axis=(1, 2, 3))
        ce = -ops.sum(y_true * ops.log(p), axis=-1)
        return ops.mean(ce, axis=(1, 2))

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(bce=self.bce, dice=self.dice, iou=self.iou, smooth=self.smooth)
        return config


@keras.saving.register_keras_serializable(package="seg")
class CategoricalLoss(keras.losses.Loss):
    """Per-image ``ce * CE + dice * (1 - soft dice) + focal * focal`` of a softmax output.

    ``y_true`` is one-hot ``(batch, H, W, C)`` (the pipeline one-hots index masks inside the
    tf.data graph), ``y_pred`` softmax probabilities, ``C >= 2``.

    * CE: ``-sum_c w_c y_c log p_c``, averaged over pixels (weights scale, never renormalise).
    * soft dice: per image and class ``(2 sum(T P) + smooth) / (sum T + sum P + smooth)``,
      averaged over classes (``include_background`` decides whether class 0 counts); a class
      absent from truth and prediction scores 1, so an empty class never gives NaN.
    * focal (Lin et al. 2017): ``-sum_c w_c y_c (1 - p_c)^gamma log p_c``, averaged over
      pixels: confident pixels count less; ``w`` (``class_weights``) is its alpha.

    ``class_weights`` (one per class, default all 1) apply to the CE and focal terms.
    """

    def __init__(
        self,
        ce: float = 0.0,
        dice: float = 0.0,
        focal: float = 0.0,
        gamma: float = 2.0,
        class_weights: list[float] | None = None,
        include_background: bool = False,
        smooth: float = 1.0,
        name: str = "categorical_loss",
        **kwargs: Any,
    ) -> None:
        self.ce = _check_non_negative("ce", ce)
        self.dice = _check_non_negative("dice", dice)
        self.focal = _check_non_negative("focal", focal)
        self.gamma = _check_non_negative("gamma", gamma)
        self.smooth = _check_non_negative("smooth", smooth)
        self.include_background = bool(include_background)
        self.class_weights = (
            None if class_weights is None
            else [_check_non_negative("class_weights", w) for w in class_weights]
        )
        if self.ce + self.dice + self.focal <= 0.0:
            raise ConfigError(
                "loss.ce, loss.dice and loss.focal are all 0: at least one weight must be > 0"
            )
        super().__init__(name=name, **kwargs)

    def _check_channels(self, channels: int | None) -> None:
        if channels is None or channels < 2:
            raise ConfigError(
                f"loss={self.name}: a categorical loss needs a softmax output of >= 2 classes, "
                f"got {channels} channel(s); use a binary loss for dataset.num_classes=1"
            )
        if self.class_weights is not None and len(self.class_weights) != channels:
            raise ConfigError(
                f"loss.class_weights: {len(self.class_weights)} weights for {channels} classes; "
                "give one per class (dataset.num_classes)"
            )

    def call(self, y_true: Any, y_pred: Any) -> Any:
        self._check_channels(y_pred.shape[-1])
        y_true = ops.cast(y_true, y_pred.dtype)
        total = ops.zeros_like(y_pred[:, 0, 0, 0])
        if self.ce > 0.0 or self.focal > 0.0:
            p = ops.clip(y_pred, _EPSILON, 1.0 - _EPSILON)
            # -w_c y_c log p_c per pixel and class; zero except at the true class
            weighted = -y_true * ops.log(p)
            if self.class_weights is not None:
                weighted = weighted * ops.convert_to_tensor(self.class_weights, y_pred.dtype)
            if self.ce > 0.0:
                total = total + self.ce * ops.mean(ops.sum(weighted, axis=-1), axis=(1, 2))
            if self.focal > 0.0:
                focal = ops.sum(weighted * ops.power(1.0 - p, self.gamma), axis=-1)
                total = total + self.focal * ops.mean(focal, axis=(1, 2))
        if self.dice > 0.0:
            dice = _soft_dice(*_soft_overlap(y_true, y_pred), self.smooth)
            if not self.include_background:
                dice = dice[:, 1:]
            total = total + self.dice * (1.0 - ops.mean(dice, axis=-1))
        return total

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(
            ce=self.ce, dice=self.dice, focal=self.focal, gamma=self.gamma,
            class_weights=self.class_weights, include_background=self.include_background,
            smooth=self.smooth,
        )
        return config


# --------------------------------------------------------------------------- compound (binary)

_SSIM_C1 = 0.01**2  # Wang et al. 2004 constants for values in [0, 1]
_SSIM_C2 = 0.03**2


def _gaussian_window(size: int, sigma: float, channels: int, dtype: str) -> Any:
    """(size, size, channels, 1) normalised Gaussian kernel for a depthwise convolution."""
    g = np.exp(-0.5 * ((np.arange(size) - (size - 1) / 2) / sigma) ** 2)
    kernel = np.outer(g, g) / np.outer(g, g).sum()
    return ops.convert_to_tensor(np.tile(kernel[:, :, None, None], (1, 1, channels, 1)), dtype)


def ssim(y_true: Any, y_pred: Any, window: int = 11, sigma: float = 1.5) -> Any:
    """Mean SSIM per image (batch,) over a Gaussian ``window`` (valid positions only, like
    ``tf.image.ssim``), averaged over channels; the window shrinks to fit a smaller image."""
    h, w, channels = y_pred.shape[1], y_pred.shape[2], y_pred.shape[-1]
    size = min(window, *(d for d in (h, w) if d is not None))
    size -= 1 - size % 2  # odd
    kernel = _gaussian_window(size, sigma, channels, y_pred.dtype)

    def mean(x: Any) -> Any:
        return ops.depthwise_conv(x, kernel, strides=1, padding="valid")

    mu_t, mu_p = mean(y_true), mean(y_pred)
    var_t = mean(y_true * y_true) - mu_t * mu_t
    var_p = mean(y_pred * y_pred) - mu_p * mu_p
    cov = mean(y_true * y_pred) - mu_t * mu_p
    index = ((2 * mu_t * mu_p + _SSIM_C1) * (2 * cov + _SSIM_C2)) / (
        (mu_t * mu_t + mu_p * mu_p + _SSIM_C1) * (var_t + var_p + _SSIM_C2)
    )
    return ops.mean(index, axis=(1, 2, 3))


def _tversky_index(y_true: Any, y_pred: Any, alpha: float, beta: float, smooth: float) -> Any:
    """(batch, C): (TP + s) / (TP + alpha FP + beta FN + s), soft counts per image."""
    tp = ops.sum(y_true * y_pred, axis=(1, 2))
    fp = ops.sum((1.0 - y_true) * y_pred, axis=(1, 2))
    fn = ops.sum(y_true * (1.0 - y_pred), axis=(1, 2))
    return (tp + smooth) / (tp + alpha * fp + beta * fn + smooth)


def _term(name: str, y_true: Any, y_pred: Any, p: dict[str, Any]) -> Any:
    """One term's per-image loss (batch,)."""
    if name == "bce":
        return SegmentationLoss._crossentropy(y_true, y_pred)
    if name in ("dice", "iou"):
        inter, sums = _soft_overlap(y_true, y_pred)
        union = sums if name == "dice" else sums - inter
        score = ((2.0 if name == "dice" else 1.0) * inter + p["smooth"]) / (union + p["smooth"])
        return 1.0 - ops.mean(score, axis=-1)
    if name == "ssim":
        return 1.0 - ssim(y_true, y_pred, p["window"], p["sigma"])
    if name == "focal":
        prob = ops.clip(y_pred, _EPSILON, 1.0 - _EPSILON)
        p_t = y_true * prob + (1.0 - y_true) * (1.0 - prob)
        loss = -ops.power(1.0 - p_t, p["gamma"]) * ops.log(p_t)
        if p["alpha"] is not None:
            loss = loss * (p["alpha"] * y_true + (1.0 - p["alpha"]) * (1.0 - y_true))
        return ops.mean(loss, axis=(1, 2, 3))
    index = _tversky_index(y_true, y_pred, p["alpha"], p["beta"], p["smooth"])
    if name == "tversky":
        return 1.0 - ops.mean(index, axis=-1)
    # focal_tversky: floored so that a perfect image (index 1) keeps a finite gradient
    return ops.mean(ops.power(ops.maximum(1.0 - index, _EPSILON), p["gamma"]), axis=-1)


@keras.saving.register_keras_serializable(package="seg")
class CompoundLoss(keras.losses.Loss):
    """Per-image weighted sum of the terms of :mod:`seg.loss_terms`, for one sigmoid channel.

    ``terms``: ``[{"name": "bce", "weight": 0.5}, {"name": "tversky", "weight": 0.5,
    "alpha": 0.3, "beta": 0.7}, ...]``; parameters left out take the term's default. The same
    term may appear twice with other parameters. ``call`` returns (batch,).
    """

    def __init__(self, terms: list[dict[str, Any]], name: str = "compound_loss",
                 **kwargs: Any) -> None:
        self.terms = normalize_terms(terms)
        super().__init__(name=name, **kwargs)

    def call(self, y_true: Any, y_pred: Any) -> Any:
        if y_pred.shape[-1] != 1:
            raise ConfigError(
                f"loss={self.name}: a binary loss for one sigmoid channel, got "
                f"{y_pred.shape[-1]} channels; use a categorical loss for dataset.num_classes>1"
            )
        y_true = ops.cast(y_true, y_pred.dtype)
        total = ops.zeros_like(y_pred[:, 0, 0, 0])
        for term in self.terms:
            if term["weight"] > 0.0:
                total = total + term["weight"] * _term(term["name"], y_true, y_pred, term)
        return total

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "terms": [dict(t) for t in self.terms]}
