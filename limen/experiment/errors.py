"""Exceptions of the experiment layer that are not plain parameter errors."""

from __future__ import annotations

from limen.errors import ExperimentNotFoundError, LimenError

__all__ = [
    "ExperimentExistsError",
    "HiddenPasswordError",
    "MetadataError",
    "NothingToResumeError",
    "ResumeError",
    "RoundNotFoundError",
]


class ExperimentExistsError(LimenError, FileExistsError):
    """A fresh run was asked where an experiment already holds rounds (or another set-up).

    The message says how to continue it (``resume=True``, ``limen resume``) or start anew.
    """


class NothingToResumeError(ExperimentNotFoundError, ValueError):
    """A resume named an experiment whose study does not exist or was never set up.

    It is an ``ExperimentNotFoundError`` and, as earlier versions raised, a ``ValueError``.
    """


class ResumeError(LimenError, RuntimeError):
    """A resume would continue a different experiment than the one stored.

    The message names what differs (parameter space, SFD, strategy) and how to proceed.
    """


class HiddenPasswordError(LimenError, ValueError):
    """A storage URL carries ``***`` where its password was: Limen never keeps a password, so
    the user must pass the full URL (``--storage URL``, ``storage=...``)."""


class MetadataError(LimenError, ValueError):
    """An experiment directory's ``metadata.json`` cannot be read as an experiment record."""


class RoundNotFoundError(LimenError, ValueError):
    """A round asked for by id is not in the study, or has no id (a trial Limen did not write
    whose values lie outside the parameter space)."""
