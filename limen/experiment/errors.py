"""Exceptions of the experiment layer that are not plain ``ValueError``/``TypeError``."""

from __future__ import annotations


class ResumeError(RuntimeError):
    """A resume would continue a different experiment than the one stored.

    The message names what differs (parameter space, SFD, strategy) and how to proceed.
    """
