"""Rebuild winning rounds into portable Sensors: Trainer, Sensor, ReconstructionError.

Names are imported on first use: the errors are cheap, while ``Sensor`` and ``Trainer`` bring
scikit-learn and skops, which commands that only catch these errors should not pay for.
"""

from __future__ import annotations

from limen.utils.lazy import lazy_exports

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


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
