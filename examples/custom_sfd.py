"""A custom SFD: your own DataFrame, your own prep() and model(), parameters that are classes.

Run it with `python examples/custom_sfd.py [EXPERIMENT_DIR]`.
"""

import importlib
import sys

import numpy as np
import pandas as pd
from sklearn.linear_model import Ridge
from sklearn.preprocessing import MinMaxScaler, StandardScaler

from limen import UniversalExperimentLoop
from limen.metrics import continuous_metrics


def params() -> dict[str, list]:
    """The searched space: every value is a list; classes are fine values."""
    return {
        "lags": [1, 2, 3, 5],
        "alpha": [0.01, 0.1, 1.0, 10.0],
        "scaler": [StandardScaler, MinMaxScaler],
    }


def prep(data: pd.DataFrame, round_params: dict) -> dict:
    """Lagged features, a sequential split, and a scaler fitted on the train rows only."""
    frame = pd.DataFrame({"y": data["y"]})
    for lag in range(1, round_params["lags"] + 1):
        frame[f"lag_{lag}"] = data["y"].shift(lag)
    frame = frame.dropna()
    x, y = frame.drop(columns="y"), frame["y"]
    cut_val, cut_test = int(len(frame) * 0.6), int(len(frame) * 0.8)
    scaler = round_params["scaler"]().fit(x.iloc[:cut_val])
    return {
        "x_train": scaler.transform(x.iloc[:cut_val]),
        "y_train": y.iloc[:cut_val],
        "x_val": scaler.transform(x.iloc[cut_val:cut_test]),
        "y_val": y.iloc[cut_val:cut_test],
        "x_test": scaler.transform(x.iloc[cut_test:]),
        "y_test": y.iloc[cut_test:],
        "_scaler": scaler,
    }


def model(data: dict, round_params: dict) -> dict:
    """Fit on train, score on test; metrics are plain floats, `_preds`/`_model` stay out of logs."""
    fitted = Ridge(alpha=round_params["alpha"]).fit(data["x_train"], data["y_train"])
    preds = fitted.predict(data["x_test"])
    return {**continuous_metrics(data, preds), "_preds": preds, "_model": fitted}


if __name__ == "__main__":
    rng = np.random.default_rng(0)
    noise = rng.normal(size=600)
    series = np.convolve(noise, [1.0, 0.6, 0.3], mode="same")
    my_data = pd.DataFrame({"y": series})

    experiment_dir = sys.argv[1] if len(sys.argv) > 1 else "limen-runs/custom"
    # The SFD is this file imported under its module name, so the study records a name that
    # can be imported again later (the script's own module is called __main__).
    sfd = importlib.import_module("custom_sfd")
    uel = UniversalExperimentLoop(
        sfd=sfd,
        data=my_data,
        experiment_dir=experiment_dir,
        objective="rmse",
        direction="minimize",
    )
    log = uel.run("custom", n_permutations=32, progress_bar=False)
    print(log.sort_values("rmse").head(3)[["rmse", "lags", "alpha", "scaler"]])
