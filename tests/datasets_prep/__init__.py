"""Converters from public dataset formats (datasets_prep)."""
