"""The root of Limen's exceptions.

Every exception Limen raises on purpose derives from ``LimenError``, so one ``except LimenError``
catches them all and the CLI can turn each into one line and exit code 2. Each also derives from
the built-in class older code caught it as (``ValueError``, ``FileNotFoundError``...), so existing
``except`` clauses keep working.
"""

from __future__ import annotations

__all__ = [
    "ExperimentNotFoundError",
    "InvalidParameterError",
    "LimenError",
    "MissingDependencyError",
    "NoRoundsError",
]


class LimenError(Exception):
    """Base class of every exception Limen raises on purpose."""


class InvalidParameterError(LimenError, ValueError, TypeError):
    """A public function or constructor got a parameter of the wrong type or value.

    The message names the parameter, the value given and the values accepted. It derives from
    both ``ValueError`` and ``TypeError`` so callers written against either keep working.
    """


class MissingDependencyError(LimenError, ImportError):
    """An optional package a chosen feature needs is not installed; the message names the
    ``pip install`` to run."""


class NoRoundsError(LimenError, ValueError):
    """The study holds no round the request can use (none completed, none with the metric)."""


class ExperimentNotFoundError(LimenError, FileNotFoundError):
    """A directory, storage or study name does not lead to a Limen experiment."""
