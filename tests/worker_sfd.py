"""A cheap custom SFD for many-worker tests.

``LIMEN_TEST_ROUND_S`` makes each round sleep. ``LIMEN_TEST_HOLD_AFTER=N`` lets a process finish
N rounds and then holds its next round until the process is killed, so a test can kill a worker
inside a round without racing it.
"""

from __future__ import annotations

import os
import time

import numpy as np
import pandas as pd


def params() -> dict[str, list]:
    return {"x": list(range(20)), "mode": ["a", "b", "c"], "lr": [0.001, 0.01, 0.1, 1.0]}


def prep(data: pd.DataFrame, round_params: dict) -> dict:
    return {"values": data["value"].to_numpy(dtype=float)}


_finished_here = 0


def model(data: dict, round_params: dict) -> dict:
    global _finished_here
    hold_after = os.environ.get("LIMEN_TEST_HOLD_AFTER")
    while hold_after is not None and _finished_here >= int(hold_after):
        time.sleep(1)
    time.sleep(float(os.environ.get("LIMEN_TEST_ROUND_S", "0")))
    score = -((round_params["x"] - 13) ** 2) / 10 - abs(np.log10(round_params["lr"]) + 2)
    score += {"a": 0.0, "b": 0.5, "c": 0.2}[round_params["mode"]]
    _finished_here += 1
    return {"score": float(score), "size": len(data["values"])}


def data() -> pd.DataFrame:
    return pd.DataFrame({"value": np.linspace(1.0, 10.0, 8)})
