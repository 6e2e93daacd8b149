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

__all__ = ["scratch_database"]


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
