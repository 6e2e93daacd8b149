"""Find a finished experiment's study, its SFD and its best rounds, from a directory or a URL.

The Trainer and the Log both start from "an experiment": its directory (``metadata.json``
names the study and the storage) or a storage URL plus a study name. The study is the source
of truth; the directory only says where it is.
"""

from __future__ import annotations

import json
import logging
import math
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from limen.adapters.distributions import DomainCodec
from limen.adapters.storage import (
    STUDY_DB_NAME,
    LimenStorage,
    default_storage_url,
    open_storage,
    redact_url,
    sqlite_path,
    validate_storage_url,
)
from limen.experiment import study_keys as keys
from limen.experiment.identity import space_hash
from limen.experiment.records import METADATA_JSON

logger = logging.getLogger(__name__)

DIRECTIONS = ("maximize", "minimize")


@dataclass(frozen=True)
class StudySource:
    """Where an experiment's study lives.

    Attributes:
        storage_url: The full SQLAlchemy URL (may hold a password: never show it, use
            ``storage_label``).
        study_name: The study's name in that storage.
        directory: The experiment directory, when the source was one.
    """

    storage_url: str
    study_name: str
    directory: Path | None = None

    @property
    def storage_label(self) -> str:
        """The storage URL without its password, safe to show and to record."""
        return redact_url(self.storage_url)

    def open_storage(self) -> LimenStorage:
        """Open the storage (it must exist: nothing is created)."""
        path = sqlite_path(self.storage_url)
        if path is not None and not path.is_file():
            raise FileNotFoundError(
                f"The SQLite storage {self.storage_label} does not exist. Pass the URL of the "
                "database that holds the study, or the experiment directory."
            )
        return open_storage(self.storage_url)

    def load_study(self) -> optuna.Study:
        """Load the study; a clear error names the studies present when the name is wrong."""
        storage = self.open_storage()
        try:
            return optuna.load_study(study_name=self.study_name, storage=storage)
        except KeyError:
            names = optuna.get_all_study_names(storage)
            raise ValueError(
                f"No study named {self.study_name!r} in {self.storage_label}; the storage holds "
                f"{names}. Pass one of these names as study_name=..."
            ) from None


def resolve_study_source(
    source: str | os.PathLike[str], study_name: str | None = None
) -> StudySource:
    """Turn an experiment directory or a storage URL (+ study name) into a ``StudySource``.

    A directory's ``metadata.json`` names the study and its storage. A directory that holds
    its default ``study.db`` reads that file, so a copied or moved directory reads its own
    study. A storage with a password is never written to ``metadata.json``: pass its URL.

    Raises:
        FileNotFoundError: the directory does not exist or holds no experiment.
        ValueError: the storage needs its password, or the study name is ambiguous.
    """
    if isinstance(source, str) and "://" in source:
        url = validate_storage_url(source)
        return StudySource(url, study_name or _only_study(url))
    if not isinstance(source, str | os.PathLike):
        raise TypeError(
            "The experiment must be given as the path of an experiment directory or a storage "
            f"URL such as 'sqlite:///runs/demo/study.db'. Got {source!r} instead."
        )
    directory = Path(source)
    if not directory.is_dir():
        raise FileNotFoundError(
            f"Experiment directory {str(directory)!r} does not exist. Pass the directory of an "
            "experiment (it holds metadata.json), or a storage URL with study_name=..."
        )
    metadata = read_metadata(directory)
    url = _directory_storage(directory, metadata)
    name = study_name or metadata.get("study_name") or metadata.get("experiment_name")
    return StudySource(url, name or _only_study(url), directory)


def read_metadata(directory: Path) -> dict[str, Any]:
    """The experiment's ``metadata.json`` as a dict, or an empty dict when there is none."""
    path = directory / METADATA_JSON
    if not path.is_file():
        return {}
    try:
        metadata = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ValueError(
            f"{path} is not valid JSON ({exc}); restore it or pass the storage URL."
        ) from exc
    if not isinstance(metadata, dict):
        raise ValueError(f"{path} must hold a JSON object; restore it or pass the storage URL.")
    return metadata


def _directory_storage(directory: Path, metadata: Mapping[str, Any]) -> str:
    local = directory / STUDY_DB_NAME
    url = metadata.get("storage")
    if url is None or (_is_default_sqlite(url) and local.is_file()):
        if not local.is_file():
            raise FileNotFoundError(
                f"{directory} holds no Limen experiment: neither {METADATA_JSON} nor "
                f"{STUDY_DB_NAME}. Pass the experiment's directory, or its storage URL with "
                "study_name=..."
            )
        return default_storage_url(directory)
    if "***" in url:
        raise ValueError(
            f"The study of {directory} is in {url}, a storage with a password, which Limen "
            "never writes to disk. Pass the storage URL itself with the study name, e.g. "
            "Trainer('postgresql+psycopg://user:PASSWORD@host/db', study_name='name') "
            "(CLI: --storage URL)."
        )
    return url


def _is_default_sqlite(url: str) -> bool:
    path = sqlite_path(url)
    return path is not None and path.name == STUDY_DB_NAME


def _only_study(url: str) -> str:
    source = StudySource(url, "")
    names = optuna.get_all_study_names(source.open_storage())
    if len(names) != 1:
        raise ValueError(
            f"The storage {source.storage_label} holds {len(names)} studies {names}: pass the "
            "one to use as study_name=..."
        )
    return names[0]


def study_codec(sfd: Any, study: optuna.Study) -> DomainCodec | None:
    """The codec of the SFD's parameter space, or None when it is not the study's space."""
    params = sfd.params()
    if space_hash(params) != study.user_attrs.get(keys.SPACE_HASH):
        return None
    return DomainCodec(params)


def objective_of(study: optuna.Study) -> list[tuple[str, str]]:
    """``[(metric, direction), ...]`` the study optimised (empty when none was recorded)."""
    return [tuple(pair) for pair in study.user_attrs.get(keys.OBJECTIVE) or []]


def resolve_metric(
    study: optuna.Study, metric: str | None, direction: str | None, owner: str
) -> tuple[str, str]:
    """The metric and direction to rank rounds by: the study's objective unless given."""
    objective = dict(objective_of(study))
    if metric is None:
        if not objective:
            raise ValueError(
                f"Study {study.study_name!r} recorded no objective: pass metric=... and "
                f"direction=... to {owner}."
            )
        metric = next(iter(objective))
    if not isinstance(metric, str) or not metric:
        raise TypeError(f"The 'metric' parameter of {owner} must be a str. Got {metric!r}.")
    direction = direction or objective.get(metric)
    if direction not in DIRECTIONS:
        raise ValueError(
            f"The 'direction' parameter of {owner} must be 'maximize' or 'minimize' for the "
            f"metric {metric!r}, which is not the study's objective. Got {direction!r} instead."
        )
    return metric, direction


def metric_value(trial: FrozenTrial, metric: str) -> float | None:
    """The finite numeric value of ``metric`` stored with ``trial``, else None."""
    value = trial.user_attrs.get(metric)
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def rank_rounds(trials: Iterable[FrozenTrial], metric: str, direction: str) -> list[FrozenTrial]:
    """Completed rounds with a finite ``metric``, best first (ties by trial number)."""
    sign = -1.0 if direction == "maximize" else 1.0
    scored = [
        (sign * value, trial.number, trial)
        for trial in trials
        if trial.state == TrialState.COMPLETE and (value := metric_value(trial, metric)) is not None
    ]
    return [trial for _, _, trial in sorted(scored, key=lambda item: item[:2])]
