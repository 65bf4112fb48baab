"""Files written whole or not at all, and folders checked before a run (seg.files), on real file
systems: a full one and a read-only one are small tmpfs mounts where the test may mount (root),
skipped elsewhere."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from seg.files import folder_problem, write_text_whole, written_whole


@contextmanager
def tmpfs(folder: Path, options: str) -> Iterator[Path]:
    """A tmpfs mounted on ``folder`` (e.g. ``size=64k`` or ``ro``); the test is skipped
    where this process may not mount one."""
    folder.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(folder)], capture_output=True
    )
    if done.returncode:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_a_file_is_replaced_whole_and_a_failed_write_keeps_the_old_one(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "report.csv"
    write_text_whole(path, "old\n")
    with pytest.raises(RuntimeError), written_whole(path) as tmp:
        tmp.write_text("half of the new")
        raise RuntimeError("interrupted mid-write")
    assert path.read_text() == "old\n" and _leftovers(path.parent) == ["report.csv"]
    with written_whole(path) as tmp:
        assert tmp.name.endswith(".csv") and tmp.parent == path.parent  # the format stays
        tmp.write_text("new\n")
    assert path.read_text() == "new\n" and _leftovers(path.parent) == ["report.csv"]


def test_the_temporary_name_keeps_every_suffix(tmp_path: Path) -> None:
    with written_whole(tmp_path / "epoch_00003.weights.h5") as tmp:
        assert tmp.name.endswith(".weights.h5") and tmp.name.startswith(".epoch_00003.tmp")
        tmp.write_bytes(b"weights")


def test_a_file_where_a_folder_is_needed_is_named(tmp_path: Path) -> None:
    (tmp_path / "taken").write_text("x")
    assert folder_problem(tmp_path / "taken" / "runs", "output") == (
        f"output={tmp_path / 'taken' / 'runs'}: {tmp_path / 'taken'} is a file, not a folder; "
        "name a folder (or move the file away)"
    )
    assert "is a file, not a folder" in folder_problem(tmp_path / "taken", "output")
    assert folder_problem(tmp_path / "new" / "deeper", "output") is None  # made when needed


def test_a_read_only_file_system_is_named(tmp_path: Path) -> None:
    with tmpfs(tmp_path / "ro", "ro,size=64k") as ro:
        problem = folder_problem(ro / "masks", "output")
    assert problem == (
        f"output={tmp_path / 'ro' / 'masks'}: cannot write in {tmp_path / 'ro'} "
        "(the file system is read-only); name a folder you can write"
    )


def test_a_full_disk_leaves_the_previous_file_and_no_temporary(tmp_path: Path) -> None:
    with tmpfs(tmp_path / "small", "size=64k") as small:
        path = write_text_whole(small / "state.json", "the last good state")
        with pytest.raises(OSError) as info, written_whole(path) as tmp:
            tmp.write_bytes(os.urandom(256 * 1024))  # more than the disk holds
        assert info.value.errno == 28  # ENOSPC
        assert path.read_text() == "the last good state"
        assert _leftovers(small) == ["state.json"]
