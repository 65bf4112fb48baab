"""Offline evaluation and reports (seg.evaluation)."""
