"""Bad storages: each ends in a typed ``LimenError`` with one line that names the storage without
its password, says what went wrong and what to do, and leaves nothing behind.

Servers come from ``LIMEN_TEST_POSTGRES_URL`` / ``LIMEN_TEST_MYSQL_URL``; a URL to a closed port,
an unknown user or an unknown database on them is refused at once. A full disk and a read-only
folder are small tmpfs mounts (skipped where this process may not mount); ``/dev/full`` is a
full disk everywhere.
"""

from __future__ import annotations

import gc
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from optuna.distributions import IntDistribution
from optuna.exceptions import StorageInternalError
from optuna.study import StudyDirection
from sqlalchemy import create_engine
from sqlalchemy.engine import make_url

import toy_sfd
from databases import MYSQL_ENV, POSTGRES_ENV, scratch_database, server_url
from limen.adapters.storage import (
    StorageUnavailableError,
    open_storage,
    probe_study,
    redact_url,
    validate_storage_url,
)
from limen.cli import EXIT_USAGE, main
from limen.errors import InvalidParameterError, LimenError
from limen.experiment import UniversalExperimentLoop

SECRET = "s3cr3t-Pw"


def _on_server(env: str, **changes: object) -> str:
    """A URL on the test server ``env`` with ``changes`` (user, password, port, database...)."""
    query = changes.pop("query", None)
    url = make_url(server_url(env)).set(**changes)
    if query:
        url = url.update_query_dict(query)
    return url.render_as_string(hide_password=False)


def _garbage(path: Path) -> None:
    path.write_bytes(bytes(range(256)) * 16)


def _sqlite_header_then_garbage(path: Path) -> None:
    path.write_bytes(b"SQLite format 3\x00" + b"\xff" * 4080)


@pytest.fixture
def mounted(tmp_path: Path) -> Iterator[Callable[[str], Path]]:
    """Mount a small tmpfs with the given options in ``tmp_path`` (skip where not allowed)."""
    mounts: list[Path] = []

    def mount(options: str) -> Path:
        point = tmp_path / f"mount{len(mounts)}"
        point.mkdir()
        done = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(point)],
            capture_output=True,
            check=False,
        )
        if done.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
        mounts.append(point)
        return point

    yield mount
    # A failed open may leave a pooled connection to a file there until it is collected.
    gc.collect()
    for point in mounts:
        done = subprocess.run(["umount", str(point)], capture_output=True, check=False)
        if done.returncode != 0:
            subprocess.run(["umount", "--lazy", str(point)], check=True)


