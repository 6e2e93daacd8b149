"""Metrics for classifiers with any number of classes."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from sklearn.metrics import accuracy_score, precision_score, recall_score, roc_auc_score

from limen.metrics._inputs import check_length, matching, y_test_array

__all__ = ["AVERAGES", "multiclass_metrics"]

AVERAGES = ("macro", "micro", "weighted")
"""Accepted values of ``average``, as in scikit-learn's ``precision_score``."""


def multiclass_metrics(
    data: Mapping[str, Any],
    preds: Any,
    probs: Any = None,
    average: str = "macro",
    *,
    classes: Sequence[Any] | None = None,
) -> dict[str, float]:
    """Score class predictions against ``data['y_test']``.

    Args:
        data: The data_dict; only ``y_test`` is read.
        preds: Predicted class labels, one per test row.
        probs: Optional class probabilities, shape ``(rows, n_classes)`` (``predict_proba``).
            Needed for ``auc``.
        average: How per-class precision and recall are combined: ``macro``, ``micro`` or
            ``weighted``.
        classes: The class label of each ``probs`` column, in order (a model's ``classes_``).
            Default ``0 .. n_classes - 1``, right for integer-encoded targets.

    Returns:
        ``precision``, ``recall``, ``auc`` and ``accuracy`` as plain floats. ``auc`` is the mean
        one-vs-rest AUC over the classes of ``y_test`` that have a ``probs`` column and do not
        fill ``y_test`` alone; NaN when there is no such class or no ``probs``.
    """
    if average not in AVERAGES:
        raise ValueError(
            "The 'average' parameter of multiclass_metrics must be one of "
            f"{', '.join(map(repr, AVERAGES))}. Got {average!r} instead."
        )
    y_test = y_test_array(data)
    predicted = matching("preds", preds, y_test)
    return {
        "precision": float(precision_score(y_test, predicted, average=average, zero_division=0.0)),
        "recall": float(recall_score(y_test, predicted, average=average, zero_division=0.0)),
        "auc": math.nan if probs is None else _mean_ovr_auc(y_test, probs, classes),
        "accuracy": float(accuracy_score(y_test, predicted)),
    }


def _mean_ovr_auc(y_test: np.ndarray, probs: Any, classes: Sequence[Any] | None) -> float:
    scores = np.asarray(probs, dtype=float)
    if scores.ndim != 2:
        raise ValueError(
            f"'probs' must have one column per class, shape (rows, n_classes); "
            f"got shape {scores.shape}."
        )
    check_length("probs", scores, y_test)
    labels = range(scores.shape[1]) if classes is None else list(classes)
    if len(labels) != scores.shape[1]:
        raise ValueError(
            f"'classes' names {len(labels)} classes but 'probs' has {scores.shape[1]} columns; "
            "pass the model's classes_."
        )
    column_of = {label: column for column, label in enumerate(labels)}
    aucs = [
        roc_auc_score(y_test == label, scores[:, column_of[label]])
        for label in np.unique(y_test).tolist()
        if label in column_of and not np.all(y_test == label)
    ]
    return float(np.mean(aucs)) if aucs else math.nan
