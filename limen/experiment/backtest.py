"""A next-bar, long/flat backtest of binary predictions, vectorised with numpy.

A prediction of 1 at bar ``t`` holds a long position from bar ``t``'s close to bar ``t+1``'s
close; 0 stays flat. The bar's gross return is ``position_t * (close_{t+1} / close_t - 1)``.
Each round trip (entry and exit) costs ``cost_bps`` basis points, half charged on the first held
bar and half on the last, so every cost falls inside its trade and the net return of the whole
track is exactly ``gross - trades * cost_bps / 1e4``. Returns add up (no compounding), which
keeps the per-bar track a plain series for Sharpe ratios and the acceptance report.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

__all__ = [
    "BACKTEST_COLUMNS",
    "DEFAULT_COST_BPS",
    "Backtest",
    "backtest",
    "forward_returns",
    "positions",
    "sharpe",
]

DEFAULT_COST_BPS = 10.0
BACKTEST_COLUMNS = (
    "gross_return",
    "net_return",
    "cost_return",
    "sharpe_per_bar",
    "max_drawdown",
    "trade_count",
    "win_rate",
    "exposure",
    "n_bars",
)


@dataclass(frozen=True)
class Backtest:
    """The per-bar tracks of one backtest and its summary (``BACKTEST_COLUMNS``)."""

    gross: np.ndarray
    net: np.ndarray
    summary: dict[str, Any]


def forward_returns(bars: pd.DataFrame) -> pd.Series:
    """``close_{t+1} / close_t - 1`` per bar, indexed by datetime (NaN on the last bar)."""
    close = bars["close"].to_numpy(dtype=float)
    ahead = np.append(close[1:], np.nan)
    return pd.Series(ahead / close - 1.0, index=pd.Index(bars["datetime"]), name="next_return")


def positions(preds: Any) -> np.ndarray:
    """Long (1) or flat (0) per prediction: 1 for a positive class, or a value above 0.5."""
    values = np.asarray(preds, dtype=float).ravel()
    return (np.nan_to_num(values, nan=0.0) > 0.5).astype(float)


def backtest(preds: Any, next_returns: Any, cost_bps: float = DEFAULT_COST_BPS) -> Backtest:
    """Backtest ``preds`` against each bar's next-bar return, ``cost_bps`` per round trip.

    Args:
        preds: one binary prediction per bar.
        next_returns: the return from the bar's close to the next bar's close (NaN counts as 0).
        cost_bps: the cost of one round trip (entry + exit), in basis points.
    """
    if not isinstance(cost_bps, int | float) or isinstance(cost_bps, bool) or cost_bps < 0:
        raise ValueError(f"The 'cost_bps' parameter must be a number >= 0. Got {cost_bps!r}.")
    held = positions(preds)
    returns = np.nan_to_num(np.asarray(next_returns, dtype=float).ravel(), nan=0.0)
    if len(held) != len(returns):
        raise ValueError(
            f"backtest needs one prediction per bar: got {len(held)} predictions for "
            f"{len(returns)} bars."
        )
    before = np.concatenate(([0.0], held[:-1]))
    after = np.concatenate((held[1:], [0.0]))
    entries = held * (1.0 - before)
    exits = held * (1.0 - after)
    half = cost_bps / 2.0 / 1e4
    gross = held * returns
    net = gross - half * (entries + exits)
    return Backtest(gross, net, _summary(held, gross, net, entries))


def _summary(
    held: np.ndarray, gross: np.ndarray, net: np.ndarray, entries: np.ndarray
) -> dict[str, Any]:
    trades = int(entries.sum())
    equity = np.concatenate(([0.0], np.cumsum(net)))
    drawdown = float(np.max(np.maximum.accumulate(equity) - equity)) if len(net) else 0.0
    if trades:
        trade_of_bar = (np.cumsum(entries) - 1).astype(int)
        pnl = np.bincount(trade_of_bar[held > 0], weights=net[held > 0], minlength=trades)
        win_rate: float | None = float(np.mean(pnl > 0))
    else:
        win_rate = None
    return {
        "gross_return": float(gross.sum()),
        "net_return": float(net.sum()),
        "cost_return": float(gross.sum() - net.sum()),
        "sharpe_per_bar": sharpe(net),
        "max_drawdown": drawdown,
        "trade_count": trades,
        "win_rate": win_rate,
        "exposure": float(held.mean()) if len(held) else 0.0,
        "n_bars": len(net),
    }


def sharpe(track: np.ndarray) -> float | None:
    """Per-bar Sharpe ratio ``mean / std`` (ddof 1); None for fewer than 2 bars or a flat track."""
    if len(track) < 2:
        return None
    spread = float(np.std(track, ddof=1))
    if not math.isfinite(spread) or spread == 0.0:
        return None
    return float(np.mean(track)) / spread
