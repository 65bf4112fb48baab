"""Seeded train/valid/test splits grouped by source id, and the check that no group leaks.

A *group* is whatever must never straddle splits: one source image and all its tiles, crops and
augmented copies; one cell photographed in 13 orientations. Splits assign whole groups, from a
seeded generator over the sorted group ids, so the same groups and seed always give the same
split whatever order the files were found in.
"""

from __future__ import annotations

import csv
import re
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from seg.errors import ConfigError, DatasetError

SPLITS = ("train", "valid", "test")
# Spellings of split names found in the wild, as this project names them.
SPLIT_NAMES = {
    "train": "train",
    "training": "train",
    "valid": "valid",
    "val": "valid",
    "validation": "valid",
    "test": "test",
    "testing": "test",
}
_SHOWN = 10


def split_named_in(name: str) -> str | None:
    """The split a folder or file name names by one of its words, digits after the word
    allowed: ISIC-2017_Training_Data -> train, instances_val2017 -> valid, test_v2 -> test."""
    for word in re.split(r"[^a-z0-9]+", name.lower()):
        split = SPLIT_NAMES.get(word.rstrip("0123456789"))
        if split:
            return split
    return None


def check_fractions(fractions: Sequence[float]) -> tuple[float, float, float]:
    """Train, valid and test fractions: three non-negative numbers summing to 1."""
    values = tuple(float(f) for f in fractions)
    if len(values) != 3 or min(values) < 0 or abs(sum(values) - 1.0) > 1e-6 or values[0] == 0:
        raise ConfigError(
            f"--fractions {' '.join(str(f) for f in fractions)}: give train, valid and test "
            "fractions, non-negative, train > 0, summing to 1 (e.g. 0.7 0.15 0.15)"
        )
    return values  # type: ignore[return-value]


def _allocate(count: int, fractions: Sequence[float]) -> list[int]:
    """Whole numbers of groups per split, largest remainder first; every split with a positive
    fraction gets at least one group when there are enough groups."""
    exact = [f * count for f in fractions]
    counts = [int(x) for x in exact]
    by_remainder = sorted(range(len(exact)), key=lambda i: (counts[i] - exact[i], i))
    for i in by_remainder[: count - sum(counts)]:
        counts[i] += 1
    wanted = [i for i, f in enumerate(fractions) if f > 0]
    if count >= len(wanted):
        for i in wanted:
            if counts[i] == 0:
                counts[max(range(len(counts)), key=lambda j: counts[j])] -= 1
                counts[i] = 1
    return counts


def assign_splits(
    groups: Iterable[str], fractions: Sequence[float] = (0.7, 0.15, 0.15), seed: int = 0
) -> dict[str, str]:
    """Group id -> split, fractions counted in groups; deterministic for (groups, seed)."""
    unique = sorted(set(groups))
    order = np.random.default_rng(seed).permutation(len(unique))
    counts = _allocate(len(unique), check_fractions(fractions))
    assignment: dict[str, str] = {}
    start = 0
    for split, n in zip(SPLITS, counts, strict=True):
        for index in order[start : start + n]:
            assignment[unique[index]] = split
        start += n
    return assignment


def carve_valid(assignment: Mapping[str, str], fraction: float, seed: int = 0) -> dict[str, str]:
    """Move a seeded ``fraction`` of the train groups (at least one) to valid: a validation
    split for sources whose own split has none, still grouped."""
    if not 0 < fraction < 1:
        raise ConfigError(f"--valid-fraction {fraction}: must be between 0 and 1")
    train = sorted(g for g, s in assignment.items() if s == "train")
    if len(train) < 2:
        raise DatasetError(
            f"--valid-fraction: {len(train)} train group(s), too few to carve a validation split"
        )
    n = min(len(train) - 1, max(1, round(fraction * len(train))))
    moved = {train[i] for i in np.random.default_rng(seed).permutation(len(train))[:n]}
    return {g: ("valid" if g in moved else s) for g, s in assignment.items()}


def leaks(members: Iterable[tuple[str, str]]) -> dict[str, list[str]]:
    """Groups found in more than one split, from (group, split) pairs: group -> its splits."""
    splits_of: dict[str, set[str]] = defaultdict(set)
    for group, split in members:
        splits_of[group].add(split)
    return {g: sorted(s) for g, s in sorted(splits_of.items()) if len(s) > 1}


def check_no_leaks(members: Iterable[tuple[str, str]], what: str) -> None:
    """Fail, naming the groups, if any group sits in two splits."""
    found = leaks(members)
    if found:
        listed = "; ".join(f"{g} in {'+'.join(s)}" for g, s in list(found.items())[:_SHOWN])
        more = f" ... and {len(found) - _SHOWN} more" if len(found) > _SHOWN else ""
        raise DatasetError(
            f"{what}: {len(found)} group(s) straddle splits, so copies of one source would be "
            f"trained on and scored on: {listed}{more}. Assign whole groups to one split."
        )


def group_pattern(pattern: str | None) -> re.Pattern[str] | None:
    if pattern is None:
        return None
    try:
        return re.compile(pattern)
    except re.error as err:
        raise ConfigError(f"--group-regex {pattern!r}: not a regular expression ({err})") from err


def group_of(stem: str, pattern: re.Pattern[str] | None) -> str:
    """A file's group id: the named group ``group`` of ``pattern``, else its first group that
    matched, else the whole match (searched in the file-name stem); without a pattern, the
    stem itself."""
    if pattern is None:
        return stem
    match = pattern.search(stem)
    if match is None:
        raise DatasetError(f"--group-regex {pattern.pattern!r}: does not match file {stem!r}")
    if "group" in pattern.groupindex:
        return match.group("group")
    return next((g for g in match.groups() if g is not None), match.group(0))


@dataclass(frozen=True)
class CsvEntry:
    group: str
    split: str | None


def read_split_csv(
    path: Path, file_column: str, group_column: str | None, split_column: str | None
) -> dict[str, CsvEntry]:
    """A CSV naming each file (its stem is the key) with its group and/or split.

    E.g. ``splits_grouped_by_cell.csv``: filename,cell_id,...,grouped_split.
    """
    path = Path(path)
    try:
        with path.open(newline="", encoding="utf-8") as fh:
            reader = csv.DictReader(fh)
            header = reader.fieldnames or []
            rows = list(reader)
    except (OSError, UnicodeDecodeError, csv.Error) as err:
        raise DatasetError(f"{path}: cannot read the CSV ({err})") from err
    wanted = [c for c in (file_column, group_column, split_column) if c]
    missing = [c for c in wanted if c not in header]
    if missing:
        raise DatasetError(
            f"{path}: no column(s) {', '.join(missing)}; it has {', '.join(header) or 'none'}"
        )
    entries: dict[str, CsvEntry] = {}
    for line, row in enumerate(rows, start=2):
        stem = Path(row[file_column]).stem
        split = None
        if split_column:
            split = SPLIT_NAMES.get(row[split_column].strip().lower())
            if split is None:
                raise DatasetError(
                    f"{path}, line {line}: split {row[split_column]!r} is not "
                    f"one of {', '.join(sorted(SPLIT_NAMES))}"
                )
        if stem in entries:
            raise DatasetError(f"{path}, line {line}: file {row[file_column]!r} listed twice")
        entries[stem] = CsvEntry(row[group_column] if group_column else stem, split)
    if not entries:
        raise DatasetError(f"{path}: no rows")
    return entries
