"""Find an experiment's study from what a user names: a directory or a storage URL.

Every command, the Trainer, the Log, the dashboard and a resume turn "an experiment" into a
storage and a study here, so they agree. The study is the source of truth; the directory only
says where it is. An SQLite file inside the directory is recorded relative to it, and an older
record's absolute path gives way to the ``study.db`` the directory holds, so a moved or copied
experiment directory always reads (and resumes into) its own study.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import optuna
from sqlalchemy.engine import make_url

from limen.adapters.storage import (
    STUDY_DB_NAME,
    LimenStorage,
    default_storage_url,
    open_storage,
    redact_url,
    sqlite_path,
    validate_storage_url,
)
from limen.errors import ExperimentNotFoundError, InvalidParameterError
from limen.experiment.errors import HiddenPasswordError, MetadataError
from limen.experiment.records import METADATA_JSON
from limen.experiment.study_record import StudyRecord

__all__ = [
    "ExperimentSource",
    "check_not_redacted",
    "checked_storage_url",
    "directory_storage",
    "is_redacted",
    "read_metadata",
    "recorded_storage",
    "resolve_experiment",
]

#: What ``redact_url`` puts where a password was.
REDACTED = "***"


@dataclass(frozen=True)
class ExperimentSource:
    """Where an experiment's study lives.

    Attributes:
        storage_url: The full SQLAlchemy URL (may hold a password: never show it, use
            ``storage_label``).
        study_name: The study's name in that storage.
        directory: The experiment directory, when the source was one.
        read_only: Open the storage without writing anything (no table creation, no schema
            upgrade, no journal set-up), as ``limen status`` and ``limen export`` do.
        metadata: The directory's ``metadata.json`` (empty for a URL, or when there is none).
    """

    storage_url: str
    study_name: str
    directory: Path | None = None
    read_only: bool = False
    metadata: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @property
    def storage_label(self) -> str:
        """The storage URL without its password, safe to show and to record."""
        return redact_url(self.storage_url)

    def open_storage(self) -> LimenStorage:
        """Open the storage, which must exist: nothing is created."""
        _check_sqlite_file(self.storage_url)
        return open_storage(self.storage_url, read_only=self.read_only)

    def load_study(self) -> optuna.Study:
        """Load the study; a missing one is an error naming the studies the storage holds."""
        storage = self.open_storage()
        try:
            return optuna.load_study(study_name=self.study_name, storage=storage)
        except KeyError:
            names = [s.study_name for s in storage.get_all_studies()]
            raise ExperimentNotFoundError(
                f"No study named {self.study_name!r} in {self.storage_label}; the storage holds "
                f"{names}. Pass one of these names (study_name=..., CLI: --study NAME)."
            ) from None

    def record(self) -> StudyRecord:
        """What the study holds about its experiment."""
        return StudyRecord.from_attrs(self.load_study().user_attrs)


def resolve_experiment(
    source: str | os.PathLike[str] | ExperimentSource,
    study: str | None = None,
    *,
    read_only: bool = False,
    storage: str | None = None,
) -> ExperimentSource:
    """Turn an experiment directory or a storage URL (and a study name) into its study.

    A directory's storage is, in order: ``storage`` when given; the SQLite file its
    ``metadata.json`` records relative to it; its own ``study.db`` when the record names an
    absolute ``study.db`` elsewhere (the directory was moved or copied); the recorded URL. The
    study is ``study``, else the one the directory records, else the storage's only study.

    Args:
        source: An experiment directory, or a storage URL such as ``sqlite:///runs/x/study.db``
            (an ``ExperimentSource`` already resolved is returned as it is).
        study: The study's name (needed when a URL's storage holds several).
        read_only: Open the storage without writing anything.
        storage: The storage URL of a directory whose study is elsewhere (one with a password,
            which Limen never records).

    Raises:
        InvalidParameterError: an argument has the wrong type, or a URL is not a storage URL.
        HiddenPasswordError: the storage's password is hidden as ``***``: pass the full URL.
        ExperimentNotFoundError: no such directory, database or study (the message lists the
            studies present).
        MetadataError: the directory's ``metadata.json`` is not a JSON object.
    """
    if isinstance(source, ExperimentSource):
        return source
    if not isinstance(source, str | os.PathLike) or isinstance(source, bytes):
        raise InvalidParameterError(
            "The experiment must be the path of an experiment directory or a storage URL such "
            f"as 'sqlite:///runs/demo/study.db'. Got {source!r} instead."
        )
    for name, value in (("study", study), ("storage", storage)):
        if value is not None and (not isinstance(value, str) or not value):
            raise InvalidParameterError(
                f"The {name!r} parameter of resolve_experiment must be a non-empty str or None. "
                f"Got {value!r} instead."
            )
    text = os.fspath(source)
    if "://" in text:
        url = checked_storage_url(text)
        return ExperimentSource(url, study or _only_study(url, read_only), None, read_only)
    directory = Path(text)
    metadata = read_metadata(directory)
    if storage is not None:
        url = checked_storage_url(storage)
    else:
        url = directory_storage(directory, metadata)
    name = study or metadata.get("study_name") or metadata.get("experiment_name")
    if not isinstance(name, str) or not name:
        name = _only_study(url, read_only)
    return ExperimentSource(url, name, directory, read_only, metadata)


def read_metadata(directory: str | os.PathLike[str]) -> dict[str, Any]:
    """The directory's ``metadata.json`` as a dict (empty when there is none).

    Raises:
        ExperimentNotFoundError: the directory does not exist or is not a directory.
        MetadataError: the file is not a JSON object.
    """
    directory = Path(directory)
    if not directory.exists():
        raise ExperimentNotFoundError(
            f"Experiment directory {str(directory)!r} does not exist, so there is no "
            f"{METADATA_JSON} or {STUDY_DB_NAME} to read. Pass the directory of an experiment, "
            "or a storage URL."
        )
    if not directory.is_dir():
        raise ExperimentNotFoundError(
            f"{str(directory)!r} is not a directory: pass the experiment directory that holds "
            f"{STUDY_DB_NAME}, or a storage URL such as sqlite:///path/to/{STUDY_DB_NAME}."
        )
    path = directory / METADATA_JSON
    if not path.is_file():
        return {}
    try:
        metadata = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise MetadataError(
            f"{path} is not valid JSON ({exc}); restore it, or pass the storage URL."
        ) from None
    if not isinstance(metadata, dict):
        raise MetadataError(f"{path} must hold a JSON object; restore it, or pass the storage URL.")
    return metadata


def directory_storage(directory: str | os.PathLike[str], metadata: Mapping[str, Any]) -> str:
    """The storage URL of the experiment in ``directory``, given its ``metadata.json``.

    Raises:
        ExperimentNotFoundError: the directory records no storage and holds no ``study.db``.
        HiddenPasswordError: the recorded storage has a password, which is never written.
    """
    directory = Path(directory)
    local = directory / STUDY_DB_NAME
    stored = metadata.get("storage")
    if stored is None:
        if not local.is_file():
            raise ExperimentNotFoundError(
                f"{directory} holds no Limen study: neither {STUDY_DB_NAME} nor a "
                f"{METADATA_JSON} naming a storage. Pass the experiment's directory, or its "
                "storage URL and study name."
            )
        return default_storage_url(directory)
    if not isinstance(stored, str):
        raise MetadataError(
            f"The 'storage' of {directory / METADATA_JSON} must be a URL string. Got "
            f"{stored!r}; restore the file, or pass the storage URL."
        )
    check_not_redacted(stored, f"the study of {directory}")
    path = _sqlite_file(stored)
    if path is None:
        return checked_storage_url(stored)
    if not path.is_absolute():
        return f"sqlite:///{(directory / path).resolve()}"
    if path.name == STUDY_DB_NAME and local.is_file():
        return default_storage_url(directory)
    return stored


def recorded_storage(url: str, directory: str | os.PathLike[str]) -> str:
    """How ``metadata.json`` records ``url``: an SQLite file inside ``directory`` relative to
    it (``sqlite:///study.db``), so the directory can move; any other URL without its password.
    """
    path = _sqlite_file(url)
    if path is not None:
        try:
            inside = path.resolve().relative_to(Path(directory).resolve())
        except ValueError:
            return f"sqlite:///{path.resolve()}"
        return f"sqlite:///{inside.as_posix()}"
    return redact_url(url)


def is_redacted(url: str) -> bool:
    """Whether ``url`` shows ``***`` where a password goes: in its userinfo or its query."""
    try:
        parsed = make_url(url)
    except Exception:
        return REDACTED in url
    if parsed.password is not None and str(parsed.password) == REDACTED:
        return True
    for value in parsed.query.values():
        if REDACTED in ([value] if isinstance(value, str) else list(value)):
            return True
    return False


def check_not_redacted(url: str, what: str = "the storage") -> None:
    """Refuse a URL whose password was hidden as ``***``.

    Raises:
        HiddenPasswordError: naming where the URL came from and how to pass the real one.
    """
    if is_redacted(url):
        raise HiddenPasswordError(
            f"The storage of {what} is {redact_url(url)}, whose password is hidden (Limen "
            "never writes a password to disk). Pass the storage URL itself with its password, e.g. "
            "Trainer('postgresql+psycopg://user:PASSWORD@host/db', study_name='name') "
            "(CLI: --storage URL)."
        )


def checked_storage_url(url: str) -> str:
    """``url`` when it is a storage URL Limen can open with its password in place.

    Raises:
        HiddenPasswordError: the password is hidden as ``***``.
        InvalidParameterError: it is not a URL of an SQLite, PostgreSQL or MySQL database.
    """
    check_not_redacted(url, "the experiment")
    return validate_storage_url(url)


def _sqlite_file(url: str) -> Path | None:
    try:
        return sqlite_path(url)
    except Exception:
        raise InvalidParameterError(
            f"{redact_url(url)!r} is not a valid SQLAlchemy URL. Use e.g. 'sqlite:///study.db' "
            "or 'postgresql+psycopg://user@host/db'."
        ) from None


def _check_sqlite_file(url: str) -> None:
    path = sqlite_path(url)
    if path is not None and not path.is_file():
        raise ExperimentNotFoundError(
            f"The SQLite storage {redact_url(url)} does not exist. Pass the experiment "
            "directory, or the URL of the database that holds the study."
        )


def _only_study(url: str, read_only: bool) -> str:
    source = ExperimentSource(url, "", read_only=read_only)
    names = [s.study_name for s in source.open_storage().get_all_studies()]
    if len(names) != 1:
        raise ExperimentNotFoundError(
            f"The storage {source.storage_label} holds {len(names)} studies {names}: pass the "
            "one to use (study_name=..., CLI: --study NAME)."
        )
    return names[0]
