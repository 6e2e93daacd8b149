"""Read user klines from CSV or Parquet files and check they form a usable time series.

Every problem is reported as a ``ValueError`` that names the file and what to fix, because a
bad row found here costs seconds while the same row found mid-experiment costs a whole run.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
from pandas.api.types import is_bool_dtype, is_datetime64_any_dtype, is_numeric_dtype

from limen.data.schema import DATETIME_DTYPE, REQUIRED_COLUMNS

__all__ = ["read_klines"]

_READERS: dict[str, Callable[[Path], pd.DataFrame]] = {
    ".csv": pd.read_csv,
    ".parquet": pd.read_parquet,
    ".pq": pd.read_parquet,
}


def read_klines(path: str | os.PathLike[str]) -> pd.DataFrame:
    """Read a klines file, chosen by suffix: ``.csv``, or ``.parquet`` / ``.pq`` (pyarrow).

    The file needs the columns ``datetime, open, high, low, close, volume`` (numeric prices and
    volume) and may hold any others, which are kept as read. ``datetime`` may hold ISO 8601
    strings (naive ones are taken as UTC, offsets are converted to UTC), epoch milliseconds, or
    datetimes; it is returned as tz-naive UTC ``datetime64[us]``. Rows must be in strictly
    increasing time order. Rows in error messages are counted from 0, header excluded.

    Args:
        path: The file to read.

    Returns:
        The klines with a fresh ``RangeIndex``.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ValueError: Unsupported suffix, unreadable file, no rows, missing or non-numeric
            required columns, missing or unparseable datetimes, duplicate or unsorted datetimes.
    """
    path = Path(path)
    frame = _read(path)
    if "datetime" not in frame.columns and frame.index.name == "datetime":
        frame = frame.reset_index()
    _check_columns(path, frame)
    frame["datetime"] = _parse_datetimes(path, frame["datetime"])
    _check_order(path, frame["datetime"])
    return frame.reset_index(drop=True)


def _read(path: Path) -> pd.DataFrame:
    reader = _READERS.get(path.suffix.lower())
    if reader is None:
        raise ValueError(
            f"{path}: unsupported klines file suffix {path.suffix!r}; "
            f"use one of {', '.join(_READERS)}."
        )
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such klines file.")
    try:
        frame = reader(path)
    except ValueError as exc:
        raise ValueError(f"{path}: cannot be read as {path.suffix.lower()[1:]}: {exc}") from exc
    if frame.empty:
        raise ValueError(f"{path}: the file holds no klines rows.")
    return frame


def _check_columns(path: Path, frame: pd.DataFrame) -> None:
    missing = [column for column in REQUIRED_COLUMNS if column not in frame.columns]
    if missing:
        raise ValueError(
            f"{path}: missing required klines columns {missing}; "
            f"the file has {[str(column) for column in frame.columns]}."
        )
    not_numeric = [
        f"{column!r} ({frame[column].dtype})"
        for column in REQUIRED_COLUMNS[1:]
        if is_bool_dtype(frame[column]) or not is_numeric_dtype(frame[column])
    ]
    if not_numeric:
        raise ValueError(f"{path}: these klines columns must be numeric: {', '.join(not_numeric)}.")


def _parse_datetimes(path: Path, values: pd.Series) -> pd.Series:
    missing = values.isna().to_numpy()
    if missing.any():
        raise ValueError(f"{path}: 'datetime' is empty at row {_first(missing)} (0-based).")
    parsed = _to_datetime(values)
    unparsed = parsed.isna().to_numpy()
    if unparsed.any():
        row = _first(unparsed)
        value = values.iloc[row : row + 1].tolist()[0]
        raise ValueError(
            f"{path}: cannot parse 'datetime' value {value!r} at row {row} (0-based); "
            "use ISO 8601 strings or epoch milliseconds."
        )
    return parsed.astype(DATETIME_DTYPE)


def _to_datetime(values: pd.Series) -> pd.Series:
    """Parse to tz-naive UTC datetimes; values that cannot be parsed become ``NaT``."""
    if is_datetime64_any_dtype(values):
        return values.dt.tz_convert("UTC").dt.tz_localize(None) if values.dt.tz else values
    if is_numeric_dtype(values) and not is_bool_dtype(values):
        return pd.to_datetime(values, unit="ms", errors="coerce")
    as_numbers = pd.to_numeric(values, errors="coerce")
    if as_numbers.notna().all():
        return pd.to_datetime(as_numbers, unit="ms", errors="coerce")
    parsed = pd.to_datetime(values.astype(str), utc=True, format="ISO8601", errors="coerce")
    return parsed.dt.tz_localize(None)


def _check_order(path: Path, values: pd.Series) -> None:
    times = values.to_numpy()
    duplicated = values.duplicated().to_numpy()
    if duplicated.any():
        row = _first(duplicated)
        earlier = _first(times == times[row])
        raise ValueError(
            f"{path}: duplicate datetime {values.iloc[row]} at rows {earlier} and {row} "
            "(0-based); keep one row per bar."
        )
    backwards = times[1:] < times[:-1]
    if backwards.any():
        row = _first(backwards) + 1
        raise ValueError(
            f"{path}: datetimes are not sorted: row {row} (0-based, {values.iloc[row]}) is "
            f"earlier than row {row - 1} ({values.iloc[row - 1]}); sort the file by datetime."
        )


def _first(mask: np.ndarray) -> int:
    return int(np.flatnonzero(mask)[0])
