"""Logistic regression evaluated walk-forward: four consecutive test windows per round.

The same decoder as ``logreg_binary`` (quantile target on the forward return, momentum,
volatility and order-flow features, a searched scaler), but each round fits and tests it on
four folds of 300 bars, purged and embargoed by 12 bars (the longest target horizon), so a round's
metrics are the mean over folds and its net-return track (10 bps per round trip) feeds the
acceptance report (``limen accept DIR``).
"""

from __future__ import annotations

from sklearn.preprocessing import RobustScaler, StandardScaler

from limen.data import synthetic_klines
from limen.experiment.manifest_core import Manifest
from limen.sfd.foundational_sfd.logreg_binary import logreg
from limen.sfd.indicators import (
    close_to_close_volatility,
    order_flow_imbalance,
    parkinson_volatility,
    roc,
    rsi,
    volume_ratio,
)
from limen.sfd.targets import QuantileBinaryTarget

__all__ = ["HORIZON_BARS", "N_FOLDS", "TEST_BARS", "manifest", "params"]

N_FOLDS = 4
TEST_BARS = 300
HORIZON_BARS = 12


def params() -> dict[str, list]:
    """The searched parameters: target horizon and quantile, features, scaler, regularisation."""
    return {
        "shift": [1, 4, HORIZON_BARS],
        "q": [0.4, 0.5, 0.6],
        "roc_period": [1, 4, 12],
        "vol_estimator": [close_to_close_volatility, parkinson_volatility],
        "vol_window": [12, 24],
        "scaler": [StandardScaler, RobustScaler],
        "C": [0.01, 0.1, 1.0, 10.0],
        "class_weight": [None, "balanced"],
        "max_iter": [200],
    }


def manifest() -> Manifest:
    """Synthetic hourly klines, fit:validation 8:1 per fold, 4 walk-forward folds, AUC."""
    return (
        Manifest()
        .set_data_source(synthetic_klines, {"n_rows": 5000, "kline_size": 3600, "seed": 0})
        .set_test_data_source(synthetic_klines, {"n_rows": 2000, "kline_size": 3600, "seed": 1})
        .set_split_config(8, 1, 0)
        .set_split_walk_forward(
            N_FOLDS, TEST_BARS, purge_bars=HORIZON_BARS, embargo_bars=HORIZON_BARS
        )
        .set_backtest_cost(10.0)
        .set_acceptance(min_deflated_sharpe_probability=0.95, max_pbo=0.5)
        .add_indicator(roc, period="roc_period")
        .add_indicator(rsi, period=14)
        .add_indicator("vol_estimator", window="vol_window")
        .add_feature(volume_ratio, window=24)
        .add_feature(order_flow_imbalance)
        .with_target("label", QuantileBinaryTarget, shift="shift", q="q")
        .set_feature_columns(
            include=[
                "roc_{roc_period}",
                "rsi_14",
                "volatility",
                "volume_ratio_24",
                "order_flow_imbalance",
            ]
        )
        .set_scaler("scaler")
        .with_model(logreg)
        .set_objective("auc", "maximize")
    )
