"""Rebuild winning rounds into portable Sensors: Trainer, Sensor, ReconstructionError.

Names are imported on first use: the errors are cheap, while ``Sensor`` and ``Trainer`` bring
scikit-learn and skops, which commands that only catch these errors should not pay for.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "MetricMismatch": "limen.experiment.trainer.errors",
    "ReconstructionError": "limen.experiment.trainer.errors",
    "SensorFileNotFoundError": "limen.experiment.trainer.errors",
    "SensorIntegrityError": "limen.experiment.trainer.errors",
    "SensorTrustError": "limen.experiment.trainer.errors",
    "TrainerError": "limen.experiment.trainer.errors",
    "Sensor": "limen.experiment.trainer.sensor",
    "Trainer": "limen.experiment.trainer.trainer",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'limen.experiment.trainer' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
