"""``seg``: the package's own command, beside the Hydra entry points (seg-train, seg-eval,
seg-infer, seg-plan) and seg-sync: its version, and ``seg init DIR`` (seg.project). Loads
neither TensorFlow nor MLflow."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from seg import __version__
from seg.errors import SegError
from seg.project import init_project

COMMANDS = """\
commands:
  seg-train   train, evaluate and infer a configured run (seg-train --help)
  seg-eval    evaluate a trained model on a split or a folder with masks
  seg-infer   write masks and overlays for images of any size
  seg-plan    read a dataset once and write an experiment planned for it
  seg-export  a trained model for deployment: SavedModel, ONNX or TFLite
  seg-sync    deliver a run's records kept while the tracking store was unreachable
  seg init    start a project folder of one's own (its configs compose with seg's)
"""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="seg",
        description="Hydra-composed 2D medical image segmentation with Keras 3 and MLflow.",
        epilog=COMMANDS,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"seg {__version__}")
    sub = parser.add_subparsers(dest="command")
    init = sub.add_parser("init", help="start a project folder: conf/, README.md, .gitignore")
    init.add_argument("dir", type=Path, help="the project's folder (made if missing)")
    init.add_argument("--dataset", help="the dataset's name (default: the folder's name)")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    try:
        print("\n".join(init_project(args.dir, args.dataset)))
    except SegError as err:
        print(f"error: {err}", file=sys.stderr)
        return err.exit_code
    return 0


if __name__ == "__main__":
    sys.exit(main())
