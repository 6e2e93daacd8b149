"""Stable identities: readable value tokens, the round id hash and the parameter-space hash.

Everything that needs to name a value or a round calls these functions, so a round has the
same id in the study, in ``results.csv``, in ``round_data.jsonl`` and after a resume.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import math
import sys
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

__all__ = [
    "data_fingerprint",
    "match_value",
    "plain_value",
    "round_id",
    "source_hash",
    "space_hash",
    "value_key",
    "value_token",
]

_JSON_SCALARS = (str, int, float, bool, type(None))
_NUMPY_TIMES = frozenset({"datetime64", "timedelta64"})


def plain_value(value: Any) -> Any:
    """``value`` as the Python object it stands for: numpy and pandas scalars become Python's.

    A value read back from a DataFrame (``np.int64``, ``np.float64``, ``np.bool_``,
    ``pd.Timestamp``) is the same parameter value as the Python one in the parameter space, so
    it must key and hash the same. Other values (Python values included) are returned as they
    are, which keeps every id computed from Python values unchanged. Nothing is imported.
    """
    kind = type(value)
    module = kind.__module__ or ""
    if module == "numpy":
        if kind.__name__ in _NUMPY_TIMES or getattr(value, "ndim", None) != 0:
            return value
        return value.item()
    if module.startswith("pandas"):
        if isinstance(value, datetime) and not getattr(value, "nanosecond", 0):
            return value.to_pydatetime()
        if isinstance(value, timedelta) and not getattr(value, "nanoseconds", 0):
            return value.to_pytimedelta()
    return value


def value_token(value: Any) -> str | int | float | bool | None:
    """Return a stable, readable, JSON-safe token for ``value``.

    JSON scalars are their own token. Functions and classes become their import path
    (``sklearn.preprocessing.StandardScaler``); tuples, lists and dicts a readable literal of
    their items' tokens; other objects their ``repr`` when it carries no memory address,
    otherwise the import path of their type followed by ``()``. numpy and pandas scalars get
    the token of the Python value they stand for (``plain_value``).
    """
    value = plain_value(value)
    if isinstance(value, float) and not math.isfinite(value):
        return repr(value)
    if isinstance(value, _JSON_SCALARS):
        return value
    if inspect.isclass(value) or inspect.isroutine(value):
        name = getattr(value, "__qualname__", None) or getattr(value, "__name__", repr(value))
        return f"{_public_module(value, name)}.{name}"
    if isinstance(value, tuple):
        inner = ", ".join(_literal(item) for item in value)
        return f"({inner},)" if len(value) == 1 else f"({inner})"
    if isinstance(value, list):
        return "[" + ", ".join(_literal(item) for item in value) + "]"
    if isinstance(value, Mapping):
        items = sorted((str(k), _literal(v)) for k, v in value.items())
        return "{" + ", ".join(f"{k!r}: {v}" for k, v in items) + "}"
    text = repr(value)
    if " at 0x" in text:
        kind = type(value)
        return f"{kind.__module__}.{kind.__qualname__}()"
    return text


def value_key(value: Any) -> str:
    """The key under which ``value`` is grouped and compared: the JSON text of its token.

    Reducers, MSQ filters and the id hash share this rule, so ``np.int64(1)`` and ``1`` share
    a key while ``True``, ``1`` and ``1.0`` keep three (``==`` would merge them).
    """
    return json.dumps(value_token(value), sort_keys=True, default=str)


def match_value(candidates: Sequence[Any], value: Any) -> Any:
    """The one of ``candidates`` (declared parameter values) that ``value`` stands for.

    ``value`` may come from a log or a file: a numpy scalar, or the readable token a CSV cell
    holds (``"sklearn.preprocessing.StandardScaler"``, ``"1"`` in a mixed column, ``1.0`` in a
    column pandas made float). Same key first; else the single candidate whose token reads the
    same. Without a match the plain value itself is returned: a file never creates an object.
    """
    value = plain_value(value)
    key = value_key(value)
    for candidate in candidates:
        if value_key(candidate) == key:
            return candidate
    loose = [c for c in candidates if _loose_key(c) == _loose_key(value)]
    return loose[0] if len(loose) == 1 else value


def _loose_key(value: Any) -> str:
    """How a value reads in a CSV cell: ``1`` and ``1.0`` alike, None and NaN both empty."""
    token = value_token(value)
    if token is None or token == "nan":
        return ""
    if isinstance(token, float) and token.is_integer():
        return str(int(token))
    return str(token)


def _public_module(value: Any, name: str) -> str:
    """The shortest loaded module path that exports ``value`` under ``name``.

    ``sklearn.preprocessing._data.StandardScaler`` reads as the documented
    ``sklearn.preprocessing.StandardScaler``; nothing is imported to find it.
    """
    module = getattr(value, "__module__", None) or "builtins"
    parts = module.split(".")
    for end in range(1, len(parts)):
        candidate = sys.modules.get(".".join(parts[:end]))
        if candidate is not None and getattr(candidate, name, None) is value:
            return candidate.__name__
    return module


def _literal(value: Any) -> str:
    token = value_token(value)
    return repr(token) if isinstance(token, str) and not _is_structured(value) else str(token)


def _is_structured(value: Any) -> bool:
    return (
        isinstance(value, tuple | list | Mapping)
        or inspect.isclass(value)
        or inspect.isroutine(value)
    )


def round_id(params: Mapping[str, Any]) -> str:
    """The 64-hex SHA-256 id of one round's decoded parameters.

    Keys starting with ``_`` (metadata) are ignored; key order does not matter; ``1``,
    ``1.0`` and ``True`` give different ids.
    """
    payload = {k: value_token(v) for k, v in params.items() if not str(k).startswith("_")}
    return _sha256_json(payload)


def space_hash(params: Mapping[str, Any]) -> str:
    """The 64-hex content hash of a parameter space (values in order, key order ignored)."""
    payload = {str(k): _space_entry(v) for k, v in params.items()}
    return _sha256_json(payload)


def source_hash(obj: Any) -> str | None:
    """SHA-256 of the source file that defines ``obj`` (an SFD module), or None if it has none.

    Stored with the study so a later rebuild can tell that the SFD was edited since the run.
    """
    try:
        path = inspect.getsourcefile(obj)
    except TypeError:
        return None
    if path is None:
        return None
    try:
        with open(path, "rb") as handle:
            return hashlib.sha256(handle.read()).hexdigest()
    except OSError:
        return None


def data_fingerprint(data: Any) -> str | None:
    """SHA-256 of a DataFrame's values, index, column names and dtypes (None for other data).

    Stored with the study so a later rebuild can tell that the data it gets is not the data
    the rounds ran on.
    """
    import pandas as pd

    if not isinstance(data, pd.DataFrame):
        return None
    digest = hashlib.sha256()
    digest.update(repr([(str(c), str(t)) for c, t in data.dtypes.items()]).encode("utf-8"))
    digest.update(pd.util.hash_pandas_object(data, index=True).to_numpy().tobytes())
    return digest.hexdigest()


def _space_entry(values: Any) -> Any:
    if isinstance(values, list):
        return [_typed_token(v) for v in values]
    return _typed_token(values)


def _typed_token(value: Any) -> list[Any]:
    return [type(value).__name__, value_token(value)]


def _sha256_json(payload: Any) -> str:
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()
