"""CorrelationReducer: act on parameters whose correlation with the metric is stable.

``limen.log`` computes the same statistics over a study, but it needs Optuna and a study; a
reducer sees a plain DataFrame, so ``bootstrap_correlation`` does it here.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from limen.errors import InvalidParameterError
from limen.experiment.identity import plain_value, value_key
from limen.experiment.reducer.base import (
    ACTION_SUGGEST,
    PruningStrategy,
    check_bool,
    check_int,
    check_real,
    check_str,
    logged_params,
    metric_series,
    pair_key,
    removable,
    require_keys,
    value_groups,
)
from limen.metrics.correlation import bootstrap_correlations

__all__ = ["METHODS", "CorrelationReducer", "bootstrap_correlation"]

METHODS = ("spearman", "pearson", "kendall")


def bootstrap_correlation(
    x: np.ndarray, y: np.ndarray, *, method: str, n_boot: int, rng: np.random.Generator
) -> tuple[float, float] | None:
    """``(median correlation, sign stability)`` over ``n_boot`` bootstrap resamples.

    Sign stability is the share of resamples whose sign agrees with the median's. None when
    ``x`` or ``y`` is constant or no resample gives a correlation.
    """
    if len(x) < 3 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return None
    boots = bootstrap_correlations(x, y, method=method, n_boot=n_boot, rng=rng)
    if not boots.size:
        return None
    median = float(np.median(boots))
    return median, float(np.mean(np.sign(boots) == np.sign(median)))


class CorrelationReducer(PruningStrategy):
    """Remove the worst value of a parameter that stably pulls the metric the wrong way.

    With at least ``min_observations`` rounds holding ``metric``, each numeric parameter's
    bootstrap correlation with it is computed. Where the sign is stable (share of resamples
    agreeing ``>= sign_stability_threshold``): a correlation against the optimisation
    direction beyond ``negative_correlation_threshold`` removes the value with the worst mean
    metric (once per value); one weaker than ``prune_threshold`` suggests keeping only the
    best value (recorded, not applied).
    """

    def __init__(
        self,
        *,
        metric: str,
        method: str = "spearman",
        min_observations: int = 50,
        prune_threshold: float = 0.05,
        sign_stability_threshold: float = 0.8,
        n_boot: int = 300,
        negative_correlation_threshold: float = -0.3,
        maximize: bool = True,
        random_state: int = 0,
        active: bool = True,
    ) -> None:
        super().__init__(active=active)
        self.metric = check_str(self, "metric", metric)
        if method not in METHODS:
            raise InvalidParameterError(
                f"The 'method' parameter of CorrelationReducer must be one of {list(METHODS)}. "
                f"Got {method!r} instead."
            )
        self.method = method
        self.min_observations = check_int(self, "min_observations", min_observations, 3)
        self.prune_threshold = check_real(self, "prune_threshold", prune_threshold, 0.0, 1.0)
        self.sign_stability_threshold = check_real(
            self, "sign_stability_threshold", sign_stability_threshold, 0.0, 1.0
        )
        self.n_boot = check_int(self, "n_boot", n_boot, 1)
        self.negative_correlation_threshold = check_real(
            self, "negative_correlation_threshold", negative_correlation_threshold, -1.0, 0.0
        )
        self.maximize = check_bool(self, "maximize", maximize)
        self.random_state = check_int(self, "random_state", random_state, 0)
        self._applied: list[list[Any]] = []
        self._suggested: list[str] = []

    def analyze_and_intervene(self, log: pd.DataFrame, msq: Any) -> list[dict[str, Any]]:
        """Wrong-direction removals and low-impact suggestions."""
        if not self._ready(log, self.metric):
            return []
        metric = metric_series(log, self.metric)
        log, metric = log[metric.notna()], metric[metric.notna()]
        if len(log) < self.min_observations:
            return []
        rng = np.random.default_rng(self.random_state)
        items: list[dict[str, Any]] = []
        pending: set[tuple[str, str]] = set()
        for param in logged_params(log, msq):
            column = log[param].astype(object).map(plain_value)
            x = pd.to_numeric(column, errors="coerce")
            if x.isna().any() or column.map(lambda v: isinstance(v, bool)).any():
                continue
            stats = bootstrap_correlation(
                x.to_numpy(float),
                metric.to_numpy(float),
                method=self.method,
                n_boot=self.n_boot,
                rng=rng,
            )
            if stats is None or stats[1] < self.sign_stability_threshold:
                continue
            items.extend(self._act(log, msq, param, metric, stats[0], pending))
        return items

    def _act(
        self,
        log: pd.DataFrame,
        msq: Any,
        param: str,
        metric: pd.Series,
        corr: float,
        pending: set[tuple[str, str]],
    ) -> list[dict[str, Any]]:
        means = [(metric.loc[rows].mean(), value) for value, rows in value_groups(log, param, msq)]
        worst, best = (min, max) if self.maximize else (max, min)
        limit = self.negative_correlation_threshold
        wrong = corr < limit if self.maximize else corr > -limit
        if wrong:
            _, value = worst(means, key=lambda pair: pair[0])
            key = pair_key(param, value)
            if key in self._applied or not removable(msq, param, value, pending):
                return []
            self._applied.append(key)
            pending.add((param, value_key(value)))
            direction = "negative" if corr < 0 else "positive"
            return [
                {
                    "op": "remove_is",
                    "param": param,
                    "value": value,
                    "reason": f"wrong-direction {direction} correlation {corr:.3f} for {param}",
                }
            ]
        if abs(corr) < self.prune_threshold and param not in self._suggested:
            self._suggested.append(param)
            _, value = best(means, key=lambda pair: pair[0])
            return [
                {
                    "op": "keep_is",
                    "param": param,
                    "value": value,
                    "action": ACTION_SUGGEST,
                    "reason": f"low-impact correlation {corr:.3f} for {param}",
                }
            ]
        return []

    def get_state(self) -> dict[str, Any]:
        """The values removed and the parameters suggested so far."""
        return {"applied": [list(k) for k in self._applied], "suggested": list(self._suggested)}

    def set_state(self, state: Mapping[str, Any]) -> None:
        """Restore ``get_state``'s result."""
        require_keys(self, state, ("applied", "suggested"))
        self._applied = [list(k) for k in state["applied"]]
        self._suggested = [str(p) for p in state["suggested"]]
