"""Exceptions of the experiment layer that are not plain parameter errors."""

from __future__ import annotations

from limen.errors import LimenError

__all__ = ["HiddenPasswordError", "MetadataError", "ResumeError", "RoundNotFoundError"]


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
