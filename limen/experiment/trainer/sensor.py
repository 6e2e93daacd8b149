"""Sensor: a trained round that turns new raw bars into predictions, portable as one file.

A Sensor holds what a round needs at inference time: the manifest's preparation steps, the
fitted preparation (feature order, scaler, target parameters), the fitted model, the round's
real parameter values, its validated metrics and its provenance. ``predict`` applies exactly
the preparation of training, fitting nothing, and calls the model.

Trust model. A Sensor file is a pickle: loading it runs code, exactly like importing a module.
Load only Sensor files you made or received from someone you trust, over a channel you trust.
Functions and classes among the parameters, the steps and the model are stored by their import
path and re-imported on load, so the packages they come from (the SFD, scikit-learn, ...) must
be installed where the file is loaded. ``Sensor.load`` checks a SHA-256 digest of the file's
contents before unpickling anything, so a damaged or edited file is refused; that digest
detects accidents and casual edits, not a forger who rewrites it too. For authenticity, save
with ``key=...`` (an HMAC-SHA256 with your secret key) and load with the same key: a file
signed with another key, or not signed, is then refused.

File layout (bytes)::

    LIMEN-SENSOR 1\\n
    sha256 <hex digest of the rest>\\n          (or: hmac-sha256 <hex>)
    <one line of JSON: round id, metrics, provenance, readable parameter values>\\n
    <pickle protocol 5 of the Sensor's state>
"""

from __future__ import annotations

import copy
import hashlib
import hmac
import json
import logging
import os
import pickle
from collections.abc import Mapping
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from limen.experiment.identity import value_token
from limen.experiment.manifest_core import DATETIME_COLUMN, Manifest
from limen.experiment.trainer.errors import SensorIntegrityError

logger = logging.getLogger(__name__)

MAGIC = b"LIMEN-SENSOR 1\n"
PICKLE_PROTOCOL = 5
DIGEST = "sha256"
SIGNATURE = "hmac-sha256"
WARM_UP = "warm-up"
NULL_FEATURES = "null-features"
VERSIONED_PACKAGES = ("limen", "optuna", "scikit-learn", "numpy", "pandas")


class Sensor:
    """A trained round: ``predict(raw_bars)`` gives one prediction per bar.

    Built by ``Trainer.train``; saved with ``save`` and re-created with ``Sensor.load``.

    Attributes:
        round_id: The 64-hex id of the round.
        model: The fitted model (its ``predict`` is called; ``predict_proba`` when present).
        provenance: Where the Sensor comes from: SFD module and source hash, study, storage
            (without password), trial number, library versions, data fingerprint, time.
    """

    def __init__(
        self,
        *,
        manifest: Manifest,
        model: Any,
        fitted_params: Mapping[str, Any],
        round_params: Mapping[str, Any],
        round_id: str,
        metrics: Mapping[str, Any],
        provenance: Mapping[str, Any],
    ) -> None:
        if not callable(getattr(model, "predict", None)):
            raise TypeError(
                f"The 'model' of a Sensor must have a predict() method. Got "
                f"{type(model).__name__} instead: the model function must return the fitted "
                "estimator as '_model'."
            )
        self._manifest = manifest
        self.model = model
        self._fitted_params = dict(fitted_params)
        self._round_params = dict(round_params)
        self.round_id = round_id
        self._metrics = dict(metrics)
        self.provenance = copy.deepcopy(dict(provenance))

    def __repr__(self) -> str:
        return (
            f"Sensor(round_id={self.round_id[:12]}..., sfd={self.provenance.get('sfd_module')}, "
            f"trial={self.provenance.get('trial_number')})"
        )

    @property
    def round_params(self) -> dict[str, Any]:
        """The round's real parameter values (functions and classes included)."""
        return dict(self._round_params)

    @property
    def metrics(self) -> dict[str, Any]:
        """The round's metrics as stored by the experiment and reproduced by the Trainer."""
        return dict(self._metrics)

    @property
    def fitted_params(self) -> dict[str, Any]:
        """The fitted preparation: feature names (in model order), scaler, target, column."""
        return dict(self._fitted_params)

    @property
    def feature_names(self) -> list[str]:
        """The model's input columns, in order."""
        return list(self._fitted_params["feature_names"])

    # ----------------------------------------------------------------------------- predict

    def predict(self, raw_data: pd.DataFrame) -> pd.DataFrame:
        """Predict every row of ``raw_data`` (klines, oldest first).

        The manifest's indicators and features run on the whole frame, then the fitted scaler
        and the model, exactly as in training. A row whose features are incomplete gets a
        null prediction and a reason: ``'warm-up'`` before the first complete row (not enough
        history for the look-back windows), ``'null-features'`` after it (missing values in
        the input). Data without the required columns raises ``ValueError``.

        Returns:
            One row per input row (same index): ``datetime``, ``prediction`` (nullable),
            ``probability`` (of the positive class for a binary classifier, else null) and
            ``reason`` (None when predicted).
        """
        features = self._manifest.prepare_features(
            raw_data, self._round_params, self._fitted_params
        )
        complete = features.notna().all(axis=1).to_numpy()
        predictions = pd.Series(pd.NA, index=raw_data.index, dtype=object)
        probabilities = pd.Series(np.nan, index=raw_data.index, dtype="Float64")
        if complete.any():
            rows = features.loc[complete]
            predictions.loc[complete] = list(np.asarray(self.model.predict(rows)).tolist())
            positive = self._positive_probability(rows)
            if positive is not None:
                probabilities.loc[complete] = positive
        return pd.DataFrame(
            {
                "datetime": raw_data[DATETIME_COLUMN],
                "prediction": _nullable(predictions),
                "probability": probabilities,
                "reason": pd.Series(_reasons(complete), index=raw_data.index, dtype=object),
            },
            index=raw_data.index,
        )

    __call__ = predict

    def _positive_probability(self, rows: pd.DataFrame) -> np.ndarray | None:
        classes = getattr(self.model, "classes_", None)
        if not callable(getattr(self.model, "predict_proba", None)) or classes is None:
            return None
        if len(classes) != 2:
            return None
        return np.asarray(self.model.predict_proba(rows), dtype=float)[:, 1]

    # ------------------------------------------------------------------------- save / load

    def save(self, path: str | os.PathLike[str], *, key: bytes | str | None = None) -> Path:
        """Write the Sensor to one file (atomically) and return its path.

        Args:
            path: The file to write.
            key: Optional secret: the file is then signed with HMAC-SHA256 and only loads
                with the same key.
        """
        path = Path(path)
        payload = pickle.dumps(self._state(), protocol=PICKLE_PROTOCOL)
        info = json.dumps(self._info(), sort_keys=True, default=str).encode("utf-8")
        body = info + b"\n" + payload
        kind, digest = _digest(body, key)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp")
        with tmp.open("wb") as handle:
            handle.write(MAGIC + f"{kind} {digest}\n".encode("ascii") + body)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
        return path

    @classmethod
    def load(cls, path: str | os.PathLike[str], *, key: bytes | str | None = None) -> Sensor:
        """Re-create a Sensor saved with ``save``, after checking the file's integrity.

        Read the module's trust model first: loading runs code from the file.

        Raises:
            SensorIntegrityError: not a Sensor file, damaged, changed since it was saved, or
                its signature does not match ``key``.
        """
        path = Path(path)
        raw = path.read_bytes()
        body = _verified_body(path, raw, key)
        _, payload = body.split(b"\n", 1)
        sensor = cls(**pickle.loads(payload))
        _warn_on_version_drift(path, sensor.provenance.get("versions", {}))
        return sensor

    def _state(self) -> dict[str, Any]:
        return {
            "manifest": self._manifest,
            "model": self.model,
            "fitted_params": self._fitted_params,
            "round_params": self._round_params,
            "round_id": self.round_id,
            "metrics": self._metrics,
            "provenance": self.provenance,
        }

    def _info(self) -> dict[str, Any]:
        """The readable header: what a person inspecting the file sees before loading it."""
        return {
            "round_id": self.round_id,
            "round_params": {k: value_token(v) for k, v in self._round_params.items()},
            "metrics": self._metrics,
            "provenance": self.provenance,
        }


