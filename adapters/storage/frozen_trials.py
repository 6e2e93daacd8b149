"""Trials read back with Core queries, as the ``FrozenTrial`` objects ``RDBStorage`` builds.

The reads on every round's path (``get_trial``, and the cached study view's trial list) go
through here: one query per table for all the trials asked for, instead of the ORM's per-trial
loading.
"""

from __future__ import annotations

import json
from typing import Any

from optuna.distributions import json_to_distribution
from optuna.trial import FrozenTrial
from sqlalchemy import ColumnElement, Table, select
from sqlalchemy.engine import Connection

from limen.adapters.storage.optuna_internals import (
    TRIAL_INTERMEDIATE,
    TRIAL_PARAMS,
    TRIAL_SYSTEM_ATTRS,
    TRIAL_USER_ATTRS,
    TRIAL_VALUES,
    TRIALS,
    intermediate_from_stored,
    value_from_stored,
)
from limen.adapters.storage.rows import local_time

__all__ = ["read_children", "read_trials"]


def read_trials(conn: Connection, where: ColumnElement[bool]) -> list[FrozenTrial]:
    """The trials matching ``where`` (a condition on the trials table), ordered by id.

    Builds what ``RDBStorage._build_frozen_trial_from_trial_model`` builds: parameters in
    param_id order, values by objective, datetimes in naive local time.
    """
    t = TRIALS
    rows = conn.execute(
        select(t.c.trial_id, t.c.number, t.c.state, t.c.datetime_start, t.c.datetime_complete)
        .where(where)
        .order_by(t.c.trial_id)
    ).all()
    if not rows:
        return []
    children = {
        name: read_children(conn, table, where)
        for name, table in (
            ("params", TRIAL_PARAMS),
            ("values", TRIAL_VALUES),
            ("user_attrs", TRIAL_USER_ATTRS),
            ("system_attrs", TRIAL_SYSTEM_ATTRS),
            ("intermediate_values", TRIAL_INTERMEDIATE),
        )
    }
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
                values[v.objective] = value_from_stored(v.value, v.value_type)
        trials.append(
            FrozenTrial(
                number=row.number,
                state=row.state,
                value=None,
                values=values,
                datetime_start=local_time(row.datetime_start),
                datetime_complete=local_time(row.datetime_complete),
                params=params,
                distributions=distributions,
                user_attrs={
                    a.key: json.loads(a.value_json) for a in children["user_attrs"].get(tid, ())
                },
                system_attrs={
                    a.key: json.loads(a.value_json) for a in children["system_attrs"].get(tid, ())
                },
                intermediate_values={
                    i.step: intermediate_from_stored(
                        i.intermediate_value, i.intermediate_value_type
                    )
                    for i in children["intermediate_values"].get(tid, ())
                },
                trial_id=tid,
            )
        )
    return trials


def read_children(
    conn: Connection, table: Table, where: ColumnElement[bool]
) -> dict[int, list[Any]]:
    """Rows of a per-trial table for the trials matching ``where``, by trial id, in id order."""
    stmt = (
        select(table)
        .join(TRIALS, TRIALS.c.trial_id == table.c.trial_id)
        .where(where)
        .order_by(*table.primary_key.columns)
    )
    grouped: dict[int, list[Any]] = {}
    for row in conn.execute(stmt):
        grouped.setdefault(row.trial_id, []).append(row)
    return grouped
