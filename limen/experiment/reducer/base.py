"""PruningStrategy: the contract of a reducer, plus the checks and log readers reducers share.

A reducer reads the experiment log (one row per finished round) and returns declarative
interventions; ``FeedbackController`` dispatches them to the MSQ. A reducer never mutates the
MSQ itself. This module never imports Optuna.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping
from typing import Any

import pandas as pd

from limen.errors import InvalidParameterError
from limen.experiment.identity import match_value, plain_value, value_key, value_token
from limen.experiment.param_domain import Range
from limen.utils.validation import Interval, invalid, validate_params

__all__ = [
    "ACTION_SUGGEST",
    "PruningStrategy",
    "check_bool",
    "check_int",
    "check_real",
    "check_str",
    "domain_value",
    "is_listed",
    "logged_params",
    "metric_series",
    "pair_key",
    "removable",
    "require_keys",
    "value_groups",
]

ACTION_SUGGEST = "suggest"


class PruningStrategy(ABC):
    """A reducer: turns live results into interventions on the domain and the MSQ.

    The controller calls ``analyze_and_intervene(log, msq)`` every ``feedback_interval``
    finished rounds while ``active``. Each returned dict names an ``op`` of the controller's
    dispatch table (``remove_is``, ``trim``, ``set_filter``, ...) with its arguments, and
    optionally a ``reason``; a dict with ``action: "suggest"`` is recorded, not applied.
    ``get_state``/``set_state`` carry what the reducer remembers across a resume (JSON-safe).

    Args:
        active: an inactive reducer returns no intervention.
    """

    ACTION_SUGGEST = ACTION_SUGGEST

    def __init__(self, *, active: bool = True) -> None:
        self.active = active

    @property
    def active(self) -> bool:
        """Whether the reducer takes part in feedback triggers."""
        return self._active

    @active.setter
    def active(self, value: bool) -> None:
        check_bool(self, "active", value)
        self._active = value

    @abstractmethod
    def analyze_and_intervene(self, log: pd.DataFrame, msq: Any) -> list[dict[str, Any]]:
        """Interventions for ``msq`` from the finished rounds in ``log`` (no side effect)."""

    @abstractmethod
    def get_state(self) -> dict[str, Any]:
        """What the reducer remembers, JSON-safe."""

    @abstractmethod
    def set_state(self, state: Mapping[str, Any]) -> None:
        """Restore ``get_state``'s result."""

    def _ready(self, log: pd.DataFrame, metric: str | None) -> bool:
        """Active, with rounds, and (when ``metric`` is given) a column for it."""
        if not self.active or log is None or log.empty:
            return False
        return metric is None or metric in log.columns


# ------------------------------------------------------------------ validation


def _fail(owner: Any, name: str, expected: str, value: Any) -> InvalidParameterError:
    return invalid(name, type(owner).__name__, expected, value)


def check_bool(owner: Any, name: str, value: Any) -> bool:
    """``value`` when it is a bool."""
    if not isinstance(value, bool):
        raise _fail(owner, name, "a bool", value)
    return value


def check_str(owner: Any, name: str, value: Any, *, optional: bool = False) -> str | None:
    """``value`` when it is a non-empty string (or None when ``optional``)."""
    if value is None and optional:
        return None
    if not isinstance(value, str) or not value:
        raise _fail(owner, name, "a non-empty str" + (" or None" if optional else ""), value)
    return value


def check_int(owner: Any, name: str, value: Any, low: int, *, optional: bool = False) -> int | None:
    """``value`` when it is an int in ``[low, inf)`` (or None when ``optional``)."""
    if value is None and optional:
        return None
    constraints: list[Any] = [Interval(int, low, None)] + ([None] if optional else [])
    validate_params({name: constraints}, {name: value}, type(owner).__name__)
    return value


def check_real(
    owner: Any,
    name: str,
    value: Any,
    low: float = -math.inf,
    high: float = math.inf,
    *,
    low_open: bool = False,
    optional: bool = False,
) -> float | None:
    """``value`` when it is a finite number in the interval (or None when ``optional``)."""
    if value is None and optional:
        return None
    closed = "right" if low_open else "both"
    interval = Interval(
        float, None if low == -math.inf else low, None if high == math.inf else high, closed=closed
    )
    constraints: list[Any] = [interval] + ([None] if optional else [])
    validate_params({name: constraints}, {name: value}, type(owner).__name__)
    return float(value)


def require_keys(owner: Any, state: Mapping[str, Any], keys: tuple[str, ...]) -> None:
    """Raise ``ValueError`` naming the first of ``keys`` missing from ``state``."""
    if not isinstance(state, Mapping):
        raise InvalidParameterError(
            f"Invalid {type(owner).__name__} state: expected a dict, got {state!r}."
        )
    for key in keys:
        if key not in state:
            raise InvalidParameterError(
                f"Invalid {type(owner).__name__} state: missing required key '{key}'."
            )


# ---------------------------------------------------------------- log readers


def metric_series(log: pd.DataFrame, metric: str) -> pd.Series:
    """``metric`` as floats; missing or non-numeric values are NaN."""
    return pd.to_numeric(log[metric], errors="coerce").astype(float)


def logged_params(log: pd.DataFrame, msq: Any) -> list[str]:
    """The domain's parameters that have a column in ``log``."""
    return [key for key in msq.domain_keys if key in log.columns]


def value_groups(log: pd.DataFrame, param: str, msq: Any) -> Iterator[tuple[Any, pd.Index]]:
    """``(value, row index)`` per distinct value of ``param``, in order of first appearance.

    Rows are grouped by ``value_key``, whatever the column's dtype (int64, float64, object,
    categorical, or text read back from ``results.csv``), so functions, classes and None group
    too. ``value`` is the domain's own value when the domain lists it (see ``domain_value``).
    """
    column = log[param].astype(object)
    keys = column.map(value_key)
    for key in dict.fromkeys(keys):
        rows = keys.index[keys == key]
        yield domain_value(msq, param, column.loc[rows[0]]), rows


def domain_value(msq: Any, param: str, value: Any) -> Any:
    """The value ``param`` lists that ``value`` (read from a log) stands for, else it as plain.

    Interventions then carry the very objects of the parameter space, never numpy scalars.
    """
    entry = msq.domain.values_for(param)
    if isinstance(entry, Range):
        return plain_value(value)
    return match_value(entry, value)


def is_listed(msq: Any, param: str, value: Any) -> bool:
    """Whether ``value`` is still one of ``param``'s listed values."""
    entry = msq.domain.values_for(param)
    return not isinstance(entry, Range) and any(value_key(v) == value_key(value) for v in entry)


def removable(msq: Any, param: str, value: Any, pending: set[tuple[str, str]]) -> bool:
    """Whether removing ``value`` (after the ``pending`` removals) leaves ``param`` a value."""
    if not is_listed(msq, param, value):
        return False
    left = [
        v
        for v in msq.domain.values_for(param)
        if (param, value_key(v)) not in pending and value_key(v) != value_key(value)
    ]
    return bool(left)


def pair_key(param: str, value: Any) -> list[Any]:
    """A JSON-safe key of one parameter value (for reducer state)."""
    return [param, value_token(value)]
