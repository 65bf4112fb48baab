"""seg-sync: deliver the records a run kept while its tracking store was unreachable.

    seg-sync <run output dir | its tracking_spool dir | sweep dir> [--tracking-uri URI]

Records go to the run they were made for, in the order they were made (metrics with their
original times); delivered ones are removed, and so is the spool once empty. A sweep dir whose
summary waits (seg.tracking.sweep_summary): every job's records, then the summary on the parent run.
Exits 0 when everything was delivered, 3 when the store is still unreachable (run it again
later).
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from seg.errors import SegError, TrackingPending


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="seg-sync", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "folder", type=Path, help="the run's output dir or its tracking_spool, or a sweep dir"
    )
    parser.add_argument(
        "--tracking-uri",
        help="deliver to this store instead of the run's own (e.g. the server moved)",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="[%(levelname)s] %(message)s")
    # MLflow loads in seconds: only once the arguments are known good
    from seg.tracking.sweep_summary import finish_pending, is_pending
    from seg.tracking.tracker import deliver_spool

    try:
        if is_pending(args.folder):
            print(finish_pending(args.folder, args.tracking_uri))
            return
        delivered, left = deliver_spool(args.folder, args.tracking_uri)
        if left:
            raise TrackingPending(
                f"{args.folder}: delivered {delivered} records; {left} left "
                "because the tracking store is still unreachable; run "
                "seg-sync again when it is back"
            )
    except SegError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(err.exit_code)
    print(f"delivered {delivered} records from {args.folder}")


if __name__ == "__main__":
    main()
