"""Two small facts about values, kept in one place: what counts as a number, and how a value
becomes JSON data.

``is_number`` is true for Python and numpy ints and floats, never for a bool (``True`` is an
``int`` to Python, but a flag to a user). ``jsonable`` turns containers, numpy and pandas values
into JSON data; in strict mode (the default) anything JSON cannot hold, NaN and infinities
included, becomes the readable token Limen stores for it (``value_token``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import date, datetime
from numbers import Real
from typing import Any

import numpy as np
import pandas as pd

from limen.experiment.identity import value_token

__all__ = ["is_number", "jsonable"]


def is_number(value: Any, *, finite: bool = False) -> bool:
    """Whether ``value`` is a real number (numpy included) and not a bool.

    Args:
        value: anything.
        finite: also require a finite value (no NaN, no infinity).
    """
    if isinstance(value, bool | np.bool_) or not isinstance(value, Real):
        return False
    return not finite or math.isfinite(value)


def jsonable(value: Any, *, strict: bool = True) -> Any:
    """``value`` as JSON data: mappings as dicts with str keys, lists, tuples, arrays, frames and
    series as lists, numpy scalars as Python numbers, dates as ISO 8601 text.

    Args:
        value: anything.
        strict: turn every other value, and NaN and infinities, into its readable token
            (``value_token``) so that ``json.dumps(..., allow_nan=False)`` accepts the result;
            with False such values are returned as they are.
    """
    if isinstance(value, pd.DataFrame | pd.Series):
        value = value.to_numpy()
    if isinstance(value, np.ndarray):
        value = value.tolist()
    if isinstance(value, Mapping):
        return {str(k): jsonable(v, strict=strict) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v, strict=strict) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, pd.Timestamp | datetime | date):
        return value.isoformat()
    return value_token(value) if strict else value
