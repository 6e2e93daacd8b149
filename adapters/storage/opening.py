"""Opening a storage: the loop's ``LimenStorage``, or a viewer's plain ``RDBStorage``.

Opening retries what is transient (a server restarting, a busy SQLite file) and turns what is
not (an unreachable server, refused credentials, a corrupt or unwritable file, a full disk) into
a one-line ``StorageUnavailableError`` without the URL's password. A failed open leaves nothing
behind: the folders and the SQLite file it created are removed again.
"""

from __future__ import annotations

import functools
import logging
import sqlite3
from collections.abc import Callable
from contextlib import suppress
from pathlib import Path
from typing import Any

from optuna.exceptions import StorageInternalError
from optuna.storages import RDBStorage
from sqlalchemy.exc import DBAPIError, SQLAlchemyError

from limen.adapters.storage.engine import SQLITE_BUSY_TIMEOUT_S
from limen.adapters.storage.errors import storage_error
from limen.adapters.storage.limen_storage import LimenStorage
from limen.adapters.storage.retries import MAX_ATTEMPTS, failure_kind, pause_before_retry
from limen.adapters.storage.sqlite_files import sqlite_has_study
from limen.adapters.storage.urls import redact_url, sqlite_path, validate_storage_url

__all__ = ["open_read_only", "open_storage", "viewer_storage"]

_SQLITE_SIDE_FILES = ("-wal", "-shm", "-journal", "")
_logger = logging.getLogger("limen.adapters.storage")


def open_storage(
    url: str, *, sqlite_synchronous: str | None = None, read_only: bool = False
) -> LimenStorage:
    """Open (creating tables when needed) the storage at ``url``.

    For SQLite the database's folder is created. Raises ``StorageUnavailableError`` when the
    database cannot be opened, and ``InvalidParameterError`` for a URL Limen does not store in.
    With ``read_only`` the storage must exist and nothing is written (see ``open_read_only``).
    """
    if read_only:
        return open_read_only(url)
    validate_storage_url(url)
    path = sqlite_path(url)
    created = _make_folders(path, url) if path is not None else []
    new_file = path is not None and not path.exists()
    try:
        return _open_with_retries(
            url, functools.partial(LimenStorage, url, sqlite_synchronous=sqlite_synchronous)
        )
    except BaseException:
        if path is not None:
            _remove_created(path if new_file else None, created)
        raise


def open_read_only(url: str) -> LimenStorage:
    """Open an existing storage to read it, writing nothing: no table creation, no schema
    check, no journal or sync settings, and SQLite files opened through read-only connections.

    Readers (``limen status``, ``limen export``) then work on a read-only experiment directory
    and never change a study they only look at.
    """
    validate_storage_url(url)
    engine_kwargs: dict[str, Any] = {}
    path = sqlite_path(url)
    if path is not None:
        engine_kwargs["creator"] = functools.partial(_connect_sqlite_read_only, path)
    return _open_with_retries(
        url,
        functools.partial(
            LimenStorage,
            url,
            engine_kwargs,
            read_only=True,
            skip_table_creation=True,
            skip_compatibility_check=True,
        ),
    )


def _connect_sqlite_read_only(path: Path) -> sqlite3.Connection:
    # Without a write-ahead log beside it the file is complete and is read as immutable, which
    # needs no -shm file (none can be created in a read-only folder). With a log, a writer is
    # active: read-only mode reads the log through the files that writer keeps.
    wal = Path(f"{path}-wal")
    mode = "mode=ro" if wal.exists() else "mode=ro&immutable=1"
    return sqlite3.connect(
        f"file:{path.resolve()}?{mode}",
        uri=True,
        timeout=SQLITE_BUSY_TIMEOUT_S,
        check_same_thread=False,
    )


def viewer_storage(url: str) -> RDBStorage:
    """Open an existing storage to look at it: no tables created, no schema check, no settings.

    An SQLite reader waits for a writer's short transactions instead of failing at once.
    ``SQLAlchemyError`` propagates (the caller says what the storage should have held).
    """
    engine_kwargs: dict[str, Any] = {}
    if sqlite_path(url) is not None:
        engine_kwargs["connect_args"] = {"timeout": SQLITE_BUSY_TIMEOUT_S}
    return RDBStorage(
        url,
        engine_kwargs=engine_kwargs,
        skip_compatibility_check=True,
        skip_table_creation=True,
    )


def _open_with_retries(url: str, make: Callable[[], LimenStorage]) -> LimenStorage:
    """``make()`` the storage, retrying transient failures; the rest become one typed error."""
    what = f"opening the storage {redact_url(url)}"
    for attempt in range(1, MAX_ATTEMPTS + 1):
        try:
            storage = make()
        except DBAPIError as exc:
            if failure_kind(exc) is None or attempt == MAX_ATTEMPTS:
                error = storage_error("opening", exc, url, attempts=attempt)
                raise error from error.__cause__
            pause_before_retry(what, exc, attempt)
        except StorageInternalError as exc:
            # Optuna's schema check reports a database error this way, with it as the cause.
            cause = exc.__cause__
            if not isinstance(cause, SQLAlchemyError):
                raise
            transient = isinstance(cause, DBAPIError) and failure_kind(cause) is not None
            if not transient or attempt == MAX_ATTEMPTS:
                error = storage_error("opening", cause, url, attempts=attempt)
                raise error from error.__cause__
            pause_before_retry(what, cause, attempt)
        except SQLAlchemyError as exc:
            error = storage_error("opening", exc, url)
            raise error from error.__cause__
        else:
            _logger.debug("Opened the storage %s.", redact_url(url))
            return storage
    raise AssertionError("unreachable")


def _make_folders(path: Path, url: str) -> list[Path]:
    """Create the folders of an SQLite file; return those created, deepest first."""
    missing = [folder for folder in (path.parent, *path.parent.parents) if not folder.exists()]
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        _remove_created(None, missing)
        error = storage_error("creating the folder of the SQLite file", exc, url)
        raise error from error.__cause__
    return missing


def _remove_created(path: Path | None, folders: list[Path]) -> None:
    """Remove the new SQLite file ``path`` (with its side files) and the empty ``folders``.

    The file goes only while it holds no study: another process may have set up a study there
    meanwhile, and that one must never be deleted.
    """
    if path is not None and path.is_file() and not sqlite_has_study(path):
        for suffix in _SQLITE_SIDE_FILES:
            with suppress(OSError):
                Path(f"{path}{suffix}").unlink(missing_ok=True)
    for folder in folders:
        with suppress(OSError):
            folder.rmdir()
