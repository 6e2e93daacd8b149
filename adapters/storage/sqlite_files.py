"""Read-only looks at an SQLite file: nothing created beside it, no checkpoint, no lock held.

The dashboard asks ``sqlite_has_study`` before opening a file a running experiment may still be
setting up, and a failed open asks it before removing the file it created.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path

__all__ = ["read_only_connection", "sqlite_has_study"]

_TIMEOUT_S = 60


def sqlite_has_study(path: Path) -> bool:
    """Whether the SQLite file at ``path`` holds a study (False when it is no Optuna database)."""
    try:
        with read_only_connection(path, snapshot=False) as connection:
            return connection.execute("SELECT 1 FROM studies LIMIT 1").fetchone() is not None
    except sqlite3.DatabaseError:
        return False


@contextmanager
def read_only_connection(path: Path, *, snapshot: bool = True) -> Iterator[sqlite3.Connection]:
    """A read-only connection to ``path``.

    With ``snapshot`` and no write-ahead log beside it the file is complete: read it as
    immutable, which creates no -wal/-shm files. With a log (a writer is active or crashed),
    read-only mode reads the log too; its files already exist and a read-only reader never
    checkpoints. Without ``snapshot`` (a writer may be setting the file up) it is always read
    through SQLite's locks.
    """
    wal = Path(f"{path}-wal")
    mode = "mode=ro" if wal.exists() or not snapshot else "mode=ro&immutable=1"
    uri = f"{path.resolve().as_uri()}?{mode}"
    with closing(sqlite3.connect(uri, uri=True, timeout=_TIMEOUT_S)) as connection:
        yield connection
