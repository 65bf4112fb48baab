"""Records for the tracking store, kept on disk while it cannot be reached and delivered in order
when it can.

A :class:`Spool` sits between :class:`seg.tracking.tracker.Tracker` and MLflow. Every record (a
batch of metrics, params or tags, an image, an artifact, the model, the run's end) is delivered at
once while the store answers. When it cannot be reached (a tracking server that went away, a SQLite
store locked for long) the record is written into the spool folder instead, and so is every later
one, in order. Delivery is tried again at later records (at most every ``retry_every`` seconds, so
that training does not wait on a dead server at every call) and at the end of the run; ``seg-sync
<output dir>`` delivers what is still left.

A record is ``<folder>/<n>.json`` (kind and arguments) with its files in ``<folder>/<n>/``:
arrays as ``.npy``, artifacts copied as they were when logged, a Keras model saved as
``.keras``. ``target.json`` names the store and the run. A record the store refuses (rather
than fails to receive) is moved to ``<folder>/refused/`` and logged, so it cannot block the
records behind it.
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from seg.files import write_text_whole

log = logging.getLogger(__name__)

SPOOL_DIR = "tracking_spool"  # in the run's output dir
TARGET_FILE = "target.json"
REFUSED_DIR = "refused"

Handler = Callable[..., Any]
# Whether an error says the store could not be reached (keep the record, try again later)
# rather than that it refused the record (seg.tracking.store.store_unreachable knows MLflow's
# errors).
Unreachable = Callable[[BaseException], bool]


def _encode(value: Any, folder: Path, key: str) -> dict[str, Any]:
    """An argument as JSON, its data written into ``folder`` (see the module's doc)."""
    if isinstance(value, np.ndarray):
        folder.mkdir(parents=True, exist_ok=True)
        np.save(folder / f"{key}.npy", value)
        return {"npy": f"{key}.npy"}
    if isinstance(value, Path):
        folder.mkdir(parents=True, exist_ok=True)
        # a folder of its own per argument: the artifact keeps its name
        target = folder / key / value.name
        if value.is_dir():
            shutil.copytree(value, target)
        else:
            target.parent.mkdir()
            shutil.copy2(value, target)
        return {"path": f"{key}/{value.name}"}
    if hasattr(value, "save") and not isinstance(value, (str, bytes, dict, list)):
        folder.mkdir(parents=True, exist_ok=True)
        value.save(folder / f"{key}.keras")  # a Keras model
        return {"path": f"{key}.keras"}
    return {"value": value}


def _decode(stored: dict[str, Any], folder: Path) -> Any:
    if "npy" in stored:
        return np.load(folder / stored["npy"])
    if "path" in stored:
        return folder / stored["path"]
    return stored["value"]


def kept_records(folder: Path) -> list[Path]:
    """The records kept in a spool folder, oldest first (not the refused ones)."""
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.glob("*.json") if p.stem.isdigit())


