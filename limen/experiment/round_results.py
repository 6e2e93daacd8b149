"""What a round returns, as the loop keeps it: metrics, parameter tokens, JSON-safe data."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd

from limen.experiment.identity import value_token

RESERVED_RESULT_KEYS = ("_preds", "_model", "models", "extras")


def is_real(value: Any) -> bool:
    """Whether ``value`` is a real number (numpy included), not a bool."""
    return isinstance(value, int | float | np.integer | np.floating) and not isinstance(value, bool)


def scalar_metrics(results: Mapping[str, Any]) -> dict[str, Any]:
    """The loggable metrics of a results dict: scalars only, reserved and ``_`` keys left out."""
    metrics: dict[str, Any] = {}
    for key, value in results.items():
        if key in RESERVED_RESULT_KEYS or str(key).startswith("_"):
            continue
        if isinstance(value, np.generic):
            value = value.item()
        if isinstance(value, bool | int | float | str) or value is None:
            metrics[str(key)] = value
    return metrics


def param_tokens(round_params: Mapping[str, Any]) -> dict[str, Any]:
    """Readable tokens of a round's parameters (metadata keys starting with ``_`` left out)."""
    return {k: value_token(v) for k, v in round_params.items() if not k.startswith("_")}


def jsonable(value: Any) -> Any:
    """``value`` as plain JSON data: arrays and frames as lists, numpy scalars as numbers."""
    if isinstance(value, pd.DataFrame | pd.Series):
        return jsonable(value.to_numpy())
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, pd.Timestamp | datetime):
        return value.isoformat()
    return value
