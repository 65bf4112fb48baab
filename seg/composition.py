"""Config composition errors (and files that cannot be written) as one line with exit code 2,
like seg's own errors.

Hydra reports a failed composition (an unknown group option, an unknown key, a wrong type, a
malformed override) as several lines, its config search path included, exits 1, and advises
``+key=value`` for a misspelt key, which would add the typo to the config. The entry points
(seg.cli) route Hydra's reporting through :func:`run_and_report`, which turns those errors
into ``error: <key>: <what was found>; <what to do>`` (the closest known key or the available
options) and exits 2; every other error keeps Hydra's report. HYDRA_FULL_ERROR=1 still shows
the whole traceback.
"""

from __future__ import annotations

import dataclasses
import difflib
import errno
import logging
import os
import re
import sys
from collections.abc import Callable
from typing import Any

from hydra._internal import utils as hydra_utils
from hydra.errors import (
    ConfigCompositionException,
    MissingConfigException,
    OverrideParseException,
)
from omegaconf.errors import (
    ConfigAttributeError,
    ConfigKeyError,
    OmegaConfBaseException,
    ValidationError,
)

EXIT_CODE = 2  # the exit code of every user error (seg.errors.SegError)
_original_run_and_report = hydra_utils.run_and_report


def _closest(word: str, candidates: list[str]) -> str | None:
    found = difflib.get_close_matches(word, candidates, n=1, cutoff=0.6)
    return found[0] if found else None


def _missing_option(ex: MissingConfigException) -> str:
    """``model=nope``: the group's options."""
    missing = str(getattr(ex, "missing_cfg_file", "") or "")
    group, _, option = missing.rpartition("/")
    options = list(getattr(ex, "options", None) or [])
    if not options:
        return str(ex).splitlines()[0]
    near = _closest(option, options)
    hint = f"did you mean {group}={near}? " if near else ""
    return f"{group}={option}: no such option; {hint}choose one of {', '.join(options)}"


def _unknown_key(cause: ConfigKeyError | ConfigAttributeError) -> str:
    """``model.base_filterz=8``: the closest key of the node."""
    key = str(getattr(cause, "full_key", "") or "")
    name = key.rpartition(".")[2]
    kind = getattr(cause, "object_type", None)
    known = [f.name for f in dataclasses.fields(kind)] if dataclasses.is_dataclass(kind) else []
    near = _closest(name, known)
    parent = key.rpartition(".")[0]
    where = f" of {parent}" if parent else ""
    return f"{key}: no such key{where}" + (
        f"; did you mean {parent + '.' if parent else ''}{near}?"
        if near
        else f"; the keys are {', '.join(known)}"
        if known
        else ""
    )


def _wrong_value(cause: ValidationError) -> str:
    key = str(getattr(cause, "full_key", "") or "")
    first = str(cause).splitlines()[0]
    found = re.search(r"Value '([^']*)' of type '[^']*' could not be converted to (\w+)", first)
    if found:
        return f"{key}={found.group(1)}: expected {found.group(2).lower()}"
    invalid = re.search(r"Invalid value '([^']*)', expected one of \[([^\]]*)\]", first)
    if invalid:
        return f"{key}={invalid.group(1)}: expected one of {invalid.group(2)}"
    return f"{key}: {first}"


# What to do when a file cannot be written, by errno.
_WRITE_ADVICE = {
    errno.ENOSPC: "free space on that disk, or write elsewhere (paths.log_dir, hydra.run.dir, "
    "mlflow.tracking_uri); what was written before is kept",
    errno.ENOTDIR: "a file stands where a folder is needed: move it, or name another folder "
    "(hydra.run.dir, paths.log_dir, output=)",
    errno.EROFS: "the file system is read-only: write elsewhere (hydra.run.dir, paths.log_dir)",
    errno.EACCES: "no permission: write elsewhere (hydra.run.dir, paths.log_dir, output=)",
}


def _write_error(ex: BaseException | None) -> OSError | None:
    """The OSError of a file that could not be written, in the error or what caused it."""
    seen: list[BaseException] = []
    while ex is not None and ex not in seen:
        seen.append(ex)
        if isinstance(ex, OSError) and ex.errno in _WRITE_ADVICE:
            return ex
        ex = ex.__cause__ or ex.__context__
    return None


def write_problem(ex: BaseException) -> str | None:
    """A file that could not be written (a full disk, a file where a folder is needed, ...)
    as one line; None for other errors. h5py (Keras' weights files) puts the file's name in a
    long multi-line text instead of the error's filename: it is taken from there."""
    err = _write_error(ex)
    if err is None:
        return None
    named = re.search(r"filename = '([^']+)'", str(err))
    where = err.filename or (named.group(1) if named else "a file")
    said = err.strerror or ""
    what = said if said and "\n" not in said and len(said) < 200 else os.strerror(err.errno)
    return f"{where}: {what}; {_WRITE_ADVICE[err.errno]}"


def one_line(ex: BaseException) -> str | None:
    """The one-line message of a composition error, or of a file that could not be written;
    None for any other error."""
    if (problem := write_problem(ex)) is not None:
        return problem
    if isinstance(ex, MissingConfigException):
        return _missing_option(ex)
    if isinstance(ex, OverrideParseException):
        return f"cannot read the override: {str(ex).splitlines()[0]}"
    cause = next(
        (c for c in (ex.__cause__, ex.__context__) if isinstance(c, OmegaConfBaseException)), ex
    )
    if isinstance(cause, ConfigKeyError | ConfigAttributeError):
        return _unknown_key(cause)
    if isinstance(cause, ValidationError):
        return _wrong_value(cause)
    if isinstance(ex, OmegaConfBaseException | ConfigCompositionException):
        return " ".join(
            line.strip()
            for line in str(ex).splitlines()
            if line.strip() and not line.strip().startswith("To append")
        )
    return None


def run_and_report(func: Callable[[], Any]) -> Any:
    """Hydra's ``run_and_report``, with composition errors as one line and exit code 2."""
    try:
        return func()
    except Exception as ex:
        error = ex
        message = None if os.environ.get("HYDRA_FULL_ERROR") == "1" else one_line(error)
        if message is None:
            return _original_run_and_report(lambda: _raise(error))
        sys.stderr.write(f"error: {message}\n")
        leave(EXIT_CODE, after_failed_write=_write_error(error) is not None)


def leave(code: int, after_failed_write: bool = False) -> None:
    """Exit with ``code``. After a failed write in a process that loaded TensorFlow, without
    the interpreter's clean-up: h5py's and TensorFlow's can crash it then (SIGSEGV seen on a
    full disk), and the run has been ended and recorded by now."""
    if after_failed_write and "tensorflow" in sys.modules:
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    sys.exit(code)


def _raise(ex: Exception) -> Any:
    raise ex


def install() -> None:
    """Route Hydra's error reporting through :func:`run_and_report` (entry points only)."""
    hydra_utils.run_and_report = run_and_report
