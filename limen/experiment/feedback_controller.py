"""FeedbackController: every ``feedback_interval`` finished rounds, steer the search.

Three sources run in order, each isolated (one failing is recorded in the audit line and the
others still run): the reducers, the user's ``intra_callback(log, msq)``, then the
``interventions.json`` a user may write next to the study (re-read when its mtime changes).
Each trigger appends one line to ``audit.jsonl``. This module never imports Optuna.
"""

from __future__ import annotations

import json
import logging
import os
import traceback
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from limen.experiment.records import append_jsonl
from limen.experiment.reducer import ACTION_SUGGEST, PruningStrategy, make_reducers
from limen.utils.values import jsonable

__all__ = [
    "DISPATCH",
    "INTERVENTION_FILE",
    "INTRA_CALLBACK",
    "SOURCE_ERRORS",
    "STRATEGY",
    "FeedbackController",
    "apply_intervention",
]

logger = logging.getLogger(__name__)

INTRA_CALLBACK = "intra_callback"
STRATEGY = "strategy.update_from_feedback"
INTERVENTION_FILE = "intervention_file"
# What a failing source may raise and still leave the run going; anything else is a bug.
SOURCE_ERRORS = (ValueError, KeyError, TypeError, RuntimeError, OSError)


def _remove_is(msq: Any, item: Mapping[str, Any]) -> Any:
    return msq.remove_is(item["param"], item["value"])


def _remove_ge(msq: Any, item: Mapping[str, Any]) -> Any:
    return msq.remove_ge(item["param"], item["threshold"])


def _remove_le(msq: Any, item: Mapping[str, Any]) -> Any:
    return msq.remove_le(item["param"], item["threshold"])


def _keep_is(msq: Any, item: Mapping[str, Any]) -> Any:
    return msq.keep_is(item["param"], item["value"])


def _keep_between(msq: Any, item: Mapping[str, Any]) -> Any:
    return msq.keep_between(item["param"], item["lower"], item["upper"])


def _inject(msq: Any, item: Mapping[str, Any]) -> Any:
    return msq.inject(item["combo"], prioritize=bool(item.get("prioritize", False)))


def _inject_value(msq: Any, item: Mapping[str, Any]) -> Any:
    return msq.inject_value(item["param"], item["value"])


def _trim(msq: Any, item: Mapping[str, Any]) -> Any:
    return msq.trim(item["target_count"])


def _set_filter(msq: Any, item: Mapping[str, Any]) -> Any:
    return msq.set_filter(
        item["key"], filter_type=item["filter_type"], filter_params=item["filter_params"]
    )


def _clear_filter(msq: Any, item: Mapping[str, Any]) -> Any:
    return msq.clear_filter(item["key"])


# op -> how to apply it to the MSQ.
DISPATCH: dict[str, Callable[[Any, Mapping[str, Any]], Any]] = {
    "remove_is": _remove_is,
    "remove_ge": _remove_ge,
    "remove_le": _remove_le,
    "keep_is": _keep_is,
    "keep_between": _keep_between,
    "inject": _inject,
    "inject_value": _inject_value,
    "trim": _trim,
    "set_filter": _set_filter,
    "clear_filter": _clear_filter,
}


def apply_intervention(msq: Any, item: Mapping[str, Any]) -> None:
    """Apply one intervention dict (``{"op": ..., **args}``) to ``msq``.

    Raises:
        ValueError: an unknown ``op`` (the message lists the accepted ones) or a missing key.
    """
    if not isinstance(item, Mapping):
        raise ValueError(f"An intervention must be a dict with an 'op'. Got {item!r} instead.")
    op = item.get("op")
    if op not in DISPATCH:
        raise ValueError(
            f"FeedbackController Unknown intervention op: {op!r}. Accepted ops: {list(DISPATCH)}."
        )
    try:
        DISPATCH[op](msq, item)
    except KeyError as exc:
        if exc.args and exc.args[0] in item:
            raise
        raise ValueError(
            f"FeedbackController intervention {op!r} is missing the key {exc.args[0]!r}: "
            f"got {item!r}."
        ) from None


