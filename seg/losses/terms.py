"""The terms a segmentation loss sums, as a table of named functions.

Each term maps ``(y_true, y_pred, **its parameters)`` to one loss value per image, shape
``(batch,)``; its parameters and their defaults are the config's (:data:`seg.config.loss.TERMS`,
which also documents each term), so the table below and that one hold the same names.
Tensors are channels-last ``(batch, H, W, C)`` probabilities, never logits.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from keras import ops

from seg.errors import ConfigError

EPSILON = 1e-7
_SSIM_C1 = 0.01**2  # Wang et al. 2004 constants for values in [0, 1]
_SSIM_C2 = 0.03**2


def non_negative(field: str, value: float) -> float:
    """A loss weight or parameter as a float >= 0; ConfigError naming ``loss.<field>``."""
    try:
        value = float(value)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"loss.{field} must be a number, got {value!r}") from exc
    if not value >= 0.0:  # also rejects NaN
        raise ConfigError(f"loss.{field} must be >= 0, got {value}")
    return value


def soft_overlap(y_true: Any, y_pred: Any) -> tuple[Any, Any]:
    """Per image and channel ``(sum(T*P), sum(T) + sum(P))``, shape ``(batch, C)``."""
    inter = ops.sum(y_true * y_pred, axis=(1, 2))
    sums = ops.sum(y_true, axis=(1, 2)) + ops.sum(y_pred, axis=(1, 2))
    return inter, sums


def soft_dice(inter: Any, sums: Any, smooth: float) -> Any:
    return (2.0 * inter + smooth) / (sums + smooth)


def crossentropy(y_true: Any, y_pred: Any) -> Any:
    """Mean per-pixel crossentropy of each image; clipped so log(0) never happens."""
    p = ops.clip(y_pred, EPSILON, 1.0 - EPSILON)
    if y_pred.shape[-1] == 1:
        ce = -(y_true * ops.log(p) + (1.0 - y_true) * ops.log(1.0 - p))
        return ops.mean(ce, axis=(1, 2, 3))
    ce = -ops.sum(y_true * ops.log(p), axis=-1)
    return ops.mean(ce, axis=(1, 2))


def dice_loss(y_true: Any, y_pred: Any, smooth: float) -> Any:
    """1 - soft dice per image, averaged over channels."""
    return 1.0 - ops.mean(soft_dice(*soft_overlap(y_true, y_pred), smooth), axis=-1)


def iou_loss(y_true: Any, y_pred: Any, smooth: float) -> Any:
    """1 - soft Jaccard per image, averaged over channels."""
    inter, sums = soft_overlap(y_true, y_pred)
    return 1.0 - ops.mean((inter + smooth) / (sums - inter + smooth), axis=-1)


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


def ssim_loss(y_true: Any, y_pred: Any, window: int, sigma: float) -> Any:
    return 1.0 - ssim(y_true, y_pred, window, sigma)


def focal_loss(y_true: Any, y_pred: Any, gamma: float, alpha: float | None) -> Any:
    """Mean pixel ``-a_t (1 - p_t)^gamma log p_t`` (Lin et al. 2017) of each image."""
    prob = ops.clip(y_pred, EPSILON, 1.0 - EPSILON)
    p_t = y_true * prob + (1.0 - y_true) * (1.0 - prob)
    loss = -ops.power(1.0 - p_t, gamma) * ops.log(p_t)
    if alpha is not None:
        loss = loss * (alpha * y_true + (1.0 - alpha) * (1.0 - y_true))
    return ops.mean(loss, axis=(1, 2, 3))


def _tversky_index(y_true: Any, y_pred: Any, alpha: float, beta: float, smooth: float) -> Any:
    """(batch, C): (TP + s) / (TP + alpha FP + beta FN + s), soft counts per image."""
    tp = ops.sum(y_true * y_pred, axis=(1, 2))
    fp = ops.sum((1.0 - y_true) * y_pred, axis=(1, 2))
    fn = ops.sum(y_true * (1.0 - y_pred), axis=(1, 2))
    return (tp + smooth) / (tp + alpha * fp + beta * fn + smooth)


def tversky_loss(y_true: Any, y_pred: Any, alpha: float, beta: float, smooth: float) -> Any:
    return 1.0 - ops.mean(_tversky_index(y_true, y_pred, alpha, beta, smooth), axis=-1)


def focal_tversky_loss(
    y_true: Any, y_pred: Any, alpha: float, beta: float, gamma: float, smooth: float
) -> Any:
    """(1 - Tversky index)^gamma, floored so that a perfect image (index 1) keeps a finite
    gradient."""
    index = _tversky_index(y_true, y_pred, alpha, beta, smooth)
    return ops.mean(ops.power(ops.maximum(1.0 - index, EPSILON), gamma), axis=-1)


#: term name -> its per-image loss function (parameters by keyword, as in seg.config.loss.TERMS)
TERM_FUNCTIONS: dict[str, Callable[..., Any]] = {
    "bce": crossentropy,
    "dice": dice_loss,
    "iou": iou_loss,
    "ssim": ssim_loss,
    "focal": focal_loss,
    "tversky": tversky_loss,
    "focal_tversky": focal_tversky_loss,
}
