"""Scratch databases on the shared PostgreSQL and MySQL/MariaDB servers, for tests and benchmarks.

Tests and benchmarks share servers with other users, so each works in its own database and
nothing outside it is touched.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import create_engine
from sqlalchemy.engine import make_url

__all__ = ["MYSQL_ENV", "POSTGRES_ENV", "scratch_database", "server_url"]

POSTGRES_ENV = "LIMEN_TEST_POSTGRES_URL"
MYSQL_ENV = "LIMEN_TEST_MYSQL_URL"


def server_url(env: str) -> str:
    """The server URL in environment variable ``env``; the calling test skips without one."""
    import pytest

    url = os.environ.get(env)
    if not url:
        pytest.skip(f"{env} is not set: no database server to test against (.ci/run sets it)")
    return url


@contextmanager
def scratch_database(server_url: str, prefix: str = "limen_scratch") -> Iterator[str]:
    """A uniquely named database on a PostgreSQL or MySQL/MariaDB server, dropped afterwards.

    Yields the new database's URL.
    """
    admin = create_engine(server_url, isolation_level="AUTOCOMMIT")
    name = f"{prefix}_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    quoted = admin.dialect.identifier_preparer.quote(name)
    with admin.connect() as conn:
        conn.exec_driver_sql(f"CREATE DATABASE {quoted}")
    try:
        yield make_url(server_url).set(database=name).render_as_string(hide_password=False)
    finally:
        # FORCE ends connections left open (PostgreSQL refuses to drop the database otherwise).
        force = " WITH (FORCE)" if admin.dialect.name == "postgresql" else ""
        with admin.connect() as conn:
            conn.exec_driver_sql(f"DROP DATABASE IF EXISTS {quoted}{force}")
        admin.dispose()
