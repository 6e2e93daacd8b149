"""A worker survives its database: lost connections, a failed heartbeat, an interrupted start-up.

The database connections of a running experiment are killed about every second by a separate
admin connection (``pg_terminate_backend`` on PostgreSQL, ``KILL CONNECTION`` on MariaDB), for the
whole run: the run ends normally with exactly the rounds asked for, every retry is logged, and
no round is stored as failed because of the database. A heartbeat the database refuses ends its
round as an attempt that runs again. A start-up stopped at each of its steps (SIGKILL or Ctrl-C)
leaves a study that the same command, or a resume, continues.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

import optuna
import pytest
import sqlalchemy
from optuna.distributions import FloatDistribution
from optuna.study import StudyDirection
from optuna.trial import TrialState
from sqlalchemy.engine import make_url

import toy_sfd
from children import run_script
from limen.adapters.leases import STORAGE_ERROR
from limen.adapters.storage import LimenStorage
from limen.adapters.trials import ATTEMPT, ERROR_TYPE, ROUND_ID, is_finished_round
from limen.cli import main
from limen.experiment import UniversalExperimentLoop
from limen.experiment.records import METADATA_JSON

TESTS = Path(__file__).resolve().parent
RETRY = "Storage: retrying"
KILL_EVERY_S = 0.8
MAX_KILLS = 60


def score_model(data: dict, round_params: dict) -> dict:
    """A model that never fails: any FAIL round would be the database's doing."""
    time.sleep(0.02)
    return {"score": float(round_params["scale"]) + sum(round_params["window"]) / 100}


