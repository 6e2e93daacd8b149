"""Result-dict builders for SFD models: scalar metrics on the test split of a data_dict.

Names are imported on first use: they need scikit-learn's metrics, which readers of results
(``limen status``, ``Log``) that only reach ``limen.metrics.correlation`` should not import.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "balanced_metric": "limen.metrics.binary",
    "binary_metrics": "limen.metrics.binary",
    "continuous_metrics": "limen.metrics.continuous",
    "multiclass_metrics": "limen.metrics.multiclass",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'limen.metrics' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
