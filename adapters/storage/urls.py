"""Storage URL rules: which databases Limen stores studies in, and how a URL is shown safely.

A storage URL may carry a password, in its userinfo (``user:secret@host``) or in its query
(``?password=secret``). Neither may reach a repr, a log line, an error message or a file:
``redact_url`` is the form to show and ``scrub_secrets`` cleans any text that might quote one.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any
from urllib.parse import quote, quote_plus

from sqlalchemy.engine import URL, make_url

from limen.errors import InvalidParameterError

__all__ = [
    "STUDY_DB_NAME",
    "SUPPORTED_BACKENDS",
    "default_storage_url",
    "is_sqlite",
    "redact_url",
    "scrub_secrets",
    "sqlite_path",
    "validate_storage_url",
]

STUDY_DB_NAME = "study.db"
SUPPORTED_BACKENDS = ("sqlite", "postgresql", "mysql", "mariadb")
_HIDDEN = "***"
_EXAMPLES = "'sqlite:///study.db' or 'postgresql+psycopg://user@host/db'"


def default_storage_url(experiment_dir: str | os.PathLike[str]) -> str:
    """The embedded default: ``sqlite:///<experiment_dir>/study.db``."""
    return f"sqlite:///{Path(experiment_dir).resolve() / STUDY_DB_NAME}"


def _is_secret_key(key: str) -> bool:
    """Whether a URL query key carries a password (``password``, ``passwd``, ``db_password``...)."""
    lowered = key.lower()
    return "password" in lowered or lowered in ("passwd", "pwd")


def _secrets(parsed: URL) -> list[str]:
    """Every password ``parsed`` carries, in userinfo or query, as given."""
    found = [] if parsed.password is None else [str(parsed.password)]
    for key, value in parsed.query.items():
        if _is_secret_key(key):
            found.extend([value] if isinstance(value, str) else list(value))
    return [secret for secret in found if secret and secret != _HIDDEN]


def redact_url(url: str) -> str:
    """``url`` with any password (userinfo or query) replaced by ``***``, safe to show."""
    try:
        parsed = make_url(url)
    except Exception:
        return "<unparseable storage URL>"
    secret_keys = [key for key in parsed.query if _is_secret_key(key)]
    if secret_keys:
        parsed = parsed.update_query_dict(dict.fromkeys(secret_keys, _HIDDEN))
    elif parsed.password is None:
        return url
    # The query is rendered URL-quoted: show the placeholder as the userinfo one reads.
    return parsed.render_as_string(hide_password=True).replace(quote(_HIDDEN, safe=""), _HIDDEN)


def scrub_secrets(text: str, url: str) -> str:
    """``text`` with every password of ``url`` (raw or URL-quoted) replaced by ``***``."""
    try:
        secrets = _secrets(make_url(url))
    except Exception:
        return text
    for secret in secrets:
        for form in {secret, quote(secret, safe=""), quote_plus(secret)}:
            text = text.replace(form, _HIDDEN)
    return text


def is_sqlite(url: str) -> bool:
    """Whether ``url`` names an SQLite database."""
    return make_url(url).get_backend_name() == "sqlite"


def sqlite_path(url: str) -> Path | None:
    """The database file of an SQLite ``url`` (None for other backends or in-memory)."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return None
    return Path(parsed.database)


def validate_storage_url(url: Any) -> str:
    """Check that ``url`` is a SQLAlchemy URL of a database Limen stores studies in.

    Raises ``InvalidParameterError`` (a ``ValueError`` and a ``TypeError``) naming the URL
    without its password and the form expected.
    """
    if not isinstance(url, str) or not url:
        raise InvalidParameterError(
            f"The 'storage' parameter must be a SQLAlchemy URL string such as {_EXAMPLES}. "
            f"Got {url!r} instead."
        )
    try:
        parsed = make_url(url)
        backend = parsed.get_backend_name()
    except Exception:
        raise InvalidParameterError(
            f"The 'storage' parameter is not a valid SQLAlchemy URL: {redact_url(url)!r}. "
            f"Use e.g. {_EXAMPLES}."
        ) from None
    if backend not in SUPPORTED_BACKENDS:
        raise InvalidParameterError(
            "The 'storage' parameter must name an SQLite, PostgreSQL or MySQL/MariaDB database. "
            f"Got {redact_url(url)!r} instead."
        )
    if backend == "sqlite" and parsed.database in (None, "", ":memory:"):
        raise InvalidParameterError(
            f"The 'storage' parameter {redact_url(url)!r} is an in-memory SQLite database, which "
            "keeps nothing after the process ends: give a file, e.g. 'sqlite:///study.db', or "
            "leave storage unset for <experiment_dir>/study.db."
        )
    return url
