"""The storage's typed errors, and the one-line message that says what failed and what to do.

A database that cannot be reached, refuses the credentials, is corrupt, sits on a full disk or in
a folder Limen cannot write raises ``StorageUnavailableError``. It is a ``LimenError`` (the CLI
prints it as one line), an Optuna ``StorageInternalError`` (what ``RDBStorage`` raises for
database failures, so existing handlers still catch it) and an ``OSError`` (the built-in for a
resource the system cannot provide). Its message names the storage without its password.
"""

from __future__ import annotations

import os
import re

from optuna.exceptions import StorageInternalError
from sqlalchemy.exc import DBAPIError, SQLAlchemyError

from limen.adapters.storage.urls import redact_url, scrub_secrets, sqlite_path
from limen.errors import LimenError

__all__ = [
    "StorageSchemaError",
    "StorageUnavailableError",
    "TargetReached",
    "describe_failure",
    "storage_error",
]

# (pattern of the driver's message, what went wrong, what to do), first match wins.
_DIAGNOSES: tuple[tuple[re.Pattern[str], str, str], ...] = tuple(
    (re.compile(pattern, re.IGNORECASE), problem, fix)
    for pattern, problem, fix in (
        (
            r"password authentication failed|access denied|authentication failed",
            "the server refused the user name or password",
            "check the user and password in the storage URL",
        ),
        (
            r"role .* does not exist",
            "the server has no such user",
            "check the user name in the storage URL",
        ),
        (
            r"database .* does not exist|unknown database",
            "the server has no such database",
            "create the database first or correct its name in the storage URL",
        ),
        (
            r"connection refused|can't connect|could not connect|name or service not known"
            r"|could not translate host name|timeout expired|no route to host",
            "the database server cannot be reached",
            "start the server or correct the host and port in the storage URL",
        ),
        (
            r"file is not a database|database disk image is malformed",
            "the file is not a readable SQLite database (it may be corrupt)",
            "restore the file from a backup or pass another storage",
        ),
        (
            r"database or disk is full|disk i/o error|no space left",
            "the disk is full or failing",
            "free disk space (or move the experiment to another disk) and run again",
        ),
        (
            r"readonly database|read-only|permission denied",
            "the database or its folder is read-only",
            "make the folder writable or use an experiment directory you can write to",
        ),
    )
)
_UNKNOWN = ("the database reported an error", "check the storage URL and the database server")
_LOST_CONNECTION = (
    "the connection to the database was lost and could not be restored",
    "check that the database server is running and reachable, then run again "
    "(finished rounds are kept)",
)


class StorageUnavailableError(LimenError, StorageInternalError, OSError):
    """The storage cannot be opened or used: unreachable, refused, corrupt, full or read-only."""


class StorageSchemaError(LimenError, RuntimeError):
    """The database's Optuna schema is at another revision than the installed Optuna uses.

    The message is Optuna's own, which names the fix (``optuna storage upgrade``, or a newer
    Optuna), after the redacted URL; ``except RuntimeError`` still catches it, as with Optuna.
    """


class TargetReached(LimenError):
    """The study's finished and running rounds reached the target: no round was claimed."""

    def __init__(self, finished: int, running: int, limit: int) -> None:
        super().__init__(
            f"The study holds {finished} finished and {running} running rounds of its target "
            f"of {limit}."
        )
        self.finished = finished
        self.running = running
        self.limit = limit


def describe_failure(exc: BaseException) -> str:
    """The driver error's type and first line: what failed, without the statement or its data."""
    orig = exc.orig if isinstance(exc, DBAPIError) and exc.orig is not None else exc
    text = str(orig).strip()
    first_line = text.splitlines()[0].strip() if text else ""
    if isinstance(exc, SQLAlchemyError) and not isinstance(exc, DBAPIError):
        # SQLAlchemy appends a link to its error catalogue: not the user's concern.
        first_line = first_line.split(" (Background on this error", 1)[0]
    return f"{type(orig).__name__}: {first_line}" if first_line else type(orig).__name__


def _diagnosis(detail: str, url: str) -> tuple[str, str] | None:
    """What went wrong and what to do, read from the driver's message (None: unknown)."""
    for pattern, problem, fix in _DIAGNOSES:
        if pattern.search(detail):
            return problem, fix
    lowered = detail.lower()
    if "unable to open database file" in lowered or "no such file or directory" in lowered:
        return _sqlite_path_diagnosis(url)
    return None


def _sqlite_path_diagnosis(url: str) -> tuple[str, str]:
    """Why an SQLite file cannot be opened where ``url`` puts it."""
    path = sqlite_path(url)
    if path is not None and path.is_dir():
        return (
            "the SQLite path is a directory",
            f"name a file instead, e.g. sqlite:///{path / 'study.db'}",
        )
    folder = path.parent if path is not None else None
    if folder is not None and folder.is_dir() and not os.access(folder, os.W_OK):
        return (
            f"the folder {folder} is read-only",
            "make it writable or use an experiment directory you can write to",
        )
    return (
        "the SQLite file cannot be created there",
        "choose a path in a folder that exists (or can be created) and that you can write to",
    )


def storage_error(
    what: str,
    exc: BaseException,
    url: str,
    *,
    attempts: int | None = None,
    lost: bool = False,
    note: str = "",
) -> StorageUnavailableError:
    """A one-line ``StorageUnavailableError``: ``what`` failed on ``url`` because of ``exc``.

    ``attempts`` is how many times it was tried, ``lost`` that the connection kept failing and
    ``note`` an aside (a write in doubt). The message names the storage without its password,
    what went wrong and the fix. The cause is kept for tracebacks only when its text holds no
    secret of ``url``.
    """
    detail = scrub_secrets(describe_failure(exc), url)
    problem, fix = _diagnosis(detail, url) or (_LOST_CONNECTION if lost else _UNKNOWN)
    tries = "" if attempts is None else f" after {attempts} attempt(s)"
    aside = f" ({note})" if note else ""
    message = (
        f"Storage {redact_url(url)}: {what} failed{tries}{aside}: {problem} ({detail}); {fix}."
    )
    error = StorageUnavailableError(" ".join(message.split()))
    error.__cause__ = exc if scrub_secrets(str(exc), url) == str(exc) else None
    error.__suppress_context__ = True
    return error
