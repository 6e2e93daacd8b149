"""Result-dict builders for SFD models: scalar metrics on the test split of a data_dict.

Names are imported on first use: they need scikit-learn's metrics, which readers of results
(``limen status``, ``Log``) that only reach ``limen.metrics.correlation`` should not import.
"""

from __future__ import annotations

from limen.utils.lazy import lazy_exports

_EXPORTS = {
    "balanced_metric": "limen.metrics.binary",
    "binary_metrics": "limen.metrics.binary",
    "continuous_metrics": "limen.metrics.continuous",
    "multiclass_metrics": "limen.metrics.multiclass",
}

__all__ = sorted(_EXPORTS)


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
