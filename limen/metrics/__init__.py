"""Result-dict builders for SFD models: scalar metrics on the test split of a data_dict."""

from limen.metrics.binary import balanced_metric, binary_metrics
from limen.metrics.continuous import continuous_metrics
from limen.metrics.multiclass import multiclass_metrics

__all__ = ["balanced_metric", "binary_metrics", "continuous_metrics", "multiclass_metrics"]
