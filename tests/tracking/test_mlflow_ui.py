"""The MLflow UI in a real headless browser (the system's Chromium driven by Playwright; the
test is skipped where either is missing) against real runs served by ``mlflow ui``: runs are
told apart by their names, a run's per-epoch mask grid is an image in its image card (the
step slider beside it), and a sweep's parent holds its comparison plots. The pages are those
docs/ui_screens.py photographs for the docs."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from tests.support.cli import run_cli, tracking_uri

ROOT = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("test_mlflow_ui")]


def _screens():
    """docs/ui_screens.py, the drive of the UI (a script of the docs, not a package)."""
    spec = importlib.util.spec_from_file_location("ui_screens", ROOT / "docs" / "ui_screens.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["ui_screens"] = module
    spec.loader.exec_module(module)
    return module


screens = _screens()
if screens.chromium() is None or importlib.util.find_spec("playwright") is None:
    pytest.skip("no Chromium or no Playwright here", allow_module_level=True)


def test_runs_masks_and_a_sweeps_comparison_in_the_ui(tmp_path: Path) -> None:
    run_cli("seg-train", *screens.TINY, cwd=tmp_path)
    run_cli("seg-train", *screens.TINY, "trainer.learning_rate=0.003", cwd=tmp_path)
    run_cli("seg-train", "-m", *screens.TINY, "model.base_filters=4,8", cwd=tmp_path)
    client = MlflowClient(tracking_uri(tmp_path))
    experiment = client.get_experiment_by_name("demo_cells").experiment_id
    runs = client.search_runs([experiment], order_by=["attributes.start_time ASC"])
    first, second = runs[0], runs[1]
    parent = next(r for r in runs if r.data.tags.get("seg.kind") == "sweep")
    names = [first.info.run_name, second.info.run_name]
    assert names[0] == "unet bce_dice debug=fast epochs=2"  # what the runs differ by, in names
    assert names[1] == f"{names[0]} learning_rate=0.003"
    with screens.mlflow_ui(tmp_path) as base, screens.browser_page() as page:
        listed = screens.run_names(page, base, experiment, names)
        assert all(name in listed for name in names)
        page.screenshot(path=tmp_path / "runs.png")

        images = screens.mask_cards(page, base, experiment, first.info.run_id)
        assert any("val_masks%2Bstep%2B0" in src and "compressed" in src for src in images)
        assert page.locator("input[type='number'], [role='slider']").count() >= 1  # the step
        page.screenshot(path=tmp_path / "masks.png")

        text = screens.artifacts(page, base, experiment, parent.info.run_id, "comparison")
        assert "parallel_coordinates.png" in text and "validation_curves.png" in text
        page.screenshot(path=tmp_path / "comparison.png")
