"""FocusReducer: after a breakthrough, narrow the search around the best round for a while."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from limen.errors import InvalidParameterError
from limen.experiment.identity import value_token
from limen.experiment.param_domain import Range
from limen.experiment.reducer.base import (
    PruningStrategy,
    check_bool,
    check_int,
    check_real,
    check_str,
    domain_value,
    logged_params,
    metric_series,
    require_keys,
)
from limen.experiment.reducer.filter_types import FILTER_KEEP_BETWEEN, FILTER_KEEP_VALUES
from limen.utils.values import is_number

__all__ = ["FocusReducer"]

_JSON_VALUES = (str, int, float, bool, type(None))


class FocusReducer(PruningStrategy):
    """Focus on the neighbourhood of a breakthrough until it stops improving.

    Off: once the best ``metric`` (over at least ``min_observations`` rounds) beats
    ``breakthrough_threshold`` (and any earlier focus's best), filters keep each numeric
    parameter within ``focus_range_pct`` of the best round's value and each other parameter at
    its value; ``variation_count`` values spread over each numeric window are injected.
    On: a better round re-centres the filters; ``focus_timeout`` triggers without improvement
    clear them.
    """

    def __init__(
        self,
        *,
        metric: str,
        breakthrough_threshold: float,
        maximize: bool = True,
        focus_range_pct: float = 0.2,
        focus_timeout: int = 5,
        variation_count: int = 5,
        min_observations: int = 10,
        active: bool = True,
    ) -> None:
        super().__init__(active=active)
        self.metric = check_str(self, "metric", metric)
        self.breakthrough_threshold = check_real(
            self, "breakthrough_threshold", breakthrough_threshold
        )
        self.maximize = check_bool(self, "maximize", maximize)
        self.focus_range_pct = check_real(self, "focus_range_pct", focus_range_pct, 0.0)
        self.focus_timeout = check_int(self, "focus_timeout", focus_timeout, 1)
        self.variation_count = check_int(self, "variation_count", variation_count, 1)
        self.min_observations = check_int(self, "min_observations", min_observations, 1)
        self._active_focus = False
        self._combo: dict[str, Any] | None = None
        self._best: float | None = None
        self._stale = 0
        self._keys: list[str] = []

    def analyze_and_intervene(self, log: pd.DataFrame, msq: Any) -> list[dict[str, Any]]:
        """Focus filters (and injections) on a breakthrough; clear them after a timeout."""
        if not self._ready(log, self.metric):
            return []
        metric = metric_series(log, self.metric).dropna()
        if len(metric) < self.min_observations:
            return []
        row = metric.idxmax() if self.maximize else metric.idxmin()
        best = float(metric.loc[row])
        if self._active_focus:
            if self._better(best, self._best):
                self._center(log, msq, row, best)
                return self._narrow(msq, inject=False)
            self._stale += 1
            if self._stale < self.focus_timeout:
                return []
            return self._release()
        if not self._better(best, self.breakthrough_threshold) or (
            self._best is not None and not self._better(best, self._best)
        ):
            return []
        self._active_focus = True
        self._center(log, msq, row, best)
        return self._narrow(msq, inject=True)

    def _better(self, value: float, than: float) -> bool:
        return value > than if self.maximize else value < than

    def _center(self, log: pd.DataFrame, msq: Any, row: Any, best: float) -> None:
        self._combo = {p: domain_value(msq, p, log.at[row, p]) for p in logged_params(log, msq)}
        self._best, self._stale = best, 0

    def _narrow(self, msq: Any, *, inject: bool) -> list[dict[str, Any]]:
        items = []
        for param, center in self._combo.items():
            key = f"focus_{self.metric}_{param}"
            if is_number(center):
                lower, upper = self._window(center)
                kind, params = FILTER_KEEP_BETWEEN, {"param": param, "lower": lower, "upper": upper}
            elif isinstance(center, _JSON_VALUES):
                kind, params = FILTER_KEEP_VALUES, {"param": param, "values": [center]}
            else:
                continue
            if key not in self._keys:
                self._keys.append(key)
            items.append(
                {
                    "op": "set_filter",
                    "key": key,
                    "filter_type": kind,
                    "filter_params": params,
                    "reason": f"focus on {param}={value_token(center)} (best {self._best:.6g})",
                }
            )
            listed = not isinstance(msq.domain.values_for(param), Range)
            if inject and kind == FILTER_KEEP_BETWEEN and listed:
                items.extend(
                    {"op": "inject_value", "param": param, "value": v, "reason": "focus variation"}
                    for v in self._variations(center, params["lower"], params["upper"])
                )
        return items

    def _window(self, center: Any) -> tuple[Any, Any]:
        spread = abs(center * self.focus_range_pct) if center != 0 else self.focus_range_pct
        lower, upper = center - spread, center + spread
        if isinstance(center, int | np.integer):
            return math.floor(lower), math.ceil(upper)
        return float(lower), float(upper)

    def _variations(self, center: Any, lower: Any, upper: Any) -> list[Any]:
        if self.variation_count == 1:
            return [center]
        if isinstance(center, int | np.integer):
            if upper - lower + 1 <= self.variation_count:
                return list(range(lower, upper + 1))
            points = np.linspace(lower, upper, self.variation_count)
            return list(dict.fromkeys(round(float(p)) for p in points))
        return [float(p) for p in np.linspace(lower, upper, self.variation_count)]

    def _release(self) -> list[dict[str, Any]]:
        items = [
            {"op": "clear_filter", "key": key, "reason": "focus timeout"}
            for key in sorted(self._keys)
        ]
        self._active_focus, self._stale, self._keys = False, 0, []
        return items

    def get_state(self) -> dict[str, Any]:
        """Focus mode, the breakthrough round's values, its metric and the stale count."""
        return {
            "focus_active": self._active_focus,
            "breakthrough_combo": None
            if self._combo is None
            else {k: value_token(v) for k, v in self._combo.items()},
            "best_metric": self._best,
            "rounds_since_improvement": self._stale,
            "focused_params": list(self._keys),
        }

    def set_state(self, state: Mapping[str, Any]) -> None:
        """Restore ``get_state``'s result."""
        keys = (
            "focus_active",
            "breakthrough_combo",
            "best_metric",
            "rounds_since_improvement",
            "focused_params",
        )
        require_keys(self, state, keys)
        if state["focus_active"] and (
            state["best_metric"] is None or state["breakthrough_combo"] is None
        ):
            raise InvalidParameterError(
                "Invalid FocusReducer state: focus_active needs best_metric and breakthrough_combo."
            )
        self._active_focus = bool(state["focus_active"])
        combo = state["breakthrough_combo"]
        self._combo = None if combo is None else dict(combo)
        self._best = state["best_metric"]
        self._stale = int(state["rounds_since_improvement"])
        self._keys = [str(k) for k in state["focused_params"]]