def library_versions() -> dict[str, str | None]:
    """Installed versions of the libraries a Sensor's behaviour depends on."""
    versions: dict[str, str | None] = {}
    for package in VERSIONED_PACKAGES:
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = None
    return versions


def _nullable(values: pd.Series) -> pd.Series:
    """Predictions as a nullable integer, float or boolean column when they allow it."""
    kind = np.asarray(values.dropna().tolist()).dtype.kind
    dtype = {"i": "Int64", "u": "Int64", "f": "Float64", "b": "boolean"}.get(kind)
    if values.isna().all():
        dtype = "Float64"
    return values if dtype is None else values.astype(dtype)


def _reasons(complete: np.ndarray) -> list[str | None]:
    first = int(np.argmax(complete)) if complete.any() else len(complete)
    return [
        None if ok else (WARM_UP if position < first else NULL_FEATURES)
        for position, ok in enumerate(complete)
    ]


def _digest(body: bytes, key: bytes | str | None) -> tuple[str, str]:
    if key is None:
        return DIGEST, hashlib.sha256(body).hexdigest()
    return SIGNATURE, hmac.new(_key_bytes(key), body, hashlib.sha256).hexdigest()


def _key_bytes(key: bytes | str) -> bytes:
    if isinstance(key, str):
        key = key.encode("utf-8")
    if not isinstance(key, bytes) or not key:
        raise TypeError(f"The 'key' of a Sensor file must be non-empty bytes or str. Got {key!r}.")
    return key


def _verified_body(path: Path, raw: bytes, key: bytes | str | None) -> bytes:
    """The file's contents after the digest line, once the digest (or signature) matches."""
    if not raw.startswith(MAGIC):
        raise SensorIntegrityError(
            f"{path} is not a Limen Sensor file (it does not start with {MAGIC.strip()!r}). "
            "Create Sensor files with Sensor.save or `limen train`."
        )
    try:
        header, body = raw[len(MAGIC) :].split(b"\n", 1)
        kind, recorded = header.decode("ascii").split(" ", 1)
    except ValueError:
        raise SensorIntegrityError(
            f"{path} is damaged: its digest line is unreadable. The file is refused; "
            "re-create it with Trainer.train or `limen train`."
        ) from None
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
    return body


def _warn_on_version_drift(path: Path, saved: Mapping[str, Any]) -> None:
    current = library_versions()
    drift = {
        package: (saved[package], current.get(package))
        for package in saved
        if package in current and saved[package] != current.get(package)
    }
    if drift:
        details = ", ".join(f"{p} {old} -> {new}" for p, (old, new) in sorted(drift.items()))
        logger.warning(
            "Sensor %s was saved with other library versions (%s): check its predictions "
            "before relying on them.",
            path,
            details,
        )
