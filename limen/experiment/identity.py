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
from collections.abc import Mapping
from typing import Any

_JSON_SCALARS = (str, int, float, bool, type(None))


def value_token(value: Any) -> str | int | float | bool | None:
    """Return a stable, readable, JSON-safe token for ``value``.

    JSON scalars are their own token. Functions and classes become their import path
    (``sklearn.preprocessing.StandardScaler``); tuples, lists and dicts a readable literal of
    their items' tokens; other objects their ``repr`` when it carries no memory address,
    otherwise the import path of their type followed by ``()``.
    """
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
