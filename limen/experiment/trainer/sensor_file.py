"""The Sensor file: one file, checked before it is read, loaded without running its code.

A Sensor file may come from anyone, so loading one must not run code it holds. By default the
body is a skops archive: loading it builds only types on a trusted list (scikit-learn and
NumPy types that skops trusts, Limen's own feature, target and data functions, the
foundational SFDs) plus the types the caller names with ``trusted=[...]``. A file that names
any other type is refused before anything in it is built. A pickle body, for models skops
cannot store, runs code when loaded: it is written only signed with a secret key (HMAC-SHA256)
and read only with that key.

Layout (bytes)::

    LIMEN-SENSOR 2\\n
    sha256 <hex digest of the rest>\\n          (or: hmac-sha256 <hex>, saved with a key)
    <one line of JSON: format, types, round id, metrics, provenance, readable parameters>\\n
    <body: a skops archive, or a pickle (signed files only)>

Version 1 files (before skops) have a pickle body: they load only with their key.
"""

from __future__ import annotations

import hashlib
import hmac
import importlib
import inspect
import json
import os
import pickle
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from sklearn.ensemble._hist_gradient_boosting.predictor import TreePredictor
from sklearn.preprocessing import MaxAbsScaler, MinMaxScaler, RobustScaler, StandardScaler

from limen.errors import InvalidParameterError
from limen.experiment.trainer.errors import (
    SensorFileNotFoundError,
    SensorIntegrityError,
    SensorTrustError,
)

__all__ = [
    "DIGEST",
    "FORMATS",
    "MAGIC",
    "MAGIC_V1",
    "PICKLE_PROTOCOL",
    "SIGNATURE",
    "STATE_KEYS",
    "TRUSTED_CLASSES",
    "TRUSTED_CLASS_MODULES",
    "TRUSTED_MODULES",
    "is_trusted",
    "read_sensor_file",
    "untrusted_types",
    "write_sensor_file",
]

MAGIC = b"LIMEN-SENSOR 2\n"
MAGIC_V1 = b"LIMEN-SENSOR 1\n"
SKOPS, PICKLE = "skops", "pickle"
FORMATS = (SKOPS, PICKLE)
PICKLE_PROTOCOL = 5
DIGEST = "sha256"
SIGNATURE = "hmac-sha256"
STATE_KEYS = frozenset(
    {"manifest", "model", "fitted_params", "round_params", "round_id", "metrics", "provenance"}
)
# Modules whose own functions and classes a Sensor may name without the caller's say-so: they
# are Limen's pure feature, target, result and data functions and the foundational SFDs.
TRUSTED_MODULES = (
    "limen.data.synthetic",
    "limen.sfd.indicators",
    "limen.sfd.targets",
    "limen.sfd.results",
    "limen.sfd.foundational_sfd.logreg_binary",
    "limen.sfd.foundational_sfd.random_binary",
    "limen.sfd.foundational_sfd.gbm_regressor",
)
# Modules whose own classes (not functions) a Sensor may name: the manifest's records.
TRUSTED_CLASS_MODULES = ("limen.experiment.manifest_core",)
# Classes named as values (a parameter ``scaler=StandardScaler``) or that skops leaves to the
# caller although they hold only arrays (the trees of histogram gradient boosting).
TRUSTED_CLASSES = (StandardScaler, RobustScaler, MinMaxScaler, MaxAbsScaler, TreePredictor)


def write_sensor_file(
    path: Path,
    state: Mapping[str, Any],
    info: Mapping[str, Any],
    *,
    key: bytes | str | None,
    format: str,
) -> Path:
    """Write a Sensor's state as one file, atomically (temp file then ``os.replace``).

    Raises:
        ValueError: ``format`` is unknown, or ``pickle`` without a key.
        TypeError: the state holds an object skops cannot store (use pickle with a key).
    """
    payload = _payload(state, key, format)
    header = {**info, "format": format, "types": _body_types(payload) if format == SKOPS else []}
    body = json.dumps(header, sort_keys=True, default=str).encode("utf-8") + b"\n" + payload
    kind, digest = _digest(body, key)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    with tmp.open("wb") as handle:
        handle.write(MAGIC + f"{kind} {digest}\n".encode("ascii") + body)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)
    return path


