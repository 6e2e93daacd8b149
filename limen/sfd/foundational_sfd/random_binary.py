"""A no-skill baseline: random scores against a binary target.

The model ignores its features and draws fresh uniform scores on every call, without a fixed
seed, so running the same round twice gives different metrics. It is declared stochastic: a
Trainer compares its metrics with a relative tolerance and is expected to fail loudly when they
differ. Useful as the floor every real SFD has to beat, and to exercise that failure path.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.preprocessing import RobustScaler, StandardScaler

from limen.data import synthetic_klines
from limen.experiment.manifest_core import Manifest
from limen.sfd.indicators import order_flow_imbalance, roc, rsi, volume_ratio
from limen.sfd.results import binary_results
from limen.sfd.targets import BreakoutTarget, QuantileBinaryTarget

__all__ = ["RandomBinaryClassifier", "manifest", "params", "random_scores"]


class RandomBinaryClassifier:
    """Predicts 1 for a random ``positive_rate`` share of rows, whatever the features."""

    def __init__(self, positive_rate: float = 0.5) -> None:
        if not 0 < positive_rate < 1:
            raise ValueError(
                "The 'positive_rate' parameter of RandomBinaryClassifier must be a float in "
                f"(0, 1). Got {positive_rate!r} instead."
            )
        self.positive_rate = positive_rate

    def fit(self, x: Any, y: Any) -> RandomBinaryClassifier:
        """Learn nothing: the scores never depend on the data."""
        self.classes_ = np.array([0, 1])
        return self

    def predict_proba(self, x: Any) -> np.ndarray:
        """Fresh uniform scores for the positive class, one per row of ``x``."""
        scores = np.random.default_rng().random(len(x))
        return np.column_stack([1 - scores, scores])

    def predict(self, x: Any) -> np.ndarray:
        """Fresh 0/1 predictions, 1 with probability ``positive_rate``."""
        return (self.predict_proba(x)[:, 1] > self.threshold).astype(int)

    @property
    def threshold(self) -> float:
        """The score above which a row is predicted positive."""
        return 1 - self.positive_rate


def params() -> dict[str, list]:
    """The searched parameters: target kind, horizon and quantile, features, scaler, rate."""
    return {
        "target": [QuantileBinaryTarget, BreakoutTarget],
        "shift": [1, 2, 3, 6],
        "q": [0.5, 0.6, 0.7, 0.8],
        "roc_period": [1, 4, 12],
        "scaler": [StandardScaler, RobustScaler, None],
        "positive_rate": [0.3, 0.4, 0.5, 0.6],
    }


def manifest() -> Manifest:
    """Synthetic hourly klines, split 3:1:1, AUC maximised; the model is stochastic."""
    return (
        Manifest()
        .set_data_source(synthetic_klines, {"n_rows": 5000, "kline_size": 3600, "seed": 0})
        .set_test_data_source(synthetic_klines, {"n_rows": 2000, "kline_size": 3600, "seed": 1})
        .set_split_config(3, 1, 1)
        .add_indicator(roc, period="roc_period")
        .add_indicator(rsi, period=14)
        .add_feature(volume_ratio, window=24)
        .add_feature(order_flow_imbalance)
        .with_target("label", "target", shift="shift", q="q")
        .set_feature_columns(
            include=["roc_{roc_period}", "rsi_14", "volume_ratio_24", "order_flow_imbalance"]
        )
        .set_scaler("scaler")
        .with_model(random_scores, stochastic=True)
        .set_objective("auc", "maximize")
    )


def random_scores(data: dict[str, Any], positive_rate: float) -> dict[str, Any]:
    """Score random predictions on the test split."""
    model = RandomBinaryClassifier(positive_rate).fit(data["x_train"], data["y_train"])
    return binary_results(data, model, threshold=model.threshold)
