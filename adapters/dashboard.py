"""optuna-dashboard on a Limen study: resolve what the user named, build the app, serve it.

``limen dashboard DIR|URL`` is a thin layer over :func:`serve`; tests call :func:`create_app` and
drive the WSGI app in-process. The dashboard shows every study in the storage; the experiment's
``artifacts/`` folder is its artifact store, so round artifacts (predictions, model cards) open in
its artifact viewer.

Running beside an experiment: the dashboard opens the storage as a viewer, the way
optuna-dashboard's own command does (no table creation, no schema check, no change to the
database's settings). Its reads are single statements that take no write lock, and on Limen's
SQLite files (WAL journal) they never block the experiment's writes. It writes only when the user
edits something in the browser (a note, an upload), in short transactions like any other client.
"""

from __future__ import annotations

import errno
import logging
import os
import socket
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from optuna.artifacts import FileSystemArtifactStore
from optuna.storages import RDBStorage
from sqlalchemy.exc import SQLAlchemyError

from limen.adapters.artifacts import artifact_dir as experiment_artifact_dir
from limen.adapters.storage import (
    redact_url,
    sqlite_has_study,
    sqlite_path,
    viewer_storage,
)
from limen.errors import LimenError
from limen.experiment.experiment_source import checked_storage_url, directory_storage, read_metadata

__all__ = [
    "DEFAULT_HOST",
    "DEFAULT_PORT",
    "DashboardError",
    "DashboardTarget",
    "create_app",
    "open_viewer_storage",
    "resolve_target",
    "serve",
]

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8080

_logger = logging.getLogger(__name__)


class DashboardError(LimenError, ValueError):
    """The dashboard cannot start on what was given: no study, a bad URL, a busy port."""


@dataclass(frozen=True)
class DashboardTarget:
    """What the dashboard shows: a storage, the study to open first, and the artifact folder.

    Attributes:
        storage_url: SQLAlchemy URL of the storage (may hold a password: show ``redact_url``).
        study_name: the study whose page is announced; None to announce the study list.
        artifact_dir: the experiment's artifact folder, or None when there is none.
    """

    storage_url: str
    study_name: str | None
    artifact_dir: Path | None


def resolve_target(
    location: str | os.PathLike[str],
    *,
    study_name: str | None = None,
    artifact_dir: str | os.PathLike[str] | None = None,
) -> DashboardTarget:
    """Turn ``DIR|URL`` into a storage URL, a study name and an artifact folder.

    A directory is an experiment directory, found as every command finds it
    (``resolve_experiment``). A URL is any storage Limen writes to; an SQLite URL's folder
    doubles as the experiment directory for artifacts. Raises ``DashboardError`` naming the fix.
    """
    try:
        text = os.fspath(location)
        if "://" in text:
            url = checked_storage_url(text)
            directory = _sqlite_dir(url)
            metadata: dict[str, Any] = {}
        else:
            directory = Path(text)
            metadata = read_metadata(directory)
            url = directory_storage(directory, metadata)
    except (LimenError, TypeError) as exc:
        raise DashboardError(str(exc)) from None
    if artifact_dir is not None:
        artifacts: Path | None = Path(artifact_dir)
        if not artifacts.is_dir():
            raise DashboardError(f"The artifact directory {artifacts} does not exist.")
    elif directory is not None:
        artifacts = experiment_artifact_dir(directory)
    else:
        artifacts = None
    return DashboardTarget(
        storage_url=url,
        study_name=study_name or metadata.get("study_name"),
        artifact_dir=artifacts,
    )


def open_viewer_storage(url: str) -> RDBStorage:
    """Open an existing storage for viewing: no tables created, no schema check, no settings.

    Raises ``DashboardError`` when the database is missing, unreachable or not an Optuna storage.
    """
    path = sqlite_path(url)
    if path is not None:
        _check_sqlite_has_study(path)
    try:
        return viewer_storage(url)
    except SQLAlchemyError as exc:
        raise DashboardError(
            f"Cannot open {redact_url(url)} as an Optuna storage ({type(exc).__name__}). Check "
            "that the database is reachable and holds a study written by Limen or Optuna."
        ) from None


