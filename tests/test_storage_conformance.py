"""Optuna's own storage conformance suite, run against LimenStorage on every database.

``optuna.testing.pytest_storages.StorageTestCase`` is the suite Optuna runs against each of its
storages. It runs here on SQLite, PostgreSQL and MySQL/MariaDB, and once more on SQLite behind
Optuna's ``_CachedStorage`` (the wrapper ``optuna.load_study`` puts around an RDB storage; the
wrapper is in-process and the same on every database).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from optuna.storages import BaseStorage
from optuna.storages._cached_storage import _CachedStorage
from optuna.testing.pytest_storages import StorageTestCase

from limen.adapters.storage import LimenStorage

# MySQL/MariaDB: Optuna's schema declares trial datetimes as DATETIME without fractional
# seconds, so a datetime with microseconds reads back truncated and these cases compare unequal.
# Plain RDBStorage fails exactly these cases on MySQL/MariaDB too.
SECONDS_ONLY_DATETIME_CASES = {"test_create_new_trial", "test_get_trial", "test_get_all_trials"}


def _needs_fractional_datetimes(node: pytest.Item) -> bool:
    if node.originalname in SECONDS_ONLY_DATETIME_CASES:
        return True
    start = getattr(node, "callspec", None) and node.callspec.params.get("start_time")
    return start is not None and start.microsecond != 0


@pytest.fixture
def limen_storage(storage_url: str, request: pytest.FixtureRequest) -> Iterator[LimenStorage]:
    if storage_url.startswith("mysql") and _needs_fractional_datetimes(request.node):
        pytest.skip("Optuna's MySQL schema stores trial datetimes to the second (plain Optuna too)")
    storage = LimenStorage(storage_url)
    yield storage
    storage.engine.dispose()


class TestLimenStorage(StorageTestCase):
    """The suite against LimenStorage itself."""

    @pytest.fixture
    def storage(self, limen_storage: LimenStorage) -> BaseStorage:
        return limen_storage


class TestCachedLimenStorage(StorageTestCase):
    """The suite through ``_CachedStorage``, as ``optuna.load_study`` uses the storage."""

    @pytest.fixture
    def storage_url(self, sqlite_url: str) -> str:
        return sqlite_url

    @pytest.fixture
    def storage(self, limen_storage: LimenStorage) -> BaseStorage:
        return _CachedStorage(limen_storage)
