"""The sweep parent's comparison: plots of the swept keys against the objective, the children's
validation curves and the ranked table, drawn from plain job records."""

from __future__ import annotations

import re
from pathlib import Path

import cv2
import numpy as np

from seg.tracking.sweep_plots import Job, _axis, draw_all, ranked_table
from seg.tracking.sweeps import swept_values

KEYS = ["trainer.learning_rate", "loss"]


def _jobs() -> list[Job]:
    jobs = []
    for n, (lr, loss, score) in enumerate(
        [
            ("1e-4", "bce", 0.61),
            ("1e-3", "bce", 0.74),
            ("1e-2", "dice", 0.70),
            ("1e-3", "dice", None),
        ]
    ):
        curve = [0.3 + 0.1 * e for e in range(3)] if score is not None else []
        jobs.append(
            Job(
                str(n),
                f"#{n} lr={lr} loss={loss}",
                "FINISHED" if score is not None else "FAILED",
                {"trainer.learning_rate": lr, "loss": loss},
                score,
                {"val_loss": [1 - v for v in curve], "val_dice": curve},
            )
        )
    return jobs


def test_every_comparison_is_drawn_as_a_readable_image(tmp_path: Path) -> None:
    drawn = draw_all(_jobs(), KEYS, "val_dice", True, ["val_loss", "val_dice"], tmp_path)
    names = sorted(p.name for p in drawn)
    assert names == [
        "objective_vs_params.png",
        "parallel_coordinates.png",
        "ranked.html",
        "validation_curves.png",
    ]
    for path in drawn:
        if path.suffix == ".png":
            image = cv2.imread(str(path))
            assert image is not None and min(image.shape[:2]) >= 350  # readable, not a thumbnail
            assert image.std() > 10  # something is drawn on it


def test_the_ranked_table_puts_the_best_first_and_the_failed_last(tmp_path: Path) -> None:
    page = ranked_table(_jobs(), KEYS, "val_dice", True, tmp_path).read_text()
    order = re.findall(r"<tr><td>\d+</td><td>(\d+)</td>", page)
    assert order == ["1", "2", "0", "3"]
    assert "0.7400" in page and "1e-3" in page
    lower_first = ranked_table(_jobs(), KEYS, "val_loss", False, tmp_path).read_text()
    assert re.findall(r"<tr><td>\d+</td><td>(\d+)</td>", lower_first)[:3] == ["0", "2", "1"]


def test_a_sweep_without_a_scored_job_draws_only_the_table(tmp_path: Path) -> None:
    jobs = [Job("0", "#0", "FAILED", {"loss": "bce"}, None)]
    drawn = draw_all(jobs, ["loss"], "val_dice", True, ["val_loss"], tmp_path)
    assert [p.name for p in drawn] == ["ranked.html"]


def test_axes_are_logarithmic_for_rates_and_categorical_for_names() -> None:
    positions, _, labels, log = _axis(["1e-4", "1e-3", "1e-2"])
    assert log and np.allclose(positions, [0, 0.5, 1])
    positions, _, labels, log = _axis(["8", "16", "24"])
    assert not log and np.allclose(positions, [0, 0.5, 1])
    positions, _, labels, log = _axis(["dice", "bce", "dice"])
    assert not log and labels == ["bce", "dice"] and list(positions) == [1, 0, 1]


def test_swept_values_are_read_from_a_jobs_overrides() -> None:
    overrides = "trainer.learning_rate=0.001 +loss=bce debug=fast"
    assert swept_values(overrides, KEYS) == {"trainer.learning_rate": "0.001", "loss": "bce"}
