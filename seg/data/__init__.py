"""Reading, validating and streaming image/mask pairs."""
