"""How a Limen round is kept in an Optuna trial, and how trials read back as rounds.

A round is a *finished round* when its outcome is known: COMPLETE, PRUNED, or FAIL because
the SFD raised or returned an unusable objective. An attempt that never reached an outcome
(interrupted, or its process died) is FAIL too, but carries a ``limen:attempt`` reason and
does not count: its parameters run again.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from optuna.trial import FrozenTrial, TrialState

from limen.adapters.storage import ATTEMPT_KEY
from limen.experiment import study_keys as keys

__all__ = [
    "ATTEMPT",
    "ERROR_MESSAGE",
    "ERROR_TYPE",
    "EXECUTION_TIME",
    "FRAMEWORK_ATTRS",
    "INJECTED",
    "PRIORITY",
    "REFUSED",
    "ROUND_ID",
    "TRACEBACK",
    "count_finished",
    "is_finished_round",
    "metric_attrs",
    "round_row",
]

ROUND_ID = keys.ROUND_ID
EXECUTION_TIME = keys.EXECUTION_TIME
ERROR_TYPE = keys.ERROR_TYPE
ERROR_MESSAGE = keys.ERROR_MESSAGE
TRACEBACK = keys.TRACEBACK
ATTEMPT = ATTEMPT_KEY
INJECTED = keys.INJECTED
PRIORITY = keys.PRIORITY
REFUSED = keys.REFUSED

FRAMEWORK_ATTRS = frozenset(
    {
        ROUND_ID,
        EXECUTION_TIME,
        ERROR_TYPE,
        ERROR_MESSAGE,
        TRACEBACK,
        keys.WARNINGS,
        keys.CONVERGENCE_WARNING,
    }
)


def is_finished_round(trial: FrozenTrial) -> bool:
    """Whether ``trial`` is a round with a known outcome (counts towards the target)."""
    if trial.state in (TrialState.COMPLETE, TrialState.PRUNED):
        return True
    return trial.state == TrialState.FAIL and ATTEMPT not in trial.user_attrs


def count_finished(trials: Iterable[FrozenTrial]) -> int:
    """Number of finished rounds among ``trials``."""
    return sum(1 for t in trials if is_finished_round(t))


def metric_attrs(trial: FrozenTrial) -> dict[str, Any]:
    """The metrics the model returned for ``trial`` (its user attrs minus framework keys)."""
    return {
        k: v
        for k, v in trial.user_attrs.items()
        if k not in FRAMEWORK_ATTRS and not k.startswith(keys.NAMESPACE)
    }


def round_row(trial: FrozenTrial, params: Mapping[str, Any]) -> dict[str, Any]:
    """One ``experiment_log`` row: metrics, id, trial number, state, time, parameters, then the
    round's warnings (None for rounds stored before warnings were recorded)."""
    row: dict[str, Any] = dict(metric_attrs(trial))
    row.update(
        {
            ROUND_ID: trial.user_attrs.get(ROUND_ID),
            keys.ROUND_INDEX: trial.number,
            keys.STATE: trial.state.name,
            EXECUTION_TIME: trial.user_attrs.get(EXECUTION_TIME),
        }
    )
    row.update(params)
    row[keys.WARNINGS] = trial.user_attrs.get(keys.WARNINGS)
    row[keys.CONVERGENCE_WARNING] = trial.user_attrs.get(keys.CONVERGENCE_WARNING)
    if trial.state == TrialState.FAIL:
        row[ERROR_TYPE] = trial.user_attrs.get(ERROR_TYPE)
        row[ERROR_MESSAGE] = trial.user_attrs.get(ERROR_MESSAGE)
    return row
