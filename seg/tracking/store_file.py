"""A SQLite tracking store's file, checked before a run opens (no MLflow needed).

MLflow meets a corrupt database, a file of another kind, or another program's SQLite file
with a traceback from deep inside SQLAlchemy after the run has started; here each is one line
naming ``mlflow.tracking_uri`` and what was found, before any work. A server or another
database is MLflow's to reach (an unreachable one is handled by the spool).
"""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path

from seg.files import folder_problem

_SQLITE_HEADER = b"SQLite format 3\x00"
# Tables every MLflow SQLite store has, whatever its schema version.
_MLFLOW_TABLES = {"experiments", "runs", "alembic_version"}


def sqlite_path(tracking_uri: str) -> Path | None:
    """The database file of a sqlite:/// URI (None for other stores and in-memory SQLite)."""
    if not tracking_uri.startswith("sqlite:///"):
        return None
    path = tracking_uri[len("sqlite:///") :].split("?", 1)[0]
    return None if path in ("", ":memory:") else Path(path)


def store_file_problem(tracking_uri: str) -> str | None:
    """Why a SQLite store cannot be opened or made at ``tracking_uri``; None if it can (or if
    the store is not a SQLite file)."""
    path = sqlite_path(tracking_uri)
    if path is None:
        return None
    key = f"mlflow.tracking_uri={tracking_uri}"
    if path.is_dir():
        return f"{key}: {path} is a folder; name the database file (…/mlflow.db)"
    if not path.exists():
        problem = folder_problem(path.parent)
        return f"{key}: {problem}" if problem else None
    return _database_problem(path, key)


def _database_problem(path: Path, key: str) -> str | None:
    with path.open("rb") as fh:
        header = fh.read(len(_SQLITE_HEADER))
    if not header:
        return None  # SQLite makes an empty file its database
    fix = "move it away, or name another store (mlflow.tracking_uri=sqlite:///<path>)"
    if header != _SQLITE_HEADER:
        return f"{key}: {path} is not a SQLite database (it begins {header[:8]!r}); {fix}"
    try:
        with closing(sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)) as db:
            tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master")}
    except sqlite3.DatabaseError as err:
        return f"{key}: {path} is a damaged SQLite database ({err}); {fix}"
    if tables and not tables & _MLFLOW_TABLES:
        shown = ", ".join(sorted(tables)[:5])
        return f"{key}: {path} is another program's SQLite database (tables {shown}); {fix}"
    return None
