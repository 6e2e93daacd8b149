"""Engine and dialect set-up: connection pools, SQLite tuning, and the backend a statement targets.

SQLite tuning: every connection uses the WAL journal, ``synchronous=NORMAL`` and a busy timeout.
WAL lets readers (the dashboard, a second worker) run beside the writer, and ``NORMAL`` skips the
fsync at each commit. The trade-off: a committed round survives a crash of the process, but a power
cut or an OS crash can lose the last rounds committed before it (the database itself stays
consistent). ``LIMEN_SQLITE_SYNC=FULL`` in the environment, or ``sqlite_synchronous="FULL"``,
restores full durability at the cost of one fsync per transaction.

Pools are small (``POOL_SIZE`` + ``POOL_OVERFLOW`` connections per process, pre-pinged), so many
worker processes fit in one server's connection limit.
"""

from __future__ import annotations

import os
from typing import Any

from sqlalchemy.engine import Engine

from limen.adapters.storage.urls import is_sqlite, sqlite_path
from limen.errors import InvalidParameterError

__all__ = [
    "POOL_OVERFLOW",
    "POOL_SIZE",
    "SQLITE_BUSY_TIMEOUT_S",
    "SQLITE_SYNC_ENV",
    "SQLITE_SYNC_MODES",
    "backend_of",
    "engine_options",
    "sqlite_synchronous_mode",
    "tune_sqlite_connection",
]

SQLITE_BUSY_TIMEOUT_S = 60
SQLITE_SYNC_ENV = "LIMEN_SQLITE_SYNC"
SQLITE_SYNC_MODES = ("OFF", "NORMAL", "FULL", "EXTRA")
# Connections per worker process: the loop's thread and the lease thread, plus a little slack
# under load, so many workers fit in one server's connection limit.
POOL_SIZE = 2
POOL_OVERFLOW = 3


def sqlite_synchronous_mode(option: str | None = None) -> str:
    """The SQLite ``synchronous`` level: ``option``, else ``$LIMEN_SQLITE_SYNC``, else NORMAL."""
    mode = (option or os.environ.get(SQLITE_SYNC_ENV) or "NORMAL").strip().upper()
    if mode not in SQLITE_SYNC_MODES:
        raise InvalidParameterError(
            f"The SQLite synchronous mode must be one of {', '.join(SQLITE_SYNC_MODES)} "
            f"(option 'sqlite_synchronous' or ${SQLITE_SYNC_ENV}). Got {mode!r} instead."
        )
    return mode


def engine_options(url: str, engine_kwargs: dict[str, Any] | None) -> dict[str, Any]:
    """``engine_kwargs`` completed with Limen's defaults for ``url``'s backend.

    A server gets a small pre-pinged pool (a connection the server dropped is replaced before
    use); an SQLite file gets a busy timeout, so a writer waits for another one's transaction.
    """
    options = dict(engine_kwargs or {})
    if not is_sqlite(url):
        options.setdefault("pool_pre_ping", True)
        options.setdefault("pool_size", POOL_SIZE)
        options.setdefault("max_overflow", POOL_OVERFLOW)
    if sqlite_path(url) is not None:
        connect_args = options["connect_args"] = dict(options.get("connect_args", {}))
        connect_args.setdefault("timeout", SQLITE_BUSY_TIMEOUT_S)
    return options


def tune_sqlite_connection(
    dbapi_connection: Any, synchronous: str, *, read_only: bool = False
) -> None:
    """Set the busy timeout, the WAL journal and the ``synchronous`` level of a new connection.

    A reader's connection (``read_only``) gets the busy timeout only: it changes no file.
    """
    cursor = dbapi_connection.cursor()
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_S * 1000}")
    if read_only:
        cursor.close()
        return
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute(f"PRAGMA synchronous={synchronous}")
    cursor.close()


def backend_of(engine: Engine) -> str:
    """``sqlite``, ``postgresql`` or ``mysql`` (MariaDB included)."""
    name = engine.dialect.name
    return "mysql" if name in ("mysql", "mariadb") else name
