"""Segmentation loss as a weighted sum of crossentropy, soft-dice and soft-Jaccard terms.

One serializable class replaces the legacy family of loss functions, so a saved `.keras`
model always reloads with the exact loss it was trained with (weights live in the config).

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
from keras import ops

from seg.errors import ConfigError

__all__ = ["PRESETS", "SegmentationLoss"]

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
            inter = ops.sum(y_true * y_pred, axis=(1, 2))
            sums = ops.sum(y_true, axis=(1, 2)) + ops.sum(y_pred, axis=(1, 2))
            if self.dice > 0.0:
                dice = (2.0 * inter + self.smooth) / (sums + self.smooth)
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
