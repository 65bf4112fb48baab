"""How a binary mask file marks its foreground, and the masks a dataset's reading would get
wrong.

A binary dataset is read one way (``dataset.mask_threshold`` of each file's scale, or Otsu per
file; :func:`seg.data.preprocess.binarize`). Files that follow another convention than the rest
(some 0/1, some 0/2; some white, some red) are not an error of the file, so they decode; but
part of them would read as background, and training would "work" on masks that lost their
objects. :func:`unread_foreground` finds such a file: it marks pixels (non-zero values) of
which none is read as foreground. :func:`convention` names a readable mask's convention, so
that a dataset mixing 0/1 and 0/255 files (both read right) says so in one line.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from seg.data.preprocess import MaskPreprocess, mask_grey, mask_scale

# A mask marking at least this many pixels (and this share of them) has meant to mark an object.
MIN_MARKED_PIXELS = 10
MIN_MARKED_SHARE = 1e-3
_SHOWN_VALUES = 5


def values_found(raw: np.ndarray) -> str:
    """The distinct values (grey) or colours (RGB) of a mask file, the first few."""
    if raw.ndim == 3 and raw.shape[2] >= 3:
        rgb = raw[..., 2::-1].reshape(-1, 3)  # OpenCV's BGR -> RGB
        if not (rgb == rgb[:, :1]).all():
            colours = np.unique(rgb, axis=0)
            shown = ", ".join(f"({r}, {g}, {b})" for r, g, b in colours[:_SHOWN_VALUES])
            more = f" ... ({len(colours)} colours)" if len(colours) > _SHOWN_VALUES else ""
            return f"colours {shown}{more}"
    values = np.unique(mask_grey(raw))
    shown = ", ".join(f"{v:g}" for v in values[:_SHOWN_VALUES])
    more = f" ... ({len(values)} values)" if len(values) > _SHOWN_VALUES else ""
    return f"values {shown}{more}"


def unread_foreground(
    raw: np.ndarray, labels: np.ndarray, threshold: float, spec: MaskPreprocess, path: Path
) -> str | None:
    """The problem of a binary mask that marks pixels none of which reads as foreground (its
    values follow another convention than ``threshold`` of its scale); None if it reads."""
    grey = mask_grey(raw)
    marked = int(np.count_nonzero(grey))
    if marked < max(MIN_MARKED_PIXELS, MIN_MARKED_SHARE * grey.size):
        return None
    foreground = (1 - labels) if spec.invert else labels
    if foreground.any():
        return None
    how = (
        f"dataset.mask.binarize={spec.binarize}"
        if spec.binarize != "fixed"
        else f"dataset.mask_threshold={threshold:g} of {mask_scale(grey):g}"
    )
    return (
        f"{path}: {values_found(raw)} found, but read with {how} this mask is all "
        f"background ({marked} marked pixels lost): a binary mask holds 0 and 1, or 0 and 255; "
        "recode it like the others, or set dataset.mask_threshold (colour-coded masks: "
        "dataset.mask.colors)"
    )


def convention(raw: np.ndarray) -> str:
    """A readable binary grey mask's convention: ``0/1``, ``0/255``, ``0/65535``."""
    grey = mask_grey(raw)
    return f"0/{mask_scale(grey):g}"
