"""The study storage: URL rules, SQLite tuning and the storage the loop writes rounds through.

Only this module builds engines and storage URLs. ``LimenStorage`` is an Optuna ``RDBStorage``
(same schema version, same tables), so every study it writes opens in plain Optuna and in
optuna-dashboard, and every study plain Optuna wrote can be continued through it.

Why it exists: ``RDBStorage`` goes through the SQLAlchemy ORM, one session per call, and spends
tens of milliseconds per finished trial on ORM bookkeeping rather than on the database.
``LimenStorage`` replaces the write paths with SQLAlchemy Core statements: a whole round (trial
row, number, parameters, attributes) is one transaction in ``create_running_trial`` (or in
``claim_new_round``, which first reads, under the study lock, the round ids other processes
added) and its outcome (attributes, values, state) another in ``finish_trial``; the per-call
methods that Optuna's ``Trial`` and ``Study`` use (``create_new_trial``, ``set_trial_param``,
``set_trial_user_attr`` ...) are Core statements too, with Optuna's semantics. Of the reads, only
the two on every round's path are Core queries (``get_trial``, and ``_get_trials`` behind
``get_all_trials`` and Optuna's cached study view); the others are Optuna's.

Concurrency: a new trial takes its number (gap-free, unique per study) while holding a lock on the
study row, as Optuna does (``SELECT ... FOR UPDATE`` on PostgreSQL and MySQL/MariaDB; SQLite
transactions start with ``BEGIN IMMEDIATE``, which serialises writers). The study-wide counters
of ``claim_sequence`` (study system attrs ``limen:seq:<key>``) change under the same lock.
Transient failures: deadlocks, serialisation failures, lock timeouts, SQLite busy errors and lost
connections are retried a bounded number of times with backoff, reads as well as writes, each
retry logged as a warning. A connection lost *during* a commit leaves the write in doubt: the
round-sized writes then check, on a new connection, whether it landed (``claim_new_round`` looks
for its round id and owner, ``finish_trial`` for the finished state) before running it again,
upserts simply run again, and the other writes report the doubt as ``StorageInternalError``.
Pools are small (``POOL_SIZE`` + ``POOL_OVERFLOW`` connections per process, pre-pinged), so many
worker processes fit in one server's connection limit.

SQLite tuning: every connection uses the WAL journal, ``synchronous=NORMAL`` and a busy timeout.
WAL lets readers (the dashboard, a second worker) run beside the writer, and ``NORMAL`` skips the
fsync at each commit. The trade-off: a committed round survives a crash of the process, but a power
cut or an OS crash can lose the last rounds committed before it (the database itself stays
consistent). ``LIMEN_SQLITE_SYNC=FULL`` in the environment, or ``sqlite_synchronous="FULL"``,
restores full durability at the cost of one fsync per transaction.

Cache interplay: ``optuna.load_study(storage=<LimenStorage>)`` wraps the storage in Optuna's
``_CachedStorage``. That cache answers only for finished trials and re-reads every other one (and
every trial above the last finished id it has seen), and a finished trial never changes (every
write path refuses it), so writes that go straight to ``LimenStorage`` never leave it stale. As for
a trial another process created, a cached view learns of a trial created straight through
``LimenStorage`` at its next read of the study's trials (``study.get_trials()``); Optuna's
``Trial(study, trial_id)`` for such a trial needs that read first.

Secrets: a password in a storage URL never appears in reprs, logs or error messages
(``redact_url``).
"""

from __future__ import annotations

import copy
import functools
import json
import logging
import os
import random
import sqlite3
import time
import uuid
from collections.abc import Callable, Container, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from optuna.distributions import (
    BaseDistribution,
    check_distribution_compatibility,
    distribution_to_json,
    json_to_distribution,
)
from optuna.exceptions import DuplicatedStudyError, StorageInternalError, UpdateFinishedTrialError
from optuna.storages import RDBStorage
from optuna.storages._rdb import models
from optuna.study import StudyDirection
from optuna.study._frozen import FrozenStudy
from optuna.trial import FrozenTrial, TrialState
from sqlalchemy import (
    ColumnElement,
    Table,
    and_,
    bindparam,
    case,
    create_engine,
    event,
    func,
    or_,
    select,
    update,
)
from sqlalchemy.dialects import mysql, postgresql, sqlite
from sqlalchemy.engine import Connection, Engine, ExceptionContext, make_url
from sqlalchemy.exc import DBAPIError, IntegrityError, SQLAlchemyError
from sqlalchemy.sql.expression import Executable

from limen.experiment import study_keys as keys

STUDY_DB_NAME = "study.db"
SQLITE_BUSY_TIMEOUT_S = 60
SQLITE_SYNC_ENV = "LIMEN_SQLITE_SYNC"
SQLITE_SYNC_MODES = ("OFF", "NORMAL", "FULL", "EXTRA")
SEQUENCE_ATTR_PREFIX = keys.SEQUENCE_PREFIX
SUPPORTED_BACKENDS = ("sqlite", "postgresql", "mysql", "mariadb")

MAX_ATTEMPTS = 8
_BACKOFF_BASE_S = 0.02
_BACKOFF_CAP_S = 2.0
# How a failed statement can be retried: its transaction was rolled back (run it again), or the
# connection was lost (run it again on a new one, unless the loss came during the commit).
_ROLLED_BACK = "rolled back"
_LOST = "connection lost"
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
# Connections per worker process: the loop's thread and the lease thread, plus a little slack
# under load, so many workers fit in one server's connection limit.
POOL_SIZE = 2
POOL_OVERFLOW = 3
# Above this many unfinished trial ids, a cached read asks for a range instead of an IN list
# (SQLite and the drivers cap the number of bound parameters).
_MAX_LISTED_TRIAL_IDS = 500

_STUDIES: Table = models.StudyModel.__table__
_STUDY_SYSTEM_ATTRS: Table = models.StudySystemAttributeModel.__table__
_TRIALS: Table = models.TrialModel.__table__
_TRIAL_PARAMS: Table = models.TrialParamModel.__table__
_TRIAL_VALUES: Table = models.TrialValueModel.__table__
_TRIAL_INTERMEDIATE: Table = models.TrialIntermediateValueModel.__table__
_TRIAL_USER_ATTRS: Table = models.TrialUserAttributeModel.__table__
_TRIAL_SYSTEM_ATTRS: Table = models.TrialSystemAttributeModel.__table__
_TRIAL_HEARTBEATS: Table = models.TrialHeartbeatModel.__table__

# Per-trial tables written in rounds, with the columns that are unique together with trial_id.
_TRIAL_CHILDREN: dict[str, tuple[Table, tuple[str, ...]]] = {
    "user_attrs": (_TRIAL_USER_ATTRS, ("key",)),
    "system_attrs": (_TRIAL_SYSTEM_ATTRS, ("key",)),
    "values": (_TRIAL_VALUES, ("objective",)),
    "intermediate_values": (_TRIAL_INTERMEDIATE, ("step",)),
}

# A new round: its parameters (internal representation), their distributions, the trial's user
# attrs, and optionally its system attrs.
RoundSpec = (
    tuple[Mapping[str, float], Mapping[str, BaseDistribution], Mapping[str, Any]]
    | tuple[
        Mapping[str, float], Mapping[str, BaseDistribution], Mapping[str, Any], Mapping[str, Any]
    ]
)

_T = TypeVar("_T")
# A parameter about to be stored: name, internal representation, distribution.
_Param = tuple[str, float, BaseDistribution]
_Row = dict[str, Any]
_logger = logging.getLogger(__name__)


def default_storage_url(experiment_dir: str | os.PathLike[str]) -> str:
    """The embedded default: ``sqlite:///<experiment_dir>/study.db``."""
    return f"sqlite:///{Path(experiment_dir).resolve() / STUDY_DB_NAME}"


def redact_url(url: str) -> str:
    """``url`` with any password (userinfo or query) replaced by ``***``, safe to show."""
    try:
        parsed = make_url(url)
    except Exception:
        return "<unparseable storage URL>"
    secret_keys = [key for key in parsed.query if "password" in key.lower() or key == "passwd"]
    if secret_keys:
        parsed = parsed.update_query_dict(dict.fromkeys(secret_keys, "***"))
    elif parsed.password is None:
        return url
    return parsed.render_as_string(hide_password=True)


def is_sqlite(url: str) -> bool:
    """Whether ``url`` names an SQLite database."""
    return make_url(url).get_backend_name() == "sqlite"


