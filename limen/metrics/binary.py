"""Metrics for binary classifiers whose positive class is labelled 1."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
from sklearn.metrics import (
    accuracy_score,
    confusion_matrix,
    precision_score,
    recall_score,
    roc_auc_score,
)

from limen.metrics._inputs import binary_labels, check_length, matching, one_column, y_test_array

__all__ = ["balanced_metric", "binary_metrics"]


def binary_metrics(data: Mapping[str, Any], preds: Any, probs: Any = None) -> dict[str, float]:
    """Score 0/1 predictions against ``data['y_test']``.

    Args:
        data: The data_dict; only ``y_test`` (0/1 labels) is read.
        preds: Predicted labels (0/1), one per test row.
        probs: Optional scores of the positive class, one per test row: a 1-D array or a
            model's ``predict_proba`` output with two columns. Needed for ``auc``.

    Returns:
        ``recall``, ``precision``, ``fpr`` (false positives / actual negatives), ``auc`` and
        ``accuracy`` as plain floats. ``precision`` and ``recall`` are 0.0 when their
        denominator is empty; ``fpr`` is NaN without negatives; ``auc`` is NaN without ``probs``
        or when ``y_test`` holds a single class.
    """
    y_test = binary_labels("y_test", y_test_array(data))
    predicted = binary_labels("preds", matching("preds", preds, y_test))
    true_negatives, false_positives, _, _ = confusion_matrix(
        y_test, predicted, labels=[0, 1]
    ).ravel()
    negatives = true_negatives + false_positives
    return {
        "recall": float(recall_score(y_test, predicted, zero_division=0.0)),
        "precision": float(precision_score(y_test, predicted, zero_division=0.0)),
        "fpr": float(false_positives / negatives) if negatives else math.nan,
        "auc": _auc(y_test, probs),
        "accuracy": float(accuracy_score(y_test, predicted)),
    }


def balanced_metric(y_true: Any, y_pred: Any) -> float:
    """Precision times the square root of the share of rows predicted positive.

    Rewards precise classifiers that still fire often enough to matter, which plain precision
    does not: a model that predicts one lucky positive scores 1.0 on precision alone. Returns
    0.0 when nothing is predicted positive.
    """
    actual = binary_labels("y_true", one_column("y_true", y_true))
    predicted = binary_labels("y_pred", one_column("y_pred", y_pred))
    check_length("y_pred", predicted, actual, target_name="y_true")
    positive_rate = float(np.mean(predicted == 1))
    if positive_rate == 0.0:
        return 0.0
    return float(precision_score(actual, predicted, zero_division=0.0)) * math.sqrt(positive_rate)


def _auc(y_test: np.ndarray, probs: Any) -> float:
    if probs is None:
        return math.nan
    scores = np.asarray(probs, dtype=float)
    if scores.ndim == 2 and scores.shape[1] == 2:
        scores = scores[:, 1]
    scores = matching("probs", scores, y_test)
    if np.unique(y_test).size < 2:
        return math.nan
    return float(roc_auc_score(y_test, scores))