def _files(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*")) if root.exists() else []


def _full_text(error: BaseException) -> str:
    """The error's message and repr, with every cause and context it carries."""
    text, seen = "", set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        text += f"{error}\n{error!r}\n"
        error = error.__cause__ or error.__context__
    return text


def _assert_one_safe_line(error: BaseException, url: str, *expected: str) -> None:
    message = str(error)
    assert isinstance(error, LimenError)
    assert "\n" not in message
    assert SECRET not in _full_text(error)
    assert redact_url(url) in message
    for fragment in expected:
        assert fragment in message


# --- Servers that cannot be used -----------------------------------------------------------------

SERVER_CASES = {
    "postgres closed port": (
        POSTGRES_ENV,
        {"port": 1, "password": SECRET},
        "cannot be reached",
    ),
    "postgres unknown user": (
        POSTGRES_ENV,
        {"username": "limen_no_such_user", "password": SECRET},
        "no such user",
    ),
    "postgres unknown database": (
        POSTGRES_ENV,
        {"database": "limen_no_such_db", "password": SECRET},
        "no such database",
    ),
    "postgres password in the query": (
        POSTGRES_ENV,
        {"database": "limen_no_such_db", "query": {"password": SECRET}},
        "no such database",
    ),
    "postgres unknown host": (
        POSTGRES_ENV,
        {"host": "limen-no-such-host.invalid", "password": SECRET},
        "cannot be reached",
    ),
    "mysql wrong password": (
        MYSQL_ENV,
        {"password": SECRET},
        "refused the user name or password",
    ),
    "mysql unknown user": (
        MYSQL_ENV,
        {"username": "limen_no_such_user", "password": SECRET},
        "refused the user name or password",
    ),
}


@pytest.mark.parametrize("case", SERVER_CASES, ids=list(SERVER_CASES))
def test_a_server_that_refuses_or_is_absent_raises_a_typed_one_line_error(case: str) -> None:
    env, changes, problem = SERVER_CASES[case]
    url = _on_server(env, **changes)
    with pytest.raises(StorageUnavailableError) as error:
        open_storage(url)
    _assert_one_safe_line(error.value, url, problem, "storage URL")
    # Existing handlers of Optuna's storage errors and of OS errors still catch it.
    assert isinstance(error.value, StorageInternalError)
    assert isinstance(error.value, OSError)


@pytest.mark.slow
def test_a_closed_mysql_port_is_retried_then_reported(caplog: pytest.LogCaptureFixture) -> None:
    url = _on_server(MYSQL_ENV, port=1, password=SECRET)
    with pytest.raises(StorageUnavailableError) as error:
        open_storage(url)
    _assert_one_safe_line(error.value, url, "cannot be reached", "after 8 attempt(s)")
    assert SECRET not in caplog.text


def test_a_database_dropped_under_an_open_storage_is_a_typed_error() -> None:
    server = server_url(POSTGRES_ENV)
    with scratch_database(server, "limen_bad") as database:
        storage = open_storage(database)
        try:
            study_id = storage.create_new_study([StudyDirection.MINIMIZE], "s")
            admin = create_engine(server, isolation_level="AUTOCOMMIT")
            quoted = admin.dialect.identifier_preparer.quote(make_url(database).database)
            with admin.connect() as conn:
                conn.exec_driver_sql(f"DROP DATABASE {quoted} WITH (FORCE)")
            admin.dispose()
            with pytest.raises(StorageUnavailableError) as error:
                storage.create_running_trial(study_id, {"x": 1.0}, {"x": IntDistribution(0, 3)})
        finally:
            storage.engine.dispose()
    _assert_one_safe_line(error.value, database, "creating a RUNNING trial failed")


# --- SQLite files that cannot be used ------------------------------------------------------------


def _corrupt(tmp_path: Path, mount: Callable[[str], Path]) -> Path:
    path = tmp_path / "exp" / "study.db"
    path.parent.mkdir()
    _garbage(path)
    return path


def _header_then_garbage(tmp_path: Path, mount: Callable[[str], Path]) -> Path:
    path = tmp_path / "exp" / "study.db"
    path.parent.mkdir()
    _sqlite_header_then_garbage(path)
    return path


def _a_directory(tmp_path: Path, mount: Callable[[str], Path]) -> Path:
    path = tmp_path / "exp" / "study.db"
    path.mkdir(parents=True)
    return path


def _full_tmpfs(tmp_path: Path, mount: Callable[[str], Path]) -> Path:
    return mount("size=16k") / "study.db"


def _full_tmpfs_subfolder(tmp_path: Path, mount: Callable[[str], Path]) -> Path:
    return mount("size=16k") / "exp" / "study.db"


def _read_only_tmpfs(tmp_path: Path, mount: Callable[[str], Path]) -> Path:
    return mount("ro,size=64k") / "study.db"


def _read_only_tmpfs_subfolder(tmp_path: Path, mount: Callable[[str], Path]) -> Path:
    return mount("ro,size=64k") / "exp" / "study.db"


SQLITE_CASES = {
    "corrupt file": (_corrupt, "not a readable SQLite database"),
    "sqlite header then garbage": (_header_then_garbage, "not a readable SQLite database"),
    "path is a directory": (_a_directory, "is a directory"),
    "under /proc": (lambda *_: Path("/proc/limen-no-such-dir/study.db"), "cannot be created"),
    "a file in /proc": (lambda *_: Path("/proc/study.db"), "cannot be created"),
    "/dev/full": (lambda *_: Path("/dev/full"), "disk is full"),
    "full disk": (_full_tmpfs, "disk is full"),
    "full disk, new folder": (_full_tmpfs_subfolder, "disk is full"),
    "read-only folder": (_read_only_tmpfs, "read-only"),
    "read-only folder, new folder": (_read_only_tmpfs_subfolder, "read-only"),
}


@pytest.mark.parametrize("case", SQLITE_CASES, ids=list(SQLITE_CASES))
def test_an_unusable_sqlite_file_raises_a_typed_error_and_writes_nothing(
    case: str, tmp_path: Path, mounted: Callable[[str], Path]
) -> None:
    make, problem = SQLITE_CASES[case]
    path = make(tmp_path, mounted)
    url = f"sqlite:///{path}"
    before = _files(tmp_path)
    content = path.read_bytes() if path.is_file() and path.parent != Path("/dev") else None
    with pytest.raises(StorageUnavailableError) as error:
        open_storage(url)
    _assert_one_safe_line(error.value, url, problem)
    assert _files(tmp_path) == before
    if content is not None:
        assert path.read_bytes() == content


def test_probing_a_corrupt_file_is_a_typed_error_and_changes_nothing(tmp_path: Path) -> None:
    path = tmp_path / "study.db"
    _garbage(path)
    content = path.read_bytes()
    with pytest.raises(StorageUnavailableError) as error:
        probe_study(f"sqlite:///{path}", "s")
    _assert_one_safe_line(error.value, f"sqlite:///{path}", "not a readable SQLite database")
    assert path.read_bytes() == content
    assert _files(tmp_path) == ["study.db"]


# --- URLs Limen does not store in ----------------------------------------------------------------

URL_CASES = {
    "in-memory sqlite": "sqlite:///:memory:",
    "sqlite without a path": "sqlite://",
    "unsupported backend with a password": f"redis://user:{SECRET}@localhost/0",
    "oracle with a password in the query": f"oracle://user@host/db?password={SECRET}",
    "not a URL": f"user:{SECRET}@nowhere",
    "empty": "",
    "not a string": 5,
}


@pytest.mark.parametrize("case", URL_CASES, ids=list(URL_CASES))
def test_a_url_limen_does_not_store_in_is_an_invalid_parameter(
    case: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = URL_CASES[case]
    monkeypatch.chdir(tmp_path)
    with pytest.raises(InvalidParameterError) as error:
        open_storage(url)
    message = str(error.value)
    assert "'storage' parameter" in message
    assert SECRET not in _full_text(error.value)
    assert isinstance(error.value, ValueError)
    assert _files(tmp_path) == []
    with pytest.raises(InvalidParameterError):
        validate_storage_url(url)


# --- Redaction -----------------------------------------------------------------------------------

REDACTED = {
    "userinfo": f"postgresql+psycopg://u:{SECRET}@h/db",
    "query password": f"postgresql+psycopg://u@h/db?password={SECRET}",
    "query Password": f"postgresql+psycopg://u@h/db?Password={SECRET}",
    "query passwd": f"mysql+pymysql://u@h/db?passwd={SECRET}",
    "query db_password": f"postgresql+psycopg://u@h/db?sslmode=require&db_password={SECRET}",
    "userinfo and query": f"postgresql+psycopg://u:{SECRET}@h/db?password={SECRET}",
}


@pytest.mark.parametrize("case", REDACTED, ids=list(REDACTED))
def test_redact_url_hides_every_password(case: str) -> None:
    shown = redact_url(REDACTED[case])
    assert SECRET not in shown
    assert "***" in shown
    assert "%2A" not in shown


# --- The command line ----------------------------------------------------------------------------

CLI_CASES = {
    "postgres closed port": lambda tmp: _on_server(POSTGRES_ENV, port=1, password=SECRET),
    "postgres unknown user": lambda tmp: _on_server(
        POSTGRES_ENV, username="limen_no_such_user", password=SECRET
    ),
    "postgres password in the query": lambda tmp: _on_server(
        POSTGRES_ENV, database="limen_no_such_db", query={"password": SECRET}
    ),
    "corrupt study.db": lambda tmp: f"sqlite:///{_garbage(tmp / 'study.db') or tmp / 'study.db'}",
    "study.db is a directory": lambda tmp: f"sqlite:///{(tmp / 'study.db').mkdir() or tmp}",
    "under /proc": lambda tmp: "sqlite:////proc/limen-no-such-dir/study.db",
}


def _cli_args(command: str, url: str, tmp_path: Path) -> list[str]:
    if command == "run":
        return ["run", "--sfd", "logreg_binary", "--test-mode", "-n", "2", "--storage", url,
                "--experiment-dir", str(tmp_path / "exp")]  # fmt: skip
    if command == "worker":
        return ["worker", "--storage", url, "--study", "x"]
    extra = ["--out", str(tmp_path / "out.csv")] if command == "export" else []
    return [command, url, "--study", "x", *extra]


@pytest.mark.parametrize("command", ["status", "export", "run", "worker"])
@pytest.mark.parametrize("case", CLI_CASES, ids=list(CLI_CASES))
def test_the_cli_reports_a_bad_storage_without_a_traceback_or_password(
    case: str, command: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = CLI_CASES[case](tmp_path)
    before = _files(tmp_path)
    code = main(_cli_args(command, url, tmp_path))
    out, err = capsys.readouterr()
    assert code == EXIT_USAGE
    assert "Traceback" not in err
    assert SECRET not in out + err
    assert err.strip() and len(err.strip().splitlines()) == 1
    assert _files(tmp_path) == before


# --- The loop ------------------------------------------------------------------------------------

LOOP_CASES = {
    "postgres closed port": lambda exp: _on_server(POSTGRES_ENV, port=1, password=SECRET),
    "postgres unknown database": lambda exp: _on_server(
        POSTGRES_ENV, database="limen_no_such_db", password=SECRET
    ),
    "corrupt study.db": lambda exp: _garbage(exp / "study.db") or f"sqlite:///{exp / 'study.db'}",
    "study.db is a directory": lambda exp: (
        (exp / "study.db").mkdir() or f"sqlite:///{exp}/study.db"
    ),
}


@pytest.mark.parametrize("case", LOOP_CASES, ids=list(LOOP_CASES))
def test_a_run_on_a_bad_storage_raises_a_typed_error_and_writes_nothing(
    case: str, tmp_path: Path
) -> None:
    experiment = tmp_path / "exp"
    experiment.mkdir()
    url = LOOP_CASES[case](experiment)
    before = {p: p.read_bytes() for p in experiment.rglob("*") if p.is_file()}
    listing = _files(tmp_path)
    loop = UniversalExperimentLoop(
        sfd=toy_sfd, data=toy_sfd.toy_data(), experiment_dir=experiment, storage=url
    )
    with pytest.raises(StorageUnavailableError) as error:
        loop.run("toy", n_permutations=2, progress_bar=False)
    _assert_one_safe_line(error.value, url)
    assert _files(tmp_path) == listing
    assert {p: p.read_bytes() for p in experiment.rglob("*") if p.is_file()} == before


def test_a_study_at_an_older_optuna_schema_is_one_line_naming_the_upgrade(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    experiment = tmp_path / "exp"
    run = ["run", "--sfd", "logreg_binary", "--test-mode", "-n", "2", "--no-progress",
           "--experiment-dir", str(experiment)]  # fmt: skip
    assert main(run) == 0
    url = f"sqlite:///{experiment / 'study.db'}"
    engine = create_engine(url)
    with engine.begin() as connection:
        connection.exec_driver_sql("UPDATE alembic_version SET version_num = 'v3.0.0.a'")
    engine.dispose()
    capsys.readouterr()
    before = (experiment / "study.db").read_bytes()

    code = main(["resume", str(experiment), "-n", "4", "--no-progress"])

    err = capsys.readouterr().err.strip()
    assert code == EXIT_USAGE
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    assert "optuna storage upgrade" in err
    assert (experiment / "study.db").read_bytes() == before