def sqlite_path(url: str) -> Path | None:
    """The database file of an SQLite ``url`` (None for other backends or in-memory)."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return None
    return Path(parsed.database)


def validate_storage_url(url: Any) -> str:
    """Check that ``url`` is a SQLAlchemy URL of a database Limen stores studies in."""
    if not isinstance(url, str) or not url:
        raise TypeError(
            "The 'storage' parameter must be a SQLAlchemy URL string such as "
            f"'sqlite:///study.db' or 'postgresql+psycopg://user@host/db'. Got {url!r} instead."
        )
    try:
        backend = make_url(url).get_backend_name()
    except Exception:
        raise ValueError(
            f"The 'storage' parameter is not a valid SQLAlchemy URL: {redact_url(url)!r}. "
            "Use e.g. 'sqlite:///study.db' or 'postgresql+psycopg://user@host/db'."
        ) from None
    if backend not in SUPPORTED_BACKENDS:
        raise ValueError(
            "The 'storage' parameter must name an SQLite, PostgreSQL or MySQL/MariaDB database. "
            f"Got {redact_url(url)!r} instead."
        )
    if backend == "sqlite" and make_url(url).database in (None, "", ":memory:"):
        raise ValueError(
            f"The 'storage' parameter {url!r} is an in-memory SQLite database, which keeps "
            "nothing after the process ends: give a file, e.g. 'sqlite:///study.db', or leave "
            "storage unset for <experiment_dir>/study.db."
        )
    return url


def sqlite_synchronous_mode(option: str | None = None) -> str:
    """The SQLite ``synchronous`` level: ``option``, else ``$LIMEN_SQLITE_SYNC``, else NORMAL."""
    mode = (option or os.environ.get(SQLITE_SYNC_ENV) or "NORMAL").strip().upper()
    if mode not in SQLITE_SYNC_MODES:
        raise ValueError(
            f"The SQLite synchronous mode must be one of {', '.join(SQLITE_SYNC_MODES)} "
            f"(option 'sqlite_synchronous' or ${SQLITE_SYNC_ENV}). Got {mode!r} instead."
        )
    return mode


def open_storage(
    url: str, *, sqlite_synchronous: str | None = None, read_only: bool = False
) -> LimenStorage:
    """Open (creating tables when needed) the storage at ``url``.

    Errors never show the URL's password; for SQLite the database's folder is created. With
    ``read_only`` the storage must exist and nothing is written (see ``open_read_only``).
    """
    if read_only:
        return open_read_only(url)
    validate_storage_url(url)
    path = sqlite_path(url)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
    for attempt in range(1, MAX_ATTEMPTS + 1):
        try:
            storage = LimenStorage(url, sqlite_synchronous=sqlite_synchronous)
        except DBAPIError as exc:
            if _failure_kind(exc) is None or attempt == MAX_ATTEMPTS:
                error = exc
                break
            _pause_before_retry(f"opening the storage {redact_url(url)}", exc, attempt)
        except StorageInternalError as exc:
            # Optuna's schema check reports a broken connection this way.
            cause = exc.__cause__
            if not isinstance(cause, DBAPIError) or _failure_kind(cause) is None:
                raise
            if attempt == MAX_ATTEMPTS:
                error = cause
                break
            _pause_before_retry(f"opening the storage {redact_url(url)}", cause, attempt)
        except SQLAlchemyError as exc:
            error = exc
            break
        else:
            _logger.debug("Opened the storage %s.", redact_url(url))
            return storage
    raise _open_error(error, url)


def open_read_only(url: str) -> LimenStorage:
    """Open an existing storage to read it, writing nothing: no table creation, no schema
    check, no journal or sync settings, and SQLite files opened through read-only connections.

    Readers (``limen status``, ``limen export``) then work on a read-only experiment directory
    and never change a study they only look at.
    """
    validate_storage_url(url)
    engine_kwargs: dict[str, Any] = {}
    path = sqlite_path(url)
    if path is not None:
        engine_kwargs["creator"] = functools.partial(_connect_sqlite_read_only, path)
    try:
        return LimenStorage(
            url,
            engine_kwargs,
            read_only=True,
            skip_table_creation=True,
            skip_compatibility_check=True,
        )
    except SQLAlchemyError as exc:
        raise _open_error(exc, url) from None


def _connect_sqlite_read_only(path: Path) -> sqlite3.Connection:
    # Without a write-ahead log beside it the file is complete and is read as immutable, which
    # needs no -shm file (none can be created in a read-only folder). With a log, a writer is
    # active: read-only mode reads the log through the files that writer keeps.
    wal = Path(f"{path}-wal")
    mode = "mode=ro" if wal.exists() else "mode=ro&immutable=1"
    return sqlite3.connect(
        f"file:{path.resolve()}?{mode}",
        uri=True,
        timeout=SQLITE_BUSY_TIMEOUT_S,
        check_same_thread=False,
    )


def _open_error(exc: SQLAlchemyError, url: str) -> StorageInternalError:
    """The error of a storage that cannot be opened, without the URL's password."""
    message = _scrub_secret(str(exc), url)
    error = StorageInternalError(f"Cannot open the storage {redact_url(url)}: {message}")
    error.__cause__ = None if message != str(exc) else exc
    error.__suppress_context__ = True
    return error