class Spool:
    """Deliver records through ``handlers`` (kind -> function of the record's arguments), or
    keep them in ``folder`` while the store cannot be reached (``unreachable`` tells from the
    error); ``folder=None`` keeps nothing (the error is raised). ``target`` (the store and the
    run) is written beside the records so that ``seg-sync`` knows where they go.
    ``redelivery`` (default ``handlers``) delivers the first kept record, the only one an
    attempt may have reached the store with (a failed delivery stops the spool, so the records
    after it were never tried): it must not deliver that record twice."""

    def __init__(
        self,
        folder: Path | None,
        handlers: Mapping[str, Handler],
        unreachable: Unreachable,
        target: Mapping[str, str] | None = None,
        retry_every: float = 15.0,
        redelivery: Mapping[str, Handler] | None = None,
    ) -> None:
        self.folder = Path(folder) if folder is not None else None
        self.unreachable = unreachable
        self.handlers, self.target, self.retry_every = handlers, dict(target or {}), retry_every
        self.redelivery = redelivery or handlers
        self._failed_at: float | None = None  # time.monotonic() of the last failed delivery
        kept = self.records()
        self._next = int(kept[-1].stem) + 1 if kept else 0
        self.kept = len(kept)
        self.delivered = 0  # records delivered from the spool by this process

    def records(self) -> list[Path]:
        """The kept records, oldest first."""
        return [] if self.folder is None else kept_records(self.folder)

    def submit(self, kind: str, **args: Any) -> Any:
        """Deliver a record now (the handler's result), or keep it after the ones already kept
        (None; those are tried again when it is time)."""
        if self.kept and self._due():
            self.flush()
        if not self.kept:
            try:
                return self.handlers[kind](**args)
            except Exception as err:
                if self.folder is None or not self.unreachable(err):
                    raise
                self._failed(err)
        self._keep(kind, args)
        return None

    def flush(self) -> int:
        """Deliver the kept records in order until the store fails; the number left."""
        for position, path in enumerate(self.records()):
            record = json.loads(path.read_text(encoding="utf-8"))
            data = path.with_suffix("")
            args = {k: _decode(v, data) for k, v in record["args"].items()}
            handlers = self.redelivery if position == 0 else self.handlers
            try:
                handlers[record["kind"]](**args)
            except Exception as err:
                if not self.unreachable(err):
                    self._refuse(path, err)
                    continue
                self._failed(err)
                return self.kept
            self._drop(path)
            self.delivered += 1
        if self._failed_at is not None and self.folder is not None:
            log.warning("tracking store reachable again: delivered %d kept records", self.delivered)
        self._failed_at = None
        self._remove_folder()
        return self.kept

    def drain(self, wait: float) -> int:
        """:meth:`flush`, tried again for up to ``wait`` seconds; the number left."""
        deadline = time.monotonic() + wait
        left = self.flush() if self.kept else 0
        if left and wait > 0:
            log.warning(
                "tracking store unreachable: waiting up to %.0f s to deliver %d kept records",
                wait,
                left,
            )
        while left and time.monotonic() < deadline:
            time.sleep(min(5.0, max(0.0, deadline - time.monotonic())))
            left = self.flush()
        return left

    def _due(self) -> bool:
        return self._failed_at is None or time.monotonic() - self._failed_at >= self.retry_every

    def _failed(self, err: BaseException) -> None:
        if self._failed_at is None:
            log.warning(
                "tracking store unreachable (%s); records are kept in %s and "
                "delivered when it is back",
                str(err)[:300],
                self.folder,
            )
        self._failed_at = time.monotonic()

    def _keep(self, kind: str, args: Mapping[str, Any]) -> None:
        assert self.folder is not None
        self.folder.mkdir(parents=True, exist_ok=True)
        target = self.folder / TARGET_FILE
        if not target.is_file():
            write_text_whole(target, json.dumps(self.target, indent=1))
        name = f"{self._next:08d}"
        self._next += 1
        data = self.folder / name
        record = {"kind": kind, "args": {k: _encode(v, data, k) for k, v in args.items()}}
        write_text_whole(self.folder / f"{name}.json", json.dumps(record))  # the commit point
        self.kept += 1

    def _drop(self, path: Path) -> None:
        path.unlink()
        shutil.rmtree(path.with_suffix(""), ignore_errors=True)
        self.kept -= 1

    def _refuse(self, path: Path, err: BaseException) -> None:
        assert self.folder is not None
        refused = self.folder / REFUSED_DIR
        refused.mkdir(exist_ok=True)
        log.error(
            "the tracking store refused a kept record (%s): %s; it is moved to %s",
            path.name,
            str(err)[:300],
            refused,
        )
        (refused / f"{path.stem}.error.txt").write_text(str(err), encoding="utf-8")
        shutil.move(path, refused / path.name)
        if path.with_suffix("").is_dir():
            shutil.move(path.with_suffix(""), refused / path.stem)
        self.kept -= 1

    def _remove_folder(self) -> None:
        """The spool folder once everything in it is delivered (refused records stay)."""
        if self.folder is None or self.kept or not self.folder.is_dir():
            return
        if not (self.folder / REFUSED_DIR).exists():
            shutil.rmtree(self.folder, ignore_errors=True)
