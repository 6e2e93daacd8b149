"""``report(value, step)``: intermediate values from inside ``model()`` for Optuna pruners.

The SFD contract stays ``model(data, round_params) -> results``. A model that trains in steps may
call ``limen.experiment.report(value, step)`` after each step; the loop reports the value on the
running round's trial and, when the configured pruner says the round is unpromising, ``report``
raises the pruner's exception (``optuna.TrialPruned``) so the round ends as PRUNED. Without a
pruner the values are still stored (optuna-dashboard plots them) and nothing is raised.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextvars import ContextVar
from typing import Protocol

__all__ = ["Reporter", "is_reporting", "report", "reporting_to"]


class Reporter(Protocol):
    """The running round's sink for intermediate values (the adapter owns the trial)."""

    def report(self, value: float, step: int) -> None: ...


_CURRENT: ContextVar[Reporter | None] = ContextVar("limen_round_reporter", default=None)


def report(value: float, step: int) -> None:
    """Report an intermediate objective ``value`` at ``step`` of the running round.

    Raises:
        RuntimeError: called outside a round run by ``UniversalExperimentLoop``.
        optuna.TrialPruned: the pruner decided to stop this round (let it propagate).
    """
    reporter = _CURRENT.get()
    if reporter is None:
        raise RuntimeError(
            "limen.experiment.report() was called outside a running round: call it from the "
            "SFD's model() while UniversalExperimentLoop.run() runs it."
        )
    reporter.report(value, step)


def is_reporting() -> bool:
    """Whether ``report()`` has a running round to report to (False outside the loop)."""
    return _CURRENT.get() is not None


@contextlib.contextmanager
def reporting_to(reporter: Reporter) -> Iterator[None]:
    """Route ``report()`` calls to ``reporter`` for the duration of the block."""
    token = _CURRENT.set(reporter)
    try:
        yield
    finally:
        _CURRENT.reset(token)
