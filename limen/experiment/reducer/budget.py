"""BudgetReducer: trim the run to what a wall-time or round budget allows."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import pandas as pd

from limen.errors import InvalidParameterError
from limen.experiment.identity import value_key, value_token
from limen.experiment.param_domain import Range
from limen.experiment.reducer.base import (
    PruningStrategy,
    check_bool,
    check_int,
    check_real,
    check_str,
    is_listed,
    logged_params,
    metric_series,
    require_keys,
    value_groups,
)

__all__ = ["TRIM_STRATEGIES", "BudgetReducer"]

TRIM_STRATEGIES = ("random", "worst_first")


class BudgetReducer(PruningStrategy):
    """Trim the MSQ once, when the projected rounds exceed a wall-time or round budget.

    Once ``check_after_pct`` of a budget is spent, the rounds still affordable are projected
    (wall time: at the rate so far; rounds: ``max_permutations`` minus rounds yielded). When
    fewer than the MSQ's remaining rounds, it emits a ``trim`` to that total; with
    ``trim_strategy='worst_first'`` it first removes the worst-scoring value of each
    parameter until the space left fits the budget.
    """

    def __init__(
        self,
        *,
        start_time: float | None = None,
        max_walltime_hours: float | None = None,
        max_permutations: int | None = None,
        trim_strategy: str = "random",
        check_after_pct: float = 0.1,
        metric: str | None = None,
        maximize: bool = True,
        active: bool = True,
    ) -> None:
        super().__init__(active=active)
        self.start_time = check_real(self, "start_time", start_time, 0.0, optional=True)
        if self.start_time is None:
            self.start_time = time.time()
        self.max_walltime_hours = check_real(
            self, "max_walltime_hours", max_walltime_hours, 0.0, low_open=True, optional=True
        )
        self.max_permutations = check_int(
            self, "max_permutations", max_permutations, 1, optional=True
        )
        if trim_strategy not in TRIM_STRATEGIES:
            raise InvalidParameterError(
                "The 'trim_strategy' parameter of BudgetReducer must be one of "
                f"{list(TRIM_STRATEGIES)}. Got {trim_strategy!r} instead."
            )
        self.trim_strategy = trim_strategy
        self.check_after_pct = check_real(self, "check_after_pct", check_after_pct, 0.0, 1.0)
        self.metric = check_str(self, "metric", metric, optional=True)
        if trim_strategy == "worst_first" and metric is None:
            raise InvalidParameterError(
                "The 'metric' parameter of BudgetReducer is required when trim_strategy is "
                "'worst_first': pass metric='<the metric to rank values by>'."
            )
        self.maximize = check_bool(self, "maximize", maximize)
        self._trimmed = False

    def analyze_and_intervene(self, log: pd.DataFrame, msq: Any) -> list[dict[str, Any]]:
        """At most once: worst-value removals (``worst_first``), then a ``trim``."""
        if self._trimmed or not self._ready(log, None):
            return []
        remaining, yielded = msq.remaining_count(), msq.yielded_count
        if remaining == 0 or yielded == 0:
            return []
        target = self._target(yielded)
        if target is None or (remaining is not None and target >= remaining):
            return []
        self._trimmed = True
        items = []
        if self.trim_strategy == "worst_first" and self.metric in log.columns:
            items = self._worst_first(log, msq, remaining, target)
        total = yielded + target
        items.append(
            {"op": "trim", "target_count": total, "reason": f"budget trim to {total} total rounds"}
        )
        return items

    def _target(self, yielded: int) -> int | None:
        """The rounds still affordable: the smallest over the budgets that are due."""
        targets = []
        if self.max_walltime_hours is not None:
            elapsed = (time.time() - self.start_time) / 3600
            if elapsed / self.max_walltime_hours >= self.check_after_pct:
                if elapsed >= self.max_walltime_hours:
                    targets.append(0)
                elif elapsed > 0:
                    targets.append(int(yielded / elapsed * (self.max_walltime_hours - elapsed)))
        cap = self.max_permutations
        if cap is not None and yielded / cap >= self.check_after_pct:
            targets.append(max(cap - yielded, 0))
        return min(targets) if targets else None

    def _worst_first(
        self, log: pd.DataFrame, msq: Any, remaining: int | None, target: int
    ) -> list[dict[str, Any]]:
        metric = metric_series(log, self.metric)
        items = []
        for param in logged_params(log, msq):
            entry = msq.domain.values_for(param)
            if isinstance(entry, Range) or len(entry) < 2:
                continue
            means = {}
            for value, rows in value_groups(log, param, msq):
                mean = metric.loc[rows].mean()
                if is_listed(msq, param, value) and not pd.isna(mean):
                    means[value_key(value)] = (mean, value)
            if len(means) < 2:
                continue
            pick = min if self.maximize else max
            _, worst = pick(means.values(), key=lambda pair: pair[0])
            items.append(
                {
                    "op": "remove_is",
                    "param": param,
                    "value": worst,
                    "reason": (
                        f"budget worst_first: removing worst-performing {param}="
                        f"{value_token(worst)}"
                    ),
                }
            )
            if remaining is not None:
                remaining -= remaining // len(entry)
                if remaining <= target:
                    break
        return items

    def get_state(self) -> dict[str, Any]:
        """When the budget clock started and whether the trim has happened."""
        return {"start_time": self.start_time, "trimmed": self._trimmed}

    def set_state(self, state: Mapping[str, Any]) -> None:
        """Restore ``get_state``'s result."""
        require_keys(self, state, ("start_time", "trimmed"))
        self.start_time = float(state["start_time"])
        self._trimmed = bool(state["trimmed"])
