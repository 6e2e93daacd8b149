"""Row builders: a trial's parameters, attributes and values as the rows Optuna's tables hold.

Everything is serialised before a transaction opens, so a value that cannot be encoded (an
attribute JSON cannot hold) writes nothing and holds no lock while failing.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from optuna.distributions import BaseDistribution, distribution_to_json
from optuna.trial import TrialState

from limen.adapters.storage.optuna_internals import intermediate_to_stored, value_to_stored

__all__ = [
    "NewTrial",
    "Param",
    "Row",
    "attr_rows",
    "intermediate_rows",
    "local_time",
    "param_rows",
    "round_trip",
    "running_trial",
    "utc_naive",
    "value_rows",
]

# A parameter about to be stored: name, internal representation, distribution.
Param = tuple[str, float, BaseDistribution]
Row = dict[str, Any]


@dataclass
class NewTrial:
    """The rows of a trial about to be inserted, serialised before the transaction opens."""

    state: TrialState
    start: datetime | None
    complete: datetime | None = None
    params: list[Param] = field(default_factory=list)
    user_attrs: list[Row] = field(default_factory=list)
    system_attrs: list[Row] = field(default_factory=list)
    values: list[Row] = field(default_factory=list)
    intermediate_values: list[Row] = field(default_factory=list)


def running_trial(
    params: Mapping[str, float],
    distributions: Mapping[str, BaseDistribution],
    user_attrs: Mapping[str, Any] | None = None,
    system_attrs: Mapping[str, Any] | None = None,
) -> NewTrial:
    """A RUNNING trial starting now; ``ValueError`` when a parameter has no distribution."""
    missing = [name for name in params if name not in distributions]
    if missing:
        raise ValueError(f"No distribution given for the parameters {missing}.")
    return NewTrial(
        state=TrialState.RUNNING,
        start=datetime.now(),
        params=[(name, float(value), distributions[name]) for name, value in params.items()],
        user_attrs=attr_rows(user_attrs or {}),
        system_attrs=attr_rows(system_attrs or {}),
    )


def attr_rows(attrs: Mapping[str, Any]) -> list[Row]:
    """Attribute rows: each key with its JSON-encoded value."""
    return [{"key": key, "value_json": json.dumps(value)} for key, value in attrs.items()]


def value_rows(values: Sequence[float] | None) -> list[Row]:
    """Objective value rows, one per objective, in Optuna's stored form."""
    return [
        dict(zip(("objective", "value", "value_type"), (i, *value_to_stored(v)), strict=True))
        for i, v in enumerate(values or ())
    ]


def intermediate_rows(values: Mapping[int, float]) -> list[Row]:
    """Intermediate value rows, one per step, in Optuna's stored form."""
    columns = ("step", "intermediate_value", "intermediate_value_type")
    return [
        dict(zip(columns, (s, *intermediate_to_stored(v)), strict=True)) for s, v in values.items()
    ]


def param_rows(trial_id: int, params: Sequence[Param]) -> list[Row]:
    """Parameter rows of ``trial_id``, in the given order.

    Rows go in the given order, so param_id follows it: Optuna orders a trial's parameters by
    param_id.
    """
    return [
        {
            "trial_id": trial_id,
            "param_name": name,
            "param_value": value,
            "distribution_json": distribution_to_json(distribution),
        }
        for name, value, distribution in params
    ]


def utc_naive(moment: datetime | None) -> datetime | None:
    """Optuna stores trial datetimes as naive UTC; naive inputs are local time."""
    return None if moment is None else moment.astimezone(UTC).replace(tzinfo=None)


def local_time(stored: datetime | None) -> datetime | None:
    """A stored naive-UTC datetime as RDBStorage reads it back: naive local time."""
    return None if stored is None else stored.replace(tzinfo=UTC).astimezone().replace(tzinfo=None)


def round_trip(moment: datetime | None) -> datetime | None:
    """``moment`` as RDBStorage hands it back after storing it."""
    return local_time(utc_naive(moment))