def create_app(target: DashboardTarget) -> tuple[Callable[..., Any], int | None]:
    """Build the optuna-dashboard WSGI app for ``target``.

    Returns the app and the id of ``target.study_name`` (or of the only study), which names the
    study's page ``/dashboard/studies/<id>``; None when the storage holds several studies and
    none was named. Raises ``DashboardError`` when the storage holds no study or not the named one.
    """
    try:
        from optuna_dashboard import wsgi
    except ImportError:
        raise DashboardError(
            "optuna-dashboard is not installed: pip install 'limen[dashboard]'."
        ) from None

    storage = open_viewer_storage(target.storage_url)
    study_id = _study_id(storage, target)
    store = None
    if target.artifact_dir is not None:
        # The folder may not exist yet (no artifact uploaded): the viewer then lists none.
        store = FileSystemArtifactStore(target.artifact_dir)
    return wsgi(storage, artifact_store=store), study_id


def serve(
    target: DashboardTarget,
    *,
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    on_ready: Callable[[str], None] | None = None,
) -> None:
    """Serve the dashboard of ``target`` on ``host:port`` until interrupted (Ctrl-C).

    The port is bound before anything is announced, so a busy port fails at once with a
    ``DashboardError``; ``port=0`` takes a free one. Once the server accepts connections, the URL of
    the study's page (or of the study list) is logged, or handed to ``on_ready`` when given.
    """
    app, study_id = create_app(target)
    server = _bind(host, port, app)
    try:
        bound_port = server.server_address[1]
        url = f"http://{_url_host(host)}:{bound_port}/dashboard"
        if study_id is not None:
            url += f"/studies/{study_id}"
        if on_ready is None:
            _logger.info("optuna-dashboard on %s (%s)", url, redact_url(target.storage_url))
        else:
            on_ready(url)
        server.serve_forever()
    except KeyboardInterrupt:
        _logger.info("Dashboard stopped.")
    finally:
        server.server_close()


def _sqlite_dir(url: str) -> Path | None:
    path = sqlite_path(url)
    return path.parent if path is not None else None


def _check_sqlite_has_study(path: Path) -> None:
    """Refuse an SQLite file that holds no study yet, reading it through a read-only connection.

    Opening an ``RDBStorage`` on a database whose schema is still being created would write the
    schema's version rows and could collide with the experiment doing the same; once a study
    exists, that setup is complete.
    """
    if not path.is_file():
        raise DashboardError(f"No study database at {path}: run an experiment there first.")
    if not sqlite_has_study(path):
        raise DashboardError(
            f"{path} holds no study: run an experiment first (or wait until it starts)."
        )


def _study_id(storage: RDBStorage, target: DashboardTarget) -> int | None:
    try:
        studies = storage.get_all_studies()
    except SQLAlchemyError as exc:
        raise DashboardError(
            f"{redact_url(target.storage_url)} is not an Optuna storage ({type(exc).__name__})."
        ) from None
    where = redact_url(target.storage_url)
    if not studies:
        raise DashboardError(f"{where} holds no study: run an experiment first.")
    names = {study.study_name: study._study_id for study in studies}
    if target.study_name is None:
        return next(iter(names.values())) if len(names) == 1 else None
    if target.study_name not in names:
        raise DashboardError(
            f"No study named {target.study_name!r} in {where}. Its studies: "
            f"{', '.join(sorted(names))}."
        )
    return names[target.study_name]


class _ThreadingWSGIServer(ThreadingMixIn, WSGIServer):
    """One thread per request, as optuna-dashboard's own wsgiref server, so a slow plot does
    not stall the page."""

    daemon_threads = True


class _ThreadingWSGIServerV6(_ThreadingWSGIServer):
    address_family = socket.AF_INET6


class _QuietHandler(WSGIRequestHandler):
    """Request lines go to the debug log instead of stderr."""

    def log_message(self, format: str, *args: Any) -> None:
        _logger.debug("%s " + format, self.address_string(), *args)


def _bind(host: str, port: int, app: Callable[..., Any]) -> WSGIServer:
    """Bind the server now, turning a busy or forbidden port into a clear error."""
    if not isinstance(port, int) or isinstance(port, bool) or not 0 <= port <= 65535:
        raise DashboardError(f"The port must be an int in [0, 65535]. Got {port!r} instead.")
    server_class = _ThreadingWSGIServerV6 if ":" in host else _ThreadingWSGIServer
    try:
        return make_server(host, port, app, server_class=server_class, handler_class=_QuietHandler)
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            raise DashboardError(
                f"Port {port} on {host} is already in use: choose another with --port."
            ) from None
        raise DashboardError(f"Cannot listen on {host}:{port}: {exc.strerror or exc}.") from None


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host
