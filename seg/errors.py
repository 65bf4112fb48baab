"""Errors a user can cause: each names the file or config key at fault and what to do."""


class SegError(Exception):
    """Base for user-facing errors; the CLI prints the message alone, no traceback."""

    exit_code = 2  # the CLI's exit status


class ConfigError(SegError):
    """A configuration value is invalid (the message names the key)."""


class DatasetError(SegError):
    """Dataset files are missing, unreadable or mismatched (the message names the files)."""


class CheckpointError(SegError):
    """A model/checkpoint reference cannot be resolved or loaded."""


class TrainingDiverged(SegError, FloatingPointError):
    """The loss or the weights became NaN or infinite (the checkpoints keep the last finite
    epoch)."""


class TrackingPending(SegError):
    """The run ended but the tracking store stayed unreachable: its last records wait in the
    spool (the message says where and how to deliver them)."""

    exit_code = 3
