"""The loss of softmax models (``dataset.num_classes > 1``): crossentropy, soft dice and focal,
weighted. Serializable, so a saved ``.keras`` model reloads with the exact loss it trained with."""

from __future__ import annotations

from typing import Any

import keras
from keras import ops

from seg.errors import ConfigError
from seg.losses.terms import EPSILON, non_negative, soft_dice, soft_overlap


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
        self.ce = non_negative("ce", ce)
        self.dice = non_negative("dice", dice)
        self.focal = non_negative("focal", focal)
        self.gamma = non_negative("gamma", gamma)
        self.smooth = non_negative("smooth", smooth)
        self.include_background = bool(include_background)
        self.class_weights = (
            None
            if class_weights is None
            else [non_negative("class_weights", w) for w in class_weights]
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
            p = ops.clip(y_pred, EPSILON, 1.0 - EPSILON)
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
            dice = soft_dice(*soft_overlap(y_true, y_pred), self.smooth)
            if not self.include_background:
                dice = dice[:, 1:]
            total = total + self.dice * (1.0 - ops.mean(dice, axis=-1))
        return total

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(
            ce=self.ce,
            dice=self.dice,
            focal=self.focal,
            gamma=self.gamma,
            class_weights=self.class_weights,
            include_background=self.include_background,
            smooth=self.smooth,
        )
        return config
