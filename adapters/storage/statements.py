"""The Core statements of the storage, built once per backend.

Reusing one statement object lets SQLAlchemy skip rebuilding it and find its compiled form at
once; building them per call cost more than running them on SQLite. Statements take their
values as bound parameters (``sid`` a study id, ``tid`` a trial id...).
"""

from __future__ import annotations

import functools
from typing import Any

from optuna.trial import TrialState
from sqlalchemy import Table, and_, bindparam, case, func, or_, select, update
from sqlalchemy.dialects import mysql, postgresql, sqlite
from sqlalchemy.sql.expression import Executable

from limen.adapters.storage.optuna_internals import (
    STUDIES,
    STUDY_SYSTEM_ATTRS,
    STUDY_USER_ATTRS,
    TRIAL_HEARTBEATS,
    TRIAL_INTERMEDIATE,
    TRIAL_PARAMS,
    TRIAL_SYSTEM_ATTRS,
    TRIAL_USER_ATTRS,
    TRIAL_VALUES,
    TRIALS,
)
from limen.experiment import study_keys as keys

__all__ = [
    "ATTEMPT_KEY",
    "TRIAL_CHILDREN",
    "Statements",
    "open_rounds_statement",
    "statements",
    "upsert",
]

# The user attr that marks an attempt which reached no outcome (it does not count as a round).
ATTEMPT_KEY = keys.ATTEMPT

# Per-trial tables written in rounds, with the columns that are unique together with trial_id.
TRIAL_CHILDREN: dict[str, tuple[Table, tuple[str, ...]]] = {
    "user_attrs": (TRIAL_USER_ATTRS, ("key",)),
    "system_attrs": (TRIAL_SYSTEM_ATTRS, ("key",)),
    "values": (TRIAL_VALUES, ("objective",)),
    "intermediate_values": (TRIAL_INTERMEDIATE, ("step",)),
}


class Statements:
    """The statements of the storage's reads and writes for one backend."""

    def __init__(self, backend: str) -> None:
        trials, params, attrs = TRIALS, TRIAL_PARAMS, STUDY_SYSTEM_ATTRS
        self.study = select(STUDIES.c.study_id).where(STUDIES.c.study_id == bindparam("sid"))
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
        self.insert = {child: table.insert() for child, (table, _) in TRIAL_CHILDREN.items()}
        self.upsert = {
            child: upsert(backend, table, unique)
            for child, (table, unique) in TRIAL_CHILDREN.items()
        }
        self.heartbeat = upsert(
            backend, TRIAL_HEARTBEATS, (), {"heartbeat": func.current_timestamp()}
        )
        sequence = (attrs.c.study_id == bindparam("sid")) & (attrs.c.key == bindparam("attr"))
        self.read_sequence = select(attrs.c.value_json).where(sequence)
        self.update_sequence = update(attrs).where(sequence)
        self.insert_study_system_attr = attrs.insert()
        user = TRIAL_USER_ATTRS
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
        system = TRIAL_SYSTEM_ATTRS
        self.system_attrs = select(system.c.key, system.c.value_json).where(
            system.c.trial_id == bindparam("tid")
        )
        self.any_waiting = (
            select(trials.c.trial_id)
            .where(trials.c.study_id == bindparam("sid"), trials.c.state == TrialState.WAITING)
            .limit(1)
        )
        self.any_study = select(STUDIES.c.study_id).limit(1)
        self.widen_distribution = (
            update(params)
            .where(
                params.c.param_name == bindparam("name"),
                params.c.trial_id.in_(
                    select(trials.c.trial_id).where(trials.c.study_id == bindparam("sid"))
                ),
            )
            .values(distribution_json=bindparam("dist_json"))
        )
        study_user = STUDY_USER_ATTRS
        self.delete_study_user_attrs = study_user.delete().where(
            study_user.c.study_id == bindparam("sid"),
            study_user.c.key.in_(bindparam("keys", expanding=True)),
        )
        self.insert_study_user_attrs = study_user.insert()
        beats = TRIAL_HEARTBEATS
        self.database_now = select(func.now())
        self.heartbeats = select(beats.c.trial_id, beats.c.heartbeat).where(
            beats.c.trial_id.in_(bindparam("tids", expanding=True))
        )
        self.study_heartbeats = (
            select(beats.c.trial_id, beats.c.heartbeat)
            .join(trials, trials.c.trial_id == beats.c.trial_id)
            .where(trials.c.study_id == bindparam("sid"))
            .order_by(beats.c.trial_id)
        )
        self.set_heartbeat = upsert(backend, beats, ())


@functools.cache
def open_rounds_statement() -> Executable:
    """Finished rounds (COMPLETE, PRUNED, FAIL that is no lost attempt) and RUNNING trials."""
    trials, user = TRIALS, TRIAL_USER_ATTRS
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
def statements(backend: str) -> Statements:
    return Statements(backend)


def upsert(
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
