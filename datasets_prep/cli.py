"""Command-line options every converter shares, and how a command reports an error."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from datasets_prep.splitting import SPLITS, check_fractions
from datasets_prep.transforms import AUGMENTATION_HELP, check_augmentations
from datasets_prep.writer import Item, Plan, write_dataset
from seg.errors import ConfigError, DatasetError, SegError

_SHARED = {
    "src",
    "dst",
    "seed",
    "fractions",
    "valid_fraction",
    "size",
    "augment",
    "augment_splits",
    "upscale_test",
    "upscale_limit",
    "overwrite",
}


def parser(prog: str, description: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=f"python -m datasets_prep.{prog}",
        description=description,
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--src", type=Path, required=True, help="the dataset as downloaded")
    p.add_argument(
        "--dst",
        type=Path,
        required=True,
        help="output folder: <dst>/{train,valid,test}/{images,masks}",
    )
    p.add_argument("--seed", type=int, default=0, help="seed of the split")
    p.add_argument(
        "--fractions",
        type=float,
        nargs=3,
        default=[0.7, 0.15, 0.15],
        metavar=("TRAIN", "VALID", "TEST"),
        help="split fractions, counted in groups (source images)",
    )
    p.add_argument(
        "--valid-fraction",
        type=float,
        default=None,
        help="move this fraction of the train groups to valid (for sources whose "
        "own split has no validation part)",
    )
    p.add_argument(
        "--size",
        type=int,
        nargs=2,
        default=None,
        metavar=("HEIGHT", "WIDTH"),
        help="resize every pair (image area/linear, mask nearest)",
    )
    p.add_argument(
        "--augment",
        nargs="+",
        default=[],
        metavar="OP",
        help=f"offline augmentation after the split: {AUGMENTATION_HELP}",
    )
    p.add_argument(
        "--augment-splits",
        nargs="+",
        default=["train"],
        choices=SPLITS,
        help="splits that get the augmented copies",
    )
    p.add_argument(
        "--upscale-test",
        type=int,
        default=None,
        metavar="PIXELS",
        help="also write test pairs enlarged to this longer side into "
        "<dst>/test_<PIXELS> (e.g. 4096, for tiled-inference demos)",
    )
    p.add_argument(
        "--upscale-limit",
        type=int,
        default=None,
        metavar="N",
        help="upscale only the first N test pairs",
    )
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="replace an earlier conversion in --dst made with other settings",
    )
    return p


def plan_from(args: argparse.Namespace) -> Plan:
    if args.size is not None and min(args.size) < 1:
        raise ConfigError(f"--size {args.size[0]} {args.size[1]}: must be positive")
    if args.upscale_test is not None and args.upscale_test < 1:
        raise ConfigError(f"--upscale-test {args.upscale_test}: must be positive")
    return Plan(
        seed=args.seed,
        fractions=check_fractions(args.fractions),
        valid_fraction=args.valid_fraction,
        size=tuple(args.size) if args.size else None,
        augment=check_augmentations(args.augment),
        augment_splits=tuple(args.augment_splits),
        upscale_test=args.upscale_test,
        upscale_limit=args.upscale_limit,
        overwrite=args.overwrite,
    )


def own_options(args: argparse.Namespace) -> dict[str, Any]:
    """The converter's own options (recorded in prep.json), paths made absolute."""
    return {
        k: (str(v.resolve()) if isinstance(v, Path) else v)
        for k, v in sorted(vars(args).items())
        if k not in _SHARED
    }


def convert(prog: str, args: argparse.Namespace, items: Callable[[], list[Item]]) -> None:
    """List the items, write them with the shared options and print what was written."""
    plan = plan_from(args)
    src = args.src.resolve()
    if not src.exists():
        raise DatasetError(f"--src {args.src}: not found")
    report = write_dataset(prog, items(), src, args.dst, plan, own_options(args))
    print(report.summary())


def run(main: Callable[[Sequence[str] | None], None], argv: Sequence[str] | None = None) -> None:
    """Run a command's ``main``; a user error prints one line and exits 2, no traceback."""
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    try:
        main(argv)
    except SegError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
