"""Forward-looking targets for klines, shaped for ``Manifest.with_target``.

Functions are stateless labels; classes learn a threshold with ``fit`` on the train split and
apply it with ``transform`` to every split, so validation and test rows never move it. A target
looks ``shift`` bars ahead, so the last ``shift`` rows of a split have no label (NaN) and the
Manifest drops them: a split's labels never read another split's prices.
"""

from __future__ import annotations

from numbers import Integral, Real

import numpy as np
import pandas as pd

__all__ = ["BreakoutTarget", "QuantileBinaryTarget", "forward_excursion", "forward_return"]


def forward_return(
    df: pd.DataFrame, shift: int = 1, column: str = "close", percent: bool = False
) -> pd.Series:
    """Return from this bar's close to the close ``shift`` bars later (in percent if asked)."""
    _check_shift(forward_return.__name__, shift)
    change = df[column].shift(-shift) / df[column] - 1
    return 100 * change if percent else change


def forward_excursion(df: pd.DataFrame, shift: int) -> pd.Series:
    """Highest high over the next ``shift`` bars relative to this bar's close, minus one."""
    _check_shift(forward_excursion.__name__, shift)
    future_high = df["high"][::-1].rolling(shift).max()[::-1].shift(-1)
    return future_high / df["close"] - 1


class QuantileBinaryTarget:
    """1 when the forward return over ``shift`` bars beats its train-split ``q``-quantile, else 0.

    ``fit`` learns ``threshold_`` from the train split; ``transform`` labels any split with it.
    Subclasses change what is thresholded by overriding ``score``.
    """

    def __init__(self, shift: int, q: float) -> None:
        name = type(self).__name__
        _check_shift(name, shift)
        if not isinstance(q, Real) or isinstance(q, bool) or not 0 < q < 1:
            raise ValueError(f"The 'q' parameter of {name} must be a float in (0, 1). Got {q!r}.")
        self.shift = shift
        self.q = q

    def score(self, df: pd.DataFrame) -> pd.Series:
        """The forward quantity the threshold applies to."""
        return forward_return(df, self.shift)

    def fit(self, df: pd.DataFrame) -> QuantileBinaryTarget:
        """Learn ``threshold_``, the ``q``-quantile of ``score`` on ``df`` (the train split)."""
        threshold = self.score(df).quantile(self.q)
        if not np.isfinite(threshold):
            raise ValueError(
                f"{type(self).__name__} found no forward values to fit on: the train split "
                f"needs more than shift={self.shift} rows."
            )
        self.threshold_ = float(threshold)
        return self

    def transform(self, df: pd.DataFrame) -> pd.Series:
        """Label ``df``: 1.0 above ``threshold_``, 0.0 otherwise, NaN without forward bars."""
        if not hasattr(self, "threshold_"):
            raise ValueError(f"Call {type(self).__name__}.fit on the train split first.")
        score = self.score(df)
        return (score > self.threshold_).astype(float).where(score.notna())


class BreakoutTarget(QuantileBinaryTarget):
    """1 when the highest high of the next ``shift`` bars clears the close by more than usual.

    "Usual" is the train split's ``q``-quantile of that excursion (see ``forward_excursion``).
    """

    def score(self, df: pd.DataFrame) -> pd.Series:
        """The forward excursion of the high over ``shift`` bars."""
        return forward_excursion(df, self.shift)


def _check_shift(owner: str, shift: object) -> None:
    if not isinstance(shift, Integral) or isinstance(shift, bool) or shift < 1:
        raise ValueError(
            f"The 'shift' parameter of {owner} must be an int >= 1 (bars ahead). "
            f"Got {shift!r} instead."
        )
