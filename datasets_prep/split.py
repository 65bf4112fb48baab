"""Split an image/mask dataset by group -> <dst>/{train,valid,test}/{images,masks}.

Source: ``<src>/{images,masks}``, or a dataset already laid out as
``<src>/{train,valid,test}/{images,masks}`` (its splits are pooled and split again, unless
``--keep-splits``). Files are copied unchanged unless resized or augmented.

Groups (files that must share a split): the file stem by default; the first group of
``--group-regex`` in the stem (e.g. ``'(?:flipped_|mirrored_|rotated_\\d+_)?(.+)'`` puts a cell
and its 12 rotated copies together); or a column of ``--csv``. Splits: seeded by group with
``--fractions``; or taken from ``--csv``'s ``--csv-split-column``; or the source's own
(``--keep-splits``). ``--valid-fraction`` then carves a grouped validation split from train. A
split in which a group straddles two splits is refused, naming the groups.

The leak-free copy of pap_smear_herlev_128 (its CSV splits by cell into train/test; valid is
carved from train by cell):

    python -m datasets_prep.split --src ../shared/data/pap_smear_herlev_128 \\
        --dst data/pap_smear_herlev_128_by_cell \\
        --csv ../shared/data/pap_smear_herlev_128/splits_grouped_by_cell.csv \\
        --csv-group-column cell_id --csv-split-column grouped_split --valid-fraction 0.15
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

from datasets_prep.cli import convert, parser, run
from datasets_prep.splitting import (
    SPLIT_NAMES,
    CsvEntry,
    group_of,
    group_pattern,
    read_split_csv,
)
from datasets_prep.writer import Item, Sample
from seg.data.pairs import Pair, find_pairs
from seg.errors import ConfigError, DatasetError

log = logging.getLogger("datasets_prep")


def source_pairs(src: Path) -> list[tuple[str | None, Pair]]:
    """(split folder or None, pair) of a flat or a split dataset."""
    if (src / "images").is_dir():
        return [(None, p) for p in find_pairs(src / "images", src / "masks")]
    folders = sorted(p for p in src.iterdir() if (p / "images").is_dir()) if src.is_dir() else []
    splits = [f for f in folders if f.name.lower() in SPLIT_NAMES]
    if other := [f.name for f in folders if f not in splits]:
        log.warning("ignored folders that are not splits: %s", ", ".join(other))
    if not splits:
        raise DatasetError(
            f"--src {src}: expected images/ and masks/, or {{train,valid,test}}/{{images,masks}}"
        )
    return [
        (SPLIT_NAMES[f.name.lower()], p)
        for f in splits
        for p in find_pairs(f / "images", f / "masks")
    ]


def _check_csv(
    entries: dict[str, CsvEntry], pairs: list[tuple[str | None, Pair]], csv: Path
) -> None:
    stems = {p.name for _, p in pairs}
    unlisted = sorted(stems - entries.keys())
    absent = sorted(entries.keys() - stems)
    problems = []
    if unlisted:
        problems.append(
            f"{len(unlisted)} file(s) of --src are not listed: {', '.join(unlisted[:5])}"
        )
    if absent:
        problems.append(f"{len(absent)} listed file(s) are not in --src: {', '.join(absent[:5])}")
    if problems:
        raise DatasetError(f"{csv}: " + "; ".join(problems))


def find_items(args) -> list[Item]:
    src = args.src.resolve()
    pairs = source_pairs(src)
    entries = None
    if args.csv is not None:
        entries = read_split_csv(
            args.csv, args.csv_file_column, args.csv_group_column, args.csv_split_column
        )
        _check_csv(entries, pairs, args.csv)
    pattern = group_pattern(args.group_regex)
    items = []
    for folder_split, pair in pairs:
        if entries is not None:
            entry = entries[pair.name]
            group = entry.group if args.csv_group_column else group_of(pair.name, pattern)
            split = entry.split
        else:
            group, split = group_of(pair.name, pattern), None
        if args.keep_splits:
            split = folder_split

        def samples(pair: Pair = pair) -> list[Sample]:
            return [Sample(pair.name, pair.image, pair.mask)]

        # The CSV is a source too: editing it changes the split, so the conversion is redone.
        sources = (pair.image, pair.mask, *([args.csv] if args.csv is not None else []))
        items.append(Item(str(pair.image), group, samples, sources, split))
    return items


def main(argv: Sequence[str] | None = None) -> None:
    p = parser("split", __doc__.split("\n\n")[0])
    p.add_argument(
        "--group-regex",
        default=None,
        help="group id: the first group of this regex matched in the file stem",
    )
    p.add_argument(
        "--keep-splits", action="store_true", help="keep the source's own train/valid/test folders"
    )
    p.add_argument("--csv", type=Path, default=None, help="a CSV naming each file's group/split")
    p.add_argument("--csv-file-column", default="filename", help="file name (stem compared)")
    p.add_argument("--csv-group-column", default=None, help="group id column")
    p.add_argument("--csv-split-column", default=None, help="split column (train/valid/test)")
    args = p.parse_args(argv)
    if args.csv is None and (args.csv_group_column or args.csv_split_column):
        raise ConfigError("--csv-group-column/--csv-split-column: give the --csv file")
    if args.keep_splits and args.csv_split_column:
        raise ConfigError("--keep-splits and --csv-split-column both decide the split: choose one")
    if args.csv_group_column and args.group_regex:
        raise ConfigError("--group-regex and --csv-group-column both decide the groups: choose one")
    convert("split", args, lambda: find_items(args))


if __name__ == "__main__":
    run(main)
