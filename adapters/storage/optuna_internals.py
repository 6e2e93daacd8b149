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

import functools
from typing import Any

import optuna
from optuna.storages import BaseStorage, RDBStorage
from optuna.storages._rdb import models
from optuna.storages._rdb.storage import _VersionManager
from sqlalchemy import Connection, MetaData, Table

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
    "VERSION_INFO",
    "check_schema_version",
    "create_schema",
    "head_revision",
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
VERSION_INFO: Table = models.VersionInfoModel.__table__

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


@functools.cache
def _migration_scripts() -> Any:
    """Optuna's alembic migration scripts, parsed once a process.

    ``RDBStorage`` parses every script again on each open to learn the newest revision, and twice
    more when it creates a database; that parsing is most of the cost of opening a storage. The
    scripts belong to the installed Optuna, so one parse serves every database.
    """
    manager = object.__new__(_VersionManager)
    manager.url = ""  # the scripts' location does not depend on the database
    return manager._create_alembic_script()


def head_revision() -> str:
    """The newest revision of Optuna's schema (the one a new database is created at)."""
    head = _migration_scripts().get_current_head()
    assert head is not None, "Optuna's migration scripts have one head"
    return head


def create_schema(connection: Connection) -> None:
    """Create Optuna's tables, its version row and alembic's revision in an empty database.

    What ``RDBStorage`` does on the first open of a new database, with the migration scripts
    parsed once a process instead of twice an open. Optuna's own open of the database then finds
    it complete and creates nothing.
    """
    from alembic.runtime.migration import MigrationContext

    METADATA.create_all(connection)
    connection.execute(
        VERSION_INFO.insert().values(
            version_info_id=1,
            schema_version=models.SCHEMA_VERSION,
            library_version=optuna.__version__,
        )
    )
    MigrationContext.configure(connection).stamp(_migration_scripts(), head_revision())


def check_schema_version(storage: RDBStorage) -> None:
    """Optuna's schema compatibility check, with the newest revision known once a process.

    A database at any other revision gets Optuna's own check and its own error.
    """
    manager = storage._version_manager
    if manager.get_current_version() != head_revision():
        manager.check_table_schema_compatibility()
