"""Losses and metrics against NumPy references (seg.losses, seg.evaluation.metrics)."""
