"""Prediction on image files of any size: the predictor (batched, resized or tiled with
Gaussian blending, test-time augmentation), post-processing from probabilities to masks, the
files an inference writes, and pictures of masks (overlays, contours, side-by-side panels).

May import :mod:`seg.data`, :mod:`seg.config` and :mod:`seg.errors`.
"""
