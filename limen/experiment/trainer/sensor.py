"""Sensor: a trained round that turns new raw bars into predictions, portable as one file.

A Sensor holds what a round needs at inference time: the manifest's preparation steps, the
fitted preparation (feature order, scaler, target parameters), the fitted model, the round's
real parameter values, its validated metrics and its provenance. ``predict`` applies exactly
the preparation of training, fitting nothing, and calls the model.

Trust model. A Sensor file may come from anyone: loading one runs none of its code. By
default it is a skops archive, and ``Sensor.load`` builds only trusted types (scikit-learn and
NumPy types, Limen's own feature, target and data functions, the foundational SFDs) plus those
the caller lists with ``trusted=[...]``; ``Sensor.untrusted_types(path)`` lists what a file
needs, without loading it. Functions and classes are stored by their import path, so the
packages they come from must be installed where the file is loaded. A SHA-256 digest detects
damage; ``key=...`` signs the file with HMAC-SHA256 for authenticity. A model skops cannot
store is saved with ``format="pickle"``, which runs code when loaded: only signed, and loaded
only with the key. The layout is described in ``sensor_file``.
"""

from __future__ import annotations

import copy
import logging
import os
from collections.abc import Iterable, Mapping
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from limen.errors import InvalidParameterError
from limen.experiment.identity import value_token
from limen.experiment.manifest_core import DATETIME_COLUMN, Manifest
from limen.experiment.trainer.errors import SensorIntegrityError
from limen.experiment.trainer.sensor_file import (
    FORMATS,
    SKOPS,
    read_sensor_file,
    untrusted_types,
    write_sensor_file,
)
from limen.utils.validation import StrOptions, validate_params

__all__ = ["NULL_FEATURES", "VERSIONED_PACKAGES", "WARM_UP", "Sensor", "library_versions"]

logger = logging.getLogger(__name__)

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
            raise InvalidParameterError(
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

    def save(
        self,
        path: str | os.PathLike[str],
        *,
        key: bytes | str | None = None,
        format: str = SKOPS,
    ) -> Path:
        """Write the Sensor to one file (atomically) and return its path.

        Args:
            path: The file to write.
            key: Optional secret: the file is then signed with HMAC-SHA256 and only loads
                with the same key.
            format: ``"skops"`` (default): loading runs no code. ``"pickle"``: for models
                skops cannot store; loading it runs code, so it needs ``key``.

        Raises:
            limen.InvalidParameterError: an unknown ``format``, ``"pickle"`` without ``key``,
                or a model skops cannot store (use ``format="pickle"`` with a key).
        """
        validate_params(
            {"path": ["path"], "format": [StrOptions(FORMATS)]},
            {"path": path, "format": format},
            "Sensor.save",
        )
        return write_sensor_file(Path(path), self._state(), self._info(), key=key, format=format)

    @classmethod
    def load(
        cls,
        path: str | os.PathLike[str],
        *,
        key: bytes | str | None = None,
        trusted: Iterable[str | type] | None = None,
    ) -> Sensor:
        """Re-create a Sensor saved with ``save``, running none of the file's code.

        The digest (or, with ``key``, the signature) is checked first; then every type the
        file names must be trusted by default or listed in ``trusted``; only then is anything
        built. A pickle file loads only with its key.

        Args:
            path: The Sensor file.
            key: The secret the file was signed with, if it was.
            trusted: More types to accept, by import path (``"my_sfd.MyModel"``) or as the
                type itself; ``Sensor.untrusted_types(path)`` lists those the file needs.

        Raises:
            SensorFileNotFoundError: ``path`` does not exist or is a directory.
            SensorIntegrityError: not a Sensor file, damaged, changed since it was saved, or
                its signature does not match ``key``.
            SensorTrustError: it names types that are not trusted, or it is an unsigned pickle.
        """
        validate_params({"path": ["path"]}, {"path": path}, "Sensor.load")
        path = Path(path)
        state = read_sensor_file(path, key=key, trusted=trusted)
        try:
            sensor = cls(**state)
        except TypeError as exc:
            raise SensorIntegrityError(
                f"{path} holds no usable Sensor ({exc}). The file is refused; re-create it "
                "with Trainer.train or `limen train`."
            ) from None
        _warn_on_version_drift(path, sensor.provenance.get("versions", {}))
        return sensor

    @staticmethod
    def untrusted_types(
        path: str | os.PathLike[str], *, key: bytes | str | None = None
    ) -> list[str]:
        """The types a Sensor file names that are not trusted by default; nothing is loaded.

        Review them (they must come from packages you have installed and trust, such as your
        own SFD), then pass them to ``Sensor.load(path, trusted=[...])``.
        """
        return untrusted_types(Path(path), key=key)

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
