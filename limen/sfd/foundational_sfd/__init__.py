"""Foundational SFDs: ready-made decoders on embedded synthetic klines.

``logreg_binary`` (logistic regression, binary target), ``random_binary`` (a stochastic no-skill
baseline) and ``gbm_regressor`` (histogram gradient boosting on the next-bar return). Each is a
module with ``params()`` and ``manifest()``.
"""

from limen.sfd.foundational_sfd import gbm_regressor, logreg_binary, random_binary

__all__ = ["gbm_regressor", "logreg_binary", "random_binary"]
