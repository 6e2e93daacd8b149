"""What a round returns, as the loop keeps it: its metrics and its parameter tokens."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from limen.experiment.identity import value_token

__all__ = ["RESERVED_RESULT_KEYS", "param_tokens", "scalar_metrics"]

RESERVED_RESULT_KEYS = ("_preds", "_model", "models", "extras")


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