class FeedbackController:
    """Runs the reducers, the intra callback and the intervention file on a round schedule.

    Args:
        feedback_interval: trigger after every this many finished rounds (>= 1).
        pruning_strategies: reducers (``PruningStrategy`` instances or config dicts
            ``{"name": "sanity", **kwargs}``).
        intra_callback: ``callback(log, msq)`` that may call the MSQ's intervention methods.
        intervention_path: a JSON file holding a list of intervention dicts.
        audit_log_path: the ``audit.jsonl`` each trigger appends a line to (None: no audit).
    """

    def __init__(
        self,
        *,
        feedback_interval: int = 100,
        pruning_strategies: Sequence[PruningStrategy | Mapping[str, Any]] | None = None,
        intra_callback: Callable[[pd.DataFrame, Any], Any] | None = None,
        intervention_path: str | os.PathLike[str] | None = None,
        audit_log_path: str | os.PathLike[str] | None = None,
    ) -> None:
        if (
            not isinstance(feedback_interval, int)
            or isinstance(feedback_interval, bool)
            or feedback_interval < 1
        ):
            raise ValueError(
                "The 'feedback_interval' parameter of FeedbackController must be an int in "
                f"[1, inf). Got {feedback_interval!r} instead."
            )
        if intra_callback is not None and not callable(intra_callback):
            raise TypeError(
                "The 'intra_callback' parameter of FeedbackController must be callable(log, msq) "
                f"or None. Got {intra_callback!r} instead."
            )
        self.feedback_interval = feedback_interval
        self.pruning_strategies = make_reducers(pruning_strategies)
        self.intra_callback = intra_callback
        self.intervention_path = None if intervention_path is None else Path(intervention_path)
        self.audit_log_path = None if audit_log_path is None else Path(audit_log_path)
        self.trigger_count = 0
        self.intervention_last_mtime: float | None = None

    def should_trigger(self, finished_rounds: int) -> bool:
        """Whether a trigger is due after ``finished_rounds`` finished rounds."""
        return finished_rounds > 0 and finished_rounds % self.feedback_interval == 0

    def trigger(self, log: pd.DataFrame, msq: Any, current_round: int) -> list[dict[str, Any]]:
        """Run every source on ``log`` (the finished rounds) and apply their interventions.

        Returns:
            The interventions applied, in order, each with its ``source``.
        """
        applied: list[dict[str, Any]] = []
        suggestions: list[dict[str, Any]] = []
        errors: list[dict[str, Any]] = []
        for reducer in self.pruning_strategies:
            if reducer.active:
                name = type(reducer).__name__
                args = (reducer, log, msq, applied, suggestions)
                self._isolated(name, errors, self._run_reducer, *args)
        if self.intra_callback is not None:
            self._isolated(INTRA_CALLBACK, errors, self._run_callback, log, msq, applied)
        if self.intervention_path is not None:
            self._isolated(INTERVENTION_FILE, errors, self._run_file, msq, applied)
        strategy = getattr(msq, "strategy", None)
        if strategy is not None:
            # The strategy hears of every trigger, once, with what was applied.
            self._isolated(STRATEGY, errors, strategy.update_from_feedback, log, list(applied))
        self._audit(current_round, msq, applied, suggestions, errors)
        self.trigger_count += 1
        return applied

    def _isolated(
        self, source: str, errors: list[dict[str, Any]], run: Callable[..., None], *args: Any
    ) -> None:
        try:
            run(*args)
        except SOURCE_ERRORS as exc:
            logger.warning("Feedback source %s failed: %s: %s", source, type(exc).__name__, exc)
            errors.append(
                {
                    "source": source,
                    "error": f"{type(exc).__name__}: {exc}",
                    "traceback": traceback.format_exc(),
                }
            )

    def _run_reducer(
        self,
        reducer: PruningStrategy,
        log: pd.DataFrame,
        msq: Any,
        applied: list[dict[str, Any]],
        suggestions: list[dict[str, Any]],
    ) -> None:
        items = [
            {**item, "source": item.get("source", type(reducer).__name__)}
            for item in reducer.analyze_and_intervene(log, msq)
        ]
        suggestions.extend(item for item in items if item.get("action") == ACTION_SUGGEST)
        actions = [item for item in items if item.get("action") != ACTION_SUGGEST]
        self._dispatch(msq, actions, applied)

    def _run_callback(self, log: pd.DataFrame, msq: Any, applied: list[dict[str, Any]]) -> None:
        """The callback acts on the MSQ itself; what it did is read back from the MSQ's log
        (as ``{"op": ..., "at_yielded_count": ..., **args}``), even when it raised midway."""
        before = len(msq.intervention_log)
        try:
            self.intra_callback(log, msq)
        finally:
            applied.extend(
                {"op": entry.pop("operation"), **entry, "source": INTRA_CALLBACK}
                for entry in msq.intervention_log[before:]
            )

    def _run_file(self, msq: Any, applied: list[dict[str, Any]]) -> None:
        path = self.intervention_path
        if not path.is_file():
            return
        mtime = path.stat().st_mtime
        if self.intervention_last_mtime is not None and mtime <= self.intervention_last_mtime:
            return
        # Remembered before parsing: a broken file is not retried until it changes again.
        self.intervention_last_mtime = mtime
        items = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(items, list):
            raise ValueError(
                f"FeedbackController Intervention file {str(path)!r} must contain a JSON array "
                f"of intervention dicts. Got {type(items).__name__} instead."
            )
        self._dispatch(msq, [{**item, "source": INTERVENTION_FILE} for item in items], applied)

    def _dispatch(
        self, msq: Any, items: list[dict[str, Any]], applied: list[dict[str, Any]]
    ) -> None:
        """Apply ``items`` in order; those applied before a failure stay applied and listed."""
        for item in items:
            apply_intervention(msq, item)
            applied.append(item)

    def _audit(
        self,
        current_round: int,
        msq: Any,
        applied: list[dict[str, Any]],
        suggestions: list[dict[str, Any]],
        errors: list[dict[str, Any]],
    ) -> None:
        if self.audit_log_path is None:
            return
        record = {
            "event": "feedback",
            "round": current_round,
            "timestamp": datetime.now(UTC).isoformat(),
            "trigger_number": self.trigger_count,
            "interventions": jsonable(applied),
            "suggestions": jsonable(suggestions),
            "errors": errors,
            "msq_state_after": {
                "remaining_count": msq.remaining_count(),
                "yielded_count": msq.yielded_count,
                "priority_queue_size": msq.priority_queue_size,
            },
        }
        try:
            append_jsonl(self.audit_log_path, record)
        except OSError as exc:
            logger.warning("Could not write the feedback audit line: %s", exc)

    def get_state(self) -> dict[str, Any]:
        """Trigger count, the intervention file's last mtime and each reducer's state."""
        return {
            "trigger_count": self.trigger_count,
            "intervention_last_mtime": self.intervention_last_mtime,
            "pruning_strategies": [
                {"class": type(r).__name__, "state": r.get_state()} for r in self.pruning_strategies
            ],
        }

    def set_state(self, state: Mapping[str, Any]) -> None:
        """Restore ``get_state``'s result; reducer states are matched by position and class."""
        for key in ("trigger_count", "intervention_last_mtime"):
            if key not in state:
                raise ValueError(f"Invalid FeedbackController state: missing required key '{key}'.")
        self.trigger_count = int(state["trigger_count"])
        self.intervention_last_mtime = state["intervention_last_mtime"]
        stored = list(state.get("pruning_strategies", []))
        classes = [entry.get("class") for entry in stored]
        current = [type(r).__name__ for r in self.pruning_strategies]
        if classes != current:
            logger.warning(
                "The reducers changed since the state was saved (%s, now %s): their states "
                "are restored where position and class still match.",
                classes,
                current,
            )
        for reducer, entry in zip(self.pruning_strategies, stored, strict=False):
            if entry.get("class") == type(reducer).__name__:
                reducer.set_state(entry["state"])
