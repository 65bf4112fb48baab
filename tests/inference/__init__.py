"""Prediction, tiling, TTA, post-processing (seg.inference)."""
