"""The study storage: URL rules, engine set-up and the storage the loop writes rounds through.

Only this package builds engines and storage URLs and runs SQL. ``LimenStorage`` is an Optuna
``RDBStorage`` (same schema version, same tables), so every study it writes opens in plain
Optuna and in optuna-dashboard, and every study plain Optuna wrote can be continued through it.

Modules:
    ``urls``: which URLs Limen stores in, the default SQLite file, password redaction.
    ``engine``: connection pools, SQLite tuning (WAL, ``synchronous``, busy timeout), backends.
    ``limen_storage``: ``LimenStorage``, whose every query is a method run through one
        transaction or read helper.
    ``statements``: the Core statements, built once per backend.
    ``rows``: a trial's parameters, attributes and values as table rows.
    ``frozen_trials``: trials read back as Optuna's ``FrozenTrial``.
    ``retries``: transient failures and the transaction helpers that retry them.
    ``errors``: ``StorageUnavailableError`` and its one-line messages; ``TargetReached``.
    ``opening``: ``open_storage`` and a viewer's read-only ``RDBStorage``.
    ``probe``: looking a study up without writing anything.
    ``sqlite_files``: read-only connections to an SQLite file.
    ``optuna_internals``: every use of Optuna's private storage modules.
"""

from __future__ import annotations

from limen.adapters.storage.engine import (
    POOL_OVERFLOW,
    POOL_SIZE,
    SQLITE_BUSY_TIMEOUT_S,
    SQLITE_SYNC_ENV,
    SQLITE_SYNC_MODES,
    sqlite_synchronous_mode,
)
from limen.adapters.storage.errors import (
    StorageSchemaError,
    StorageUnavailableError,
    TargetReached,
)
from limen.adapters.storage.limen_storage import (
    SEQUENCE_ATTR_PREFIX,
    LimenStorage,
    RoundSpec,
    limen_storage_of,
)
from limen.adapters.storage.opening import open_read_only, open_storage, viewer_storage
from limen.adapters.storage.probe import StudyProbe, probe_study
from limen.adapters.storage.retries import MAX_ATTEMPTS
from limen.adapters.storage.sqlite_files import sqlite_has_study
from limen.adapters.storage.statements import ATTEMPT_KEY
from limen.adapters.storage.urls import (
    STUDY_DB_NAME,
    SUPPORTED_BACKENDS,
    default_storage_url,
    is_sqlite,
    redact_url,
    scrub_secrets,
    sqlite_path,
    validate_storage_url,
)

__all__ = [
    "ATTEMPT_KEY",
    "MAX_ATTEMPTS",
    "POOL_OVERFLOW",
    "POOL_SIZE",
    "SEQUENCE_ATTR_PREFIX",
    "SQLITE_BUSY_TIMEOUT_S",
    "SQLITE_SYNC_ENV",
    "SQLITE_SYNC_MODES",
    "STUDY_DB_NAME",
    "SUPPORTED_BACKENDS",
    "LimenStorage",
    "RoundSpec",
    "StorageSchemaError",
    "StorageUnavailableError",
    "StudyProbe",
    "TargetReached",
    "default_storage_url",
    "is_sqlite",
    "limen_storage_of",
    "open_read_only",
    "open_storage",
    "probe_study",
    "redact_url",
    "scrub_secrets",
    "sqlite_has_study",
    "sqlite_path",
    "sqlite_synchronous_mode",
    "validate_storage_url",
    "viewer_storage",
]
