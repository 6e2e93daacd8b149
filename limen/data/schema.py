"""Column names and the datetime dtype shared by every klines frame Limen builds or reads."""

__all__ = ["DATETIME_DTYPE", "KLINE_COLUMNS", "REQUIRED_COLUMNS"]

REQUIRED_COLUMNS: tuple[str, ...] = ("datetime", "open", "high", "low", "close", "volume")
"""Columns every klines frame must have; ``read_klines`` rejects files without them."""

KLINE_COLUMNS: tuple[str, ...] = (
    "datetime",
    "open",
    "high",
    "low",
    "close",
    "mean",
    "std",
    "median",
    "iqr",
    "volume",
    "maker_ratio",
    "no_of_trades",
    "liquidity_sum",
    "maker_volume",
    "maker_liquidity",
)
"""The columns of ``synthetic_klines``, in order."""

DATETIME_DTYPE = "datetime64[us]"
"""Bar open times are tz-naive UTC at microsecond resolution (pandas' own default since 3.0)."""
