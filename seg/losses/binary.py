"""Losses of binary models (one sigmoid channel): the legacy presets and any weighted sum of
terms. Serializable, so a saved ``.keras`` model reloads with the exact loss it trained with."""

from __future__ import annotations

from typing import Any

import keras
from keras import ops

from seg.config.loss import normalize_terms
from seg.errors import ConfigError
from seg.losses.terms import TERM_FUNCTIONS, crossentropy, non_negative, soft_dice, soft_overlap

#: Legacy loss names mapped to ``(bce, dice, iou)`` weights.
PRESETS: dict[str, tuple[float, float, float]] = {
    "bce": (1.0, 0.0, 0.0),
    "dice": (0.0, 1.0, 0.0),
    "iou": (0.0, 0.0, 1.0),
    "bce_dice": (0.5, 0.5, 0.0),
    "bce_iou": (0.5, 0.0, 0.5),
}


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
        self.bce = non_negative("bce", bce)
        self.dice = non_negative("dice", dice)
        self.iou = non_negative("iou", iou)
        self.smooth = non_negative("smooth", smooth)
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
            total = total + self.bce * crossentropy(y_true, y_pred)
        if self.dice > 0.0 or self.iou > 0.0:
            # Per image and channel: sums over the spatial axes only.
            inter, sums = soft_overlap(y_true, y_pred)
            if self.dice > 0.0:
                dice = soft_dice(inter, sums, self.smooth)
                total = total + self.dice * (1.0 - ops.mean(dice, axis=-1))
            if self.iou > 0.0:
                jaccard = (inter + self.smooth) / (sums - inter + self.smooth)
                total = total + self.iou * (1.0 - ops.mean(jaccard, axis=-1))
        return total

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(bce=self.bce, dice=self.dice, iou=self.iou, smooth=self.smooth)
        return config


@keras.saving.register_keras_serializable(package="seg")
class CompoundLoss(keras.losses.Loss):
    """Per-image weighted sum of the terms of :data:`seg.losses.terms.TERM_FUNCTIONS`, for one
    sigmoid channel.

    ``terms``: ``[{"name": "bce", "weight": 0.5}, {"name": "tversky", "weight": 0.5,
    "alpha": 0.3, "beta": 0.7}, ...]``; parameters left out take the term's default. The same
    term may appear twice with other parameters. ``call`` returns (batch,).
    """

    def __init__(
        self, terms: list[dict[str, Any]], name: str = "compound_loss", **kwargs: Any
    ) -> None:
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
                params = {k: v for k, v in term.items() if k not in ("name", "weight")}
                total = total + term["weight"] * TERM_FUNCTIONS[term["name"]](
                    y_true, y_pred, **params
                )
        return total

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "terms": [dict(t) for t in self.terms]}
