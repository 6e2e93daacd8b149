"""Deterministic synthetic klines: realistic enough to exercise SFDs, with no network access.

Log returns follow a GARCH(1,1) process with standardised Student-t innovations, so the series
shows the two facts of real price data that trading features and models rely on: volatility
clusters (large moves follow large moves) and fat tails. Every other column is derived from the
returns so the usual kline invariants hold.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from limen.data.schema import DATETIME_DTYPE, KLINE_COLUMNS
from limen.utils.validation import Interval, validate_params

__all__ = ["START", "synthetic_klines"]

START = pd.Timestamp("2020-01-01")
"""Open time of the first bar (tz-naive UTC)."""

_MAX_SPAN_SECONDS = int(np.iinfo(np.int64).max // 1_000_000 - START.timestamp())
_START_PRICE = 100.0
_HOURLY_VOLATILITY = 0.006
_HOURLY_VOLUME = 1_000.0
_MEAN_TRADE_SIZE = 0.5

# GARCH(1,1) with Student-t(6) innovations. alpha + beta < 1 keeps the variance stationary, and
# beta**2 + 2*alpha*beta + 6*alpha**2 < 1 (6 = E[z**4] for a unit-variance t(6)) keeps the
# kurtosis finite, so the sample kurtosis is stable from seed to seed.
_ALPHA = 0.08
_BETA = 0.90
_DOF = 6


def synthetic_klines(n_rows: int = 5000, kline_size: int = 3600, seed: int = 0) -> pd.DataFrame:
    """Generate ``n_rows`` bars of ``kline_size`` seconds, identical for identical arguments.

    Columns (see ``limen.data.KLINE_COLUMNS``):

    - ``datetime``: bar open time, tz-naive UTC, from 2020-01-01 00:00, ``kline_size`` seconds
      apart.
    - ``open, high, low, close``: prices (> 0); ``open`` is the previous ``close``;
      ``high >= max(open, close)`` and ``low <= min(open, close)``.
    - ``mean, std, median, iqr``: summary statistics of the trade prices inside the bar;
      ``mean`` and ``median`` lie in ``[low, high]``, ``0 <= iqr <= high - low``.
    - ``volume``: traded base quantity (> 0), larger on bars with larger absolute returns.
    - ``maker_ratio``: share of ``volume`` whose buyer was the maker, in ``(0, 1)``; lower on up
      bars, where aggressive buying dominates.
    - ``no_of_trades``: number of trades (int, >= 1).
    - ``liquidity_sum``: traded quote value, ``volume * mean``.
    - ``maker_volume``, ``maker_liquidity``: the maker share of ``volume`` and ``liquidity_sum``.

    Args:
        n_rows: Number of bars, at least 1.
        kline_size: Bar length in seconds, at least 1. Volatility and volume scale with it.
        seed: Seed of the random generator, at least 0.

    Returns:
        A frame with a ``RangeIndex`` and the columns above.

    Raises:
        TypeError: An argument is not an int.
        ValueError: An argument is below its minimum, or the bars would end after the year
            294,000 (the limit of ``datetime64[us]``).
    """
    _check_int("n_rows", n_rows, minimum=1)
    _check_int("kline_size", kline_size, minimum=1)
    _check_int("seed", seed, minimum=0)
    if (n_rows - 1) * kline_size > _MAX_SPAN_SECONDS:
        raise ValueError(
            f"synthetic_klines cannot represent {n_rows} bars of {kline_size} seconds: the last "
            f"datetime would pass the datetime64[us] limit; keep (n_rows - 1) * kline_size at "
            f"most {_MAX_SPAN_SECONDS} seconds."
        )
    rng = np.random.default_rng(seed)
    bar_hours = kline_size / 3600
    shocks = rng.standard_t(_DOF, size=n_rows) * np.sqrt((_DOF - 2) / _DOF)
    sigma = _garch_sigma(shocks, bar_hours)
    returns = sigma * shocks
    close = _START_PRICE * np.exp(np.cumsum(returns))
    open_ = np.concatenate(([_START_PRICE], close[:-1]))
    high = np.maximum(open_, close) * np.exp(0.5 * sigma * np.abs(rng.standard_normal(n_rows)))
    low = np.minimum(open_, close) * np.exp(-0.5 * sigma * np.abs(rng.standard_normal(n_rows)))
    stats = _trade_price_stats(rng, low, high)
    volume = _volume(rng, returns / np.sqrt(_long_run_variance(bar_hours)), bar_hours)
    maker_ratio = _maker_ratio(rng, shocks)
    liquidity_sum = volume * stats["mean"]
    frame = pd.DataFrame(
        {
            "datetime": _open_times(n_rows, kline_size),
            "open": open_,
            "high": high,
            "low": low,
            "close": close,
            **stats,
            "volume": volume,
            "maker_ratio": maker_ratio,
            "no_of_trades": 1 + rng.poisson(volume / _MEAN_TRADE_SIZE),
            "liquidity_sum": liquidity_sum,
            "maker_volume": volume * maker_ratio,
            "maker_liquidity": liquidity_sum * maker_ratio,
        }
    )
    return frame[list(KLINE_COLUMNS)]


def _check_int(name: str, value: object, *, minimum: int) -> None:
    validate_params({name: [Interval(int, minimum, None)]}, {name: value}, "synthetic_klines")


def _garch_sigma(innovations: np.ndarray, bar_hours: float) -> np.ndarray:
    """Conditional volatility per bar: ``s2[t] = omega + s2[t-1] * (alpha * z[t-1]**2 + beta)``."""
    long_run_variance = _long_run_variance(bar_hours)
    omega = long_run_variance * (1 - _ALPHA - _BETA)
    growth = (_ALPHA * innovations**2 + _BETA).tolist()
    variance = [long_run_variance]
    for factor in growth[:-1]:
        variance.append(omega + variance[-1] * factor)
    return np.sqrt(np.asarray(variance))


def _long_run_variance(bar_hours: float) -> float:
    return _HOURLY_VOLATILITY**2 * bar_hours


def _open_times(n_rows: int, kline_size: int) -> pd.Series:
    offsets = np.arange(n_rows, dtype=np.int64) * np.timedelta64(kline_size, "s")
    return pd.Series(np.datetime64(START, "us") + offsets).astype(DATETIME_DTYPE)


def _trade_price_stats(
    rng: np.random.Generator, low: np.ndarray, high: np.ndarray
) -> dict[str, np.ndarray]:
    """Mean, median, std and IQR of trade prices, kept inside the bar's range."""
    spread = high - low
    position = rng.beta(4.0, 4.0, size=low.size)
    median_position = np.clip(position + 0.05 * rng.standard_normal(low.size), 0.0, 1.0)
    std = spread * rng.uniform(0.15, 0.30, size=low.size)
    iqr = np.minimum(1.349 * std * rng.uniform(0.8, 1.2, size=low.size), spread)
    return {
        "mean": low + position * spread,
        "std": std,
        "median": low + median_position * spread,
        "iqr": iqr,
    }


def _volume(rng: np.random.Generator, scaled_returns: np.ndarray, bar_hours: float) -> np.ndarray:
    """Traded quantity: proportional to the bar length and growing with the absolute return."""
    noise = rng.lognormal(0.0, 0.25, size=scaled_returns.size)
    return _HOURLY_VOLUME * bar_hours * noise * (0.5 + np.abs(scaled_returns))


def _maker_ratio(rng: np.random.Generator, shocks: np.ndarray) -> np.ndarray:
    """Share of volume bought by makers: lower on up bars, where takers buy aggressively."""
    logit = -0.8 * shocks + 0.4 * rng.standard_normal(shocks.size)
    return 1.0 / (1.0 + np.exp(-logit))
