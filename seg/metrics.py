"""Hard-mask segmentation metrics for Keras 3 training and validation.

All metrics binarise first: ``y_pred > threshold`` for a single sigmoid channel (C == 1), or
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
  the same "nothing to find, nothing found" reason (e.g. precision when nothing was
  predicted and nothing was there).

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
    "Sensitivity",
    "Specificity",
    "default_metrics",
]


def _safe_ratio(num: Any, den: Any) -> Any:
    """``num / den`` with x/0 defined as 1.0 (counts: only 0/0 occurs); never NaN or inf."""
    positive = den > 0
    return ops.where(positive, num / ops.where(positive, den, ops.ones_like(den)), 1.0)


def _hard_masks(
    y_true: Any, y_pred: Any, threshold: float, dtype: str, class_id: int | None = None
) -> tuple[Any, Any]:
    """Binarised foreground ``(truth, pred)`` masks, both shape ``(batch, H, W, K)``: every
    foreground channel, or (``class_id``) the one class of a softmax output (K = 1)."""
    channels = y_pred.shape[-1]
    if channels is None:
        raise ValueError("metrics need a static channel dimension on y_pred")
    # Cast first: integer masks (uint8 from image files) cannot be compared with 0.5.
    y_true = ops.cast(y_true, dtype)
    y_pred = ops.cast(y_pred, dtype)
    if class_id is not None:
        if not 0 <= class_id < channels or channels == 1:
            raise ValueError(f"class_id={class_id} needs a softmax output of more than "
                             f"{class_id} classes, got {channels} channel(s)")
        pred = ops.cast(ops.equal(ops.argmax(y_pred, axis=-1), class_id), dtype)[..., None]
        truth = ops.cast(y_true[..., class_id : class_id + 1] > 0.5, dtype)
        return truth, pred
    if channels == 1:
        pred = ops.cast(y_pred > threshold, dtype)
        truth = ops.cast(y_true > 0.5, dtype)
    else:
        pred = ops.one_hot(ops.argmax(y_pred, axis=-1), channels, dtype=dtype)[..., 1:]
        truth = ops.cast(y_true[..., 1:] > 0.5, dtype)
    return truth, pred


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


class _HardMaskMetric(keras.metrics.Metric):
    """Shared config (``threshold``) for the metrics that binarise predictions."""

    def __init__(self, threshold: float = 0.5, name: str | None = None, **kwargs: Any) -> None:
        super().__init__(name=name, **kwargs)
        self.threshold = float(threshold)

    def _masks(self, y_true: Any, y_pred: Any) -> tuple[Any, Any]:
        return _hard_masks(y_true, y_pred, self.threshold, self.dtype)

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config["threshold"] = self.threshold
        return config


class _PerImageMetric(_HardMaskMetric):
    """Mean over images of a per-image score; subclasses define ``_score``. ``class_id``
    scores one class of a softmax output instead of the mean over foreground classes."""

    def __init__(
        self,
        threshold: float = 0.5,
        name: str | None = None,
        class_id: int | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(threshold=threshold, name=name, **kwargs)
        self.class_id = None if class_id is None else int(class_id)
        self.total = self.add_variable(shape=(), initializer="zeros", name="total")
        self.count = self.add_variable(shape=(), initializer="zeros", name="count")

    @staticmethod
    def _score(inter: Any, truth_sum: Any, pred_sum: Any) -> Any:
        raise NotImplementedError

    def _masks(self, y_true: Any, y_pred: Any) -> tuple[Any, Any]:
        return _hard_masks(y_true, y_pred, self.threshold, self.dtype, self.class_id)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "class_id": self.class_id}

    def update_state(self, y_true: Any, y_pred: Any, sample_weight: Any = None) -> None:
        truth, pred = self._masks(y_true, y_pred)
        inter = ops.sum(truth * pred, axis=(1, 2))
        score = self._score(inter, ops.sum(truth, axis=(1, 2)), ops.sum(pred, axis=(1, 2)))
        per_image = ops.mean(score, axis=-1)  # average over foreground channels
        weight = _image_weights(sample_weight, truth)
        self.total.assign_add(ops.sum(weight * per_image))
        self.count.assign_add(ops.sum(weight))

    def result(self) -> Any:
        return ops.divide_no_nan(self.total, self.count)

    def reset_state(self) -> None:
        self.total.assign(0.0)
        self.count.assign(0.0)


@keras.saving.register_keras_serializable(package="seg")
class Dice(_PerImageMetric):
    """Per-image hard Dice ``2|T∩P| / (|T|+|P|)`` averaged over images (empty/empty -> 1)."""

    def __init__(
        self, threshold: float = 0.5, name: str = "dice", class_id: int | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(threshold=threshold, name=name, class_id=class_id, **kwargs)

    @staticmethod
    def _score(inter: Any, truth_sum: Any, pred_sum: Any) -> Any:
        return _safe_ratio(2.0 * inter, truth_sum + pred_sum)


@keras.saving.register_keras_serializable(package="seg")
class IoU(_PerImageMetric):
    """Per-image hard Jaccard ``|T∩P| / |T∪P|`` averaged over images (empty/empty -> 1)."""

    def __init__(
        self, threshold: float = 0.5, name: str = "iou", class_id: int | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(threshold=threshold, name=name, class_id=class_id, **kwargs)

    @staticmethod
    def _score(inter: Any, truth_sum: Any, pred_sum: Any) -> Any:
        return _safe_ratio(inter, truth_sum + pred_sum - inter)


class _PooledConfusionMetric(_HardMaskMetric):
    """Confusion counts summed over all pixels seen; subclasses define ``result``."""

    def __init__(self, threshold: float = 0.5, name: str | None = None, **kwargs: Any) -> None:
        super().__init__(threshold=threshold, name=name, **kwargs)
        self.tp = self.add_variable(shape=(), initializer="zeros", name="tp")
        self.fp = self.add_variable(shape=(), initializer="zeros", name="fp")
        self.tn = self.add_variable(shape=(), initializer="zeros", name="tn")
        self.fn = self.add_variable(shape=(), initializer="zeros", name="fn")

    def update_state(self, y_true: Any, y_pred: Any, sample_weight: Any = None) -> None:
        truth, pred = self._masks(y_true, y_pred)
        weight = _image_weights(sample_weight, truth)
        axes = (1, 2, 3)

        def pooled(mask: Any) -> Any:
            return ops.sum(weight * ops.sum(mask, axis=axes))

        self.tp.assign_add(pooled(truth * pred))
        self.fp.assign_add(pooled((1.0 - truth) * pred))
        self.tn.assign_add(pooled((1.0 - truth) * (1.0 - pred)))
        self.fn.assign_add(pooled(truth * (1.0 - pred)))

    def reset_state(self) -> None:
        for variable in (self.tp, self.fp, self.tn, self.fn):
            variable.assign(0.0)


@keras.saving.register_keras_serializable(package="seg")
class Sensitivity(_PooledConfusionMetric):
    """Pooled recall ``TP / (TP + FN)``; 1.0 when there was no foreground to find."""

    def __init__(self, threshold: float = 0.5, name: str = "sensitivity", **kwargs: Any) -> None:
        super().__init__(threshold=threshold, name=name, **kwargs)

    def result(self) -> Any:
        return _safe_ratio(self.tp, self.tp + self.fn)


@keras.saving.register_keras_serializable(package="seg")
class Specificity(_PooledConfusionMetric):
    """Pooled ``TN / (TN + FP)``; 1.0 when every pixel seen was foreground."""

    def __init__(self, threshold: float = 0.5, name: str = "specificity", **kwargs: Any) -> None:
        super().__init__(threshold=threshold, name=name, **kwargs)

    def result(self) -> Any:
        return _safe_ratio(self.tn, self.tn + self.fp)


@keras.saving.register_keras_serializable(package="seg")
class Precision(_PooledConfusionMetric):
    """Pooled ``TP / (TP + FP)``; 1.0 when nothing was predicted as foreground."""

    def __init__(self, threshold: float = 0.5, name: str = "precision", **kwargs: Any) -> None:
        super().__init__(threshold=threshold, name=name, **kwargs)

    def result(self) -> Any:
        return _safe_ratio(self.tp, self.tp + self.fp)


@keras.saving.register_keras_serializable(package="seg")
class PixelAccuracy(_HardMaskMetric):
    """Pooled fraction of correctly labelled pixels.

    C == 1: thresholded prediction equals truth. C > 1: argmax of prediction equals argmax of
    the one-hot truth (categorical accuracy, background included since every pixel has a
    label). Named ``binary_accuracy`` by default so histories match the legacy runs.
    """

    def __init__(
        self, threshold: float = 0.5, name: str = "binary_accuracy", **kwargs: Any
    ) -> None:
        super().__init__(threshold=threshold, name=name, **kwargs)
        self.correct = self.add_variable(shape=(), initializer="zeros", name="correct")
        self.total = self.add_variable(shape=(), initializer="zeros", name="total")

    def update_state(self, y_true: Any, y_pred: Any, sample_weight: Any = None) -> None:
        y_true = ops.convert_to_tensor(y_true)
        y_pred = ops.convert_to_tensor(y_pred)
        if y_pred.shape[-1] == 1:
            truth, pred = self._masks(y_true, y_pred)
            hits = ops.cast(ops.equal(truth, pred), self.dtype)
        else:
            same = ops.equal(ops.argmax(y_true, axis=-1), ops.argmax(y_pred, axis=-1))
            hits = ops.cast(same, self.dtype)[..., None]
        weight = _image_weights(sample_weight, hits)
        self.correct.assign_add(ops.sum(weight * ops.sum(hits, axis=(1, 2, 3))))
        self.total.assign_add(ops.sum(weight * ops.sum(ops.ones_like(hits), axis=(1, 2, 3))))

    def result(self) -> Any:
        return _safe_ratio(self.correct, self.total)

    def reset_state(self) -> None:
        self.correct.assign(0.0)
        self.total.assign(0.0)


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
