"""Errors of the Trainer and the Sensor."""

from __future__ import annotations

from dataclasses import dataclass

from limen.errors import LimenError

__all__ = [
    "MetricMismatch",
    "ReconstructionError",
    "SensorFileNotFoundError",
    "SensorIntegrityError",
    "SensorTrustError",
    "TrainerError",
]


@dataclass(frozen=True)
class MetricMismatch:
    """One metric whose rebuilt value differs from the stored one beyond the tolerance."""

    metric: str
    stored: float | None
    rebuilt: float | None

    def __str__(self) -> str:
        return f"{self.metric}: stored={self.stored!r}, rebuilt={self.rebuilt!r}"


class ReconstructionError(LimenError):
    """A round rebuilt from its stored parameters does not reproduce its stored metrics.

    Attributes:
        round_id: The 64-hex id of the round.
        trial_number: The round's trial number in the study.
        mismatches: Every metric that differs, with both values.
        causes: The likely causes, those detected first.
    """

    def __init__(
        self,
        round_id: str,
        trial_number: int,
        mismatches: list[MetricMismatch],
        causes: list[str],
    ) -> None:
        self.round_id = round_id
        self.trial_number = trial_number
        self.mismatches = list(mismatches)
        self.causes = list(causes)
        differing = "; ".join(str(m) for m in self.mismatches)
        reasons = "\n".join(f"  - {cause}" for cause in self.causes)
        super().__init__(
            f"Round {round_id} (trial {trial_number}) does not reproduce its stored metrics: "
            f"{differing}.\nLikely causes:\n{reasons}"
        )

    def __reduce__(self) -> tuple[type, tuple[str, int, list[MetricMismatch], list[str]]]:
        return type(self), (self.round_id, self.trial_number, self.mismatches, self.causes)


class TrainerError(LimenError, ValueError):
    """The Trainer cannot rebuild what was asked: no completed round to rank, a round that
    no longer decodes with the SFD's parameter space, or a model function that returns no
    fitted model."""


class SensorIntegrityError(LimenError, ValueError):
    """A Sensor file is not a Limen Sensor file, is damaged, or was changed after it was saved."""


class SensorFileNotFoundError(LimenError, FileNotFoundError):
    """The path given as a Sensor file does not exist or is a directory."""


class SensorTrustError(SensorIntegrityError):
    """A Sensor file needs types that are not trusted, or is a pickle that is not signed.

    Attributes:
        types: The types the file names that were not trusted (empty for an unsigned pickle).
    """

    def __init__(self, message: str, types: list[str] | None = None) -> None:
        super().__init__(message)
        self.types = list(types or [])

    def __reduce__(self) -> tuple[type, tuple[str, list[str]]]:
        return type(self), (str(self), self.types)
