"""``LimenStorage``: the storage the loop writes rounds through, and the hub of every query.

``LimenStorage`` is an Optuna ``RDBStorage`` (same schema version, same tables), so every study
it writes opens in plain Optuna and in optuna-dashboard, and every study plain Optuna wrote can
be continued through it. Every query Limen runs on a study is one of its methods, and each runs
through its one transaction or read helper (``retries``), so every one is retried alike.

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
upserts simply run again, and the other writes report the doubt as ``StorageUnavailableError``
(a ``StorageInternalError``). Pools and SQLite tuning are set up in ``engine``.

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
import json
import logging
from collections.abc import Callable, Container, Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any, TypeVar

from optuna.distributions import (
    BaseDistribution,
    check_distribution_compatibility,
    distribution_to_json,
    json_to_distribution,
)
from optuna.exceptions import DuplicatedStudyError, StorageInternalError, UpdateFinishedTrialError
from optuna.storages import BaseStorage, RDBStorage
from optuna.study import StudyDirection
from optuna.study._frozen import FrozenStudy
from optuna.trial import FrozenTrial, TrialState
from sqlalchemy import and_, create_engine, event, inspect, or_
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.sql.expression import Executable

from limen.adapters.storage.engine import (
    backend_of,
    engine_options,
    sqlite_synchronous_mode,
    tune_sqlite_connection,
)
from limen.adapters.storage.errors import StorageSchemaError, TargetReached
from limen.adapters.storage.frozen_trials import read_trials
from limen.adapters.storage.optuna_internals import (
    MAX_INDEXED_STRING_LENGTH,
    NOT_FOUND_MSG,
    TRIALS,
    VERSION_INFO,
    check_schema_version,
    create_schema,
    unwrap_storage,
)
from limen.adapters.storage.retries import (
    log_replaced_connection,
    run_read,
    run_retrying,
    run_transaction,
)
from limen.adapters.storage.rows import (
    NewTrial,
    Param,
    Row,
    attr_rows,
    intermediate_rows,
    param_rows,
    round_trip,
    running_trial,
    utc_naive,
    value_rows,
)
from limen.adapters.storage.statements import (
    ATTEMPT_KEY,
    TRIAL_CHILDREN,
    Statements,
    open_rounds_statement,
    statements,
)
from limen.adapters.storage.urls import redact_url, sqlite_path, validate_storage_url
from limen.experiment import study_keys as keys

__all__ = [
    "SEQUENCE_ATTR_PREFIX",
    "LimenStorage",
    "RoundSpec",
    "limen_storage_of",
]

SEQUENCE_ATTR_PREFIX = keys.SEQUENCE_PREFIX
# Above this many unfinished trial ids, a cached read asks for a range instead of an IN list
# (SQLite and the drivers cap the number of bound parameters).
_MAX_LISTED_TRIAL_IDS = 500

# A new round: its parameters (internal representation), their distributions, the trial's user
# attrs, and optionally its system attrs.
RoundSpec = (
    tuple[Mapping[str, float], Mapping[str, BaseDistribution], Mapping[str, Any]]
    | tuple[
        Mapping[str, float], Mapping[str, BaseDistribution], Mapping[str, Any], Mapping[str, Any]
    ]
)

_T = TypeVar("_T")
_logger = logging.getLogger("limen.adapters.storage")

# URLs whose database this process has opened and found complete (Optuna's tables at the newest
# revision): opening one again skips RDBStorage's check of each table, a query per table.
_complete_schemas: set[str] = set()


def limen_storage_of(storage: BaseStorage) -> LimenStorage | None:
    """The ``LimenStorage`` behind ``storage`` (a study's, maybe cached), or None for another."""
    backend = unwrap_storage(storage)
    return backend if isinstance(backend, LimenStorage) else None


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
        check_schema = not kwargs.pop("skip_compatibility_check", False)
        options = engine_options(url, engine_kwargs)
        skip_tables = kwargs.pop("skip_table_creation", False)
        known = not skip_tables and (self._create_sqlite(url, options) or url in _complete_schemas)
        try:
            try:
                super().__init__(
                    url,
                    engine_kwargs=options,
                    skip_table_creation=skip_tables or known,
                    skip_compatibility_check=True,
                    **kwargs,
                )
            except (SQLAlchemyError, StorageInternalError):
                if not known or self._has_schema():
                    raise
                # The tables went away since this process last opened the database.
                _complete_schemas.discard(url)
                self.engine.dispose()
                super().__init__(
                    url, engine_kwargs=options, skip_compatibility_check=True, **kwargs
                )
            if check_schema:
                try:
                    check_schema_version(self)
                except RuntimeError as exc:
                    raise StorageSchemaError(f"{redact_url(url)}: {exc}") from exc
                if not skip_tables:
                    _complete_schemas.add(url)
        except BaseException:
            # A storage that failed to open keeps no connection (nor a file handle) open.
            engine = getattr(self, "engine", None)
            if engine is not None:
                engine.dispose()
            raise
        self._backend = backend_of(self.engine)
        # (study_id, parameter name) -> a distribution the study has committed for that name.
        self._distributions: dict[tuple[int, str], BaseDistribution] = {}
        self._install_listeners()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({redact_url(self.url)!r})"

    def _create_sqlite(self, url: str, options: dict[str, Any]) -> bool:
        """Create Optuna's schema in a new (absent or empty) SQLite file; True when created.

        RDBStorage's own creation parses Optuna's migration scripts twice and commits each table
        through an untuned connection; this one is a few milliseconds. Anything in the way (a
        concurrent creator, an unwritable folder) leaves the creation to RDBStorage, which
        completes a partly created file and reports what is wrong.
        """
        path = sqlite_path(url)
        if self._read_only or path is None or (path.exists() and path.stat().st_size > 0):
            return False
        engine = create_engine(url, **options)
        event.listen(engine, "connect", self._tune_sqlite_connection)
        try:
            with engine.begin() as connection:
                create_schema(connection)
        except SQLAlchemyError:
            return False
        finally:
            engine.dispose()
        return True

    def _has_schema(self) -> bool:
        """Whether the database holds Optuna's tables (True also when it cannot be asked)."""
        try:
            return inspect(self.engine).has_table(VERSION_INFO.name)
        except SQLAlchemyError:
            return True

    def __getstate__(self) -> dict[Any, Any]:
        state = super().__getstate__()
        state["_distributions"] = {}
        return state

    def __setstate__(self, state: dict[Any, Any]) -> None:
        super().__setstate__(state)
        self._install_listeners()

    def _install_listeners(self) -> None:
        event.listen(self.engine, "handle_error", log_replaced_connection)
        if sqlite_path(self.url) is None:
            return
        event.listen(self.engine, "connect", self._tune_sqlite_connection)
        # RDBStorage already connected to create the tables: drop that untuned connection.
        self.engine.dispose()

    def _tune_sqlite_connection(self, dbapi_connection: Any, _record: Any) -> None:
        tune_sqlite_connection(
            dbapi_connection, self._sqlite_synchronous, read_only=self._read_only
        )

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
            study_id, running_trial(params, distributions, user_attrs, system_attrs)
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
        user_rows = attr_rows(user_attrs)
        values_to_store = value_rows(values)

        def work(conn: Connection) -> None:
            _updatable_trial(conn, self._sql.lock_trial, trial_id)
            self._upsert(conn, "user_attrs", trial_id, user_rows)
            self._upsert(conn, "values", trial_id, values_to_store)
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
        new = running_trial(*spec)

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
        user_rows, system_rows = attr_rows(user_attrs), attr_rows(system_attrs)
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
                conn.execute(self._sql.insert_params, param_rows(trial_id, params))
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
        row = conn.execute(open_rounds_statement(), {"sid": study_id, "attempt": ATTEMPT_KEY})
        finished, running = (int(v or 0) for v in row.one())
        if finished + running >= limit:
            raise TargetReached(finished, running, limit)

    def end_waiting_trial(self, trial_id: int, user_attrs: Mapping[str, Any]) -> bool:
        """End a WAITING trial as FAIL with ``user_attrs`` (its reason); False if not WAITING."""
        user_rows = attr_rows(user_attrs)

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
        where = {"sid": study_id, "name": name, "dist_json": distribution_to_json(distribution)}
        self._transaction(
            lambda conn: conn.execute(self._sql.widen_distribution, where),
            f"widening the distribution of {name!r}",
            idempotent=True,
        )
        self._distributions.pop((study_id, name), None)

    def get_sequence(self, study_id: int, key: str) -> int:
        """How many positions of the counter ``key`` have been handed out so far.

        One indexed read of the counter's row: workers call this before every claim, so it
        does not load the study's other system attributes (the dashboard's notes among them).
        """
        attr = _sequence_attr(key)
        return self._read(
            lambda conn: self._read_sequence(conn, study_id, attr)[0],
            f"reading the counter {key!r} of study {study_id}",
        )

    # ----------------------------------------------------------------------------------------
    # Optuna's per-call write methods, as Core statements with RDBStorage's semantics.

    def _create_new_trial(
        self, study_id: int, template_trial: FrozenTrial | None = None
    ) -> FrozenTrial:
        # ``_CachedStorage.create_new_trial`` calls this private method, so it is the override
        # point for both the plain and the cached path.
        template = template_trial
        if template is None:
            new = NewTrial(state=TrialState.RUNNING, start=datetime.now())
        else:
            # RDBStorage's rule: several objectives come from ``values``, one from ``value``.
            if template.values is not None and len(template.values) > 1:
                values: Sequence[float] | None = template.values
            else:
                values = None if template.value is None else [template.value]
            dists = template.distributions
            new = NewTrial(
                state=template.state,
                start=template.datetime_start,
                complete=template.datetime_complete,
                params=[
                    (name, dists[name].to_internal_repr(value), dists[name])
                    for name, value in template.params.items()
                ],
                user_attrs=attr_rows(template.user_attrs),
                system_attrs=attr_rows(template.system_attrs),
                values=value_rows(values),
                intermediate_values=intermediate_rows(template.intermediate_values),
            )
        trial_id, number = self._insert_new_trial(study_id, new)
        if template is None:
            return FrozenTrial(
                number=number,
                state=new.state,
                value=None,
                values=None,
                datetime_start=round_trip(new.start),
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
        frozen.datetime_start = round_trip(new.start)
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
            conn.execute(self._sql.insert_params, param_rows(trial_id, params))
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
        values_to_store = value_rows(values)

        def work(conn: Connection) -> bool:
            current = _updatable_trial(conn, self._sql.lock_trial, trial_id).state
            self._upsert(conn, "values", trial_id, values_to_store)
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
            "intermediate_values", trial_id, intermediate_rows({step: intermediate_value})
        )

    def set_trial_user_attr(self, trial_id: int, key: str, value: Any) -> None:
        self._set_trial_child("user_attrs", trial_id, attr_rows({key: value}))

    def set_trial_system_attr(self, trial_id: int, key: str, value: Any) -> None:
        self._set_trial_child("system_attrs", trial_id, attr_rows({key: value}))

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
            lambda conn: read_trials(conn, TRIALS.c.trial_id == trial_id),
            f"reading trial {trial_id}",
        )
        if not trials:
            raise KeyError(NOT_FOUND_MSG)
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
        trial_id = TRIALS.c.trial_id
        where = [TRIALS.c.study_id == study_id]
        if states is not None:
            assert isinstance(states, Iterable)
            where.append(TRIALS.c.state.in_(list(states)))
        if included and len(included) > _MAX_LISTED_TRIAL_IDS:
            # A superset without a huge IN list, narrowed below.
            where.append(trial_id >= min(included))
        elif included:
            where.append(or_(trial_id.in_(sorted(included)), trial_id > trial_id_greater_than))
        elif trial_id_greater_than > -1:
            where.append(trial_id > trial_id_greater_than)

        def read(conn: Connection) -> list[FrozenTrial]:
            if conn.execute(self._sql.study, {"sid": study_id}).first() is None:
                raise KeyError(NOT_FOUND_MSG)
            return read_trials(conn, and_(*where))

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
        rows = [{"study_id": study_id, **row} for row in attr_rows(attrs)]
        names = [row["key"] for row in rows]

        def work(conn: Connection) -> None:
            _lock_study(conn, self._sql, study_id)
            conn.execute(self._sql.delete_study_user_attrs, {"sid": study_id, "keys": names})
            if rows:
                conn.execute(self._sql.insert_study_user_attrs, rows)

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

    # ----------------------------------------------------------------------------------------
    # Heartbeats (leases).

    def heartbeat_ages(self, trial_ids: Sequence[int]) -> dict[int, float]:
        """Seconds since each trial's last heartbeat, by the database's clock (beating ones)."""

        def read(conn: Connection) -> tuple[datetime, list[Any]]:
            now = conn.execute(self._sql.database_now).scalar_one()
            return now, conn.execute(self._sql.heartbeats, {"tids": list(trial_ids)}).all()

        now, rows = self._read(read, "reading heartbeats")
        now = now.replace(tzinfo=None)
        return {int(tid): (now - beat.replace(tzinfo=None)).total_seconds() for tid, beat in rows}

    def heartbeats(self, study_id: int) -> dict[int, datetime]:
        """The last heartbeat of every trial of the study that has one, by trial id.

        Times are the database's clock as stored (naive), for showing when a worker was last
        heard from.
        """
        return self._read(
            lambda conn: {
                int(tid): beat
                for tid, beat in conn.execute(self._sql.study_heartbeats, {"sid": study_id})
            },
            f"reading the heartbeats of study {study_id}",
        )

    def backdate_heartbeat(self, trial_id: int, seconds: float) -> None:
        """Set the trial's heartbeat to ``seconds`` before the database's clock reads now.

        What a worker that stopped beating ``seconds`` ago leaves behind: tests of lease
        expiry use it instead of waiting for a real heartbeat to grow old.
        """

        def work(conn: Connection) -> None:
            now = conn.execute(self._sql.database_now).scalar_one().replace(tzinfo=None)
            row = {"trial_id": trial_id, "heartbeat": now - timedelta(seconds=seconds)}
            conn.execute(self._sql.set_heartbeat, row)

        self._transaction(work, f"backdating the heartbeat of trial {trial_id}", idempotent=True)

    # ----------------------------------------------------------------------------------------
    # Transactions and helpers.

    @property
    def _sql(self) -> Statements:
        return statements(self._backend)

    def _transaction(
        self,
        work: Callable[[Connection], _T],
        what: str,
        *,
        landed: Callable[[Connection], tuple[bool, _T]] | None = None,
        idempotent: bool = False,
    ) -> _T:
        """Run ``work`` in one write transaction with retries (see ``run_transaction``)."""
        return run_transaction(
            self.engine, self.url, work, what, landed=landed, idempotent=idempotent
        )

    def _read(self, work: Callable[[Connection], _T], what: str) -> _T:
        """Run the read ``work`` on a connection with retries (see ``run_read``)."""
        return run_read(self.engine, self.url, work, what)

    def _retrying(self, call: Callable[[], _T], what: str) -> _T:
        """Run one of Optuna's own storage methods with retries (see ``run_retrying``).

        ``create_new_study`` and ``delete_study`` settle a write in doubt themselves.
        """
        return run_retrying(call, what)

    def _ignoring_integrity_errors(self, work: Callable[[Connection], Any], what: str) -> None:
        # RDBStorage ignores integrity errors on these writes: they come from a concurrent
        # writer that stored the same key first (or, for heartbeats, a deleted trial). They are
        # upserts, so running one again after a commit in doubt stores the same rows.
        try:
            self._transaction(work, what, idempotent=True)
        except IntegrityError:
            _logger.debug("Ignored an integrity error from a concurrent write.")

    def _insert_new_trial(self, study_id: int, new: NewTrial) -> tuple[int, int]:
        """Insert ``new`` with the study's next trial number, in one transaction."""

        def work(conn: Connection) -> tuple[int, int]:
            _lock_study(conn, self._sql, study_id)
            return self._insert_locked(conn, study_id, new)

        result = self._transaction(work, f"creating a {new.state.name} trial")
        self._remember_distributions(study_id, new.params)
        return result

    def _insert_locked(self, conn: Connection, study_id: int, new: NewTrial) -> tuple[int, int]:
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
            "datetime_start": utc_naive(new.start),
            "datetime_complete": utc_naive(new.complete),
        }
        trial_id = int(conn.execute(sql.insert_trial, row).inserted_primary_key[0])
        if new.params:
            conn.execute(sql.insert_params, param_rows(trial_id, new.params))
        for child in TRIAL_CHILDREN:
            rows = getattr(new, child)
            if rows:
                conn.execute(sql.insert[child], [{"trial_id": trial_id, **r} for r in rows])
        return trial_id, number

    def _is_own_running_trial(
        self, conn: Connection, trial_id: int, system_rows: list[Row]
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
        """The counter's next position and whether its row exists (a claim holds the study-row
        lock around it; a plain read does not need it)."""
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

    def _set_trial_child(self, child: str, trial_id: int, rows: list[Row]) -> None:
        """Insert or overwrite one row of a RUNNING or WAITING trial, as RDBStorage does."""

        def work(conn: Connection) -> None:
            _updatable_trial(conn, self._sql.trial, trial_id)
            self._upsert(conn, child, trial_id, rows)

        self._ignoring_integrity_errors(work, f"setting the {child} of trial {trial_id}")

    def _upsert(self, conn: Connection, child: str, trial_id: int, rows: list[Row]) -> None:
        if rows:
            conn.execute(self._sql.upsert[child], [{"trial_id": trial_id, **r} for r in rows])

    def _set_state(self, conn: Connection, trial_id: int, state: TrialState) -> None:
        changes: dict[str, Any] = {"tid": trial_id, "state": state}
        if state == TrialState.RUNNING:
            changes["datetime_start"] = utc_naive(datetime.now())
        if state.is_finished():
            changes["datetime_complete"] = utc_naive(datetime.now())
        conn.execute(self._sql.update_trial, changes)

    def _check_distributions(
        self, conn: Connection, study_id: int, params: Sequence[Param]
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

    def _remember_distributions(self, study_id: int, params: Sequence[Param]) -> None:
        # Compatibility is an equivalence (kind, log flag, categorical choices) and parameter
        # rows are only deleted with their study, so a committed distribution stands for every
        # later one of the same study and name.
        for name, _, distribution in params:
            self._distributions.setdefault((study_id, name), distribution)


def _lock_study(conn: Connection, sql: Statements, study_id: int) -> None:
    """Lock the study row (``KeyError`` when missing): RDBStorage's guard for trial numbers."""
    if conn.execute(sql.lock_study, {"sid": study_id}).first() is None:
        raise KeyError(NOT_FOUND_MSG)


def _updatable_trial(conn: Connection, statement: Executable, trial_id: int) -> Any:
    """The trial's (study_id, number, state) row, read with ``statement`` (locking or not).

    Raises ``KeyError`` when the trial is missing and ``UpdateFinishedTrialError`` when it has
    finished, with RDBStorage's messages.
    """
    row = conn.execute(statement, {"tid": trial_id}).first()
    if row is None:
        raise KeyError(NOT_FOUND_MSG)
    if row.state.is_finished():
        raise UpdateFinishedTrialError(
            f"Trial#{row.number} has already finished and can not be updated."
        )
    return row


def _sequence_attr(key: str) -> str:
    if not isinstance(key, str) or not key:
        raise ValueError(f"The 'key' parameter must be a non-empty str. Got {key!r} instead.")
    attr = SEQUENCE_ATTR_PREFIX + key
    if len(attr) > MAX_INDEXED_STRING_LENGTH:
        raise ValueError(
            "The 'key' parameter must be at most "
            f"{MAX_INDEXED_STRING_LENGTH - len(SEQUENCE_ATTR_PREFIX)} characters long."
        )
    return attr
