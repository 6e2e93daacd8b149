"""Metrics for regressors."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
from sklearn.metrics import (
    mean_absolute_error,
    mean_absolute_percentage_error,
    r2_score,
    root_mean_squared_error,
)

from limen.metrics._inputs import matching, y_test_array

__all__ = ["continuous_metrics"]


def continuous_metrics(data: Mapping[str, Any], preds: Any) -> dict[str, float]:
    """Score numeric predictions against ``data['y_test']``.

    Returns:
        Plain floats: ``bias`` (mean of ``pred - y``: positive when the model overshoots),
        ``mae``, ``rmse``, ``r2`` (NaN for a single row), and ``mape`` in percent over the rows
        whose target is not zero (NaN when every target is zero).
    """
    y_test = y_test_array(data).astype(float)
    predicted = matching("preds", preds, y_test).astype(float)
    return {
        "bias": float(np.mean(predicted - y_test)),
        "mae": float(mean_absolute_error(y_test, predicted)),
        "rmse": float(root_mean_squared_error(y_test, predicted)),
        "r2": float(r2_score(y_test, predicted)) if y_test.size > 1 else math.nan,
        "mape": _mape_percent(y_test, predicted),
    }


def _mape_percent(y_test: np.ndarray, predicted: np.ndarray) -> float:
    """MAPE in percent; rows with a zero target have no defined percentage error and are skipped."""
    nonzero = y_test != 0
    if not nonzero.any():
        return math.nan
    return float(100 * mean_absolute_percentage_error(y_test[nonzero], predicted[nonzero]))
