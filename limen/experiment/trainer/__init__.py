"""Rebuild winning rounds into portable Sensors: Trainer, Sensor, ReconstructionError."""

from limen.experiment.trainer.errors import (
    MetricMismatch,
    ReconstructionError,
    SensorFileNotFoundError,
    SensorIntegrityError,
    SensorTrustError,
    TrainerError,
)
from limen.experiment.trainer.sensor import Sensor
from limen.experiment.trainer.trainer import Trainer

__all__ = [
    "MetricMismatch",
    "ReconstructionError",
    "Sensor",
    "SensorFileNotFoundError",
    "SensorIntegrityError",
    "SensorTrustError",
    "Trainer",
    "TrainerError",
]
