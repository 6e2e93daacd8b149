"""Foundational SFDs: ready-made decoders on embedded synthetic klines.

``logreg_binary`` (logistic regression, binary target), ``random_binary`` (a stochastic no-skill
baseline), ``gbm_regressor`` (histogram gradient boosting on the next-bar return) and
``logreg_walk_forward`` (the logistic regression evaluated on four walk-forward folds). Each is
a module with ``params()`` and ``manifest()``.
"""

from limen.sfd.foundational_sfd import (
    gbm_regressor,
    logreg_binary,
    logreg_walk_forward,
    random_binary,
)

__all__ = ["gbm_regressor", "logreg_binary", "logreg_walk_forward", "random_binary"]
