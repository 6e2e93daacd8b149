"""SaturationReducer: visit rarely the values whose recent results no longer vary."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pandas as pd

from limen.experiment.identity import value_token
from limen.experiment.reducer.base import (
    PruningStrategy,
    check_int,
    check_real,
    check_str,
    logged_params,
    metric_series,
    require_keys,
    value_groups,
)
from limen.experiment.reducer.filter_types import FILTER_SAMPLE

__all__ = ["SaturationReducer"]


class SaturationReducer(PruningStrategy):
    """Sample down values whose metric has saturated; undo it when they vary again.

    For each value of each parameter, the last ``window_size`` finished rounds holding it (at
    least ``min_samples_per_value``) give a coefficient of variation ``std / |mean|``. Below
    ``cv_threshold`` the value is saturated: a ``sample`` filter keeps ``retain_fraction`` of
    the combinations holding it. A saturated value that varies again gets its filter cleared.
    """

    def __init__(
        self,
        *,
        metric: str,
        cv_threshold: float = 0.01,
        window_size: int = 100,
        min_samples_per_value: int = 20,
        retain_fraction: float = 0.1,
        active: bool = True,
    ) -> None:
        super().__init__(active=active)
        self.metric = check_str(self, "metric", metric)
        self.cv_threshold = check_real(self, "cv_threshold", cv_threshold, 0.0, low_open=True)
        self.window_size = check_int(self, "window_size", window_size, 1)
        self.min_samples_per_value = check_int(
            self, "min_samples_per_value", min_samples_per_value, 1
        )
        self.retain_fraction = check_real(self, "retain_fraction", retain_fraction, 0.0, 1.0)
        self._saturated: list[str] = []

    def analyze_and_intervene(self, log: pd.DataFrame, msq: Any) -> list[dict[str, Any]]:
        """``set_filter`` for newly saturated values, ``clear_filter`` for recovered ones."""
        if not self._ready(log, self.metric):
            return []
        if "_round_index" in log.columns:
            log = log.sort_values("_round_index", kind="mergesort")
        metric = metric_series(log, self.metric)
        items: list[dict[str, Any]] = []
        now: list[str] = []
        for param in logged_params(log, msq):
            for value, rows in value_groups(log, param, msq):
                cv = self._cv(metric.loc[rows].dropna().tail(self.window_size))
                if cv is None or cv >= self.cv_threshold:
                    continue
                key = f"saturation_{param}_{value_token(value)}"
                now.append(key)
                if key not in self._saturated:
                    items.append(self._sample(key, param, value, cv))
        for key in sorted(set(self._saturated) - set(now)):
            items.append({"op": "clear_filter", "key": key, "reason": "no longer saturated"})
        self._saturated = now
        return items

    def _cv(self, values: pd.Series) -> float | None:
        """The coefficient of variation, or None when it is undefined or too few values."""
        if len(values) < self.min_samples_per_value:
            return None
        mean, std = values.mean(), values.std()
        if pd.isna(mean) or mean == 0 or pd.isna(std):
            return None
        return float(std / abs(mean))

    def _sample(self, key: str, param: str, value: Any, cv: float) -> dict[str, Any]:
        return {
            "op": "set_filter",
            "key": key,
            "filter_type": FILTER_SAMPLE,
            "filter_params": {
                "param": param,
                "value": value_token(value),
                "fraction": self.retain_fraction,
            },
            "reason": (
                f"saturated CV {cv:.4f} < {self.cv_threshold} for {param}={value_token(value)}"
            ),
        }

    def get_state(self) -> dict[str, Any]:
        """The filter keys of the values saturated now."""
        return {"saturated": list(self._saturated)}

    def set_state(self, state: Mapping[str, Any]) -> None:
        """Restore ``get_state``'s result."""
        require_keys(self, state, ("saturated",))
        self._saturated = [str(k) for k in state["saturated"]]
