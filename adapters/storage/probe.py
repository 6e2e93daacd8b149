"""Looking into a storage without writing: no table creation, no SQLite checkpoint, no new file.

The fresh-run guard and resume checks use ``probe_study``, so refusing a run leaves an experiment
directory byte for byte as it was.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from limen.adapters.storage.errors import storage_error
from limen.adapters.storage.limen_storage import LimenStorage
from limen.adapters.storage.opening import open_storage
from limen.adapters.storage.sqlite_files import read_only_connection
from limen.adapters.storage.urls import sqlite_path

__all__ = ["StudyProbe", "probe_study"]


@dataclass(frozen=True)
class StudyProbe:
    """What a storage holds under one study name, read without changing anything."""

    exists: bool
    user_attrs: dict[str, Any] = field(default_factory=dict)
    n_trials: int = 0


def probe_study(url: str, study_name: str, storage: LimenStorage | None = None) -> StudyProbe:
    """Look study ``study_name`` up in ``url`` without writing anything.

    An SQLite file is read directly. A server is read through ``storage`` when given (a storage
    the caller opened on ``url`` and keeps), else through one opened for this look-up.

    Raises ``StorageUnavailableError`` when the database cannot be read (corrupt, unreachable).
    """
    path = sqlite_path(url)
    if path is not None:
        if not path.exists():
            return StudyProbe(False)
        try:
            return _probe_sqlite_file(path, study_name)
        except sqlite3.DatabaseError as exc:
            raise storage_error(f"reading study {study_name!r}", exc, url) from None
    reader = storage if storage is not None else open_storage(url)
    try:
        study_id = reader.get_study_id_from_name(study_name)
        attrs = reader.get_study_user_attrs(study_id)
        n_trials = reader.get_n_trials(study_id)
    except KeyError:
        return StudyProbe(False)
    finally:
        if storage is None:
            reader.engine.dispose()
    return StudyProbe(True, attrs, n_trials)


def _probe_sqlite_file(path: Path, study_name: str) -> StudyProbe:
    with read_only_connection(path) as connection:
        tables = {row[0] for row in connection.execute("SELECT name FROM sqlite_master")}
        if "studies" not in tables:
            return StudyProbe(False)
        row = connection.execute(
            "SELECT study_id FROM studies WHERE study_name = ?", (study_name,)
        ).fetchone()
        if row is None:
            return StudyProbe(False)
        attrs = {
            key: json.loads(value)
            for key, value in connection.execute(
                "SELECT key, value_json FROM study_user_attributes WHERE study_id = ?", row
            )
        }
        (n_trials,) = connection.execute(
            "SELECT COUNT(*) FROM trials WHERE study_id = ?", row
        ).fetchone()
    return StudyProbe(True, attrs, n_trials)
