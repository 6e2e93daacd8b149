"""A small custom SFD for loop tests: classes, functions and tuples as parameter values."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from sklearn.preprocessing import MinMaxScaler, StandardScaler

SEEN: list[dict] = []


def params() -> dict[str, list]:
    return {
        "scale": [1, 2, 3, 4],
        "scaler": [StandardScaler, MinMaxScaler],
        "transform": [math.sqrt, math.log1p],
        "window": [(2, 3), (5, 8)],
        "mode": ["a", "b"],
    }


def prep(data: pd.DataFrame, round_params: dict) -> dict:
    column = data["value"].to_numpy(dtype=float)
    scaled = round_params["scaler"]().fit_transform(column.reshape(-1, 1)).ravel()
    return {"x": scaled, "_alignment": {"first_test_datetime": "2024-01-01T00:00:00"}}


def model(data: dict, round_params: dict) -> dict:
    SEEN.append(dict(round_params))
    if round_params["mode"] == "b" and round_params["scale"] == 4:
        raise RuntimeError("mode b cannot run at scale 4")
    total = float(np.sum(np.abs(data["x"]))) * round_params["scale"]
    score = round_params["transform"](total) + sum(round_params["window"]) / 100
    return {"score": score, "size": len(data["x"]), "_preds": data["x"][:3]}


def toy_data() -> pd.DataFrame:
    return pd.DataFrame({"value": np.linspace(1.0, 10.0, 20)})
