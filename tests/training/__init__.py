"""Callbacks, devices, precision, model files, divergence (seg.training)."""
