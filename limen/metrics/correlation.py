"""Correlations of parameters with a metric, and their bootstrap resamples.

``limen.log`` reports them per cohort; the correlation reducer acts on them. Both call here.
"""

from __future__ import annotations

import numpy as np

__all__ = ["METHODS", "bootstrap_correlations", "rowwise_correlation"]

METHODS = ("spearman", "pearson", "kendall")


def rowwise_correlation(x: np.ndarray, y: np.ndarray, method: str) -> np.ndarray:
    """The correlation of each row of ``x`` with the same row of ``y`` (NaN when constant)."""
    if method not in METHODS:
        raise ValueError(
            f"The 'method' parameter must be one of {list(METHODS)}. Got {method!r} instead."
        )
    # scipy.stats takes about a second to import: readers that never rank should not pay it.
    from scipy.stats import kendalltau, rankdata

    if method == "kendall":
        return np.array([kendalltau(a, b).statistic for a, b in zip(x, y, strict=True)], float)
    if method == "spearman":
        x, y = rankdata(x, axis=1), rankdata(y, axis=1)
    xc = x - x.mean(axis=1, keepdims=True)
    yc = y - y.mean(axis=1, keepdims=True)
    denominator = np.sqrt((xc * xc).sum(axis=1) * (yc * yc).sum(axis=1))
    with np.errstate(invalid="ignore", divide="ignore"):
        result = (xc * yc).sum(axis=1) / denominator
    result[denominator == 0] = np.nan
    return result


def bootstrap_correlations(
    x: np.ndarray, y: np.ndarray, *, method: str, n_boot: int, rng: np.random.Generator
) -> np.ndarray:
    """The finite correlations of ``n_boot`` bootstrap resamples of the pairs ``(x, y)``."""
    picks = rng.integers(0, len(x), size=(n_boot, len(x)))
    boots = rowwise_correlation(x[picks], y[picks], method)
    return boots[np.isfinite(boots)]
