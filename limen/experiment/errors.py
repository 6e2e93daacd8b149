"""Exceptions of the experiment layer that are not plain parameter errors."""

from __future__ import annotations

from limen.errors import ExperimentNotFoundError, LimenError

__all__ = ["ExperimentExistsError", "NothingToResumeError", "ResumeError"]


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
