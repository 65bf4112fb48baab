"""A run's log kept in memory, for callbacks tested without MLflow (what they log is the
assertion; seg.tracking.tracker.Tracker is the real one, tested against real stores)."""

from __future__ import annotations

import numpy as np


class RecordingRun:
    """What a callback logs, kept in memory (seg.tracking.tracker.Tracker logs to MLflow)."""

    def __init__(self) -> None:
        self.images: list[tuple[str, int, np.ndarray]] = []
        self.tags: dict[str, str] = {}

    def set_tags(self, tags: dict[str, str]) -> None:
        self.tags.update(tags)

    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        pass

    def log_image(self, image: np.ndarray, key: str, step: int) -> None:
        self.images.append((key, step, image))