def read_sensor_file(
    path: Path, *, key: bytes | str | None, trusted: Iterable[str | type] | None
) -> dict[str, Any]:
    """The state of a Sensor file, once its digest and every type it names are accepted.

    Raises:
        SensorIntegrityError: not a Sensor file, damaged, or changed since it was saved.
        SensorTrustError: it names types that are not trusted, or it is an unsigned pickle.
    """
    extra = _type_names(trusted)
    if key is not None:
        _key_bytes(key)
    format, payload = _checked_payload(path, key)
    if format == PICKLE:
        return _state(path, _unpickle, payload)
    types = _types_of(path, payload)
    refused = [name for name in types if name not in extra and not is_trusted(name)]
    if refused:
        raise SensorTrustError(
            f"{path} names types that are not trusted: {refused}. Nothing in it was loaded. If "
            "you trust whoever made the file and these types come from packages you have "
            "installed (e.g. your SFD), load it with Sensor.load(path, trusted=[...]) listing "
            "them (CLI: limen predict --trust TYPE).",
            refused,
        )
    return _state(path, lambda data: _skops_io().loads(data, trusted=types), payload)


def untrusted_types(path: Path, *, key: bytes | str | None = None) -> list[str]:
    """The types a Sensor file names that are not trusted by default (nothing is loaded).

    Raises:
        SensorIntegrityError: not a Sensor file, damaged, or changed since it was saved.
        SensorTrustError: the file is a pickle that is not signed.
    """
    format, payload = _checked_payload(path, key)
    if format == PICKLE:
        return []
    return [name for name in _types_of(path, payload) if not is_trusted(name)]


def is_trusted(name: str) -> bool:
    """Whether a Sensor file may name the type ``name`` without the caller listing it."""
    if name in {f"{cls.__module__}.{cls.__qualname__}" for cls in TRUSTED_CLASSES}:
        return True
    module, _, attr = name.rpartition(".")
    if module not in TRUSTED_MODULES + TRUSTED_CLASS_MODULES:
        return False
    obj = getattr(importlib.import_module(module), attr, None)
    if getattr(obj, "__module__", None) != module:
        return False
    return inspect.isclass(obj) or (module in TRUSTED_MODULES and inspect.isfunction(obj))


def _skops_io() -> Any:
    """``skops.io``, imported when a Sensor is first saved or loaded: importing it lists every
    scikit-learn estimator (seconds), which runs and commands that never touch a Sensor skip."""
    import skops.io

    return skops.io


def _payload(state: Mapping[str, Any], key: bytes | str | None, format: str) -> bytes:
    if format == PICKLE:
        if key is None:
            raise InvalidParameterError(
                "The 'key' parameter of Sensor.save must be given with format='pickle': a "
                "pickle runs code when loaded, so it is only written signed. Pass key=..., or "
                "use the default format='skops'."
            )
        return pickle.dumps(dict(state), protocol=PICKLE_PROTOCOL)
    if format != SKOPS:
        raise InvalidParameterError(
            f"The 'format' parameter of Sensor.save must be one of {list(FORMATS)}. Got "
            f"{format!r} instead."
        )
    try:
        return _skops_io().dumps(dict(state))
    except Exception as exc:
        raise InvalidParameterError(
            f"The Sensor holds an object that skops cannot store ({type(exc).__name__}: {exc}). "
            "Save it with format='pickle' and key=... (only holders of the key can load it)."
        ) from exc


def _checked_payload(path: Path, key: bytes | str | None) -> tuple[str, bytes]:
    """The body's format and bytes, after the digest (or signature) and the format check."""
    if not path.is_file():
        raise SensorFileNotFoundError(
            f"Sensor file {str(path)!r} does not exist or is not a file: pass the path of a "
            "file written by Sensor.save or `limen train`."
        )
    raw = path.read_bytes()
    version = next((magic for magic in (MAGIC, MAGIC_V1) if raw.startswith(magic)), None)
    if version is None:
        raise SensorIntegrityError(
            f"{path} is not a Limen Sensor file (it does not start with {MAGIC.strip()!r}). "
            "Create Sensor files with Sensor.save or `limen train`."
        )
    body, signed = _verified_body(path, raw[len(version) :], key)
    try:
        header, payload = body.split(b"\n", 1)
        info = json.loads(header)
    except (ValueError, UnicodeDecodeError):
        raise _damaged(path, "its header line is not JSON") from None
    if not isinstance(info, dict):
        raise _damaged(path, "its header line is not a JSON object")
    format = PICKLE if version == MAGIC_V1 else info.get("format")
    if format not in FORMATS:
        raise _damaged(path, f"it names an unknown format {format!r}")
    if format == PICKLE and not signed:
        raise SensorTrustError(
            f"{path} holds a pickle, which runs code when loaded, and is not signed: it is "
            "refused. Ask whoever made it for a file saved with the default format (skops), or "
            "for a signed one and its key (key=...)."
        )
    return format, payload


