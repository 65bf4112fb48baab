"""Segmentation metrics for Keras 3 training and validation: dice, iou, precision,
sensitivity (recall), specificity, accuracy; hard or soft, per image or pooled.

By default metrics binarise first: ``y_pred > threshold`` for a single sigmoid channel (C == 1), or
one-hot of the argmax for softmax outputs (C > 1); ``y_true`` is read as ``y_true > 0.5``.
Only foreground channels are scored (channel 0 for C == 1, channels 1..C-1 for C > 1) so
the huge background class cannot inflate the numbers.

Two aggregation styles, chosen to match how the numbers are read:

* ``Dice`` and ``IoU`` are PER IMAGE scores (averaged over foreground channels) and then
  averaged over all images of the epoch, so every image counts equally whatever its lesion
  size. An image with empty truth and empty prediction scores 1.0 ("nothing to find,
  nothing found"); empty truth with any predicted pixel scores 0.0. Never NaN. With
  ``class_id`` they score that one class of a softmax output (per-class metrics, e.g.
  ``dice_nucleus``; :func:`default_metrics` adds one per foreground class when given names).
* ``Sensitivity``, ``Specificity``, ``Precision`` and ``PixelAccuracy`` are POOLED: TP, FP,
  TN, FN (or correct/total pixels) are summed over every pixel and foreground channel seen
  (a micro average for C > 1), and the ratio is taken at the end. A 0/0 ratio is 1.0, for
  the same "nothing to find, nothing found" reason, except precision when nothing was
  predicted where there was something to find: 0.0 (an empty prediction is not precise).

Every metric takes ``per_image=`` to switch style, and ``soft=True`` to count with the
probabilities instead of binarised masks (TP = sum(T * P), FP = sum((1 - T) * P), ...): a
smooth signal early in training. E.g. ``Dice(soft=True, per_image=False, name="soft_dice")``.

``sample_weight`` is interpreted per image: a weight of shape ``(batch,)`` is used as is;
higher-rank (e.g. per-pixel) weights are averaged to one weight per image.

Only ``keras.ops`` is used, so ``update_state``/``result`` trace in graph mode.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import keras
from keras import ops

__all__ = [
    "Dice",
    "IoU",
    "PixelAccuracy",
    "Precision",
    "Recall",
    "Sensitivity",
    "Specificity",
    "default_metrics",
]


def _safe_ratio(num: Any, den: Any) -> Any:
    """``num / den`` with x/0 defined as 1.0 (counts: only 0/0 occurs); never NaN or inf."""
    positive = den > 0
    return ops.where(positive, num / ops.where(positive, den, ops.ones_like(den)), 1.0)


def _masks(
    y_true: Any,
    y_pred: Any,
    threshold: float,
    dtype: str,
    class_id: int | None = None,
    soft: bool = False,
) -> tuple[Any, Any]:
    """Foreground ``(truth, pred)``, both shape ``(batch, H, W, K)``: every foreground channel,
    or (``class_id``) the one class of a softmax output (K = 1). The prediction is binarised
    (threshold, or argmax for a softmax), or with ``soft`` the probabilities themselves."""
    channels = y_pred.shape[-1]
    if channels is None:
        raise ValueError("metrics need a static channel dimension on y_pred")
    # Cast first: integer masks (uint8 from image files) cannot be compared with 0.5.
    y_true = ops.cast(y_true, dtype)
    y_pred = ops.cast(y_pred, dtype)
    if class_id is not None:
        if not 0 <= class_id < channels or channels == 1:
            raise ValueError(
                f"class_id={class_id} needs a softmax output of more than "
                f"{class_id} classes, got {channels} channel(s)"
            )
        scored = slice(class_id, class_id + 1)
    else:
        scored = slice(0, 1) if channels == 1 else slice(1, None)
    truth = ops.cast(y_true[..., scored] > 0.5, dtype)
    if soft:
        return truth, y_pred[..., scored]
    if channels == 1:
        return truth, ops.cast(y_pred > threshold, dtype)
    hard = ops.one_hot(ops.argmax(y_pred, axis=-1), channels, dtype=dtype)
    return truth, hard[..., scored]


def _image_weights(sample_weight: Any, like: Any) -> Any:
    """One weight per image, shape ``(batch,)``; ones when no sample weight is given."""
    ones = ops.ones_like(like[:, 0, 0, 0])
    if sample_weight is None:
        return ones
    weight = ops.cast(ops.convert_to_tensor(sample_weight), like.dtype)
    if len(weight.shape) == 0:
        return ones * weight
    if len(weight.shape) > 1:
        weight = ops.mean(ops.reshape(weight, (ops.shape(weight)[0], -1)), axis=1)
    return weight


class _ConfusionMetric(keras.metrics.Metric):
    """A ratio of confusion counts of the foreground (see the module docstring).

    ``soft``: counts from probabilities (TP = sum(T * P), ...) instead of binarised masks.
    ``per_image``: the ratio per image (averaged over the foreground channels), then the mean
    over images; else POOLED: counts summed over every image, one ratio at the end.
    ``class_id``: one class of a softmax output instead of all foreground classes.
    """

    per_image_default = False

    def __init__(
        self,
        threshold: float = 0.5,
        name: str | None = None,
        class_id: int | None = None,
        soft: bool = False,
        per_image: bool | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(name=name, **kwargs)
        self.threshold = float(threshold)
        self.class_id = None if class_id is None else int(class_id)
        self.soft = bool(soft)
        self.per_image = self.per_image_default if per_image is None else bool(per_image)
        names = ("total", "count") if self.per_image else ("tp", "fp", "fn", "tn")
        self._counts = [self.add_variable(shape=(), initializer="zeros", name=n) for n in names]

    @staticmethod
    def _score(tp: Any, fp: Any, fn: Any, tn: Any) -> Any:
        raise NotImplementedError

    def update_state(self, y_true: Any, y_pred: Any, sample_weight: Any = None) -> None:
        truth, pred = _masks(y_true, y_pred, self.threshold, self.dtype, self.class_id, self.soft)
        counts = [  # per image and channel, (batch, K)
            ops.sum(t * q, axis=(1, 2))
            for t, q in (
                (truth, pred),
                (1.0 - truth, pred),
                (truth, 1.0 - pred),
                (1.0 - truth, 1.0 - pred),
            )
        ]
        weight = _image_weights(sample_weight, truth)
        if self.per_image:
            score = ops.mean(self._score(*counts), axis=-1)  # mean over foreground channels
            total, count = self._counts
            total.assign_add(ops.sum(weight * score))
            count.assign_add(ops.sum(weight))
            return
        for variable, value in zip(self._counts, counts, strict=True):
            variable.assign_add(ops.sum(weight * ops.sum(value, axis=-1)))

    def result(self) -> Any:
        if self.per_image:
            total, count = self._counts
            return ops.divide_no_nan(total, count)
        return self._score(*self._counts)

    def reset_state(self) -> None:
        for variable in self._counts:
            variable.assign(0.0)

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            "threshold": self.threshold,
            "class_id": self.class_id,
            "soft": self.soft,
            "per_image": self.per_image,
        }


@keras.saving.register_keras_serializable(package="seg")
class Dice(_ConfusionMetric):
    """Dice ``2TP / (2TP + FP + FN)``, per image by default (empty/empty -> 1)."""

    per_image_default = True

    def __init__(self, threshold: float = 0.5, name: str = "dice", **kwargs: Any) -> None:
        super().__init__(threshold=threshold, name=name, **kwargs)

    @staticmethod
    def _score(tp: Any, fp: Any, fn: Any, tn: Any) -> Any:
        return _safe_ratio(2.0 * tp, 2.0 * tp + fp + fn)


@keras.saving.register_keras_serializable(package="seg")
class IoU(_ConfusionMetric):
    """Jaccard ``TP / (TP + FP + FN)``, per image by default (empty/empty -> 1)."""

    per_image_default = True

    def __init__(self, threshold: float = 0.5, name: str = "iou", **kwargs: Any) -> None:
        super().__init__(threshold=threshold, name=name, **kwargs)

    @staticmethod
    def _score(tp: Any, fp: Any, fn: Any, tn: Any) -> Any:
        return _safe_ratio(tp, tp + fp + fn)


@keras.saving.register_keras_serializable(package="seg")
class Sensitivity(_ConfusionMetric):
    """Recall ``TP / (TP + FN)``, pooled by default; 1.0 when there was nothing to find."""

    def __init__(self, threshold: float = 0.5, name: str = "sensitivity", **kwargs: Any) -> None:
        super().__init__(threshold=threshold, name=name, **kwargs)

    @staticmethod
    def _score(tp: Any, fp: Any, fn: Any, tn: Any) -> Any:
        return _safe_ratio(tp, tp + fn)


@keras.saving.register_keras_serializable(package="seg")
class Recall(Sensitivity):
    """:class:`Sensitivity` under its other name."""

    def __init__(self, threshold: float = 0.5, name: str = "recall", **kwargs: Any) -> None:
        super().__init__(threshold=threshold, name=name, **kwargs)


@keras.saving.register_keras_serializable(package="seg")
class Specificity(_ConfusionMetric):
    """``TN / (TN + FP)``, pooled by default; 1.0 when every pixel seen was foreground."""

    def __init__(self, threshold: float = 0.5, name: str = "specificity", **kwargs: Any) -> None:
        super().__init__(threshold=threshold, name=name, **kwargs)

    @staticmethod
    def _score(tp: Any, fp: Any, fn: Any, tn: Any) -> Any:
        return _safe_ratio(tn, tn + fp)


@keras.saving.register_keras_serializable(package="seg")
class Precision(_ConfusionMetric):
    """``TP / (TP + FP)``, pooled by default. Nothing predicted: 1.0 when there was nothing
    to find either, 0.0 when there was (an empty mask misses everything)."""

    def __init__(self, threshold: float = 0.5, name: str = "precision", **kwargs: Any) -> None:
        super().__init__(threshold=threshold, name=name, **kwargs)

    @staticmethod
    def _score(tp: Any, fp: Any, fn: Any, tn: Any) -> Any:
        nothing_found = ops.where(tp + fn > 0, ops.zeros_like(tp), ops.ones_like(tp))
        return ops.where(tp + fp > 0, _safe_ratio(tp, tp + fp), nothing_found)


@keras.saving.register_keras_serializable(package="seg")
class PixelAccuracy(keras.metrics.Metric):
    """Fraction of correctly labelled pixels, pooled by default (``per_image``: the mean of
    each image's fraction).

    C == 1: thresholded prediction equals truth (``soft``: ``T P + (1 - T)(1 - P)``). C > 1:
    argmax of prediction equals argmax of the one-hot truth (categorical accuracy, background
    included since every pixel has a label; ``soft``: the probability given the true class).
    Named ``binary_accuracy`` by default so histories match the legacy runs.
    """

    def __init__(
        self,
        threshold: float = 0.5,
        name: str = "binary_accuracy",
        soft: bool = False,
        per_image: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(name=name, **kwargs)
        self.threshold, self.soft, self.per_image = float(threshold), bool(soft), bool(per_image)
        self.correct = self.add_variable(shape=(), initializer="zeros", name="correct")
        self.total = self.add_variable(shape=(), initializer="zeros", name="total")

    def _hits(self, y_true: Any, y_pred: Any) -> Any:
        y_true = ops.cast(ops.convert_to_tensor(y_true), self.dtype)
        y_pred = ops.cast(ops.convert_to_tensor(y_pred), self.dtype)
        if y_pred.shape[-1] == 1:
            truth = ops.cast(y_true > 0.5, self.dtype)
            if self.soft:
                return truth * y_pred + (1.0 - truth) * (1.0 - y_pred)
            return ops.cast(
                ops.equal(truth, ops.cast(y_pred > self.threshold, self.dtype)), self.dtype
            )
        if self.soft:
            return ops.sum(y_true * y_pred, axis=-1)[..., None]
        same = ops.equal(ops.argmax(y_true, axis=-1), ops.argmax(y_pred, axis=-1))
        return ops.cast(same, self.dtype)[..., None]

    def update_state(self, y_true: Any, y_pred: Any, sample_weight: Any = None) -> None:
        hits = self._hits(y_true, y_pred)
        weight = _image_weights(sample_weight, hits)
        correct = ops.sum(hits, axis=(1, 2, 3))
        pixels = ops.sum(ops.ones_like(hits), axis=(1, 2, 3))
        if self.per_image:
            self.correct.assign_add(ops.sum(weight * correct / pixels))
            self.total.assign_add(ops.sum(weight))
        else:
            self.correct.assign_add(ops.sum(weight * correct))
            self.total.assign_add(ops.sum(weight * pixels))

    def result(self) -> Any:
        return _safe_ratio(self.correct, self.total)

    def reset_state(self) -> None:
        self.correct.assign(0.0)
        self.total.assign(0.0)

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            "threshold": self.threshold,
            "soft": self.soft,
            "per_image": self.per_image,
        }


def default_metrics(
    threshold: float = 0.5, class_names: Sequence[str] = ()
) -> list[keras.metrics.Metric]:
    """Fresh metric objects for ``model.compile``: dice, iou, sensitivity, specificity,
    precision, binary_accuracy (new instances each call, since metrics hold state).

    ``class_names`` (a softmax model's, index 0 = background) adds ``dice_<name>`` and
    ``iou_<name>`` for every foreground class.
    """
    per_class = list(enumerate(class_names))[1:]
    return [
        Dice(threshold=threshold),
        IoU(threshold=threshold),
        *(Dice(threshold, f"dice_{name}", class_id=k) for k, name in per_class),
        *(IoU(threshold, f"iou_{name}", class_id=k) for k, name in per_class),
        Sensitivity(threshold=threshold),
        Specificity(threshold=threshold),
        Precision(threshold=threshold),
        PixelAccuracy(threshold=threshold),
    ]
