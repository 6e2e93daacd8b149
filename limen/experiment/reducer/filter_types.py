"""Names of the declarative MSQ filter types reducers emit through ``set_filter``.

The builders live with the MSQ (``limen.experiment.msq.FILTER_BUILDERS``), so a checkpointed
filter is rebuilt on resume from its type and parameters.
"""

from __future__ import annotations

__all__ = ["FILTER_KEEP_BETWEEN", "FILTER_KEEP_VALUES", "FILTER_SAMPLE"]

FILTER_KEEP_BETWEEN = "keep_between"
FILTER_KEEP_VALUES = "keep_values"
FILTER_SAMPLE = "sample"
