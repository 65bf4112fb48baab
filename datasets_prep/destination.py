"""The output folder of a conversion, and why re-running one is safe.

A finished conversion leaves ``<dst>/prep.json``: the command, its settings and a fingerprint
of the source files (their names and contents), plus the number of files it wrote per
folder. Running the same command again on the same ``--dst``:

* same settings, same source, every file still there -> "up to date", nothing is written;
* anything else in ``--dst`` (other settings, a changed source, an interrupted run that left no
  ``prep.json``, files of your own) -> refused with one line saying so, unless ``--overwrite``,
  which deletes what a conversion writes there (split folders, ``prep.json``, stats) and
  converts again. Files datasets_prep does not write are never deleted: their presence
  stops even ``--overwrite``.

So a re-run never duplicates or mixes outputs, and an interrupted run is never mistaken for a
finished one (``prep.json`` is written last).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from seg.errors import DatasetError

MANIFEST = "prep.json"
STATS_FILES = ("stats.json", "foreground_fraction.png")
_TMP = f".{MANIFEST}.tmp"
_OWNED = re.compile(r"(train|valid|test|test_\d+)")  # folders a conversion writes


def fingerprint(files: Iterable[Path]) -> str:
    """Changes when a source file is added, removed, renamed or edited: names (relative to the
    folder holding them all) and contents, not modification times or the folder's location,
    so a copied or re-extracted dataset is still the same source."""
    paths = sorted({Path(f).resolve() for f in files})  # a shared file (a CSV) once
    root = Path(os.path.commonpath(paths)) if paths else Path()
    root = root.parent if len(paths) == 1 else root
    digest = hashlib.sha256()
    for path in paths:
        with path.open("rb") as fh:
            content = hashlib.file_digest(fh, "sha256").hexdigest()
        digest.update(f"{path.relative_to(root)}\0{content}\n".encode())
    return digest.hexdigest()


def file_counts(dst: Path) -> dict[str, int]:
    """Files per written folder, e.g. {"train/images": 84, ...}."""
    counts = {}
    for split in sorted(p for p in dst.iterdir() if p.is_dir() and _OWNED.fullmatch(p.name)):
        for folder in sorted(p for p in split.iterdir() if p.is_dir()):
            counts[f"{split.name}/{folder.name}"] = sum(1 for f in folder.iterdir() if f.is_file())
    return counts


def read_manifest(dst: Path) -> dict[str, Any] | None:
    path = dst / MANIFEST
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None  # damaged: treated like an unfinished run


def _owned(entry: Path) -> bool:
    return (entry.is_dir() and bool(_OWNED.fullmatch(entry.name))) or entry.name in (
        MANIFEST,
        _TMP,
        *STATS_FILES,
    )


def check_apart(src: Path, dst: Path) -> None:
    """The output must not be inside the source or contain it (it would be read or deleted)."""
    src, dst = src.resolve(), dst.resolve()
    if dst == src or dst.is_relative_to(src) or src.is_relative_to(dst):
        raise DatasetError(f"--dst {dst}: must lie outside --src {src} and not contain it")


def prepare(dst: Path, settings: dict[str, Any], overwrite: bool) -> bool:
    """Get ``dst`` ready for a conversion with ``settings``; True if it is already done."""
    if dst.exists() and not dst.is_dir():
        raise DatasetError(f"--dst {dst}: is a file, not a folder")
    if not dst.is_dir() or not any(dst.iterdir()):
        dst.mkdir(parents=True, exist_ok=True)
        return False
    manifest = read_manifest(dst)
    if (
        manifest is not None
        and manifest.get("settings") == settings
        and manifest.get("files") == file_counts(dst)
    ):
        return True
    foreign = sorted(e.name for e in dst.iterdir() if not _owned(e))
    if foreign:
        raise DatasetError(
            f"--dst {dst}: holds files datasets_prep did not write ({', '.join(foreign[:5])}); "
            "choose an empty or new folder"
        )
    if not overwrite:
        if manifest is None:
            why = "an earlier conversion did not finish (no prep.json)"
        elif manifest.get("settings") != settings:
            why = "it was converted with other settings or from another source"
        else:
            why = "its files changed since it was converted"
        raise DatasetError(
            f"--dst {dst}: not empty: {why}; add --overwrite to convert again "
            "(it replaces the split folders) or choose another --dst"
        )
    (dst / MANIFEST).unlink(missing_ok=True)  # first, so a crash below leaves no manifest
    for entry in dst.iterdir():
        if entry.is_dir():
            shutil.rmtree(entry)
        else:
            entry.unlink()
    return False


def finish(dst: Path, settings: dict[str, Any]) -> None:
    """Record a finished conversion (written last, atomically)."""
    manifest = {"settings": settings, "files": file_counts(dst)}
    tmp = dst / _TMP
    tmp.write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    tmp.replace(dst / MANIFEST)
