"""A small manifest SFD evaluated walk-forward: two folds of 60 bars on synthetic klines.

``quality`` is added to every fold's score, so a round with a low quality is bad from its first
fold on (the pruner test); the rest of the score depends on the fold's test labels, so folds
differ and the round's score is visibly their mean.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from limen.data import synthetic_klines
from limen.experiment.manifest_core import Manifest

N_FOLDS = 2
TEST_BARS = 60


def params() -> dict[str, list]:
    return {"quality": [1.0, 2.0]}


def momentum(df: pd.DataFrame) -> pd.DataFrame:
    out = df.copy()
    out["momentum"] = df["close"].pct_change()
    return out


def next_bar_up(df: pd.DataFrame) -> pd.Series:
    ahead = df["close"].shift(-1)
    return (ahead > df["close"]).astype(float).where(ahead.notna())


def model(data: dict[str, Any], quality: float) -> dict[str, Any]:
    preds = (data["x_test"]["momentum"].to_numpy() > 0).astype(int)
    hit = float(np.mean(preds == data["y_test"].to_numpy()))
    return {"score": quality + hit, "hit_rate": hit, "_preds": preds}


def base_manifest() -> Manifest:
    return (
        Manifest()
        .set_data_source(synthetic_klines, {"n_rows": 400, "kline_size": 3600, "seed": 3})
        .set_split_config(3, 1, 0)
        .add_indicator(momentum)
        .with_target("up", next_bar_up)
        .set_feature_columns(include=["momentum"])
        .with_model(model)
        .set_objective("score", "maximize")
    )


def manifest() -> Manifest:
    return base_manifest().set_split_walk_forward(N_FOLDS, TEST_BARS, purge_bars=1)
