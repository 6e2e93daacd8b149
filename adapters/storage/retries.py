"""Transient database failures: how to tell them, and the transaction helpers that retry them.

Deadlocks, serialisation failures, lock timeouts, SQLite busy errors and lost connections are
retried a bounded number of times with backoff, reads as well as writes, each retry logged as a
warning. A connection lost *during* a commit leaves the write in doubt: ``run_transaction``
retries it only when that is safe (see its docstring). What still fails becomes a one-line
``StorageUnavailableError`` naming the storage without its password.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from typing import TypeVar

from optuna.exceptions import StorageInternalError
from sqlalchemy.engine import Connection, Engine, ExceptionContext
from sqlalchemy.exc import DBAPIError, IntegrityError

from limen.adapters.storage.errors import (
    StorageUnavailableError,
    describe_failure,
    storage_error,
)

__all__ = [
    "LOST",
    "MAX_ATTEMPTS",
    "ROLLED_BACK",
    "failure_kind",
    "log_replaced_connection",
    "pause_before_retry",
    "run_read",
    "run_retrying",
    "run_transaction",
]

MAX_ATTEMPTS = 8
_BACKOFF_BASE_S = 0.02
_BACKOFF_CAP_S = 2.0
# How a failed statement can be retried: its transaction was rolled back (run it again), or the
# connection was lost (run it again on a new one, unless the loss came during the commit).
ROLLED_BACK = "rolled back"
LOST = "connection lost"
# PostgreSQL SQLSTATEs and MySQL/MariaDB error numbers after which the transaction was rolled
# back and can simply be run again.
_PG_RETRY_SQLSTATES = frozenset({"40001", "40P01", "55P03"})
_MYSQL_RETRY_ERRNOS = frozenset({1205, 1213})
_SQLITE_RETRY_ERRORS = frozenset({"SQLITE_BUSY", "SQLITE_LOCKED"})
# Lost connections: PostgreSQL's class 08 and the server ending the session (administrator
# command, crash, start-up); MySQL/MariaDB's killed connection, gone away, lost, broken pipe.
_PG_CONNECTION_CLASS = "08"
_PG_SHUTDOWN_SQLSTATES = frozenset({"57P01", "57P02", "57P03"})
_MYSQL_LOST_ERRNOS = frozenset({1053, 1927, 2003, 2006, 2013, 2055})
# A PostgreSQL connection that dies while SQLAlchemy sets it up (its first query) carries no
# SQLSTATE and is not flagged as invalidated: psycopg's own words tell.
_PG_LOST_MESSAGES = ("server closed the connection unexpectedly", "consuming input failed")

_T = TypeVar("_T")
_logger = logging.getLogger("limen.adapters.storage")


def failure_kind(exc: DBAPIError) -> str | None:
    """How a failed statement may be retried: ``ROLLED_BACK``, ``LOST`` or None (never)."""
    orig = exc.orig
    sqlstate = getattr(orig, "sqlstate", None) or ""
    args = getattr(orig, "args", ())
    errno = args[0] if args and isinstance(args[0], int) else None
    if sqlstate in _PG_RETRY_SQLSTATES or errno in _MYSQL_RETRY_ERRNOS:
        return ROLLED_BACK
    if getattr(orig, "sqlite_errorname", None) in _SQLITE_RETRY_ERRORS:
        return ROLLED_BACK
    lost = (
        exc.connection_invalidated
        or sqlstate.startswith(_PG_CONNECTION_CLASS)
        or sqlstate in _PG_SHUTDOWN_SQLSTATES
        or errno in _MYSQL_LOST_ERRNOS
        or (not sqlstate and any(m in str(orig) for m in _PG_LOST_MESSAGES))
    )
    return LOST if lost else None


def log_replaced_connection(context: ExceptionContext) -> None:
    """Log a pooled connection found closed by the server when checked out (pre-ping)."""
    if context.is_pre_ping and context.is_disconnect:
        orig = context.original_exception
        _logger.warning(
            "Storage: retrying with a new connection after the database closed one (%s: %s).",
            type(orig).__name__,
            (str(orig).strip().splitlines() or [""])[0],
        )


def pause_before_retry(what: str, exc: DBAPIError, attempt: int) -> None:
    """Log the retry (a warning: a flaky database should be visible) and back off."""
    pause = random.uniform(0, min(_BACKOFF_CAP_S, _BACKOFF_BASE_S * 2**attempt))
    _logger.warning(
        "Storage: retrying %s (attempt %d of %d) in %.2fs after %s.",
        what,
        attempt + 1,
        MAX_ATTEMPTS,
        pause,
        describe_failure(exc),
    )
    time.sleep(pause)


def _exhausted(what: str, exc: DBAPIError, url: str, attempt: int) -> StorageUnavailableError:
    lost = failure_kind(exc) == LOST
    return storage_error(what, exc, url, attempts=attempt, lost=lost)


def run_transaction(
    engine: Engine,
    url: str,
    work: Callable[[Connection], _T],
    what: str,
    *,
    landed: Callable[[Connection], tuple[bool, _T]] | None = None,
    idempotent: bool = False,
) -> _T:
    """Run ``work`` in one write transaction, retrying transient failures with backoff.

    A failure that rolled the transaction back (deadlock, serialisation failure, lock
    timeout, SQLite busy, a connection lost before the commit) is simply retried. A connection
    lost *during* the commit leaves the write in doubt: it is retried only when that is safe,
    that is when ``idempotent`` (running ``work`` twice stores what once does) or when
    ``landed`` can tell, on a new connection and in the retry's transaction, whether the
    write was stored (``(True, result)``) or must run again (``(False, ...)``). Every retry is
    logged as a warning naming ``what``.

    On SQLite the transaction starts with ``BEGIN IMMEDIATE``: a deferred transaction that has
    read cannot become a writer once another connection committed, and two writers must never
    read the same trial count or sequence value.

    ``IntegrityError`` and errors raised by ``work`` itself propagate unchanged; any other
    database error becomes ``StorageUnavailableError`` (a ``StorageInternalError``, as in
    RDBStorage).
    """
    in_doubt = False
    sqlite = engine.dialect.name == "sqlite"
    for attempt in range(1, MAX_ATTEMPTS + 1):
        committing = False
        try:
            with engine.connect() as conn:
                if sqlite:
                    conn.exec_driver_sql("BEGIN IMMEDIATE")
                if in_doubt and landed is not None:
                    stored, result = landed(conn)
                    if stored:
                        _logger.warning("Storage: %s had been stored before the loss.", what)
                        return result
                in_doubt = False
                result = work(conn)
                committing = True
                conn.commit()
            return result
        except IntegrityError:
            raise
        except DBAPIError as exc:
            kind = failure_kind(exc)
            lost_commit = committing and kind == LOST
            if lost_commit and landed is None and not idempotent:
                error = storage_error(
                    what,
                    exc,
                    url,
                    lost=True,
                    note="the connection was lost while committing: the write may or may not "
                    "have been stored",
                )
                raise error from error.__cause__
            if kind is None or attempt == MAX_ATTEMPTS:
                error = _exhausted(what, exc, url, attempt)
                raise error from error.__cause__
            in_doubt = in_doubt or lost_commit
            pause_before_retry(what, exc, attempt)
    raise AssertionError("unreachable")


def run_read(engine: Engine, url: str, work: Callable[[Connection], _T], what: str) -> _T:
    """Run the read ``work`` on a connection, retrying lost connections and transient errors.

    Other database errors become ``StorageUnavailableError``; errors of ``work`` propagate.
    """
    for attempt in range(1, MAX_ATTEMPTS + 1):
        try:
            with engine.connect() as conn:
                return work(conn)
        except DBAPIError as exc:
            if failure_kind(exc) is None or attempt == MAX_ATTEMPTS:
                error = _exhausted(what, exc, url, attempt)
                raise error from error.__cause__
            pause_before_retry(what, exc, attempt)
    raise AssertionError("unreachable")


def run_retrying(call: Callable[[], _T], what: str) -> _T:
    """Run one of Optuna's own storage methods, retrying when its database connection broke.

    Optuna turns database errors into ``StorageInternalError``; the cause tells whether the
    failure was transient. Only reads and writes that may run twice come through here.
    """
    for attempt in range(1, MAX_ATTEMPTS + 1):
        try:
            return call()
        except StorageInternalError as exc:
            cause = exc.__cause__
            transient = isinstance(cause, DBAPIError) and failure_kind(cause) is not None
            if not transient or attempt == MAX_ATTEMPTS:
                raise
            pause_before_retry(what, cause, attempt)
    raise AssertionError("unreachable")
