"""Errors a user can cause: each names the file or config key at fault and what to do."""


class SegError(Exception):
    """Base for user-facing errors; the CLI prints the message alone, no traceback."""


class ConfigError(SegError):
    """A configuration value is invalid (the message names the key)."""


class DatasetError(SegError):
    """Dataset files are missing, unreadable or mismatched (the message names the files)."""


class CheckpointError(SegError):
    """A model/checkpoint reference cannot be resolved or loaded."""
