"""Screenshots of the MLflow UI for the docs, taken by a real headless browser against real runs.

    python docs/ui_screens.py [--out docs/images]

Trains a ``debug=fast`` run and a two-job sweep in a temporary folder (seg's own CLIs), starts
``mlflow ui`` on that store, and drives the system's Chromium (Debian's ``chromium``) with
Playwright: the experiment's run list, the run's per-epoch mask grid, the grid opened whole, and
the sweep parent's comparison plots. tests/tracking/test_mlflow_ui.py drives the same pages
with assertions (skipped where no Chromium is installed).
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

BIN = Path(sys.executable).parent
# Chromium as root in a sandbox without a network: the flags that keep it from trying to reach
# Google's services (each attempt refused, many at a time) and from needing a GPU or sandbox.
CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
LOAD_TIMEOUT_MS = 120_000  # the UI's first page on a busy 2-core machine
TINY = ["debug=fast", "trainer.epochs=2", "stages=[train]", "mlflow.log_model=false"]


def chromium() -> str | None:
    """The system browser Playwright drives (it downloads none of its own)."""
    return shutil.which("chromium") or shutil.which("chromium-browser")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def mlflow_ui(folder: Path) -> Iterator[str]:
    """``mlflow ui`` on ``folder``'s mlflow.db on a free local port; its base URL."""
    port = _free_port()
    log = (folder / "mlflow_ui.log").open("w")
    command = [str(BIN / "mlflow"), "ui", "--backend-store-uri", f"sqlite:///{folder}/mlflow.db"]
    proc = subprocess.Popen(
        [*command, "--host", "127.0.0.1", "--port", str(port)],
        cwd=folder,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                with urllib.request.urlopen(f"{base}/health", timeout=2):
                    break
            except OSError:
                time.sleep(0.5)
        yield base
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)


@contextmanager
def browser_page() -> Iterator:
    """A page of a headless Chromium at 1400x1000 (Playwright on the system browser)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium(), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.set_default_timeout(LOAD_TIMEOUT_MS)
            yield page
        finally:
            browser.close()


def _without_assistant(page) -> None:
    """Close MLflow's Assistant panel (it opens beside every page of a new browser)."""
    close = page.get_by_role("button", name="Close")
    if close.count():
        close.first.click()


def experiment_url(base: str, experiment_id: str, tail: str = "runs") -> str:
    """A page of the experiment, in the UI's "Machine learning" view (MLflow 3.17 decides the
    view by this parameter or a per-browser switch, not by the experiment's tag)."""
    return f"{base}/#/experiments/{experiment_id}/{tail}?workflowType=machine_learning"


def run_names(page, base: str, experiment_id: str, expected: list[str]) -> str:
    """The experiment's run list, once the ``expected`` names show; its text."""
    page.goto(experiment_url(base, experiment_id))
    for name in expected:
        page.get_by_text(name, exact=True).first.wait_for()
    _without_assistant(page)
    return page.inner_text("body")


def mask_cards(page, base: str, experiment_id: str, run_id: str, key: str = "val_masks"):
    """The run's Model metrics tab filtered to its image cards of ``key``; the images' URLs."""
    page.goto(experiment_url(base, experiment_id, f"runs/{run_id}/model-metrics"))
    page.get_by_placeholder("Search metric charts").fill(key)
    image = page.locator(f"img[src*='{key}%2Bstep']").first
    image.wait_for(state="attached")
    return page.locator("img[src*='get-artifact']").evaluate_all("els => els.map(e => e.src)")


def open_grid(page) -> None:
    """The first image card opened whole (its picture, full size, with the step slider)."""
    image = page.locator("img[src*='val_masks%2Bstep']").first
    image.wait_for(state="attached")
    image.evaluate("element => element.click()")  # it may sit below the card's run details
    page.get_by_role("dialog").wait_for()


def artifacts(page, base: str, experiment_id: str, run_id: str, folder: str) -> str:
    """The run's Artifacts tab with ``folder`` opened; the text of the page."""
    page.goto(experiment_url(base, experiment_id, f"runs/{run_id}/artifacts"))
    page.get_by_text(folder, exact=True).first.click()
    plot = page.get_by_text("parallel_coordinates.png").first
    plot.wait_for()
    text = page.inner_text("body")
    plot.click()  # its preview: the picture fetched and shown from a blob: URL
    page.locator("img[src^='blob:']").first.wait_for()
    _without_assistant(page)
    return text


def _train(folder: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    env["SEG_CACHE_DIR"] = str(folder / "cache")
    for args in ([*TINY], ["-m", *TINY, "model.base_filters=4,8"]):
        subprocess.run([str(BIN / "seg-train"), *args], cwd=folder, env=env, check=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).with_name("images"))
    parser.add_argument("--work", type=Path, help="a folder to train in (kept; reused if done)")
    args = parser.parse_args()
    from mlflow.tracking import MlflowClient

    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="seg-ui-") as tmp:
        folder = (args.work or Path(tmp)).resolve()
        folder.mkdir(parents=True, exist_ok=True)
        if not (folder / "mlflow.db").exists():
            _train(folder)
        client = MlflowClient(f"sqlite:///{folder / 'mlflow.db'}")
        experiment = client.get_experiment_by_name("demo_cells").experiment_id
        runs = client.search_runs([experiment], order_by=["attributes.start_time ASC"])
        single = runs[0]
        parent = next(r for r in runs if r.data.tags.get("seg.kind") == "sweep")
        with mlflow_ui(folder) as base, browser_page() as page:
            run_names(page, base, experiment, [single.info.run_name])
            page.screenshot(path=out / "ui_runs.png")
            mask_cards(page, base, experiment, single.info.run_id)
            page.screenshot(path=out / "ui_mask_cards.png")
            open_grid(page)
            page.wait_for_timeout(2000)  # the full picture loads after the dialog opens
            page.screenshot(path=out / "ui_mask_grid.png")
            artifacts(page, base, experiment, parent.info.run_id, "comparison")
            page.screenshot(path=out / "ui_sweep_comparison.png")
    print(f"screenshots in {out}")


if __name__ == "__main__":
    main()
