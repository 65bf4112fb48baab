"""When a sweep's summary waits for seg-sync (the end to end case, a server killed during a
sweep, is in tests/test_tracking_outage.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from seg.errors import TrackingPending
from seg.tracking.sweep_summary import PENDING_FILE, SummaryRequest, finish_or_defer, job_spools
from tests.support.mlflow_server import free_port


def _request(sweep_dir: Path, tracking_uri: str) -> SummaryRequest:
    return SummaryRequest(
        tracking_uri,
        "0" * 32,
        "val_dice",
        "maximize",
        str(sweep_dir),
        [str(sweep_dir / "multirun.yaml")],
    )


def test_only_spools_with_records_to_deliver_hold_the_summary_back(tmp_path: Path) -> None:
    refused_only = tmp_path / "0" / "tracking_spool"
    (refused_only / "refused").mkdir(parents=True)
    (refused_only / "refused" / "000001.json").write_text("{}")
    waiting = tmp_path / "1" / "tracking_spool"
    waiting.mkdir(parents=True)
    (waiting / "000002.json").write_text("{}")
    assert job_spools(tmp_path) == [waiting]


def test_an_unreachable_store_at_the_end_leaves_the_request_for_seg_sync(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    request = _request(tmp_path, url)
    with pytest.raises(TrackingPending, match=rf"unreachable.*seg-sync {tmp_path}$"):
        finish_or_defer(request)
    assert SummaryRequest(**json.loads((tmp_path / PENDING_FILE).read_text())) == request
