"""Where a run's time goes: each phase timed, and logged with the run as ``time_<phase>``
metrics (seconds), so that a user sees what was training and what was waiting.

``startup`` runs from the process's start (the kernel's record of it, on Linux) to the moment
seg takes over from Hydra: the interpreter, the imports, the composition. ``overhead`` is what
is left of the run's wall time besides the work a user asked for (fit, evaluate, infer).
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

# The phases that are the work itself; everything else in a run is overhead.
WORK = ("fit", "evaluate", "infer")


def _process_start() -> float:
    """Wall-clock time (time.time) the process started: from /proc on Linux, else now."""
    try:
        ticks = int(Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()[19])
        uptime = float(Path("/proc/uptime").read_text().split()[0])
        return time.time() - uptime + ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return time.time()


PROCESS_START = _process_start()


class Phases:
    """Seconds spent per named phase of one run (a phase entered twice adds up)."""

    def __init__(self, start: float = PROCESS_START) -> None:
        self.start = start  # time.time() at the start of the process
        self.seconds: dict[str, float] = {"startup": max(0.0, time.time() - start)}

    @contextmanager
    def timed(self, name: str) -> Iterator[None]:
        begin = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - begin

    def metrics(self) -> dict[str, float]:
        """``time_<phase>`` for every phase, ``time_total`` since the process started and
        ``time_overhead``: the total minus the work (fit, evaluate, infer)."""
        total = time.time() - self.start
        work = sum(self.seconds.get(name, 0.0) for name in WORK)
        return {
            **{f"time_{name}": value for name, value in self.seconds.items()},
            "time_total": total,
            "time_overhead": max(0.0, total - work),
        }