def kill_statement(url: str) -> tuple[str, str]:
    """The backend and the query listing this database's other connections (or killing them)."""
    backend = make_url(url).get_backend_name()
    if backend == "postgresql":
        return backend, (
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
    return backend, (
        "SELECT id FROM information_schema.processlist "
        "WHERE db = DATABASE() AND id <> CONNECTION_ID()"
    )


@contextmanager
def connections_killed(url: str, every: float = KILL_EVERY_S) -> Iterator[list[int]]:
    """Kill every other connection to ``url``'s database about every ``every`` seconds.

    Bounded: at most ``MAX_KILLS`` rounds of kills and two minutes; only a server on
    127.0.0.1 is touched. Yields the list of connections killed per round (filled as it runs).
    """
    assert make_url(url).host == "127.0.0.1", "the kill loop only targets a local server"
    backend, query = kill_statement(url)
    admin = sqlalchemy.create_engine(url, isolation_level="AUTOCOMMIT")
    stop = threading.Event()
    killed: list[int] = []
    deadline = time.monotonic() + 120

    def loop() -> None:
        with admin.connect() as conn:
            while not stop.wait(every) and len(killed) < MAX_KILLS:
                if time.monotonic() > deadline:
                    return
                if backend == "postgresql":
                    killed.append(int(conn.exec_driver_sql(query).scalar_one()))
                    continue
                ids = [row[0] for row in conn.exec_driver_sql(query)]
                for connection_id in ids:
                    # A connection may have ended on its own meanwhile.
                    with suppress(sqlalchemy.exc.DBAPIError):
                        conn.exec_driver_sql(f"KILL CONNECTION {int(connection_id)}")
                killed.append(len(ids))

    thread = threading.Thread(target=loop, name="connection-killer", daemon=True)
    thread.start()
    try:
        yield killed
    finally:
        stop.set()
        thread.join()
        admin.dispose()


def assert_exact_study(url: str, name: str, target: int) -> list[optuna.trial.FrozenTrial]:
    """Exactly ``target`` finished rounds, unique ids, none failed, none left RUNNING."""
    trials = optuna.load_study(study_name=name, storage=url).get_trials(deepcopy=False)
    rounds = [t for t in trials if is_finished_round(t)]
    assert len(rounds) == target
    ids = Counter(t.user_attrs[ROUND_ID] for t in rounds)
    assert ids.most_common(1)[0][1] == 1, "a round ran twice"
    assert [t.number for t in rounds if t.state == TrialState.FAIL] == []
    assert [t.number for t in trials if t.state == TrialState.RUNNING] == []
    assert [t.number for t in trials if ERROR_TYPE in t.user_attrs] == []
    return trials


@pytest.mark.slow
@pytest.mark.parametrize(
    "backend",
    [
        pytest.param("postgres", marks=pytest.mark.postgres),
        pytest.param("mysql", marks=pytest.mark.mysql),
    ],
)
@pytest.mark.parametrize("strategy", ["grid", "tpe"])
def test_one_worker_whose_connections_are_killed_every_second_finishes_exactly(
    request, tmp_path, caplog, backend, strategy, unique_study_name
):
    url = request.getfixturevalue(f"{backend}_url")
    caplog.set_level(logging.WARNING)
    target = 60
    loop = UniversalExperimentLoop(
        sfd=toy_sfd,
        data=toy_sfd.toy_data(),
        experiment_dir=tmp_path / "exp",
        storage=url,
        objective="score",
        search_strategy=None if strategy == "grid" else {"name": "tpe", "seed": 1},
    )
    with connections_killed(url) as killed:
        loop.run(unique_study_name, n_permutations=target, model=score_model, progress_bar=False)

    assert sum(killed) >= 3, f"too few connections were killed to test anything: {killed}"
    assert_exact_study(url, unique_study_name, target)
    assert len(loop.experiment_log) == target
    rows = (tmp_path / "exp" / "results.csv").read_text().strip().splitlines()
    assert len(rows) == target + 1
    retries = [r for r in caplog.records if r.getMessage().startswith(RETRY)]
    assert retries, "connections were killed mid-statement but no retry was logged"
    assert all(r.levelno == logging.WARNING and " after " in r.getMessage() for r in retries)


@pytest.mark.slow
@pytest.mark.parametrize(
    "backend",
    [
        pytest.param("postgres", marks=pytest.mark.postgres),
        pytest.param("mysql", marks=pytest.mark.mysql),
    ],
)
def test_four_workers_whose_connections_are_killed_every_second_finish_exactly(
    request, tmp_path, backend, unique_study_name
):
    url = request.getfixturevalue(f"{backend}_url")
    target = 56

    def slower_model(data: dict, round_params: dict) -> dict:
        time.sleep(0.2)
        return score_model(data, round_params)

    loop = UniversalExperimentLoop(
        sfd=toy_sfd,
        data=toy_sfd.toy_data(),
        experiment_dir=tmp_path / "exp",
        storage=url,
        objective="score",
        search_strategy={"name": "tpe", "seed": 1},
    )
    with connections_killed(url) as killed:
        log = loop.run(
            unique_study_name,
            n_permutations=target,
            n_jobs=4,
            model=slower_model,
            progress_bar=False,
        )

    assert sum(killed) >= 3, f"too few connections were killed to test anything: {killed}"
    assert_exact_study(url, unique_study_name, target)
    assert len(log) == target


@pytest.mark.postgres
def test_a_heartbeat_the_database_refuses_reruns_its_round_instead_of_failing_it(
    postgres_url, tmp_path, caplog, unique_study_name
):
    # The worker's statements give up on a lock after 50 ms; the test then holds the heartbeat
    # table for a few seconds from round 2 on, so the next rounds' first heartbeat fails for real.
    url = make_url(postgres_url).update_query_dict({"options": "-c lock_timeout=50"})
    url = url.render_as_string(hide_password=False)
    admin = sqlalchemy.create_engine(postgres_url)
    released = threading.Event()

    def hold_heartbeats(seconds: float) -> None:
        locked = threading.Event()

        def hold() -> None:
            with admin.begin() as conn:
                conn.exec_driver_sql("LOCK TABLE trial_heartbeats IN ACCESS EXCLUSIVE MODE")
                locked.set()
                time.sleep(seconds)
            released.set()

        threading.Thread(target=hold, daemon=True).start()
        locked.wait(10)

    calls = []

    def model(data: dict, round_params: dict) -> dict:
        calls.append(1)
        if len(calls) == 2:
            hold_heartbeats(4.0)
        return score_model(data, round_params)

    caplog.set_level(logging.WARNING)
    target = 6
    loop = UniversalExperimentLoop(
        sfd=toy_sfd,
        data=toy_sfd.toy_data(),
        experiment_dir=tmp_path / "exp",
        storage=url,
        objective="score",
    )
    loop.run(unique_study_name, n_permutations=target, model=model, progress_bar=False)
    assert released.wait(10)
    admin.dispose()

    trials = assert_exact_study(postgres_url, unique_study_name, target)
    attempts = [t for t in trials if t.user_attrs.get(ATTEMPT) == STORAGE_ERROR]
    assert attempts, "no round's heartbeat failed: the lock was not in the way"
    finished_ids = {t.user_attrs[ROUND_ID] for t in trials if is_finished_round(t)}
    assert {t.user_attrs[ROUND_ID] for t in attempts} <= finished_ids
    assert any(r.getMessage().startswith(RETRY) for r in caplog.records)


STARTUP = """
import logging, os, signal, sys
sys.path.insert(0, {tests!r})
import toy_sfd
from limen.experiment import UniversalExperimentLoop

class StopAt(logging.Handler):
    def emit(self, record):
        if {step!r} in record.getMessage():
            os.kill(os.getpid(), signal.{signal})

logging.getLogger("limen").addHandler(StopAt())
logging.getLogger("limen").setLevel(logging.DEBUG)
UniversalExperimentLoop(
    sfd=toy_sfd, data=toy_sfd.toy_data(), experiment_dir={directory!r}, storage={storage!r},
    objective="score",
).run({name!r}, n_permutations=4, progress_bar=False)
"""

# Start-up steps, in order, by the debug line logged once each is done.
STEPS = {
    "no study yet": "Opened the storage",
    "study without attributes": "created; recording its attributes",
    "study set up, no metadata.json": "set up.",
    "metadata.json, no round": "Wrote metadata.json",
}


def interrupted_start_up(directory: Path, url: str, name: str, step: str, sig: str) -> None:
    """Run a fresh experiment in a subprocess that stops itself with ``sig`` at ``step``."""
    script = STARTUP.format(
        tests=str(TESTS),
        step=STEPS[step],
        signal=sig,
        directory=str(directory),
        storage=url,
        name=name,
    )
    child = run_script(script)
    assert child.returncode != 0, "the start-up was not interrupted"


def rerun(directory: Path, url: str, name: str, resume: bool) -> UniversalExperimentLoop:
    loop = UniversalExperimentLoop(
        sfd=toy_sfd,
        data=toy_sfd.toy_data(),
        experiment_dir=directory,
        storage=url,
        objective="score",
    )
    loop.run(name, n_permutations=4, model=score_model, progress_bar=False, resume=resume)
    return loop


@pytest.mark.slow
@pytest.mark.postgres
@pytest.mark.parametrize(
    ("step", "sig", "resume"),
    [
        ("no study yet", "SIGKILL", False),
        ("study without attributes", "SIGKILL", False),
        ("study set up, no metadata.json", "SIGKILL", False),
        ("study set up, no metadata.json", "SIGKILL", True),
        ("metadata.json, no round", "SIGKILL", False),
        ("metadata.json, no round", "SIGKILL", True),
        ("study without attributes", "SIGINT", False),
        ("study set up, no metadata.json", "SIGINT", False),
    ],
)
def test_a_start_up_interrupted_on_postgres_is_continued_by_one_command(
    postgres_url, tmp_path, unique_study_name, step, sig, resume
):
    directory = tmp_path / "exp"
    interrupted_start_up(directory, postgres_url, unique_study_name, step, sig)
    loop = rerun(directory, postgres_url, unique_study_name, resume)
    assert len(loop.experiment_log) == 4
    assert (directory / METADATA_JSON).exists()
    assert_exact_study(postgres_url, unique_study_name, 4)


@pytest.mark.slow
@pytest.mark.parametrize("step", list(STEPS))
def test_a_start_up_killed_on_sqlite_is_run_again_by_the_same_command(tmp_path, step):
    directory = tmp_path / "exp"
    url = f"sqlite:///{directory / 'study.db'}"
    interrupted_start_up(directory, url, "toy", step, "SIGKILL")
    loop = rerun(directory, url, "toy", resume=False)
    assert len(loop.experiment_log) == 4
    assert_exact_study(url, "toy", 4)


def test_a_fresh_run_refuses_an_empty_study_set_up_for_another_experiment(tmp_path):
    directory = tmp_path / "exp"
    url = f"sqlite:///{directory / 'study.db'}"
    interrupted_start_up(directory, url, "toy", "metadata.json, no round", "SIGKILL")
    other = UniversalExperimentLoop(
        sfd=toy_sfd,
        data=toy_sfd.toy_data(),
        experiment_dir=directory,
        storage=url,
        objective="score",
        search_strategy="random",
    )
    with pytest.raises(FileExistsError, match=r"holds no rounds yet.*strategy.*resume='force'"):
        other.run("toy", n_permutations=4, progress_bar=False)


SLOW_COMMIT = """
CREATE OR REPLACE FUNCTION limen_test_slow_commit() RETURNS trigger AS $$
BEGIN PERFORM pg_sleep(1.0); RETURN NULL; END $$ LANGUAGE plpgsql;
CREATE CONSTRAINT TRIGGER limen_test_slow_commit AFTER INSERT OR UPDATE ON trials
DEFERRABLE INITIALLY DEFERRED FOR EACH ROW WHEN (NEW.study_id = {study_id})
EXECUTE FUNCTION limen_test_slow_commit();
"""
IN_COMMIT = (
    "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
    "AND pid <> pg_backend_pid() AND query = 'COMMIT' AND wait_event = 'PgSleep'"
)


@contextmanager
def commits_killed_once(url: str, study_id: int) -> Iterator[threading.Event]:
    """Make the study's trial writes sleep inside COMMIT and kill the first one caught there."""
    assert make_url(url).host == "127.0.0.1", "only a local server is touched"
    admin = sqlalchemy.create_engine(url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(SLOW_COMMIT.format(study_id=int(study_id)))
    killed = threading.Event()

    def kill_once() -> None:
        deadline = time.monotonic() + 20
        with admin.connect() as conn:
            while time.monotonic() < deadline:
                pids = [row[0] for row in conn.exec_driver_sql(IN_COMMIT)]
                if pids:
                    conn.exec_driver_sql(f"SELECT pg_terminate_backend({int(pids[0])})")
                    killed.set()
                    return
                time.sleep(0.02)

    thread = threading.Thread(target=kill_once, daemon=True)
    thread.start()
    try:
        yield killed
    finally:
        thread.join()
        with admin.connect() as conn:
            conn.exec_driver_sql("DROP TRIGGER IF EXISTS limen_test_slow_commit ON trials")
            conn.exec_driver_sql("DROP FUNCTION IF EXISTS limen_test_slow_commit()")
        admin.dispose()


@pytest.mark.slow
@pytest.mark.postgres
def test_a_round_claim_whose_commit_loses_its_connection_creates_the_round_once(
    empty_postgres_url, caplog
):
    storage = LimenStorage(empty_postgres_url)
    study_id = storage.create_new_study([StudyDirection.MAXIMIZE], "claim-in-doubt")
    spec = ({"x": 0.5}, {"x": FloatDistribution(0.0, 1.0)}, {ROUND_ID: "r1"}, {"owner": "me"})
    caplog.set_level(logging.WARNING)
    with commits_killed_once(empty_postgres_url, study_id) as killed:
        created, _ = storage.claim_new_round(
            study_id, spec, id_key=ROUND_ID, round_id="r1", after_trial_id=-1
        )
    assert killed.is_set()
    trials = storage.get_all_trials(study_id)
    assert [(t._trial_id, t.number, t.state) for t in trials] == [
        (created[0], 0, TrialState.RUNNING)
    ]
    retried = [r.getMessage() for r in caplog.records]
    assert any(m.startswith("Storage: retrying claiming round") for m in retried)
    storage.engine.dispose()


@pytest.mark.slow
@pytest.mark.postgres
def test_a_finish_whose_commit_loses_its_connection_is_stored_once(empty_postgres_url, caplog):
    storage = LimenStorage(empty_postgres_url)
    study_id = storage.create_new_study([StudyDirection.MAXIMIZE], "finish-in-doubt")
    trial_id, _ = storage.create_running_trial(
        study_id, {"x": 0.5}, {"x": FloatDistribution(0.0, 1.0)}
    )
    caplog.set_level(logging.WARNING)
    with commits_killed_once(empty_postgres_url, study_id) as killed:
        storage.finish_trial(trial_id, TrialState.COMPLETE, [0.75], {"score": 0.75})
    assert killed.is_set()
    trial = storage.get_trial(trial_id)
    assert (trial.state, trial.values, trial.user_attrs) == (
        TrialState.COMPLETE,
        [0.75],
        {"score": 0.75},
    )
    assert any(r.getMessage().startswith("Storage: retrying finishing") for r in caplog.records)
    storage.engine.dispose()


CLI_STARTUP = """
import logging, os, signal, sys
from limen.cli import main

class StopAt(logging.Handler):
    def emit(self, record):
        if {step!r} in record.getMessage():
            os.kill(os.getpid(), signal.SIGKILL)

logging.getLogger("limen").addHandler(StopAt())
logging.getLogger("limen").setLevel(logging.DEBUG)
sys.exit(main({args!r}))
"""


@pytest.mark.slow
@pytest.mark.parametrize(
    "backend", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
@pytest.mark.parametrize("step", ["study set up, no metadata.json", "metadata.json, no round"])
def test_limen_run_again_continues_a_start_up_killed_at_each_step(
    request, tmp_path, monkeypatch, backend, step
):
    monkeypatch.chdir(tmp_path)
    args = ["run", "--sfd", "logreg_binary", "--test-mode", "-n", "3", "--no-progress",
            "--experiment-dir", "exp"]  # fmt: skip
    if backend == "postgres":
        args += ["--storage", request.getfixturevalue("empty_postgres_url")]
    script = CLI_STARTUP.format(step=STEPS[step], args=args)
    child = run_script(script)
    assert child.returncode == -signal.SIGKILL, child.stderr[-2000:]
    assert main(args) == 0
    url = args[-1] if backend == "postgres" else "sqlite:///exp/study.db"
    assert_exact_study(url, "exp", 3)
    assert (tmp_path / "exp" / METADATA_JSON).exists()


@pytest.mark.slow
@pytest.mark.postgres
def test_a_queued_round_whose_start_loses_its_connection_is_started_once(
    empty_postgres_url, caplog
):
    storage = LimenStorage(empty_postgres_url)
    study_id = storage.create_new_study([StudyDirection.MAXIMIZE], "start-in-doubt")
    waiting = optuna.trial.create_trial(
        state=TrialState.WAITING,
        params={"x": 0.5},
        distributions={"x": FloatDistribution(0.0, 1.0)},
        user_attrs={ROUND_ID: "r1"},
    )
    trial_id = storage.create_new_trial(study_id, template_trial=waiting)
    caplog.set_level(logging.WARNING)
    with commits_killed_once(empty_postgres_url, study_id) as killed:
        started = storage.start_waiting_round(
            study_id, trial_id, params=[], user_attrs={ROUND_ID: "r1"},
            system_attrs={"owner": "me"}, id_key=ROUND_ID, exclude_key=ATTEMPT,
        )  # fmt: skip
    assert killed.is_set()
    assert started == (True, None)
    trial = storage.get_trial(trial_id)
    assert (trial.state, trial.system_attrs) == (TrialState.RUNNING, {"owner": "me"})
    assert any(r.getMessage().startswith("Storage: retrying starting") for r in caplog.records)
    storage.engine.dispose()
