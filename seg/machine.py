"""The cores this process may use, and a parallel job's share of them (free of TensorFlow: the
sweep callback and preflight ask before it loads)."""

from __future__ import annotations

import os


def cpu_count() -> int:
    """Cores this process may use (a SLURM or taskset allocation, not the whole machine)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def threads_per_job(parallel_jobs: int, cores: int | None = None) -> int | None:
    """TensorFlow threads for one of ``parallel_jobs`` jobs sharing this machine's cores (None:
    a job alone keeps TensorFlow's default, all cores)."""
    if parallel_jobs <= 1:
        return None
    return max(1, (cores or cpu_count()) // parallel_jobs)