def _verified_body(path: Path, rest: bytes, key: bytes | str | None) -> tuple[bytes, bool]:
    """The contents after the digest line once the digest matches, and whether it is signed."""
    try:
        line, body = rest.split(b"\n", 1)
        kind, recorded = line.decode("ascii").split(" ", 1)
    except (ValueError, UnicodeDecodeError):
        raise _damaged(path, "its digest line is unreadable") from None
    if kind not in (DIGEST, SIGNATURE):
        raise SensorIntegrityError(f"{path} names an unknown digest {kind!r}; it is refused.")
    if kind == SIGNATURE and key is None:
        raise SensorIntegrityError(
            f"{path} is signed (HMAC-SHA256): pass the key it was saved with, key=..."
        )
    if kind == DIGEST and key is not None:
        raise SensorIntegrityError(
            f"{path} is not signed, but a key was given: it is refused, because anyone could "
            "have written it. Save it again with key=... from a Sensor you trust."
        )
    _, expected = _digest(body, key)
    if not hmac.compare_digest(expected, recorded.strip()):
        what = "signature does not match the key" if key is not None else "SHA-256 does not match"
        raise SensorIntegrityError(
            f"{path} was changed after it was saved (its {what} the one recorded in the file). "
            "The file is refused; re-create it with Trainer.train or `limen train`, and load "
            "only Sensor files you trust."
        )
    return body, kind == SIGNATURE


def _types_of(path: Path, payload: bytes) -> list[str]:
    try:
        return _body_types(payload)
    except Exception as exc:
        raise _damaged(path, f"its body is not a skops archive ({type(exc).__name__})") from None


def _body_types(payload: bytes) -> list[str]:
    """Every type a skops archive names beyond skops's own trusted defaults (read, not run)."""
    return sorted(_skops_io().get_untrusted_types(data=payload))


def _state(path: Path, decode: Any, payload: bytes) -> dict[str, Any]:
    try:
        state = decode(payload)
    except Exception as exc:
        raise _damaged(path, f"its body cannot be read ({type(exc).__name__}: {exc})") from None
    if not isinstance(state, dict) or set(state) != STATE_KEYS:
        raise _damaged(path, "its body is not a Sensor's state")
    return state


def _unpickle(payload: bytes) -> Any:
    return pickle.loads(payload)


def _damaged(path: Path, why: str) -> SensorIntegrityError:
    return SensorIntegrityError(
        f"{path} is damaged or not a Limen Sensor file: {why}. The file is refused; re-create "
        "it with Trainer.train or `limen train`."
    )


def _digest(body: bytes, key: bytes | str | None) -> tuple[str, str]:
    if key is None:
        return DIGEST, hashlib.sha256(body).hexdigest()
    return SIGNATURE, hmac.new(_key_bytes(key), body, hashlib.sha256).hexdigest()


def _key_bytes(key: bytes | str) -> bytes:
    if isinstance(key, str):
        key = key.encode("utf-8")
    if not isinstance(key, bytes) or not key:
        # The key is a secret: the message names its type, never its value.
        raise InvalidParameterError(
            "The 'key' parameter of a Sensor file must be non-empty bytes or str. Got "
            f"{'an empty key' if isinstance(key, bytes | str) else type(key).__name__} instead."
        )
    return key


def _type_names(trusted: Iterable[str | type] | None) -> set[str]:
    """``trusted=`` as type names: strings as given, classes and functions by import path."""
    if trusted is None:
        return set()
    if isinstance(trusted, str | bytes) or not isinstance(trusted, Iterable):
        raise InvalidParameterError(
            "The 'trusted' parameter of Sensor.load must be a list of type names (str) or "
            f"types, e.g. ['my_sfd.MyModel']. Got {trusted!r} instead."
        )
    names = set()
    for item in trusted:
        if isinstance(item, str):
            names.add(item)
        elif inspect.isclass(item) or inspect.isroutine(item):
            names.add(f"{item.__module__}.{item.__qualname__}")
        else:
            raise InvalidParameterError(
                "The 'trusted' parameter of Sensor.load must hold type names (str) or types. "
                f"Got {item!r} instead."
            )
    return names
