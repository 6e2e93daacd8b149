"""SanityReducer: remove parameter values whose rounds keep failing to produce the metric."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pandas as pd

from limen.experiment.identity import value_token
from limen.experiment.records import WARNINGS
from limen.experiment.reducer.base import (
    ACTION_SUGGEST,
    PruningStrategy,
    check_int,
    check_real,
    check_str,
    is_listed,
    logged_params,
    metric_series,
    pair_key,
    require_keys,
    value_groups,
)

__all__ = ["SanityReducer"]


class SanityReducer(PruningStrategy):
    """Remove values whose rounds miss the metric (failed, NaN) too often; flag other oddities.

    For each value of each parameter with at least ``min_observations`` rounds: a share of
    rounds without a finite ``metric`` strictly above ``nan_threshold`` removes the value
    (once). Each value is judged on its own rounds, so when every value fails every value is
    named, a parameter's last one included (the domain then refuses to empty the parameter,
    and the audit records why). Pruned rounds do not count. Suggestions, recorded
    only, flag a share of zero metrics above ``zero_metric_threshold``, of rounds slower than
    ``execution_time_threshold`` above ``timeout_rate_threshold``, and of rounds with warnings
    above ``warning_threshold``.
    """

    def __init__(
        self,
        *,
        metric: str,
        nan_threshold: float = 0.1,
        min_observations: int = 1,
        zero_metric_threshold: float | None = None,
        execution_time_column: str = "execution_time",
        execution_time_threshold: float | None = None,
        timeout_rate_threshold: float = 0.5,
        warning_threshold: float | None = None,
        active: bool = True,
    ) -> None:
        super().__init__(active=active)
        self.metric = check_str(self, "metric", metric)
        self.nan_threshold = check_real(self, "nan_threshold", nan_threshold, 0.0, 1.0)
        self.min_observations = check_int(self, "min_observations", min_observations, 1)
        self.zero_metric_threshold = check_real(
            self, "zero_metric_threshold", zero_metric_threshold, 0.0, 1.0, optional=True
        )
        self.execution_time_column = check_str(self, "execution_time_column", execution_time_column)
        self.execution_time_threshold = check_real(
            self,
            "execution_time_threshold",
            execution_time_threshold,
            0.0,
            low_open=True,
            optional=True,
        )
        self.timeout_rate_threshold = check_real(
            self, "timeout_rate_threshold", timeout_rate_threshold, 0.0, 1.0
        )
        self.warning_threshold = check_real(
            self, "warning_threshold", warning_threshold, 0.0, 1.0, optional=True
        )
        self._removed: list[list[Any]] = []
        self._suggested: list[list[Any]] = []

    def analyze_and_intervene(self, log: pd.DataFrame, msq: Any) -> list[dict[str, Any]]:
        """``remove_is`` for values that fail too often, suggestions for the other checks."""
        if not self._ready(log, self.metric):
            return []
        if "state" in log.columns:
            log = log[log["state"] != "PRUNED"]
        missing = metric_series(log, self.metric).isna()
        checks = self._checks(log)
        items: list[dict[str, Any]] = []
        for param in logged_params(log, msq):
            for value, rows in value_groups(log, param, msq):
                if len(rows) < self.min_observations:
                    continue
                key = pair_key(param, value)
                if key in self._removed:
                    continue
                if missing.loc[rows].mean() > self.nan_threshold:
                    if is_listed(msq, param, value):
                        items.append({"op": "remove_is", "param": param, "value": value})
                        self._removed.append(key)
                    continue
                items.extend(self._suggestions(param, value, rows, checks))
        return items

    def _checks(self, log: pd.DataFrame) -> list[tuple[str, pd.Series, float]]:
        """``(label, flagged rows, threshold)`` for each enabled suggestion check."""
        checks = []
        if self.zero_metric_threshold is not None:
            zero = metric_series(log, self.metric) == 0.0
            checks.append(("zero_metric", zero, self.zero_metric_threshold))
        column = self.execution_time_column
        if self.execution_time_threshold is not None and column in log.columns:
            slow = pd.to_numeric(log[column], errors="coerce") > self.execution_time_threshold
            checks.append(("execution_timeout", slow, self.timeout_rate_threshold))
        if self.warning_threshold is not None and WARNINGS in log.columns:
            # ``_warnings`` is a JSON list per round ("[]": none; null: not recorded).
            warned = log[WARNINGS].map(lambda v: isinstance(v, str) and v not in ("", "[]"))
            checks.append(("warning", warned, self.warning_threshold))
        return checks

    def _suggestions(
        self, param: str, value: Any, rows: pd.Index, checks: list[tuple[str, pd.Series, float]]
    ) -> list[dict[str, Any]]:
        items = []
        for label, flagged, threshold in checks:
            rate = float(flagged.loc[rows].mean())
            key = [*pair_key(param, value), label]
            if rate > threshold and key not in self._suggested:
                self._suggested.append(key)
                items.append(
                    {
                        "op": "remove_is",
                        "param": param,
                        "value": value,
                        "action": ACTION_SUGGEST,
                        "reason": f"{label} rate {rate:.2f} for {param}={value_token(value)}",
                    }
                )
        return items

    def get_state(self) -> dict[str, Any]:
        """The values removed and the suggestions made so far."""
        return {"removed": [list(k) for k in self._removed], "suggested": self._suggested}

    def set_state(self, state: Mapping[str, Any]) -> None:
        """Restore ``get_state``'s result (``removed`` is required)."""
        require_keys(self, state, ("removed",))
        self._removed = [list(k) for k in state["removed"]]
        self._suggested = [list(k) for k in state.get("suggested", [])]
