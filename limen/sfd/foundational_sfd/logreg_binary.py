"""Logistic regression: will the next ``shift`` bars return more than usual?

The target flags bars whose forward return over ``shift`` bars beats the train split's
``q``-quantile of forward returns. Features are momentum (rate of change, RSI, PPO), a searched
volatility estimator and order flow, scaled by a searched scaler fitted on train. The model is
deterministic (fixed ``random_state``), so a round's metrics can be reproduced exactly.
"""

from __future__ import annotations

from typing import Any

from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import MinMaxScaler, RobustScaler, StandardScaler

from limen.data import synthetic_klines
from limen.experiment.manifest_core import Manifest
from limen.sfd.indicators import (
    close_to_close_volatility,
    garman_klass_volatility,
    order_flow_imbalance,
    parkinson_volatility,
    ppo,
    roc,
    rsi,
    volume_ratio,
)
from limen.sfd.results import binary_results
from limen.sfd.targets import QuantileBinaryTarget

__all__ = ["RANDOM_STATE", "logreg", "manifest", "params"]

RANDOM_STATE = 42


def params() -> dict[str, list]:
    """The searched parameters: target horizon and quantile, features, scaler, regularisation."""
    return {
        "shift": [1, 2, 4, 6, 12],
        "q": [0.35, 0.4, 0.45, 0.5, 0.55, 0.6, 0.65],
        "roc_period": [1, 4, 12, 24],
        "vol_estimator": [close_to_close_volatility, parkinson_volatility, garman_klass_volatility],
        "vol_window": [12, 24, 48],
        "scaler": [StandardScaler, RobustScaler, MinMaxScaler],
        "C": [0.01, 0.1, 1.0, 10.0],
        "class_weight": [None, "balanced"],
        "max_iter": [100, 300],
    }


def manifest() -> Manifest:
    """Synthetic hourly klines, split 8:1:2, AUC maximised."""
    return (
        Manifest()
        .set_data_source(synthetic_klines, {"n_rows": 5000, "kline_size": 3600, "seed": 0})
        .set_test_data_source(synthetic_klines, {"n_rows": 2000, "kline_size": 3600, "seed": 1})
        .set_split_config(8, 1, 2)
        .add_indicator(roc, period="roc_period")
        .add_indicator(rsi, period=14)
        .add_indicator(ppo, fast=12, slow=26)
        .add_indicator("vol_estimator", window="vol_window")
        .add_feature(volume_ratio, window=24)
        .add_feature(order_flow_imbalance)
        .with_target("label", QuantileBinaryTarget, shift="shift", q="q")
        .set_feature_columns(
            include=[
                "roc_{roc_period}",
                "rsi_14",
                "ppo",
                "volatility",
                "volume_ratio_24",
                "order_flow_imbalance",
            ]
        )
        .set_scaler("scaler")
        .with_model(logreg)
        .set_objective("auc", "maximize")
    )


def logreg(
    data: dict[str, Any], C: float, class_weight: str | None, max_iter: int
) -> dict[str, Any]:
    """Fit a logistic regression on the train split and score it on the test split."""
    model = LogisticRegression(
        C=C, class_weight=class_weight, max_iter=max_iter, random_state=RANDOM_STATE
    )
    model.fit(data["x_train"], data["y_train"])
    return binary_results(data, model)
