"""Histogram gradient boosting: how much will the next bar return, in percent?

Features are multi-horizon returns and their lags, RSI, a searched volatility estimator, the
candle's shape, relative volume and order flow; trees need no scaling. Early stopping is off
(scikit-learn would carve its validation rows out of train at random, across time) and the
``random_state`` is fixed, so a round's metrics can be reproduced exactly.
"""

from __future__ import annotations

from typing import Any

from sklearn.ensemble import HistGradientBoostingRegressor
from threadpoolctl import threadpool_limits

from limen.data import synthetic_klines
from limen.experiment.manifest_core import Manifest
from limen.sfd.indicators import (
    candle_shape,
    close_to_close_volatility,
    garman_klass_volatility,
    lags,
    order_flow_imbalance,
    parkinson_volatility,
    roc,
    rsi,
    volume_ratio,
)
from limen.sfd.results import regression_results
from limen.sfd.targets import forward_return

__all__ = ["FEATURES", "RANDOM_STATE", "gbm", "manifest", "params"]

RANDOM_STATE = 42
FEATURES = [
    "roc_1",
    "roc_4",
    "roc_24",
    "roc_1_lag_1",
    "roc_1_lag_2",
    "roc_1_lag_3",
    "rsi_14",
    "volatility",
    "body_pct",
    "range_pct",
    "volume_ratio_24",
    "order_flow_imbalance",
]


def params() -> dict[str, list]:
    """The searched parameters: boosting, tree shape, regularisation, loss, volatility feature."""
    return {
        "learning_rate": [0.02, 0.05, 0.1],
        "max_iter": [50, 100, 200],
        "max_depth": [2, 3, 4, None],
        "min_samples_leaf": [20, 50, 100],
        "l2_regularization": [0.0, 0.1, 1.0],
        "loss": ["squared_error", "absolute_error"],
        "vol_estimator": [close_to_close_volatility, parkinson_volatility, garman_klass_volatility],
        "vol_window": [12, 24, 48],
    }


def manifest() -> Manifest:
    """Synthetic hourly klines, split 8:1:2, RMSE of the next-bar percent return minimised."""
    manifest = (
        Manifest()
        .set_data_source(synthetic_klines, {"n_rows": 5000, "kline_size": 3600, "seed": 0})
        .set_test_data_source(synthetic_klines, {"n_rows": 2000, "kline_size": 3600, "seed": 1})
        .set_split_config(8, 1, 2)
    )
    for period in (1, 4, 24):
        manifest.add_indicator(roc, period=period)
    return (
        manifest.add_indicator(rsi, period=14)
        .add_indicator("vol_estimator", window="vol_window")
        .add_feature(lags, column="roc_1", periods=3)
        .add_feature(candle_shape)
        .add_feature(volume_ratio, window=24)
        .add_feature(order_flow_imbalance)
        .with_target("next_return_pct", forward_return, shift=1, percent=True)
        .set_feature_columns(include=FEATURES)
        .with_model(gbm)
        .set_objective("rmse", "minimize")
    )


def gbm(
    data: dict[str, Any],
    learning_rate: float,
    max_iter: int,
    max_depth: int | None,
    min_samples_leaf: int,
    l2_regularization: float,
    loss: str,
) -> dict[str, Any]:
    """Fit a histogram gradient boosting regressor on train and score it on test."""
    model = HistGradientBoostingRegressor(
        loss=loss,
        learning_rate=learning_rate,
        max_iter=max_iter,
        max_depth=max_depth,
        min_samples_leaf=min_samples_leaf,
        l2_regularization=l2_regularization,
        early_stopping=False,
        random_state=RANDOM_STATE,
    )
    # One OpenMP thread: a round is small and parallel workers share the cores; OpenMP spin-waits
    # made rounds several times slower on a busy machine.
    with threadpool_limits(limits=1, user_api="openmp"):
        model.fit(data["x_train"], data["y_train"])
        return regression_results(data, model)
