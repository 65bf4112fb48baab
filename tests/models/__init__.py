"""Every architecture (seg.models)."""
