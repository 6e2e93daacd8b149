"""Shared fixtures: private PostgreSQL and MySQL/MariaDB databases for storage-backed tests.

The servers come from ``LIMEN_TEST_POSTGRES_URL`` and ``LIMEN_TEST_MYSQL_URL`` (``.ci/run`` sets
both to the local servers); a test that needs one is skipped, with the reason, when its variable
is unset. The servers are shared with other people running tests at the same time, so each test
session creates its own uniquely named database on first use and drops it at the end; nothing
outside that database is touched.

Fixtures:
    ``sqlite_url`` (function): URL of a new SQLite file in ``tmp_path`` that already holds
    Optuna's empty schema (copied from a per-session template: creating the tables costs ~0.3 s).
    ``postgres_url`` / ``mysql_url`` (session): URL of this session's private database. Tests
    share it, so give studies unique names (``unique_study_name``) and do not assume it is empty.
    ``empty_postgres_url`` / ``empty_mysql_url`` (function): the same database with every Optuna
    table emptied before the test, for tests that need a storage holding no study at all.
    ``storage_url`` (function, parametrized): an empty database on each backend in turn,
    ``sqlite_url``, then ``empty_postgres_url`` and ``empty_mysql_url`` (ids ``sqlite``,
    ``postgres``, ``mysql``; marked ``postgres`` / ``mysql``), to run one test on all three.
    ``unique_study_name`` (function): a study name no other test uses.
"""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from optuna.storages import RDBStorage
from sqlalchemy import Engine, create_engine, inspect

from databases import MYSQL_ENV, POSTGRES_ENV, scratch_database, server_url
from limen.adapters.storage.optuna_internals import METADATA


def _empty_optuna_tables(engine: Engine, url: str) -> str:
    """Delete every row of Optuna's data tables (schema and version rows stay); return ``url``."""
    existing = set(inspect(engine).get_table_names())
    with engine.begin() as conn:
        for table in reversed(METADATA.sorted_tables):
            if table.name in existing and table.name != "version_info":
                conn.execute(table.delete())
    return url


@pytest.fixture(scope="session")
def _sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("sqlite-template") / "study.db"
    RDBStorage(f"sqlite:///{path}").engine.dispose()
    return path


@pytest.fixture
def sqlite_url(_sqlite_template: Path, tmp_path: Path) -> str:
    """URL of a fresh SQLite file in ``tmp_path`` holding Optuna's empty schema."""
    path = tmp_path / "study.db"
    shutil.copyfile(_sqlite_template, path)
    return f"sqlite:///{path}"


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """URL of a PostgreSQL database private to this test session (skips without a server)."""
    with scratch_database(server_url(POSTGRES_ENV), "limen_test") as url:
        yield url


@pytest.fixture(scope="session")
def mysql_url() -> Iterator[str]:
    """URL of a MySQL/MariaDB database private to this test session (skips without a server)."""
    with scratch_database(server_url(MYSQL_ENV), "limen_test") as url:
        yield url


@pytest.fixture(scope="session")
def _postgres_engine(postgres_url: str) -> Iterator[Engine]:
    # One engine for the session's emptying: a new engine's first connection costs dialect
    # set-up queries, which every test would otherwise pay again. Tests kill connections, so
    # each checkout is pinged first.
    engine = create_engine(postgres_url, pool_pre_ping=True)
    yield engine
    engine.dispose()


@pytest.fixture(scope="session")
def _mysql_engine(mysql_url: str) -> Iterator[Engine]:
    engine = create_engine(mysql_url, pool_pre_ping=True)
    yield engine
    engine.dispose()


@pytest.fixture
def empty_postgres_url(postgres_url: str, _postgres_engine: Engine) -> str:
    """``postgres_url`` with no study in it: Optuna's tables are emptied before the test."""
    return _empty_optuna_tables(_postgres_engine, postgres_url)


@pytest.fixture
def empty_mysql_url(mysql_url: str, _mysql_engine: Engine) -> str:
    """``mysql_url`` with no study in it: Optuna's tables are emptied before the test."""
    return _empty_optuna_tables(_mysql_engine, mysql_url)


@pytest.fixture(
    params=[
        "sqlite",
        pytest.param("postgres", marks=pytest.mark.postgres),
        pytest.param("mysql", marks=pytest.mark.mysql),
    ]
)
def storage_url(request: pytest.FixtureRequest) -> str:
    """An empty database URL on SQLite, PostgreSQL and MySQL/MariaDB in turn."""
    if request.param == "sqlite":
        return request.getfixturevalue("sqlite_url")
    return request.getfixturevalue(f"empty_{request.param}_url")


@pytest.fixture
def unique_study_name(request: pytest.FixtureRequest) -> str:
    """A study name unique to this test, safe in a database other tests share."""
    return f"{request.node.name[:200]}-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def make_loop_on(storage_url: str, tmp_path: Path):
    """A factory of loops over ``strategy_sfd`` whose study lives on each backend in turn.

    ``make_loop_on(search_strategy=..., **kwargs)``: the experiment directory is
    ``tmp_path / "exp"`` and the storage the parametrized ``storage_url`` (SQLite, PostgreSQL,
    MariaDB), so one test runs the whole loop on every database.
    """
    import strategy_sfd
    from limen.experiment import UniversalExperimentLoop

    def make(**kwargs: object) -> UniversalExperimentLoop:
        kwargs.setdefault("experiment_dir", tmp_path / "exp")
        kwargs.setdefault("objective", "score")
        kwargs.setdefault("storage", storage_url)
        return UniversalExperimentLoop(sfd=strategy_sfd, data=strategy_sfd.data(), **kwargs)

    return make
