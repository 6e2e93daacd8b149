"""Results dicts of fitted models: test-split metrics plus ``_preds`` and ``_model``.

When the test split is empty (a refit on all data, split ``(1, 0, 0)``) there is nothing to
score: the results hold only the empty ``_preds`` and the fitted ``_model``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from limen.metrics import binary_metrics, continuous_metrics

__all__ = ["binary_results", "regression_results"]


def binary_results(data: Mapping[str, Any], model: Any, threshold: float = 0.5) -> dict[str, Any]:
    """Score a fitted classifier whose ``predict_proba`` gives the positive class in column 1.

    A test row is predicted positive when its probability is above ``threshold``, so the
    predictions and the AUC come from the same scores.
    """
    x_test = data["x_test"]
    if len(x_test) == 0:
        return {"_preds": np.empty(0, dtype=int), "_model": model}
    probs = np.asarray(model.predict_proba(x_test))[:, 1]
    preds = (probs > threshold).astype(int)
    return {**binary_metrics(data, preds, probs), "_preds": preds, "_model": model}


def regression_results(data: Mapping[str, Any], model: Any) -> dict[str, Any]:
    """Score a fitted regressor on the test split."""
    x_test = data["x_test"]
    if len(x_test) == 0:
        return {"_preds": np.empty(0), "_model": model}
    preds = np.asarray(model.predict(x_test), dtype=float)
    return {**continuous_metrics(data, preds), "_preds": preds, "_model": model}