class LimenStorage(RDBStorage):
    """Optuna's RDB storage with Core write paths and the round-sized writes of the Limen loop.

    Every overridden method keeps ``RDBStorage``'s semantics (errors, ignored duplicates,
    timestamps, the trials it returns), so it passes Optuna's storage conformance suite.

    Every read and write survives transient database failures (see ``_transaction``): lost
    connections, deadlocks, serialisation failures and SQLite busy errors are retried with
    backoff, each retry logged as a warning. On a server, each process keeps at most
    ``POOL_SIZE + POOL_OVERFLOW`` connections (override with ``engine_kwargs``).

    Args:
        url: A SQLAlchemy URL of an SQLite, PostgreSQL or MySQL/MariaDB database.
        engine_kwargs: Passed to ``sqlalchemy.create_engine``, as in ``RDBStorage``.
        sqlite_synchronous: SQLite ``synchronous`` level (default ``$LIMEN_SQLITE_SYNC`` or
            ``NORMAL``); ``FULL`` survives a power cut at the cost of an fsync per commit.
        read_only: Leave the connections' journal and sync settings alone (a reader's storage,
            see ``open_read_only``).
        **kwargs: Other ``RDBStorage`` arguments (heartbeat settings, ...).
    """

    def __init__(
        self,
        url: str,
        engine_kwargs: dict[str, Any] | None = None,
        *,
        sqlite_synchronous: str | None = None,
        read_only: bool = False,
        **kwargs: Any,
    ) -> None:
        validate_storage_url(url)
        self._read_only = read_only
        self._sqlite_synchronous = sqlite_synchronous_mode(sqlite_synchronous)
        engine_kwargs = dict(engine_kwargs or {})
        if not is_sqlite(url):
            # Checked on checkout, a connection the server dropped is replaced before use.
            engine_kwargs.setdefault("pool_pre_ping", True)
            engine_kwargs.setdefault("pool_size", POOL_SIZE)
            engine_kwargs.setdefault("max_overflow", POOL_OVERFLOW)
        if sqlite_path(url) is not None:
            connect_args = engine_kwargs["connect_args"] = dict(
                engine_kwargs.get("connect_args", {})
            )
            connect_args.setdefault("timeout", SQLITE_BUSY_TIMEOUT_S)
        super().__init__(url, engine_kwargs=engine_kwargs, **kwargs)
        self._backend = _backend_of(self.engine)
        # (study_id, parameter name) -> a distribution the study has committed for that name.
        self._distributions: dict[tuple[int, str], BaseDistribution] = {}
        self._install_listeners()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({redact_url(self.url)!r})"

    def __getstate__(self) -> dict[Any, Any]:
        state = super().__getstate__()
        state["_distributions"] = {}
        return state

    def __setstate__(self, state: dict[Any, Any]) -> None:
        super().__setstate__(state)
        self._install_listeners()

    def _install_listeners(self) -> None:
        event.listen(self.engine, "handle_error", _log_replaced_connection)
        if sqlite_path(self.url) is None:
            return
        event.listen(self.engine, "connect", self._tune_sqlite_connection)
        # RDBStorage already connected to create the tables: drop that untuned connection.
        self.engine.dispose()

    def _tune_sqlite_connection(self, dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_S * 1000}")
        if self._read_only:
            cursor.close()
            return
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA synchronous={self._sqlite_synchronous}")
        cursor.close()

    # ----------------------------------------------------------------------------------------
    # Round-sized writes of the Limen loop.

    def create_running_trial(
        self,
        study_id: int,
        params: Mapping[str, float],
        distributions: Mapping[str, BaseDistribution],
        user_attrs: Mapping[str, Any] | None = None,
        system_attrs: Mapping[str, Any] | None = None,
    ) -> tuple[int, int]:
        """Create a RUNNING trial holding ``params`` (internal representation) in one transaction.

        Raises ``KeyError`` for an unknown study and ``ValueError`` when a distribution is missing
        or conflicts with the one the study already uses for that name; nothing is written then.
        Returns ``(trial_id, number)``.
        """
        return self._insert_new_trial(
            study_id, _running_trial(params, distributions, user_attrs, system_attrs)
        )

    def finish_trial(
        self,
        trial_id: int,
        state: TrialState,
        values: Sequence[float] | None,
        user_attrs: Mapping[str, Any],
    ) -> None:
        """Store a round's outcome in one transaction: user attrs, values, final state and time.

        The trial row is locked first; a trial that is already finished raises
        ``UpdateFinishedTrialError`` and nothing is written. Unlike ``Study.tell``, values are not
        checked (a NaN is not turned into FAIL): pass what ``tell`` would store. After a
        connection lost during the commit, a trial found finished in ``state`` is this write.
        """
        if not state.is_finished():
            raise ValueError(f"finish_trial needs a finished state. Got {state!r} instead.")
        user_rows = _attr_rows(user_attrs)
        value_rows = _value_rows(values)

        def work(conn: Connection) -> None:
            _updatable_trial(conn, self._sql.lock_trial, trial_id)
            self._upsert(conn, "user_attrs", trial_id, user_rows)
            self._upsert(conn, "values", trial_id, value_rows)
            self._set_state(conn, trial_id, state)

        def landed(conn: Connection) -> tuple[bool, None]:
            row = conn.execute(self._sql.lock_trial, {"tid": trial_id}).first()
            return row is not None and row.state == state, None

        self._transaction(work, f"finishing trial {trial_id} as {state.name}", landed=landed)

    def claim_sequence(self, study_id: int, key: str, count: int = 1) -> int:
        """Atomically take ``count`` positions of the study-wide counter ``key``.

        Returns the first position taken (the counter starts at 0); concurrent callers in any
        process never get the same position. The counter lives in the study's system attrs under
        ``limen:seq:<key>`` and changes under the study-row lock.
        """
        if not isinstance(count, int) or isinstance(count, bool) or count < 1:
            raise ValueError(f"The 'count' parameter must be an int >= 1. Got {count!r} instead.")
        attr = _sequence_attr(key)

        def work(conn: Connection) -> int:
            _lock_study(conn, self._sql, study_id)
            first, stored = self._read_sequence(conn, study_id, attr)
            self._write_sequence(conn, study_id, attr, first + count, stored)
            return first

        return self._transaction(work, f"claiming position(s) of the counter {key!r}")

    def claim_new_round(
        self,
        study_id: int,
        spec: RoundSpec,
        *,
        id_key: str,
        round_id: str,
        after_trial_id: int,
        limit: int | None = None,
    ) -> tuple[tuple[int, int] | None, list[tuple[int, str | None]]]:
        """Create round ``round_id``'s RUNNING trial unless another trial already holds it.

        Under the study lock, the ids (user attr ``id_key``) of the study's trials created
        after ``after_trial_id`` are read first: when one of them is ``round_id``, nothing is
        written. Trial ids grow in commit order under that lock, so a caller that keeps the
        ids it has seen and the largest trial id sees every round any process added.

        With ``limit``, nothing is written either when the study's finished and running rounds
        already reach it (``TargetReached``; see ``check_target``).

        After a connection lost during the commit, a RUNNING trial created since
        ``after_trial_id`` that holds ``round_id`` and every system attr of ``spec`` (the owner)
        is this claim's trial, not a duplicate: the round is neither lost nor created twice.

        Returns:
            ``((trial_id, number) or None, [(trial_id, round id or None), ...])``: the new
            trial, or None for a duplicate; and the trials created since ``after_trial_id``.
        """
        new = _running_trial(*spec)

        def work(conn: Connection) -> tuple[tuple[int, int] | None, list[tuple[int, str | None]]]:
            _lock_study(conn, self._sql, study_id)
            self.check_target(conn, study_id, limit)
            params = {"sid": study_id, "after": after_trial_id, "key": id_key}
            rows = [
                (int(tid), None if value is None else json.loads(value))
                for tid, value in conn.execute(self._sql.round_ids_after, params)
            ]
            if any(rid == round_id for _, rid in rows):
                return None, rows
            return self._insert_locked(conn, study_id, new), rows

        def landed(
            conn: Connection,
        ) -> tuple[bool, tuple[tuple[int, int] | None, list[tuple[int, str | None]]]]:
            _lock_study(conn, self._sql, study_id)
            params = {"sid": study_id, "after": after_trial_id, "key": id_key}
            rows = [
                (int(tid), None if value is None else json.loads(value))
                for tid, value in conn.execute(self._sql.round_ids_after, params)
            ]
            for tid, rid in rows:
                if rid == round_id and self._is_own_running_trial(conn, tid, new.system_attrs):
                    number = conn.execute(self._sql.trial, {"tid": tid}).one().number
                    return True, ((tid, int(number)), rows)
            return False, (None, rows)

        created, rows = self._transaction(work, f"claiming round {round_id[:12]}", landed=landed)
        if created is not None:
            self._remember_distributions(study_id, new.params)
        return created, rows

    def round_ids(self, study_id: int, *, id_key: str) -> list[tuple[int, str | None]]:
        """``(trial_id, round id or None)`` of every trial of the study, by trial id."""
        params = {"sid": study_id, "after": -1, "key": id_key}

        def read(conn: Connection) -> list[tuple[int, str | None]]:
            return [
                (int(tid), None if value is None else json.loads(value))
                for tid, value in conn.execute(self._sql.round_ids_after, params)
            ]

        return self._read(read, "reading the round ids")

    def start_waiting_round(
        self,
        study_id: int,
        trial_id: int,
        *,
        params: Sequence[tuple[str, float, BaseDistribution]],
        user_attrs: Mapping[str, Any],
        system_attrs: Mapping[str, Any],
        id_key: str,
        exclude_key: str,
        limit: int | None = None,
    ) -> tuple[bool, int | None]:
        """Move a WAITING trial to RUNNING as a round, in one transaction under the study lock.

        ``params`` are written when the trial has none (a trial enqueued with fixed params).
        The round id is ``user_attrs[id_key]``; when another trial of the study holds it and is
        neither WAITING nor marked with ``exclude_key`` (an attempt that never finished),
        nothing is written. With ``limit``, ``TargetReached`` as in ``claim_new_round``.

        Returns:
            ``(True, None)`` when started; ``(False, None)`` when the trial is no longer WAITING
            (another worker took it); ``(False, number)`` when trial ``number`` holds the round.
        """
        user_rows, system_rows = _attr_rows(user_attrs), _attr_rows(system_attrs)
        rid_json = json.dumps(user_attrs[id_key])

        def work(conn: Connection) -> tuple[bool, int | None]:
            _lock_study(conn, self._sql, study_id)
            self.check_target(conn, study_id, limit)
            row = conn.execute(self._sql.lock_trial, {"tid": trial_id}).first()
            if row is None or row.state != TrialState.WAITING:
                return False, None
            holder = conn.execute(
                self._sql.round_holder,
                {
                    "sid": study_id,
                    "tid": trial_id,
                    "key": id_key,
                    "rid": rid_json,
                    "exclude": exclude_key,
                },
            ).first()
            if holder is not None:
                return False, int(holder.number)
            if params and conn.execute(self._sql.has_params, {"tid": trial_id}).first() is None:
                self._check_distributions(conn, study_id, params)
                conn.execute(self._sql.insert_params, _param_rows(trial_id, params))
            self._upsert(conn, "user_attrs", trial_id, user_rows)
            self._upsert(conn, "system_attrs", trial_id, system_rows)
            self._set_state(conn, trial_id, TrialState.RUNNING)
            return True, None

        def landed(conn: Connection) -> tuple[bool, tuple[bool, int | None]]:
            _lock_study(conn, self._sql, study_id)
            started = self._is_own_running_trial(conn, trial_id, system_rows)
            return started, (True, None)

        return self._transaction(work, f"starting queued trial {trial_id}", landed=landed)

    def check_target(self, conn: Connection, study_id: int, limit: int | None) -> None:
        """Raise ``TargetReached`` when the study's finished plus running rounds reach ``limit``.

        Called with the study row locked, so workers that share a study never start more rounds
        than its target between them. A count reads every trial of the study, so only shared
        runs pass a limit; a single process stops on its own count.
        """
        if limit is None:
            return
        row = conn.execute(_open_rounds_statement(), {"sid": study_id, "attempt": ATTEMPT_KEY})
        finished, running = (int(v or 0) for v in row.one())
        if finished + running >= limit:
            raise TargetReached(finished, running, limit)

    def end_waiting_trial(self, trial_id: int, user_attrs: Mapping[str, Any]) -> bool:
        """End a WAITING trial as FAIL with ``user_attrs`` (its reason); False if not WAITING."""
        user_rows = _attr_rows(user_attrs)

        def work(conn: Connection) -> bool:
            row = conn.execute(self._sql.lock_trial, {"tid": trial_id}).first()
            if row is None or row.state != TrialState.WAITING:
                return False
            self._upsert(conn, "user_attrs", trial_id, user_rows)
            self._set_state(conn, trial_id, TrialState.FAIL)
            return True

        def landed(conn: Connection) -> tuple[bool, bool]:
            row = conn.execute(self._sql.lock_trial, {"tid": trial_id}).first()
            return row is not None and row.state == TrialState.FAIL, True

        return self._transaction(work, f"ending queued trial {trial_id}", landed=landed)

    def has_waiting_trials(self, study_id: int) -> bool:
        """Whether the study holds a WAITING trial (one indexed lookup)."""
        return self._read(
            lambda conn: conn.execute(self._sql.any_waiting, {"sid": study_id}).first() is not None,
            "looking for queued trials",
        )

    def widen_distribution(self, study_id: int, name: str, distribution: BaseDistribution) -> None:
        """Give parameter ``name`` of every trial of the study the (wider) ``distribution``.

        Used when a domain injection adds a value: appending a categorical choice or widening
        a numeric range keeps every stored value valid under the new distribution, and the
        study stays one space for samplers, plain Optuna and optuna-dashboard.
        """
        statement = (
            update(_TRIAL_PARAMS)
            .where(
                _TRIAL_PARAMS.c.param_name == name,
                _TRIAL_PARAMS.c.trial_id.in_(
                    select(_TRIALS.c.trial_id).where(_TRIALS.c.study_id == study_id)
                ),
            )
            .values(distribution_json=distribution_to_json(distribution))
        )
        self._transaction(
            lambda conn: conn.execute(statement),
            f"widening the distribution of {name!r}",
            idempotent=True,
        )
        self._distributions.pop((study_id, name), None)

    def get_sequence(self, study_id: int, key: str) -> int:
        """How many positions of the counter ``key`` have been handed out so far."""
        return int(self.get_study_system_attrs(study_id).get(_sequence_attr(key), 0))

    # ----------------------------------------------------------------------------------------
    # Optuna's per-call write methods, as Core statements with RDBStorage's semantics.

    def _create_new_trial(
        self, study_id: int, template_trial: FrozenTrial | None = None
    ) -> FrozenTrial:
        # ``_CachedStorage.create_new_trial`` calls this private method, so it is the override
        # point for both the plain and the cached path.
        template = template_trial
        if template is None:
            new = _NewTrial(state=TrialState.RUNNING, start=datetime.now())
        else:
            # RDBStorage's rule: several objectives come from ``values``, one from ``value``.
            if template.values is not None and len(template.values) > 1:
                values: Sequence[float] | None = template.values
            else:
                values = None if template.value is None else [template.value]
            dists = template.distributions
            new = _NewTrial(
                state=template.state,
                start=template.datetime_start,
                complete=template.datetime_complete,
                params=[
                    (name, dists[name].to_internal_repr(value), dists[name])
                    for name, value in template.params.items()
                ],
                user_attrs=_attr_rows(template.user_attrs),
                system_attrs=_attr_rows(template.system_attrs),
                values=_value_rows(values),
                intermediate_values=_intermediate_rows(template.intermediate_values),
            )
        trial_id, number = self._insert_new_trial(study_id, new)
        if template is None:
            return FrozenTrial(
                number=number,
                state=new.state,
                value=None,
                values=None,
                datetime_start=_round_trip(new.start),
                datetime_complete=None,
                params={},
                distributions={},
                user_attrs={},
                system_attrs={},
                intermediate_values={},
                trial_id=trial_id,
            )
        frozen = copy.deepcopy(template)
        frozen.number = number
        frozen.datetime_start = _round_trip(new.start)
        frozen._trial_id = trial_id
        return frozen

    def _set_trial_param(
        self,
        trial_id: int,
        param_name: str,
        param_value_internal: float,
        distribution: BaseDistribution,
        previous_distribution: BaseDistribution | None,
    ) -> None:
        # ``_CachedStorage.set_trial_param`` calls this private method with its cached
        # distribution; ``RDBStorage.set_trial_param`` calls it with None.
        params = [(param_name, param_value_internal, distribution)]

        def work(conn: Connection) -> int:
            study_id = _updatable_trial(conn, self._sql.trial, trial_id).study_id
            if previous_distribution is not None:
                check_distribution_compatibility(previous_distribution, distribution)
            else:
                self._check_distributions(conn, study_id, params)
            conn.execute(self._sql.insert_params, _param_rows(trial_id, params))
            return study_id

        try:
            # In doubt after a lost commit, running it again stores the value or hits the row
            # stored the first time (an ignored integrity error).
            what = f"setting parameter {param_name!r} of trial {trial_id}"
            study_id = self._transaction(work, what, idempotent=True)
        except IntegrityError:
            # As in RDBStorage: a second value for the same parameter is ignored.
            return
        self._remember_distributions(study_id, params)

    def set_trial_state_values(
        self, trial_id: int, state: TrialState, values: Sequence[float] | None = None
    ) -> bool:
        value_rows = _value_rows(values)

        def work(conn: Connection) -> bool:
            current = _updatable_trial(conn, self._sql.lock_trial, trial_id).state
            self._upsert(conn, "values", trial_id, value_rows)
            # RDBStorage quirk kept on purpose: the values are stored even when the change to
            # RUNNING is refused (the trial was not WAITING, e.g. another worker took it).
            if state == TrialState.RUNNING and current != TrialState.WAITING:
                return False
            self._set_state(conn, trial_id, state)
            return True

        def landed(conn: Connection) -> tuple[bool, bool]:
            row = conn.execute(self._sql.lock_trial, {"tid": trial_id}).first()
            return row is not None and row.state == state and state.is_finished(), True

        try:
            what = f"setting trial {trial_id} to {state.name}"
            return self._transaction(work, what, landed=landed)
        except IntegrityError:
            return False

    def set_trial_intermediate_value(
        self, trial_id: int, step: int, intermediate_value: float
    ) -> None:
        self._set_trial_child(
            "intermediate_values", trial_id, _intermediate_rows({step: intermediate_value})
        )

    def set_trial_user_attr(self, trial_id: int, key: str, value: Any) -> None:
        self._set_trial_child("user_attrs", trial_id, _attr_rows({key: value}))

    def set_trial_system_attr(self, trial_id: int, key: str, value: Any) -> None:
        self._set_trial_child("system_attrs", trial_id, _attr_rows({key: value}))

    def record_heartbeat(self, trial_id: int) -> None:
        # The heartbeat is the database's clock, as in RDBStorage (``_get_stale_trial_ids``
        # compares it with the database's ``now()``).
        self._ignoring_integrity_errors(
            lambda conn: conn.execute(self._sql.heartbeat, {"trial_id": trial_id}),
            f"the heartbeat of trial {trial_id}",
        )

    # ----------------------------------------------------------------------------------------
    # Optuna's per-round reads, as Core queries building the same FrozenTrial objects.

    def get_trial(self, trial_id: int) -> FrozenTrial:
        trials = self._read(
            lambda conn: _read_trials(conn, _TRIALS.c.trial_id == trial_id),
            f"reading trial {trial_id}",
        )
        if not trials:
            raise KeyError(models.NOT_FOUND_MSG)
        return trials[0]

    def _get_trials(
        self,
        study_id: int,
        states: Container[TrialState] | None,
        included_trial_ids: set[int],
        trial_id_greater_than: int,
    ) -> list[FrozenTrial]:
        # ``_CachedStorage`` reads through this method the trials it has not seen finished:
        # those above the last finished id plus the unfinished ones below it.
        included = {i for i in included_trial_ids if i <= trial_id_greater_than}
        trial_id = _TRIALS.c.trial_id
        where = [_TRIALS.c.study_id == study_id]
        if states is not None:
            assert isinstance(states, Iterable)
            where.append(_TRIALS.c.state.in_(list(states)))
        if included and len(included) > _MAX_LISTED_TRIAL_IDS:
            # A superset without a huge IN list, narrowed below.
            where.append(trial_id >= min(included))
        elif included:
            where.append(or_(trial_id.in_(sorted(included)), trial_id > trial_id_greater_than))
        elif trial_id_greater_than > -1:
            where.append(trial_id > trial_id_greater_than)

        def read(conn: Connection) -> list[FrozenTrial]:
            if conn.execute(self._sql.study, {"sid": study_id}).first() is None:
                raise KeyError(models.NOT_FOUND_MSG)
            return _read_trials(conn, and_(*where))

        trials = self._read(read, f"reading the trials of study {study_id}")
        if len(included) > _MAX_LISTED_TRIAL_IDS:
            trials = [
                t for t in trials if t._trial_id in included or t._trial_id > trial_id_greater_than
            ]
        return trials

    def delete_study(self, study_id: int) -> None:
        lost = False

        def delete() -> None:
            nonlocal lost
            try:
                super(LimenStorage, self).delete_study(study_id)
            except KeyError:
                # Gone on a retry: the attempt whose commit was in doubt deleted it.
                if not lost:
                    raise
            except StorageInternalError:
                lost = True
                raise

        self._retrying(delete, f"deleting study {study_id}")
        # SQLite may give the id of the deleted study to the next one.
        for key in [key for key in self._distributions if key[0] == study_id]:
            del self._distributions[key]

    # ----------------------------------------------------------------------------------------
    # Optuna's own session-based methods, retried when the connection broke. Reads and
    # idempotent writes (attributes are overwritten) may simply run again.

    def create_new_study(
        self, directions: Sequence[StudyDirection], study_name: str | None = None
    ) -> int:
        lost = False

        def create() -> int:
            nonlocal lost
            try:
                return super(LimenStorage, self).create_new_study(directions, study_name)
            except DuplicatedStudyError:
                # On a retry, the attempt whose commit was in doubt created it.
                if not lost or study_name is None:
                    raise
                _logger.warning("Storage: study %r had been created before the loss.", study_name)
                return self.get_study_id_from_name(study_name)
            except StorageInternalError:
                lost = True
                raise

        return self._retrying(create, f"creating study {study_name!r}")

    def set_study_user_attr(self, study_id: int, key: str, value: Any) -> None:
        self._retrying(
            lambda: super(LimenStorage, self).set_study_user_attr(study_id, key, value),
            f"setting the study attribute {key!r}",
        )

    def set_study_system_attr(self, study_id: int, key: str, value: Any) -> None:
        self._retrying(
            lambda: super(LimenStorage, self).set_study_system_attr(study_id, key, value),
            f"setting the study system attribute {key!r}",
        )

    def set_study_user_attrs(self, study_id: int, attrs: Mapping[str, Any]) -> None:
        """Store several study user attrs in one transaction: all of them, or none."""
        table = models.StudyUserAttributeModel.__table__
        rows = [{"study_id": study_id, **row} for row in _attr_rows(attrs)]
        keys = [row["key"] for row in rows]

        def work(conn: Connection) -> None:
            _lock_study(conn, self._sql, study_id)
            conn.execute(table.delete().where(table.c.study_id == study_id, table.c.key.in_(keys)))
            if rows:
                conn.execute(table.insert(), rows)

        self._transaction(work, f"setting {len(rows)} study attributes", idempotent=True)

    def get_study_id_from_name(self, study_name: str) -> int:
        return self._retrying(
            lambda: super(LimenStorage, self).get_study_id_from_name(study_name),
            f"reading the id of study {study_name!r}",
        )

    def get_study_name_from_id(self, study_id: int) -> str:
        return self._retrying(
            lambda: super(LimenStorage, self).get_study_name_from_id(study_id),
            f"reading the name of study {study_id}",
        )

    def get_study_directions(self, study_id: int) -> list[StudyDirection]:
        return self._retrying(
            lambda: super(LimenStorage, self).get_study_directions(study_id),
            f"reading the directions of study {study_id}",
        )

    def get_study_user_attrs(self, study_id: int) -> dict[str, Any]:
        return self._retrying(
            lambda: super(LimenStorage, self).get_study_user_attrs(study_id),
            f"reading the attributes of study {study_id}",
        )

    def get_study_system_attrs(self, study_id: int) -> dict[str, Any]:
        return self._retrying(
            lambda: super(LimenStorage, self).get_study_system_attrs(study_id),
            f"reading the system attributes of study {study_id}",
        )

    def get_all_studies(self) -> list[FrozenStudy]:
        return self._retrying(
            lambda: super(LimenStorage, self).get_all_studies(), "reading the studies"
        )

    def get_trial_id_from_study_id_trial_number(self, study_id: int, trial_number: int) -> int:
        return self._retrying(
            lambda: super(LimenStorage, self).get_trial_id_from_study_id_trial_number(
                study_id, trial_number
            ),
            f"reading the id of trial number {trial_number}",
        )

    def get_best_trial(self, study_id: int) -> FrozenTrial:
        return self._retrying(
            lambda: super(LimenStorage, self).get_best_trial(study_id),
            f"reading the best trial of study {study_id}",
        )

    def heartbeat_ages(self, trial_ids: Sequence[int]) -> dict[int, float]:
        """Seconds since each trial's last heartbeat, by the database's clock (beating ones)."""
        beats = _TRIAL_HEARTBEATS

        def read(conn: Connection) -> tuple[datetime, list[Any]]:
            now = conn.execute(select(func.now())).scalar_one()
            where = beats.c.trial_id.in_(list(trial_ids))
            return now, conn.execute(select(beats.c.trial_id, beats.c.heartbeat).where(where)).all()

        now, rows = self._read(read, "reading heartbeats")
        now = now.replace(tzinfo=None)
        return {int(tid): (now - beat.replace(tzinfo=None)).total_seconds() for tid, beat in rows}

    # ----------------------------------------------------------------------------------------
    # Transactions and helpers.

    @property
    def _sql(self) -> _Statements:
        return _statements(self._backend)

    def _transaction(
        self,
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

        ``IntegrityError`` and errors raised by ``work`` itself propagate unchanged; any other
        database error becomes ``StorageInternalError``, as in RDBStorage.
        """
        in_doubt = False
        for attempt in range(1, MAX_ATTEMPTS + 1):
            committing = False
            try:
                with self.engine.connect() as conn:
                    if self._backend == "sqlite":
                        # Take the write lock up front: a deferred transaction that has read
                        # cannot become a writer once another connection committed, and two
                        # writers must never read the same trial count or sequence value.
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
                kind = _failure_kind(exc)
                lost_commit = committing and kind == _LOST
                if lost_commit and landed is None and not idempotent:
                    raise StorageInternalError(
                        f"The database connection was lost while committing {what}; the write "
                        "may or may not have been stored."
                    ) from exc
                if kind is None or attempt == MAX_ATTEMPTS:
                    raise StorageInternalError(
                        f"{what} failed after {attempt} attempt(s): {_describe(exc)}"
                    ) from exc
                in_doubt = in_doubt or lost_commit
                _pause_before_retry(what, exc, attempt)
        raise AssertionError("unreachable")

    def _read(self, work: Callable[[Connection], _T], what: str) -> _T:
        """Run the read ``work`` on a connection, retrying lost connections and transient errors.

        Other database errors become ``StorageInternalError``; errors of ``work`` propagate.
        """
        for attempt in range(1, MAX_ATTEMPTS + 1):
            try:
                with self.engine.connect() as conn:
                    return work(conn)
            except DBAPIError as exc:
                if _failure_kind(exc) is None or attempt == MAX_ATTEMPTS:
                    raise StorageInternalError(
                        f"{what} failed after {attempt} attempt(s): {_describe(exc)}"
                    ) from exc
                _pause_before_retry(what, exc, attempt)
        raise AssertionError("unreachable")

    def _retrying(self, call: Callable[[], _T], what: str) -> _T:
        """Run one of Optuna's own storage methods, retrying when its database connection broke.

        Optuna turns database errors into ``StorageInternalError``; the cause tells whether the
        failure was transient. Only reads and writes that may run twice come through here
        (``create_new_study`` and ``delete_study`` settle a write in doubt themselves).
        """
        for attempt in range(1, MAX_ATTEMPTS + 1):
            try:
                return call()
            except StorageInternalError as exc:
                cause = exc.__cause__
                transient = isinstance(cause, DBAPIError) and _failure_kind(cause) is not None
                if not transient or attempt == MAX_ATTEMPTS:
                    raise
                _pause_before_retry(what, cause, attempt)
        raise AssertionError("unreachable")

    def _ignoring_integrity_errors(self, work: Callable[[Connection], Any], what: str) -> None:
        # RDBStorage ignores integrity errors on these writes: they come from a concurrent
        # writer that stored the same key first (or, for heartbeats, a deleted trial). They are
        # upserts, so running one again after a commit in doubt stores the same rows.
        try:
            self._transaction(work, what, idempotent=True)
        except IntegrityError:
            _logger.debug("Ignored an integrity error from a concurrent write.")

    def _insert_new_trial(self, study_id: int, new: _NewTrial) -> tuple[int, int]:
        """Insert ``new`` with the study's next trial number, in one transaction."""

        def work(conn: Connection) -> tuple[int, int]:
            _lock_study(conn, self._sql, study_id)
            return self._insert_locked(conn, study_id, new)

        result = self._transaction(work, f"creating a {new.state.name} trial")
        self._remember_distributions(study_id, new.params)
        return result

    def _insert_locked(self, conn: Connection, study_id: int, new: _NewTrial) -> tuple[int, int]:
        """Insert ``new`` (the study row already locked); return ``(trial_id, number)``."""
        sql = self._sql
        self._check_distributions(conn, study_id, new.params)
        # RDBStorage numbers a trial by counting the study's earlier trials. Under the study lock
        # every writer (Limen or plain Optuna) keeps the numbers gap-free, so the count equals
        # the latest trial's number + 1, which an index finds without scanning the study (the
        # count cost 1.7 ms per round at 30,000 trials on SQLite).
        last = conn.execute(sql.last_number, {"sid": study_id}).scalar_one_or_none()
        number = 0 if last is None else last + 1
        row = {
            "study_id": study_id,
            "number": number,
            "state": new.state,
            "datetime_start": _utc(new.start),
            "datetime_complete": _utc(new.complete),
        }
        trial_id = int(conn.execute(sql.insert_trial, row).inserted_primary_key[0])
        if new.params:
            conn.execute(sql.insert_params, _param_rows(trial_id, new.params))
        for child in _TRIAL_CHILDREN:
            rows = getattr(new, child)
            if rows:
                conn.execute(sql.insert[child], [{"trial_id": trial_id, **r} for r in rows])
        return trial_id, number

    def _is_own_running_trial(
        self, conn: Connection, trial_id: int, system_rows: list[_Row]
    ) -> bool:
        """Whether ``trial_id`` is RUNNING and holds every one of ``system_rows`` (its owner)."""
        row = conn.execute(self._sql.trial, {"tid": trial_id}).first()
        if row is None or row.state != TrialState.RUNNING:
            return False
        stored = {
            key: value
            for key, value in conn.execute(self._sql.system_attrs, {"tid": trial_id}).all()
        }
        return all(stored.get(r["key"]) == r["value_json"] for r in system_rows)

    def _read_sequence(self, conn: Connection, study_id: int, attr: str) -> tuple[int, bool]:
        """The counter's next position and whether its row exists (study row locked)."""
        where = {"sid": study_id, "attr": attr}
        stored = conn.execute(self._sql.read_sequence, where).scalar_one_or_none()
        return (0, False) if stored is None else (int(json.loads(stored)), True)

    def _write_sequence(
        self, conn: Connection, study_id: int, attr: str, value: int, exists: bool
    ) -> None:
        value_json = json.dumps(value)
        if exists:
            params = {"sid": study_id, "attr": attr, "value_json": value_json}
            conn.execute(self._sql.update_sequence, params)
        else:
            row = {"study_id": study_id, "key": attr, "value_json": value_json}
            conn.execute(self._sql.insert_study_system_attr, row)

    def _set_trial_child(self, child: str, trial_id: int, rows: list[_Row]) -> None:
        """Insert or overwrite one row of a RUNNING or WAITING trial, as RDBStorage does."""

        def work(conn: Connection) -> None:
            _updatable_trial(conn, self._sql.trial, trial_id)
            self._upsert(conn, child, trial_id, rows)

        self._ignoring_integrity_errors(work, f"setting the {child} of trial {trial_id}")

    def _upsert(self, conn: Connection, child: str, trial_id: int, rows: list[_Row]) -> None:
        if rows:
            conn.execute(self._sql.upsert[child], [{"trial_id": trial_id, **r} for r in rows])

    def _set_state(self, conn: Connection, trial_id: int, state: TrialState) -> None:
        changes: dict[str, Any] = {"tid": trial_id, "state": state}
        if state == TrialState.RUNNING:
            changes["datetime_start"] = _utc(datetime.now())
        if state.is_finished():
            changes["datetime_complete"] = _utc(datetime.now())
        conn.execute(self._sql.update_trial, changes)

    def _check_distributions(
        self, conn: Connection, study_id: int, params: Sequence[_Param]
    ) -> None:
        """Raise ``ValueError`` when a distribution conflicts with the study's earlier one."""
        for name, _, distribution in params:
            previous = self._distributions.get((study_id, name))
            if previous is None:
                where = {"sid": study_id, "name": name}
                stored = conn.execute(self._sql.stored_distribution, where).scalar_one_or_none()
                previous = None if stored is None else json_to_distribution(stored)
            if previous is not None:
                check_distribution_compatibility(previous, distribution)

    def _remember_distributions(self, study_id: int, params: Sequence[_Param]) -> None:
        # Compatibility is an equivalence (kind, log flag, categorical choices) and parameter
        # rows are only deleted with their study, so a committed distribution stands for every
        # later one of the same study and name.
        for name, _, distribution in params:
            self._distributions.setdefault((study_id, name), distribution)


@dataclass
class _NewTrial:
    """The rows of a trial about to be inserted, serialised before the transaction opens."""

    state: TrialState
    start: datetime | None
    complete: datetime | None = None
    params: list[_Param] = field(default_factory=list)
    user_attrs: list[_Row] = field(default_factory=list)
    system_attrs: list[_Row] = field(default_factory=list)
    values: list[_Row] = field(default_factory=list)
    intermediate_values: list[_Row] = field(default_factory=list)


class _Statements:
    """The Core statements of the write paths, built once per backend.

    Reusing one statement object lets SQLAlchemy skip rebuilding it and find its compiled form
    at once; building them per call cost more than running them on SQLite.
    """

    def __init__(self, backend: str) -> None:
        trials, params, attrs = _TRIALS, _TRIAL_PARAMS, _STUDY_SYSTEM_ATTRS
        self.study = select(_STUDIES.c.study_id).where(_STUDIES.c.study_id == bindparam("sid"))
        self.lock_study = self.study.with_for_update()
        self.last_number = (
            select(trials.c.number)
            .where(trials.c.study_id == bindparam("sid"))
            .order_by(trials.c.trial_id.desc())
            .limit(1)
        )
        self.insert_trial = trials.insert()
        self.trial = select(trials.c.study_id, trials.c.number, trials.c.state).where(
            trials.c.trial_id == bindparam("tid")
        )
        self.lock_trial = self.trial.with_for_update()
        self.update_trial = update(trials).where(trials.c.trial_id == bindparam("tid"))
        self.insert_params = params.insert()
        self.stored_distribution = (
            select(params.c.distribution_json)
            .join(trials, trials.c.trial_id == params.c.trial_id)
            .where(trials.c.study_id == bindparam("sid"), params.c.param_name == bindparam("name"))
            .limit(1)
        )
        self.insert = {child: table.insert() for child, (table, _) in _TRIAL_CHILDREN.items()}
        self.upsert = {
            child: _upsert(backend, table, keys) for child, (table, keys) in _TRIAL_CHILDREN.items()
        }
        self.heartbeat = _upsert(
            backend, _TRIAL_HEARTBEATS, (), {"heartbeat": func.current_timestamp()}
        )
        sequence = (attrs.c.study_id == bindparam("sid")) & (attrs.c.key == bindparam("attr"))
        self.read_sequence = select(attrs.c.value_json).where(sequence)
        self.update_sequence = update(attrs).where(sequence)
        self.insert_study_system_attr = attrs.insert()
        user = _TRIAL_USER_ATTRS
        tagged = user.alias("tagged")
        self.round_ids_after = (
            select(trials.c.trial_id, user.c.value_json)
            .select_from(
                trials.outerjoin(
                    user,
                    (user.c.trial_id == trials.c.trial_id) & (user.c.key == bindparam("key")),
                )
            )
            .where(trials.c.study_id == bindparam("sid"), trials.c.trial_id > bindparam("after"))
            .order_by(trials.c.trial_id)
        )
        excluded = (
            select(tagged.c.trial_id)
            .where(tagged.c.trial_id == trials.c.trial_id, tagged.c.key == bindparam("exclude"))
            .exists()
        )
        self.round_holder = (
            select(trials.c.number)
            .join(user, user.c.trial_id == trials.c.trial_id)
            .where(
                trials.c.study_id == bindparam("sid"),
                trials.c.trial_id != bindparam("tid"),
                trials.c.state != TrialState.WAITING,
                user.c.key == bindparam("key"),
                user.c.value_json == bindparam("rid"),
                ~excluded,
            )
            .limit(1)
        )
        self.has_params = select(params.c.param_id).where(params.c.trial_id == bindparam("tid"))
        system = _TRIAL_SYSTEM_ATTRS
        self.system_attrs = select(system.c.key, system.c.value_json).where(
            system.c.trial_id == bindparam("tid")
        )
        self.any_waiting = (
            select(trials.c.trial_id)
            .where(trials.c.study_id == bindparam("sid"), trials.c.state == TrialState.WAITING)
            .limit(1)
        )


class TargetReached(Exception):
    """The study's finished and running rounds reached the target: no round was claimed."""

    def __init__(self, finished: int, running: int, limit: int) -> None:
        super().__init__(
            f"The study holds {finished} finished and {running} running rounds of its target "
            f"of {limit}."
        )
        self.finished = finished
        self.running = running
        self.limit = limit


# The user attr that marks an attempt which reached no outcome (it does not count as a round).
ATTEMPT_KEY = keys.ATTEMPT


@functools.cache
def _open_rounds_statement() -> Executable:
    """Finished rounds (COMPLETE, PRUNED, FAIL that is no lost attempt) and RUNNING trials."""
    trials, user = _TRIALS, _TRIAL_USER_ATTRS
    attempt = (
        select(user.c.trial_id)
        .where(user.c.trial_id == trials.c.trial_id, user.c.key == bindparam("attempt"))
        .exists()
    )
    finished = or_(
        trials.c.state.in_([TrialState.COMPLETE, TrialState.PRUNED]),
        and_(trials.c.state == TrialState.FAIL, ~attempt),
    )
    return select(
        func.sum(case((finished, 1), else_=0)),
        func.sum(case((trials.c.state == TrialState.RUNNING, 1), else_=0)),
    ).where(trials.c.study_id == bindparam("sid"))


@functools.cache
def _statements(backend: str) -> _Statements:
    return _Statements(backend)


def _upsert(
    backend: str, table: Table, keys: tuple[str, ...], set_: dict[str, Any] | None = None
) -> Executable:
    """INSERT ... ON CONFLICT/DUPLICATE KEY UPDATE on (trial_id, *keys) of a trial table."""
    unique = ("trial_id", *keys)
    if set_ is None:
        set_ = {}
        overwritten = [c.name for c in table.c if not c.primary_key and c.name not in unique]
    else:
        overwritten = []
    if backend == "mysql":
        stmt = mysql.insert(table)
        return stmt.on_duplicate_key_update({**{c: stmt.inserted[c] for c in overwritten}, **set_})
    insert = postgresql.insert if backend == "postgresql" else sqlite.insert
    stmt = insert(table)
    return stmt.on_conflict_do_update(
        index_elements=[table.c[c] for c in unique],
        set_={**{c: stmt.excluded[c] for c in overwritten}, **set_},
    )


def _backend_of(engine: Engine) -> str:
    """``sqlite``, ``postgresql`` or ``mysql`` (MariaDB included)."""
    name = engine.dialect.name
    return "mysql" if name in ("mysql", "mariadb") else name


def _lock_study(conn: Connection, sql: _Statements, study_id: int) -> None:
    """Lock the study row (``KeyError`` when missing): RDBStorage's guard for trial numbers."""
    if conn.execute(sql.lock_study, {"sid": study_id}).first() is None:
        raise KeyError(models.NOT_FOUND_MSG)


def _updatable_trial(conn: Connection, statement: Executable, trial_id: int) -> Any:
    """The trial's (study_id, number, state) row, read with ``statement`` (locking or not).

    Raises ``KeyError`` when the trial is missing and ``UpdateFinishedTrialError`` when it has
    finished, with RDBStorage's messages.
    """
    row = conn.execute(statement, {"tid": trial_id}).first()
    if row is None:
        raise KeyError(models.NOT_FOUND_MSG)
    if row.state.is_finished():
        raise UpdateFinishedTrialError(
            f"Trial#{row.number} has already finished and can not be updated."
        )
    return row


def _running_trial(
    params: Mapping[str, float],
    distributions: Mapping[str, BaseDistribution],
    user_attrs: Mapping[str, Any] | None = None,
    system_attrs: Mapping[str, Any] | None = None,
) -> _NewTrial:
    """A RUNNING trial starting now; ``ValueError`` when a parameter has no distribution."""
    missing = [name for name in params if name not in distributions]
    if missing:
        raise ValueError(f"No distribution given for the parameters {missing}.")
    return _NewTrial(
        state=TrialState.RUNNING,
        start=datetime.now(),
        params=[(name, float(value), distributions[name]) for name, value in params.items()],
        user_attrs=_attr_rows(user_attrs or {}),
        system_attrs=_attr_rows(system_attrs or {}),
    )


def _sequence_attr(key: str) -> str:
    if not isinstance(key, str) or not key:
        raise ValueError(f"The 'key' parameter must be a non-empty str. Got {key!r} instead.")
    attr = SEQUENCE_ATTR_PREFIX + key
    if len(attr) > models.MAX_INDEXED_STRING_LENGTH:
        raise ValueError(
            "The 'key' parameter must be at most "
            f"{models.MAX_INDEXED_STRING_LENGTH - len(SEQUENCE_ATTR_PREFIX)} characters long."
        )
    return attr


def _failure_kind(exc: DBAPIError) -> str | None:
    """How a failed statement may be retried: ``_ROLLED_BACK``, ``_LOST`` or None (never)."""
    orig = exc.orig
    sqlstate = getattr(orig, "sqlstate", None) or ""
    args = getattr(orig, "args", ())
    errno = args[0] if args and isinstance(args[0], int) else None
    if sqlstate in _PG_RETRY_SQLSTATES or errno in _MYSQL_RETRY_ERRNOS:
        return _ROLLED_BACK
    if getattr(orig, "sqlite_errorname", None) in _SQLITE_RETRY_ERRORS:
        return _ROLLED_BACK
    lost = (
        exc.connection_invalidated
        or sqlstate.startswith(_PG_CONNECTION_CLASS)
        or sqlstate in _PG_SHUTDOWN_SQLSTATES
        or errno in _MYSQL_LOST_ERRNOS
    )
    return _LOST if lost else None


def _log_replaced_connection(context: ExceptionContext) -> None:
    """Log a pooled connection found closed by the server when checked out (pre-ping)."""
    if context.is_pre_ping and context.is_disconnect:
        orig = context.original_exception
        _logger.warning(
            "Storage: retrying with a new connection after the database closed one (%s: %s).",
            type(orig).__name__,
            (str(orig).strip().splitlines() or [""])[0],
        )


def _describe(exc: DBAPIError) -> str:
    """The driver error's type and first line: what failed, without the statement or its data."""
    orig = exc.orig
    first_line = str(orig).strip().splitlines()[0] if str(orig).strip() else ""
    return f"{type(orig).__name__}: {first_line}" if first_line else type(orig).__name__


def _pause_before_retry(what: str, exc: DBAPIError, attempt: int) -> None:
    """Log the retry (a warning: a flaky database should be visible) and back off."""
    pause = random.uniform(0, min(_BACKOFF_CAP_S, _BACKOFF_BASE_S * 2**attempt))
    _logger.warning(
        "Storage: retrying %s (attempt %d of %d) in %.2fs after %s.",
        what,
        attempt + 1,
        MAX_ATTEMPTS,
        pause,
        _describe(exc),
    )
    time.sleep(pause)


def _utc(moment: datetime | None) -> datetime | None:
    """Optuna stores trial datetimes as naive UTC; naive inputs are local time."""
    return None if moment is None else moment.astimezone(UTC).replace(tzinfo=None)


def _local(stored: datetime | None) -> datetime | None:
    """A stored naive-UTC datetime as RDBStorage reads it back: naive local time."""
    return None if stored is None else stored.replace(tzinfo=UTC).astimezone().replace(tzinfo=None)


def _round_trip(moment: datetime | None) -> datetime | None:
    """``moment`` as RDBStorage hands it back after storing it."""
    return _local(_utc(moment))


def _attr_rows(attrs: Mapping[str, Any]) -> list[_Row]:
    # Serialised before the transaction opens, so a value JSON cannot encode writes nothing.
    return [{"key": key, "value_json": json.dumps(value)} for key, value in attrs.items()]


def _value_rows(values: Sequence[float] | None) -> list[_Row]:
    to_stored = models.TrialValueModel.value_to_stored_repr
    return [
        dict(zip(("objective", "value", "value_type"), (i, *to_stored(v)), strict=True))
        for i, v in enumerate(values or ())
    ]


def _intermediate_rows(values: Mapping[int, float]) -> list[_Row]:
    to_stored = models.TrialIntermediateValueModel.intermediate_value_to_stored_repr
    columns = ("step", "intermediate_value", "intermediate_value_type")
    return [dict(zip(columns, (s, *to_stored(v)), strict=True)) for s, v in values.items()]


def _param_rows(trial_id: int, params: Sequence[_Param]) -> list[_Row]:
    # Rows go in the given order, so param_id follows it: Optuna orders a trial's parameters
    # by param_id.
    return [
        {
            "trial_id": trial_id,
            "param_name": name,
            "param_value": value,
            "distribution_json": distribution_to_json(distribution),
        }
        for name, value, distribution in params
    ]


def _read_trials(conn: Connection, where: ColumnElement[bool]) -> list[FrozenTrial]:
    """The trials matching ``where`` (a condition on the trials table), ordered by id.

    Builds what ``RDBStorage._build_frozen_trial_from_trial_model`` builds: parameters in
    param_id order, values by objective, datetimes in naive local time.
    """
    t = _TRIALS
    rows = conn.execute(
        select(t.c.trial_id, t.c.number, t.c.state, t.c.datetime_start, t.c.datetime_complete)
        .where(where)
        .order_by(t.c.trial_id)
    ).all()
    if not rows:
        return []
    children = {
        name: _read_children(conn, table, where)
        for name, table in (
            ("params", _TRIAL_PARAMS),
            ("values", _TRIAL_VALUES),
            ("user_attrs", _TRIAL_USER_ATTRS),
            ("system_attrs", _TRIAL_SYSTEM_ATTRS),
            ("intermediate_values", _TRIAL_INTERMEDIATE),
        )
    }
    to_value = models.TrialValueModel.stored_repr_to_value
    to_intermediate = models.TrialIntermediateValueModel.stored_repr_to_intermediate_value
    trials = []
    for row in rows:
        tid = row.trial_id
        distributions = {
            p.param_name: json_to_distribution(p.distribution_json)
            for p in children["params"].get(tid, ())
        }
        params = {
            p.param_name: distributions[p.param_name].to_external_repr(p.param_value)
            for p in children["params"].get(tid, ())
        }
        value_rows = children["values"].get(tid)
        values = None
        if value_rows:
            values = [0.0] * len(value_rows)
            for v in value_rows:
                values[v.objective] = to_value(v.value, v.value_type)
        trials.append(
            FrozenTrial(
                number=row.number,
                state=row.state,
                value=None,
                values=values,
                datetime_start=_local(row.datetime_start),
                datetime_complete=_local(row.datetime_complete),
                params=params,
                distributions=distributions,
                user_attrs={
                    a.key: json.loads(a.value_json) for a in children["user_attrs"].get(tid, ())
                },
                system_attrs={
                    a.key: json.loads(a.value_json) for a in children["system_attrs"].get(tid, ())
                },
                intermediate_values={
                    i.step: to_intermediate(i.intermediate_value, i.intermediate_value_type)
                    for i in children["intermediate_values"].get(tid, ())
                },
                trial_id=tid,
            )
        )
    return trials


def _read_children(
    conn: Connection, table: Table, where: ColumnElement[bool]
) -> dict[int, list[Any]]:
    """Rows of a per-trial table for the trials matching ``where``, by trial id, in id order."""
    stmt = (
        select(table)
        .join(_TRIALS, _TRIALS.c.trial_id == table.c.trial_id)
        .where(where)
        .order_by(*table.primary_key.columns)
    )
    grouped: dict[int, list[Any]] = {}
    for row in conn.execute(stmt):
        grouped.setdefault(row.trial_id, []).append(row)
    return grouped


def _scrub_secret(text: str, url: str) -> str:
    """``text`` with the password of ``url`` (if any) replaced by ``***``."""
    try:
        password = make_url(url).password
    except Exception:
        return text
    return text.replace(str(password), "***") if password else text


@dataclass(frozen=True)
class StudyProbe:
    """What a storage holds under one study name, read without changing anything."""

    exists: bool
    user_attrs: dict[str, Any] = field(default_factory=dict)
    n_trials: int = 0


def probe_study(url: str, study_name: str) -> StudyProbe:
    """Look a study up without writing: no table creation, no SQLite checkpoint, no new file.

    The fresh-run guard and resume checks use it, so refusing a run leaves an experiment
    directory byte for byte as it was.
    """
    path = sqlite_path(url)
    if path is not None:
        return _probe_sqlite_file(path, study_name) if path.exists() else StudyProbe(False)
    storage = open_storage(url)
    try:
        study_id = storage.get_study_id_from_name(study_name)
        attrs = storage.get_study_user_attrs(study_id)
        n_trials = storage.get_n_trials(study_id)
    except KeyError:
        return StudyProbe(False)
    finally:
        storage.engine.dispose()
    return StudyProbe(True, attrs, n_trials)


def _probe_sqlite_file(path: Path, study_name: str) -> StudyProbe:
    # With no write-ahead log beside it the file is complete: read it as immutable, which
    # creates no -wal/-shm files. With a log (a writer is active or crashed), read-only mode
    # reads the log too; its files already exist and a read-only reader never checkpoints.
    wal = Path(f"{path}-wal")
    mode = "mode=ro" if wal.exists() else "mode=ro&immutable=1"
    connection = sqlite3.connect(f"file:{path.resolve()}?{mode}", uri=True, timeout=60)
    try:
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
    finally:
        connection.close()
    return StudyProbe(True, attrs, n_trials)


@contextmanager
def scratch_database(server_url: str, prefix: str = "limen_scratch") -> Iterator[str]:
    """A uniquely named database on a PostgreSQL or MySQL/MariaDB server, dropped afterwards.

    Tests and benchmarks share servers with other users, so each works in its own database;
    nothing outside it is touched. Yields the new database's URL.
    """
    admin = create_engine(server_url, isolation_level="AUTOCOMMIT")
    name = f"{prefix}_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    quoted = admin.dialect.identifier_preparer.quote(name)
    with admin.connect() as conn:
        conn.exec_driver_sql(f"CREATE DATABASE {quoted}")
    try:
        yield make_url(server_url).set(database=name).render_as_string(hide_password=False)
    finally:
        # FORCE ends connections left open (PostgreSQL refuses to drop the database otherwise).
        force = " WITH (FORCE)" if admin.dialect.name == "postgresql" else ""
        with admin.connect() as conn:
            conn.exec_driver_sql(f"DROP DATABASE IF EXISTS {quoted}{force}")
        admin.dispose()
