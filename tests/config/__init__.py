"""Config schemas, validation, the allow-list (seg.config)."""
