"""A cheap custom SFD for strategy tests: ordered, log-spaced, categorical and class values."""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.preprocessing import MinMaxScaler, StandardScaler

from limen.experiment import report


def params() -> dict[str, list]:
    return {
        "x": list(range(20)),
        "lr": [0.001, 0.01, 0.1, 1.0],
        "mode": ["a", "b", "c"],
        "scaler": [StandardScaler, MinMaxScaler],
    }


def prep(data: pd.DataFrame, round_params: dict) -> dict:
    return {"values": data["value"].to_numpy(dtype=float)}


def model(data: dict, round_params: dict) -> dict:
    score = -((round_params["x"] - 13) ** 2) / 10 - abs(np.log10(round_params["lr"]) + 2)
    score += {"a": 0.0, "b": 0.5, "c": 0.2}.get(round_params["mode"], 1.0)
    return {"score": float(score), "cost": float(round_params["x"]), "size": len(data["values"])}


def curve_model(data: dict, round_params: dict) -> dict:
    """Reports a learning curve; rounds with x >= 10 are steadily bad."""
    bad = round_params["x"] >= 10
    for step in range(5):
        report((0.1 if bad else 1.0) + step * 0.01, step)
    return {"score": 0.1 if bad else 1.0}


def data() -> pd.DataFrame:
    return pd.DataFrame({"value": np.linspace(1.0, 10.0, 8)})
