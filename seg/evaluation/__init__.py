"""Scoring segmentations: the Keras metrics of training and validation, the offline per-image
and aggregate evaluation of predicted masks (NumPy/SciPy), boundary distances, and the
figures of a report (score distribution, threshold sweep, gallery, training curves).

May import :mod:`seg.inference` (its pictures of masks), :mod:`seg.data`, :mod:`seg.config`
and :mod:`seg.errors`.
"""
