"""Where seg writes: files written whole or not at all, and folders checked before any work.

Every file seg writes (checkpoints, the resume state, reports, tables, masks, plots) goes
through :func:`written_whole`: it is written under a temporary name beside its place and renamed
over it once complete, so an interrupted or failed write (a full disk, a kill, an error)
leaves the previous good file or none, and never a half-written one, not even a stray
temporary. :func:`folder_problem` tells, before a run starts, why a folder could not be made or
written (a file standing where a folder is needed, no permission, a read-only file system).

The bottom of the layers: imports nothing of seg.
"""

from __future__ import annotations

import errno
import os
import shutil
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def _temporary_name(path: Path) -> Path:
    """Beside ``path``, hidden, unique to this process and thread, and ending like ``path``
    (Keras, Matplotlib and OpenCV read the format from the suffixes: ``.weights.h5``)."""
    stem, dot, suffixes = path.name.partition(".")
    return path.with_name(f".{stem}.tmp{os.getpid()}-{threading.get_ident()}{dot}{suffixes}")


@contextmanager
def written_whole(path: Path | str) -> Iterator[Path]:
    """The name to write ``path``'s content to; renamed over ``path`` when the block ends
    without an error, removed when it raises (``path`` keeps its previous content)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _temporary_name(path)
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


SPACE_MARGIN = 1.1  # a file format's own overhead over the bytes it holds, and then some


def require_space(path: Path | str, nbytes: int) -> None:
    """An OSError (ENOSPC) naming ``path`` when its disk cannot hold ``nbytes`` more: checked
    before a large write whose writer (h5py) fails noisily and half-way on a full disk."""
    folder = Path(path).parent
    folder.mkdir(parents=True, exist_ok=True)
    free, need = shutil.disk_usage(folder).free, int(nbytes * SPACE_MARGIN) + (64 << 10)
    if free < need:
        raise OSError(
            errno.ENOSPC,
            f"{os.strerror(errno.ENOSPC)} ({need / 1e6:.1f} MB needed, {free / 1e6:.1f} MB free)",
            str(path),
        )


def write_text_whole(path: Path | str, text: str) -> Path:
    """``text`` (UTF-8) as ``path``, written whole."""
    with written_whole(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


def folder_problem(path: Path | str, key: str = "") -> str | None:
    """Why ``path`` cannot be a folder seg writes into (made if missing), in one line naming
    ``key=path`` (or the path alone); None if it can. Nothing is created."""
    path = Path(path).expanduser()
    probe = path
    while not probe.exists():
        if probe.parent == probe:
            break
        probe = probe.parent
    where = f"{key}={path}: " if key else ""
    if probe.exists() and not probe.is_dir():
        standing = "is a file" if key and probe == path else f"{probe} is a file"
        return f"{where}{standing}, not a folder; name a folder (or move the file away)"
    if not os.access(probe, os.W_OK | os.X_OK):
        why = "the file system is read-only" if _read_only(probe) else "no permission to write"
        return f"{where}cannot write in {probe} ({why}); name a folder you can write"
    return None


def _read_only(path: Path) -> bool:
    try:
        return bool(os.statvfs(path).f_flag & os.ST_RDONLY)
    except OSError:
        return False
