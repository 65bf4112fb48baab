"""Segmentation losses as weighted sums of terms: crossentropy, soft dice/Jaccard, SSIM, focal,
Tversky and focal Tversky.

Three serializable classes replace the legacy family of loss functions, so a saved `.keras`
model always reloads with the exact loss it was trained with (weights live in the config):
:class:`SegmentationLoss` for binary models (one sigmoid channel, the legacy presets below),
:class:`CompoundLoss` for binary models with any weighted sum of the terms of
:mod:`seg.config.loss` (``loss=combo loss.terms=[...]`` and the presets ssim, bce_ssim_iou,
binary_focal, tversky, focal_tversky), and :class:`CategoricalLoss` for softmax models
(``dataset.num_classes > 1``). The config refuses a binary loss for a softmax model and the
reverse (``seg.config.loss.validate_loss``), so a loss name in MLflow always means one thing.

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

from seg.losses.binary import PRESETS, CompoundLoss, SegmentationLoss
from seg.losses.categorical import CategoricalLoss

__all__ = ["PRESETS", "CategoricalLoss", "CompoundLoss", "SegmentationLoss"]
