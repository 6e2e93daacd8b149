"""Klines for experiments: an embedded synthetic generator and a reader for user files."""

from limen.data.readers import read_klines
from limen.data.schema import KLINE_COLUMNS, REQUIRED_COLUMNS
from limen.data.synthetic import synthetic_klines

__all__ = ["KLINE_COLUMNS", "REQUIRED_COLUMNS", "read_klines", "synthetic_klines"]
