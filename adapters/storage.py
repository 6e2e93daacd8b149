"""The study storage: URL rules, SQLite tuning and the storage the loop writes rounds through.

Only this module builds engines and storage URLs. ``LimenStorage`` is an Optuna ``RDBStorage``
(same schema, same tables), so every study it writes opens in plain Optuna and in
optuna-dashboard; it adds the few round-sized operations the loop needs.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from optuna.distributions import BaseDistribution
from optuna.storages import RDBStorage
from optuna.trial import FrozenTrial, TrialState
from sqlalchemy import event
from sqlalchemy.engine import make_url

STUDY_DB_NAME = "study.db"
SQLITE_BUSY_TIMEOUT_S = 60


def default_storage_url(experiment_dir: str | os.PathLike[str]) -> str:
    """The embedded default: ``sqlite:///<experiment_dir>/study.db``."""
    return f"sqlite:///{Path(experiment_dir).resolve() / STUDY_DB_NAME}"


def redact_url(url: str) -> str:
    """``url`` with any password replaced by ``***``, safe for logs, files and errors."""
    try:
        parsed = make_url(url)
    except Exception:
        return "<unparseable storage URL>"
    if parsed.password is None:
        return url
    return parsed.render_as_string(hide_password=True)


def is_sqlite(url: str) -> bool:
    """Whether ``url`` names an SQLite database."""
    return make_url(url).get_backend_name() == "sqlite"


def sqlite_path(url: str) -> Path | None:
    """The database file of an SQLite ``url`` (None for other backends or in-memory)."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or not parsed.database:
        return None
    return Path(parsed.database)


def validate_storage_url(url: Any) -> str:
    """Check that ``url`` is a SQLAlchemy URL Optuna can store studies in."""
    if not isinstance(url, str) or not url:
        raise TypeError(
            f"The 'storage' parameter must be a SQLAlchemy URL string such as "
            f"'sqlite:///study.db' or 'postgresql+psycopg://user@host/db'. Got {url!r} instead."
        )
    try:
        make_url(url)
    except Exception as exc:
        raise ValueError(
            f"The 'storage' parameter is not a valid SQLAlchemy URL: {redact_url(url)!r}. "
            "Use e.g. 'sqlite:///study.db' or 'postgresql+psycopg://user@host/db'."
        ) from exc
    return url


class LimenStorage(RDBStorage):
    """Optuna's RDB storage plus the round-sized writes of the Limen loop."""

    def create_running_trial(
        self,
        study_id: int,
        params: Mapping[str, float],
        distributions: Mapping[str, BaseDistribution],
        user_attrs: Mapping[str, Any] | None = None,
        system_attrs: Mapping[str, Any] | None = None,
    ) -> tuple[int, int]:
        """Create a RUNNING trial holding ``params`` (internal representation) in one go.

        Returns ``(trial_id, number)``.
        """
        template = FrozenTrial(
            number=-1,
            state=TrialState.RUNNING,
            value=None,
            values=None,
            datetime_start=datetime.now(),
            datetime_complete=None,
            params={
                name: distributions[name].to_external_repr(value) for name, value in params.items()
            },
            distributions=dict(distributions),
            user_attrs=dict(user_attrs or {}),
            system_attrs=dict(system_attrs or {}),
            intermediate_values={},
            trial_id=-1,
        )
        trial = self._create_new_trial(study_id, template)
        return trial._trial_id, trial.number

    def finish_trial(
        self,
        trial_id: int,
        state: TrialState,
        values: Sequence[float] | None,
        user_attrs: Mapping[str, Any],
    ) -> None:
        """Store a round's outcome: its user attrs, values and final state."""
        for key, value in user_attrs.items():
            self.set_trial_user_attr(trial_id, key, value)
        self.set_trial_state_values(trial_id, state, list(values) if values is not None else None)

    def claim_sequence(self, study_id: int, key: str, count: int = 1) -> int:
        """Atomically take ``count`` positions of the study-wide counter ``key``.

        Returns the first position taken; concurrent callers never get the same position.
        The counter lives in the study's system attrs.
        """
        attr = f"limen:seq:{key}"
        current = self.get_study_system_attrs(study_id).get(attr, 0)
        self.set_study_system_attr(study_id, attr, current + count)
        return current


def _tune_sqlite(engine_connection: Any, _record: Any) -> None:
    cursor = engine_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute(f"PRAGMA synchronous={os.environ.get('LIMEN_SQLITE_SYNC', 'NORMAL')}")
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_S * 1000}")
    cursor.close()


def open_storage(url: str) -> LimenStorage:
    """Open (creating tables when needed) the storage at ``url``."""
    validate_storage_url(url)
    engine_kwargs: dict[str, Any] = {}
    if is_sqlite(url):
        path = sqlite_path(url)
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
        engine_kwargs["connect_args"] = {"timeout": SQLITE_BUSY_TIMEOUT_S}
    storage = LimenStorage(url, engine_kwargs=engine_kwargs)
    if is_sqlite(url):
        event.listen(storage.engine, "connect", _tune_sqlite)
        storage.engine.dispose()
    return storage

