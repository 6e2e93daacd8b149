"""Every use of Optuna's private storage modules, in one place.

Limen writes Optuna's own tables (so every study opens in plain Optuna and optuna-dashboard),
which needs their SQLAlchemy definitions and Optuna's encoding of stored values; those live in
``optuna.storages._rdb.models``, a private module that may change in any Optuna release. Nothing
else in Limen imports it: when Optuna changes, this module (and the ``RDBStorage`` methods
``LimenStorage`` overrides: ``_create_new_trial``, ``_set_trial_param``, ``_get_trials``, which
``_CachedStorage`` calls) is what to check, and ``pyproject.toml`` allows only the tested Optuna
minor versions.
"""

from __future__ import annotations

from typing import Any

from optuna.storages import BaseStorage, RDBStorage
from optuna.storages._rdb import models
from sqlalchemy import MetaData, Table

__all__ = [
    "MAX_INDEXED_STRING_LENGTH",
    "METADATA",
    "NOT_FOUND_MSG",
    "STUDIES",
    "STUDY_SYSTEM_ATTRS",
    "STUDY_USER_ATTRS",
    "TRIALS",
    "TRIAL_HEARTBEATS",
    "TRIAL_INTERMEDIATE",
    "TRIAL_PARAMS",
    "TRIAL_SYSTEM_ATTRS",
    "TRIAL_USER_ATTRS",
    "TRIAL_VALUES",
    "check_schema_version",
    "intermediate_from_stored",
    "intermediate_to_stored",
    "unwrap_storage",
    "value_from_stored",
    "value_to_stored",
]

METADATA: MetaData = models.BaseModel.metadata
STUDIES: Table = models.StudyModel.__table__
STUDY_USER_ATTRS: Table = models.StudyUserAttributeModel.__table__
STUDY_SYSTEM_ATTRS: Table = models.StudySystemAttributeModel.__table__
TRIALS: Table = models.TrialModel.__table__
TRIAL_PARAMS: Table = models.TrialParamModel.__table__
TRIAL_VALUES: Table = models.TrialValueModel.__table__
TRIAL_INTERMEDIATE: Table = models.TrialIntermediateValueModel.__table__
TRIAL_USER_ATTRS: Table = models.TrialUserAttributeModel.__table__
TRIAL_SYSTEM_ATTRS: Table = models.TrialSystemAttributeModel.__table__
TRIAL_HEARTBEATS: Table = models.TrialHeartbeatModel.__table__

# RDBStorage's message for a missing study or trial, and its longest indexed string column.
NOT_FOUND_MSG: str = models.NOT_FOUND_MSG
MAX_INDEXED_STRING_LENGTH: int = models.MAX_INDEXED_STRING_LENGTH

# Optuna stores +-inf and NaN objective values as a float plus a type column.
value_to_stored = models.TrialValueModel.value_to_stored_repr
value_from_stored = models.TrialValueModel.stored_repr_to_value
intermediate_to_stored = models.TrialIntermediateValueModel.intermediate_value_to_stored_repr
intermediate_from_stored = models.TrialIntermediateValueModel.stored_repr_to_intermediate_value


def unwrap_storage(storage: BaseStorage) -> Any:
    """The storage behind Optuna's ``_CachedStorage`` wrapper (``storage`` itself otherwise).

    ``optuna.load_study`` wraps an ``RDBStorage`` in a private cache class that keeps the real
    storage in ``_backend``.
    """
    return getattr(storage, "_backend", storage)


# Optuna's newest schema revision, read from its migration scripts the first time it is needed.
_head_revision: str | None = None


def check_schema_version(storage: RDBStorage) -> None:
    """Optuna's schema compatibility check, reading Optuna's migration scripts once a process.

    ``RDBStorage`` re-reads every migration script on each open to learn the newest revision, which
    is most of the cost of opening a storage. That revision belongs to the installed Optuna, so it
    is kept; a database at any other revision gets Optuna's own check and its own error.
    """
    global _head_revision
    manager = storage._version_manager
    if _head_revision is None:
        _head_revision = manager.get_head_version()
    if manager.get_current_version() != _head_revision:
        manager.check_table_schema_compatibility()
