"""Causal indicators and features for klines, shaped as Manifest steps.

Every function takes a klines frame and returns a copy with new columns, one row per input row.
Each value uses only its own bar and earlier ones, so a function gives the same values for a
bar whether it sees one split or the whole history after it: the first rows of a frame are NaN
while a look-back window warms up, and the Manifest drops them. The three volatility estimators
share one signature and one output column, so an SFD can search over them as a parameter.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from limen.utils.validation import Interval, validate_params

__all__ = [
    "atr",
    "candle_shape",
    "close_to_close_volatility",
    "garman_klass_volatility",
    "lags",
    "order_flow_imbalance",
    "parkinson_volatility",
    "ppo",
    "roc",
    "rsi",
    "volume_ratio",
]


def roc(df: pd.DataFrame, period: int, column: str = "close") -> pd.DataFrame:
    """Rate of change over ``period`` bars, as a fraction, in ``roc_{period}``."""
    _check_window("roc", "period", period)
    return df.assign(**{f"roc_{period}": df[column].pct_change(period, fill_method=None)})


def rsi(df: pd.DataFrame, period: int = 14) -> pd.DataFrame:
    """Wilder's relative strength index (0-100) in ``rsi_{period}``."""
    _check_window("rsi", "period", period)
    delta = df["close"].diff()
    gain = _wilder(delta.clip(lower=0), period)
    loss = _wilder((-delta).clip(lower=0), period)
    return df.assign(**{f"rsi_{period}": 100 - 100 / (1 + gain / loss)})


def atr(df: pd.DataFrame, period: int = 14) -> pd.DataFrame:
    """Wilder's average true range as a fraction of the close, in ``atr_{period}``."""
    _check_window("atr", "period", period)
    previous = df["close"].shift(1)
    true_range = pd.concat(
        [df["high"] - df["low"], (df["high"] - previous).abs(), (df["low"] - previous).abs()],
        axis=1,
    ).max(axis=1)
    return df.assign(**{f"atr_{period}": _wilder(true_range, period) / df["close"]})


def ppo(df: pd.DataFrame, fast: int = 12, slow: int = 26) -> pd.DataFrame:
    """Percentage price oscillator: the fast-slow EMA gap in percent of the slow EMA, in ``ppo``."""
    _check_window("ppo", "fast", fast)
    _check_window("ppo", "slow", slow)
    fast_ema = df["close"].ewm(span=fast, adjust=False, min_periods=slow).mean()
    slow_ema = df["close"].ewm(span=slow, adjust=False, min_periods=slow).mean()
    return df.assign(ppo=100 * (fast_ema - slow_ema) / slow_ema)


def close_to_close_volatility(
    df: pd.DataFrame, window: int, name: str = "volatility"
) -> pd.DataFrame:
    """Standard deviation of log returns over ``window`` bars."""
    _check_window("close_to_close_volatility", "window", window)
    log_returns = np.log(df["close"]).diff()
    return df.assign(**{name: log_returns.rolling(window).std()})


def parkinson_volatility(df: pd.DataFrame, window: int, name: str = "volatility") -> pd.DataFrame:
    """Parkinson's high-low volatility over ``window`` bars: ignores drift, uses the range."""
    _check_window("parkinson_volatility", "window", window)
    squared_range = np.log(df["high"] / df["low"]) ** 2
    variance = squared_range.rolling(window).mean() / (4 * math.log(2))
    return df.assign(**{name: np.sqrt(variance)})


def garman_klass_volatility(
    df: pd.DataFrame, window: int, name: str = "volatility"
) -> pd.DataFrame:
    """Garman-Klass volatility over ``window`` bars: the range corrected by the open-close move."""
    _check_window("garman_klass_volatility", "window", window)
    squared_range = np.log(df["high"] / df["low"]) ** 2
    squared_body = np.log(df["close"] / df["open"]) ** 2
    per_bar = 0.5 * squared_range - (2 * math.log(2) - 1) * squared_body
    return df.assign(**{name: np.sqrt(per_bar.rolling(window).mean().clip(lower=0))})


def volume_ratio(df: pd.DataFrame, window: int) -> pd.DataFrame:
    """Volume relative to its mean over the last ``window`` bars, in ``volume_ratio_{window}``."""
    _check_window("volume_ratio", "window", window)
    ratio = df["volume"] / df["volume"].rolling(window).mean()
    return df.assign(**{f"volume_ratio_{window}": ratio})


def order_flow_imbalance(df: pd.DataFrame) -> pd.DataFrame:
    """Taker-buy share minus taker-sell share of the volume (-1 to 1), from ``maker_ratio``."""
    return df.assign(order_flow_imbalance=1 - 2 * df["maker_ratio"])


def candle_shape(df: pd.DataFrame) -> pd.DataFrame:
    """The bar's body (``body_pct``, signed) and range (``range_pct``) as fractions of price."""
    return df.assign(
        body_pct=(df["close"] - df["open"]) / df["open"],
        range_pct=(df["high"] - df["low"]) / df["close"],
    )


def lags(df: pd.DataFrame, column: str, periods: int) -> pd.DataFrame:
    """The values of ``column`` 1 to ``periods`` bars ago, in ``{column}_lag_{k}``."""
    _check_window("lags", "periods", periods)
    shifted = {f"{column}_lag_{k}": df[column].shift(k) for k in range(1, periods + 1)}
    return df.assign(**shifted)


def _wilder(values: pd.Series, period: int) -> pd.Series:
    return values.ewm(alpha=1 / period, adjust=False, min_periods=period).mean()


def _check_window(function: str, name: str, value: object) -> None:
    validate_params({name: [Interval(int, 1, None)]}, {name: value}, function)
