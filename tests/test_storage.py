"""LimenStorage: round writes, the sequence counter, SQLite tuning, secrets, Optuna compatibility.

Optuna's own conformance suite is in ``test_storage_conformance.py``; many processes at once in
``test_storage_concurrency.py``.
"""

from __future__ import annotations

import json
import math
import pickle
import sqlite3
import threading
import time
import traceback
import uuid
from collections.abc import Iterator
from typing import Any
from wsgiref.util import setup_testing_defaults

import optuna
import pytest
import sqlalchemy
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.exceptions import StorageInternalError, UpdateFinishedTrialError
from optuna.storages import RDBStorage
from optuna.study import StudyDirection
from optuna.trial import TrialState
from sqlalchemy.engine import make_url

from limen.adapters.storage import (
    MAX_ATTEMPTS,
    LimenStorage,
    StorageSchemaError,
    default_storage_url,
    open_storage,
    redact_url,
    sqlite_path,
    validate_storage_url,
)
from limen.adapters.storage.optuna_internals import METADATA, head_revision
from limen.errors import LimenError

DISTRIBUTIONS = {
    "lr": FloatDistribution(1e-5, 1.0, log=True),
    "depth": IntDistribution(1, 10),
    "kernel": CategoricalDistribution(("linear", "rbf", None)),
}
EXTERNAL = {"lr": 0.01, "depth": 3, "kernel": "rbf"}
INTERNAL = {name: DISTRIBUTIONS[name].to_internal_repr(v) for name, v in EXTERNAL.items()}
SECRET = "s3cr3t-pw"


@pytest.fixture(autouse=True)
def _quiet_optuna() -> None:
    optuna.logging.set_verbosity(optuna.logging.WARNING)


@pytest.fixture
def storage(storage_url: str) -> Iterator[LimenStorage]:
    opened = open_storage(storage_url)
    yield opened
    opened.engine.dispose()


@pytest.fixture
def study_id(storage: LimenStorage) -> int:
    return storage.create_new_study([StudyDirection.MINIMIZE], "study")


def _round(storage: LimenStorage, study_id: int, value: float, **attrs: Any) -> int:
    trial_id, _ = storage.create_running_trial(study_id, INTERNAL, DISTRIBUTIONS)
    storage.finish_trial(trial_id, TrialState.COMPLETE, [value], {"accuracy": value, **attrs})
    return trial_id


# --- URLs and secrets ---------------------------------------------------------------------------


def test_redact_url_hides_the_password() -> None:
    redacted = redact_url(f"postgresql+psycopg://alice:{SECRET}@db.example/limen")
    assert SECRET not in redacted
    assert redacted == "postgresql+psycopg://alice:***@db.example/limen"


def test_redact_url_hides_a_password_passed_as_a_query_parameter() -> None:
    redacted = redact_url(f"postgresql+psycopg://alice@db.example/limen?password={SECRET}")
    assert SECRET not in redacted


def test_redact_url_leaves_a_url_without_secrets_unchanged() -> None:
    assert redact_url("sqlite:////tmp/study.db") == "sqlite:////tmp/study.db"


def test_validate_storage_url_names_the_accepted_forms() -> None:
    with pytest.raises(TypeError, match=r"'sqlite:///study\.db'"):
        validate_storage_url(None)
    with pytest.raises(ValueError, match="not a valid SQLAlchemy URL"):
        validate_storage_url("not a url")


def test_validate_storage_url_rejects_other_databases_without_showing_the_password() -> None:
    with pytest.raises(ValueError, match="SQLite, PostgreSQL or MySQL/MariaDB") as error:
        validate_storage_url(f"mssql+pyodbc://sa:{SECRET}@server/db")
    assert SECRET not in str(error.value)


def test_sqlite_path_and_default_url(tmp_path) -> None:
    url = default_storage_url(tmp_path / "run")
    assert sqlite_path(url) == (tmp_path / "run" / "study.db").resolve()
    assert sqlite_path("sqlite:///:memory:") is None
    assert sqlite_path("postgresql+psycopg://u@h/db") is None


def test_open_storage_error_never_shows_the_password() -> None:
    url = f"postgresql+psycopg://alice:{SECRET}@127.0.0.1:1/limen?connect_timeout=2"
    with pytest.raises(StorageInternalError) as error:
        open_storage(url)
    assert SECRET not in "".join(traceback.format_exception(error.value))
    assert "alice:***@127.0.0.1:1" in str(error.value)


@pytest.mark.postgres
def test_repr_hides_the_password(postgres_url: str) -> None:
    # The test server trusts local connections, so any password is accepted.
    url = make_url(postgres_url).set(password=SECRET).render_as_string(hide_password=False)
    storage = LimenStorage(url)
    try:
        assert SECRET not in repr(storage)
        assert "***" in repr(storage)
    finally:
        storage.engine.dispose()


# --- SQLite tuning ------------------------------------------------------------------------------


def _pragmas(storage: LimenStorage) -> tuple[str, int, int]:
    with storage.engine.connect() as conn:
        return (
            conn.exec_driver_sql("PRAGMA journal_mode").scalar(),
            conn.exec_driver_sql("PRAGMA synchronous").scalar(),
            conn.exec_driver_sql("PRAGMA busy_timeout").scalar(),
        )


def test_sqlite_uses_wal_normal_sync_and_a_busy_timeout(
    sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("LIMEN_SQLITE_SYNC", raising=False)
    journal, synchronous, busy_ms = _pragmas(LimenStorage(sqlite_url))
    assert (journal, synchronous) == ("wal", 1)  # 1 is NORMAL
    assert busy_ms >= 10_000


def test_sqlite_sync_env_var_restores_full_durability(
    sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LIMEN_SQLITE_SYNC", "full")
    assert _pragmas(LimenStorage(sqlite_url))[1] == 2  # 2 is FULL


def test_sqlite_synchronous_option_wins_over_the_env_var(
    sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LIMEN_SQLITE_SYNC", "NORMAL")
    assert _pragmas(open_storage(sqlite_url, sqlite_synchronous="FULL"))[1] == 2


def test_an_unknown_sqlite_sync_mode_is_rejected(sqlite_url: str) -> None:
    with pytest.raises(ValueError, match="OFF, NORMAL, FULL, EXTRA"):
        LimenStorage(sqlite_url, sqlite_synchronous="FAST")


def test_sqlite_tuning_survives_pickling(sqlite_url: str) -> None:
    restored = pickle.loads(pickle.dumps(LimenStorage(sqlite_url)))
    assert _pragmas(restored)[:2] == ("wal", 1)


# --- Round writes -------------------------------------------------------------------------------


def test_create_running_trial_stores_the_whole_round(storage: LimenStorage, study_id: int) -> None:
    trial_id, number = storage.create_running_trial(
        study_id, INTERNAL, DISTRIBUTIONS, user_attrs={"id": "abc"}, system_attrs={"s": [1, 2]}
    )
    trial = storage.get_trial(trial_id)
    assert number == trial.number == 0
    assert trial.state == TrialState.RUNNING
    assert trial.params == EXTERNAL
    assert list(trial.params) == list(EXTERNAL)
    assert trial.distributions == DISTRIBUTIONS
    assert trial.user_attrs == {"id": "abc"}
    assert trial.system_attrs == {"s": [1, 2]}
    assert trial.datetime_start is not None and trial.datetime_complete is None


def test_trial_numbers_follow_each_other_across_every_write_path(
    storage: LimenStorage, study_id: int
) -> None:
    storage.create_running_trial(study_id, INTERNAL, DISTRIBUTIONS)
    storage.create_new_trial(study_id)
    study = optuna.load_study(study_name="study", storage=storage)
    study.add_trial(
        optuna.trial.create_trial(params=EXTERNAL, distributions=DISTRIBUTIONS, value=1)
    )
    study.tell(study.ask(), 2.0)
    _, number = storage.create_running_trial(study_id, INTERNAL, DISTRIBUTIONS)
    assert number == 4
    assert [t.number for t in storage.get_all_trials(study_id)] == [0, 1, 2, 3, 4]


def test_create_running_trial_refuses_a_conflicting_distribution_and_writes_nothing(
    storage: LimenStorage, study_id: int
) -> None:
    storage.create_running_trial(study_id, INTERNAL, DISTRIBUTIONS)
    changed = {**DISTRIBUTIONS, "kernel": CategoricalDistribution(("linear", "poly"))}
    with pytest.raises(ValueError, match="dynamic value space"):
        storage.create_running_trial(study_id, INTERNAL, changed)
    assert storage.get_n_trials(study_id) == 1


def test_a_fresh_storage_checks_distributions_against_the_database(
    storage_url: str, storage: LimenStorage, study_id: int
) -> None:
    storage.create_running_trial(study_id, INTERNAL, DISTRIBUTIONS)
    other = LimenStorage(storage_url)
    changed = {**DISTRIBUTIONS, "lr": FloatDistribution(1e-5, 1.0)}  # log flag differs
    with pytest.raises(ValueError, match="log configuration"):
        other.create_running_trial(study_id, INTERNAL, changed)
    other.engine.dispose()


def test_create_running_trial_needs_a_distribution_for_every_param(
    storage: LimenStorage, study_id: int
) -> None:
    with pytest.raises(ValueError, match="depth"):
        storage.create_running_trial(study_id, INTERNAL, {"lr": DISTRIBUTIONS["lr"]})


def test_create_running_trial_in_an_unknown_study_raises_key_error(storage: LimenStorage) -> None:
    with pytest.raises(KeyError):
        storage.create_running_trial(12345, INTERNAL, DISTRIBUTIONS)


def test_an_attr_json_cannot_encode_writes_nothing(storage: LimenStorage, study_id: int) -> None:
    with pytest.raises(TypeError):
        storage.create_running_trial(study_id, INTERNAL, DISTRIBUTIONS, user_attrs={"f": object()})
    assert storage.get_n_trials(study_id) == 0


def test_finish_trial_stores_the_outcome(storage: LimenStorage, study_id: int) -> None:
    trial_id, _ = storage.create_running_trial(
        study_id, INTERNAL, DISTRIBUTIONS, user_attrs={"id": "abc", "note": "old"}
    )
    storage.finish_trial(trial_id, TrialState.COMPLETE, [0.25], {"note": "new", "f1": 0.5})
    trial = storage.get_trial(trial_id)
    assert trial.state == TrialState.COMPLETE
    assert trial.values == [0.25]
    assert trial.user_attrs == {"id": "abc", "note": "new", "f1": 0.5}
    assert trial.datetime_complete is not None
    assert storage.get_best_trial(study_id).number == trial.number


def test_finish_trial_stores_infinite_values_and_several_objectives(
    storage: LimenStorage,
) -> None:
    study_id = storage.create_new_study([StudyDirection.MINIMIZE, StudyDirection.MAXIMIZE])
    trial_id, _ = storage.create_running_trial(study_id, INTERNAL, DISTRIBUTIONS)
    storage.finish_trial(trial_id, TrialState.COMPLETE, [math.inf, -1.5], {})
    assert storage.get_trial(trial_id).values == [math.inf, -1.5]


def test_finish_trial_records_a_failure_without_values(
    storage: LimenStorage, study_id: int
) -> None:
    trial_id, _ = storage.create_running_trial(study_id, INTERNAL, DISTRIBUTIONS)
    storage.finish_trial(trial_id, TrialState.FAIL, None, {"error": "ValueError: boom"})
    trial = storage.get_trial(trial_id)
    assert (trial.state, trial.values, trial.user_attrs) == (
        TrialState.FAIL,
        None,
        {"error": "ValueError: boom"},
    )


def test_finish_trial_refuses_a_finished_trial_and_writes_nothing(
    storage: LimenStorage, study_id: int
) -> None:
    trial_id = _round(storage, study_id, 0.5)
    with pytest.raises(UpdateFinishedTrialError, match="Trial#0 has already finished"):
        storage.finish_trial(trial_id, TrialState.FAIL, None, {"accuracy": 0.0, "extra": 1})
    trial = storage.get_trial(trial_id)
    assert trial.state == TrialState.COMPLETE
    assert trial.user_attrs == {"accuracy": 0.5}


def test_finish_trial_needs_a_finished_state(storage: LimenStorage, study_id: int) -> None:
    trial_id, _ = storage.create_running_trial(study_id, INTERNAL, DISTRIBUTIONS)
    with pytest.raises(ValueError, match="finished state"):
        storage.finish_trial(trial_id, TrialState.RUNNING, None, {})


def test_finish_trial_of_an_unknown_trial_raises_key_error(storage: LimenStorage) -> None:
    with pytest.raises(KeyError):
        storage.finish_trial(98765, TrialState.COMPLETE, [1.0], {})


# --- The sequence counter -----------------------------------------------------------------------


def test_claim_sequence_hands_out_consecutive_positions(
    storage: LimenStorage, study_id: int
) -> None:
    assert storage.claim_sequence(study_id, "grid") == 0
    assert storage.claim_sequence(study_id, "grid") == 1
    assert storage.claim_sequence(study_id, "grid", count=10) == 2
    assert storage.claim_sequence(study_id, "grid") == 12
    assert storage.get_sequence(study_id, "grid") == 13


def test_sequences_are_independent_per_key_and_per_study(
    storage: LimenStorage, study_id: int
) -> None:
    other_study = storage.create_new_study([StudyDirection.MINIMIZE], "other")
    storage.claim_sequence(study_id, "grid", count=5)
    assert storage.claim_sequence(study_id, "msq") == 0
    assert storage.claim_sequence(other_study, "grid") == 0
    assert storage.get_sequence(study_id, "never-claimed") == 0


def test_the_sequence_lives_in_the_study_system_attrs(
    storage_url: str, storage: LimenStorage, study_id: int
) -> None:
    storage.claim_sequence(study_id, "grid", count=3)
    plain = RDBStorage(storage_url)
    assert plain.get_study_system_attrs(study_id) == {"limen:seq:grid": 3}
    plain.engine.dispose()


def test_claim_sequence_validates_its_arguments(storage: LimenStorage, study_id: int) -> None:
    with pytest.raises(ValueError, match="'count'"):
        storage.claim_sequence(study_id, "grid", count=0)
    with pytest.raises(ValueError, match="'key'"):
        storage.claim_sequence(study_id, "")
    with pytest.raises(KeyError):
        storage.claim_sequence(study_id + 1000, "grid")


def _new_round(depth: float, rid: str) -> Any:
    return {"depth": depth}, {"depth": DISTRIBUTIONS["depth"]}, {"rid": rid}


def test_claim_new_round_creates_the_round_and_reports_the_trials_added_since(
    storage: LimenStorage, study_id: int
) -> None:
    created, rows = storage.claim_new_round(
        study_id, _new_round(2.0, "a"), id_key="rid", round_id="a", after_trial_id=-1
    )
    assert rows == []
    trial_id, number = created
    trial = storage.get_trial(trial_id)
    assert number == 0 and trial.state == TrialState.RUNNING
    assert trial.params == {"depth": 2} and trial.user_attrs == {"rid": "a"}

    created, rows = storage.claim_new_round(
        study_id, _new_round(3.0, "b"), id_key="rid", round_id="b", after_trial_id=-1
    )
    assert rows == [(trial_id, "a")] and created[1] == 1


def test_claim_new_round_writes_nothing_for_a_round_another_worker_holds(
    storage: LimenStorage, study_id: int
) -> None:
    storage.claim_new_round(
        study_id, _new_round(2.0, "a"), id_key="rid", round_id="a", after_trial_id=-1
    )
    created, rows = storage.claim_new_round(
        study_id, _new_round(2.0, "a"), id_key="rid", round_id="a", after_trial_id=-1
    )
    assert created is None and [rid for _, rid in rows] == ["a"]
    assert storage.get_n_trials(study_id) == 1


def test_a_waiting_trial_starts_once_and_never_beside_its_round(
    storage: LimenStorage, study_id: int
) -> None:
    done, _ = storage.claim_new_round(
        study_id, _new_round(2.0, "a"), id_key="rid", round_id="a", after_trial_id=-1
    )
    storage.finish_trial(done[0], TrialState.COMPLETE, [1.0], {})
    waiting = [
        storage.create_new_trial(study_id, template_trial=_waiting(depth)) for depth in (2, 3)
    ]
    params = [("depth", 2.0, DISTRIBUTIONS["depth"])]

    def start(trial_id: int, rid: str) -> tuple[bool, int | None]:
        return storage.start_waiting_round(
            study_id,
            trial_id,
            params=params,
            user_attrs={"rid": rid},
            system_attrs={},
            id_key="rid",
            exclude_key="attempt",
        )

    assert start(waiting[0], "a") == (False, 0)
    assert start(waiting[1], "c") == (True, None)
    assert start(waiting[1], "c") == (False, None)
    assert storage.end_waiting_trial(waiting[0], {"attempt": "refused"})
    assert not storage.end_waiting_trial(waiting[1], {"attempt": "refused"})
    assert storage.get_trial(waiting[0]).state == TrialState.FAIL
    assert storage.get_trial(waiting[1]).state == TrialState.RUNNING


def _waiting(depth: int) -> Any:
    return optuna.trial.create_trial(
        state=TrialState.WAITING,
        params={"depth": depth},
        distributions={"depth": DISTRIBUTIONS["depth"]},
    )


# --- Optuna's per-call writes -------------------------------------------------------------------


def test_set_trial_param_ignores_a_second_value_for_the_same_name(
    storage: LimenStorage, study_id: int
) -> None:
    trial_id = storage.create_new_trial(study_id)
    storage.set_trial_param(trial_id, "lr", INTERNAL["lr"], DISTRIBUTIONS["lr"])
    storage.set_trial_param(trial_id, "lr", 0.5, DISTRIBUTIONS["lr"])
    assert storage.get_trial(trial_id).params == {"lr": EXTERNAL["lr"]}


def test_a_waiting_trial_is_taken_once(storage: LimenStorage, study_id: int) -> None:
    waiting = optuna.trial.create_trial(
        state=TrialState.WAITING, params=EXTERNAL, distributions=DISTRIBUTIONS
    )
    trial_id = storage.create_new_trial(study_id, template_trial=waiting)
    assert storage.set_trial_state_values(trial_id, TrialState.RUNNING) is True
    assert storage.set_trial_state_values(trial_id, TrialState.RUNNING) is False
    trial = storage.get_trial(trial_id)
    assert trial.state == TrialState.RUNNING and trial.datetime_start is not None


@pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning")
def test_record_heartbeat_keeps_one_fresh_row_per_trial(storage_url: str) -> None:
    storage = LimenStorage(storage_url, heartbeat_interval=60)
    study_id = storage.create_new_study([StudyDirection.MINIMIZE])
    trial_id = storage.create_new_trial(study_id)
    storage.record_heartbeat(trial_id)
    storage.record_heartbeat(trial_id)
    with storage.engine.connect() as conn:
        rows = conn.exec_driver_sql("SELECT trial_id FROM trial_heartbeats").all()
    assert rows == [(trial_id,)]
    assert storage._get_stale_trial_ids(study_id) == []
    storage.engine.dispose()


@pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning")
def test_record_heartbeat_marks_a_trial_stale_once_the_grace_period_passes(
    storage_url: str,
) -> None:
    storage = LimenStorage(storage_url, heartbeat_interval=1, grace_period=1)
    study_id = storage.create_new_study([StudyDirection.MINIMIZE])
    trial_id = storage.create_new_trial(study_id)
    storage.record_heartbeat(trial_id)
    storage.record_heartbeat(trial_id)
    assert storage._get_stale_trial_ids(study_id) == []
    storage.backdate_heartbeat(trial_id, 5)  # older than the grace period (1 s)
    assert storage._get_stale_trial_ids(study_id) == [trial_id]
    storage.record_heartbeat(trial_id)
    assert storage._get_stale_trial_ids(study_id) == []

    storage.engine.dispose()


def test_a_backdated_heartbeat_is_that_old_by_the_database_clock(storage_url: str) -> None:
    storage = LimenStorage(storage_url)
    study_id = storage.create_new_study([StudyDirection.MINIMIZE])
    trial_id = storage.create_new_trial(study_id)
    other = storage.create_new_trial(study_id)
    storage.record_heartbeat(trial_id)
    storage.backdate_heartbeat(trial_id, 120)
    assert 120 <= storage.heartbeat_ages([trial_id, other])[trial_id] < 180
    assert set(storage.heartbeats(study_id)) == {trial_id}
    storage.record_heartbeat(trial_id)
    assert storage.heartbeat_ages([trial_id])[trial_id] < 60
    storage.engine.dispose()


# --- Compatibility with plain Optuna and its tools ----------------------------------------------


def _objective(trial: optuna.Trial) -> float:
    lr = trial.suggest_float("lr", 1e-5, 1.0, log=True)
    trial.suggest_int("depth", 1, 10)
    trial.suggest_categorical("kernel", ("linear", "rbf", None))
    return lr


def test_a_limen_study_opens_and_continues_in_plain_optuna(
    storage_url: str, storage: LimenStorage, study_id: int
) -> None:
    for value in (0.5, 0.25, 0.75):
        _round(storage, study_id, value, execution_time=0.1)
    failed, _ = storage.create_running_trial(study_id, INTERNAL, DISTRIBUTIONS)
    storage.finish_trial(failed, TrialState.FAIL, None, {"error": "boom"})

    study = optuna.load_study(study_name="study", storage=storage_url)
    assert [t.state for t in study.trials] == [TrialState.COMPLETE] * 3 + [TrialState.FAIL]
    assert study.best_trial.number == 1
    assert study.best_trial.params == EXTERNAL
    assert study.best_trial.user_attrs == {"accuracy": 0.25, "execution_time": 0.1}
    study.optimize(_objective, n_trials=3)
    assert [t.number for t in study.trials] == list(range(7))
    assert len(study.trials_dataframe()) == 7


def test_a_plain_optuna_study_continues_through_limen(storage_url: str) -> None:
    plain = optuna.create_study(study_name="plain", storage=storage_url)
    plain.optimize(_objective, n_trials=4)
    plain.enqueue_trial(EXTERNAL)

    storage = LimenStorage(storage_url)
    study_id = storage.get_study_id_from_name("plain")
    _, number = storage.create_running_trial(study_id, INTERNAL, DISTRIBUTIONS)
    assert number == 5
    via_limen = optuna.load_study(study_name="plain", storage=storage)
    via_limen.optimize(_objective, n_trials=2)  # takes the enqueued trial first
    trials = via_limen.trials
    assert [t.number for t in trials] == list(range(7))
    assert trials[4].params == EXTERNAL and trials[4].state == TrialState.COMPLETE
    storage.engine.dispose()


@pytest.mark.parametrize(
    ("revision", "advice"),
    [("v3.0.0.a", "optuna storage upgrade"), ("v99.0.0.a", "pip install -U optuna")],
    ids=["older schema", "newer schema"],
)
def test_a_database_at_another_schema_revision_gets_optunas_own_error(
    sqlite_url: str, revision: str, advice: str
) -> None:
    # Limen reads Optuna's newest revision once a process instead of on every open; a database
    # at any other revision must still be refused exactly as plain Optuna refuses it.
    LimenStorage(sqlite_url).engine.dispose()
    engine = sqlalchemy.create_engine(sqlite_url)
    with engine.begin() as connection:
        connection.execute(
            sqlalchemy.text("UPDATE alembic_version SET version_num = :v"), {"v": revision}
        )
    engine.dispose()
    with pytest.raises(RuntimeError, match=advice) as plain:
        RDBStorage(sqlite_url)
    with pytest.raises(StorageSchemaError) as limen:
        LimenStorage(sqlite_url)
    assert isinstance(limen.value, RuntimeError | LimenError)
    assert str(limen.value) == f"{sqlite_url}: {plain.value}"
    with pytest.raises(StorageSchemaError, match=advice):
        open_storage(sqlite_url)


def _schema(url: str) -> dict[str, Any]:
    """Tables, columns, indexes and Optuna's version rows of the database at ``url``."""
    engine = sqlalchemy.create_engine(url)
    try:
        inspector = sqlalchemy.inspect(engine)
        tables = {
            name: (
                [(c["name"], str(c["type"]), c["nullable"]) for c in inspector.get_columns(name)],
                sorted((i["name"], tuple(i["column_names"])) for i in inspector.get_indexes(name)),
            )
            for name in inspector.get_table_names()
        }
        with engine.connect() as connection:
            versions = {
                "version_info": connection.exec_driver_sql(
                    "SELECT version_info_id, schema_version, library_version FROM version_info"
                ).all(),
                "alembic_version": connection.exec_driver_sql(
                    "SELECT version_num FROM alembic_version"
                ).all(),
            }
        return {"tables": tables, **versions}
    finally:
        engine.dispose()


def test_a_new_sqlite_database_is_created_as_plain_optuna_creates_it(tmp_path) -> None:
    plain_url = f"sqlite:///{tmp_path / 'plain.db'}"
    limen_url = f"sqlite:///{tmp_path / 'limen.db'}"
    RDBStorage(plain_url).engine.dispose()
    storage = LimenStorage(limen_url)
    storage.engine.dispose()

    assert _schema(limen_url) == _schema(plain_url)
    # Plain Optuna opens it without creating or stamping anything, and finds it current.
    RDBStorage(limen_url)._version_manager.check_table_schema_compatibility()
    assert optuna.create_study(storage=limen_url, study_name="s").study_name == "s"


def test_a_partly_created_sqlite_database_is_completed_on_open(tmp_path) -> None:
    # A process killed while creating the tables leaves some of them behind.
    path = tmp_path / "study.db"
    with sqlite3.connect(path) as connection:
        connection.execute("CREATE TABLE studies (study_id INTEGER PRIMARY KEY, study_name TEXT)")
    RDBStorage(f"sqlite:///{tmp_path / 'plain.db'}").engine.dispose()

    LimenStorage(f"sqlite:///{path}").engine.dispose()

    completed = _schema(f"sqlite:///{path}")
    assert set(completed["tables"]) == set(_schema(f"sqlite:///{tmp_path / 'plain.db'}")["tables"])
    assert completed["alembic_version"] == [(head_revision(),)]


def test_a_database_whose_tables_were_dropped_since_the_last_open_is_created_again(
    storage_url: str,
) -> None:
    # Reopening a database this process found complete skips the check of each table; when
    # the tables went away in between, the open still creates them.
    first = LimenStorage(storage_url)
    first.create_new_study([StudyDirection.MINIMIZE], "gone")
    first.engine.dispose()
    engine = sqlalchemy.create_engine(storage_url)
    with engine.begin() as connection:
        METADATA.drop_all(connection)
        connection.exec_driver_sql("DROP TABLE alembic_version")
    engine.dispose()

    again = LimenStorage(storage_url)
    try:
        assert again.get_all_studies() == []
        assert again.create_new_study([StudyDirection.MINIMIZE], "back") >= 1
        assert RDBStorage(storage_url).get_study_id_from_name("back") >= 1
    finally:
        again.engine.dispose()


def test_limen_reads_what_plain_optuna_reads(storage_url: str, storage: LimenStorage) -> None:
    study_id = storage.create_new_study([StudyDirection.MINIMIZE, StudyDirection.MAXIMIZE], "mo")
    trial_id, _ = storage.create_running_trial(study_id, INTERNAL, DISTRIBUTIONS, {"a": [1, None]})
    storage.set_trial_intermediate_value(trial_id, 0, math.nan)
    storage.set_trial_intermediate_value(trial_id, 3, -math.inf)
    storage.set_trial_system_attr(trial_id, "sys", {"x": 1})
    storage.finish_trial(trial_id, TrialState.COMPLETE, [1.0, math.inf], {"b": "text"})
    storage.create_new_trial(study_id)
    storage.create_new_trial(
        study_id,
        optuna.trial.create_trial(
            state=TrialState.WAITING, params={"lr": 0.5}, distributions={"lr": DISTRIBUTIONS["lr"]}
        ),
    )
    plain = RDBStorage(storage_url)
    assert _normalized(storage.get_all_trials(study_id)) == _normalized(
        plain.get_all_trials(study_id)
    )
    assert _normalized([storage.get_trial(trial_id)]) == _normalized([plain.get_trial(trial_id)])
    waiting = (TrialState.WAITING,)
    assert _normalized(storage.get_all_trials(study_id, states=waiting)) == _normalized(
        plain.get_all_trials(study_id, states=waiting)
    )
    plain.engine.dispose()


def _normalized(trials: list[optuna.trial.FrozenTrial]) -> list[tuple[Any, ...]]:
    """Every field of each trial; attrs sorted (their order is the database's), NaN as text."""
    return [
        (
            t._trial_id,
            t.number,
            t.state,
            t.values,
            t.datetime_start,
            t.datetime_complete,
            list(t.params.items()),
            t.distributions,
            sorted(t.user_attrs.items()),
            sorted(t.system_attrs.items()),
            repr(sorted(t.intermediate_values.items())),
        )
        for t in trials
    ]


def test_a_cached_study_view_sees_rounds_written_straight_to_the_storage(
    storage: LimenStorage, study_id: int
) -> None:
    study = optuna.load_study(study_name="study", storage=storage)
    _round(storage, study_id, 0.5)
    assert [t.state for t in study.trials] == [TrialState.COMPLETE]
    running_id, _ = storage.create_running_trial(study_id, INTERNAL, DISTRIBUTIONS)
    assert study.trials[-1].state == TrialState.RUNNING
    storage.finish_trial(running_id, TrialState.COMPLETE, [0.1], {"accuracy": 0.1})
    assert study.trials[-1].state == TrialState.COMPLETE
    assert study.trials[-1].user_attrs == {"accuracy": 0.1}
    assert study.best_value == 0.1


def test_a_trial_asked_through_the_cached_view_can_be_finished_straight_away(
    storage: LimenStorage, study_id: int
) -> None:
    study = optuna.load_study(study_name="study", storage=storage)
    trial = study.ask(fixed_distributions=DISTRIBUTIONS)
    storage.finish_trial(trial._trial_id, TrialState.COMPLETE, [0.3], {"accuracy": 0.3})
    assert study.trials[0].state == TrialState.COMPLETE
    assert study.trials[0].params == trial.params
    with pytest.raises(UpdateFinishedTrialError):
        trial.set_user_attr("late", 1)


def _wsgi_get(app: Any, path: str) -> Any:
    environ: dict[str, Any] = {"PATH_INFO": path, "REQUEST_METHOD": "GET"}
    setup_testing_defaults(environ)
    status: list[str] = []
    body = b"".join(app(environ, lambda s, _headers, *_: status.append(s)))
    assert status[0].startswith("200"), status
    return json.loads(body)


def test_optuna_dashboard_shows_a_limen_study(
    storage_url: str, storage: LimenStorage, study_id: int
) -> None:
    dashboard = pytest.importorskip("optuna_dashboard", reason="optuna-dashboard not installed")
    for value in (0.5, 0.25):
        _round(storage, study_id, value)
    app = dashboard.wsgi(storage_url)
    studies = _wsgi_get(app, "/api/studies")["study_summaries"]
    assert [s["study_name"] for s in studies] == ["study"]
    detail = _wsgi_get(app, f"/api/studies/{study_id}")
    assert len(detail["trials"]) == 2
    assert detail["best_trials"][0]["number"] == 1
    assert {p["name"] for p in detail["trials"][0]["params"]} == set(EXTERNAL)


# --- Transient errors ---------------------------------------------------------------------------


def _hold_study_lock(url: str, study_id: int) -> tuple[threading.Thread, threading.Event]:
    """Lock the study row from another connection until the returned event is set."""
    locked, release = threading.Event(), threading.Event()

    def hold() -> None:
        engine = sqlalchemy.create_engine(url)
        with engine.begin() as conn:
            conn.exec_driver_sql(
                f"SELECT study_id FROM studies WHERE study_id = {study_id} FOR UPDATE"
            )
            locked.set()
            release.wait(30)
        engine.dispose()

    thread = threading.Thread(target=hold)
    thread.start()
    locked.wait(30)
    return thread, release


def _lock_timeout_storage(url: str, timeout_ms: int) -> LimenStorage:
    return LimenStorage(
        url, engine_kwargs={"connect_args": {"options": f"-c lock_timeout={timeout_ms}"}}
    )


@pytest.mark.postgres
def test_a_write_that_times_out_on_a_lock_is_retried(empty_postgres_url: str) -> None:
    storage = _lock_timeout_storage(empty_postgres_url, 40)
    study_id = storage.create_new_study([StudyDirection.MINIMIZE], "locked")
    holder, release = _hold_study_lock(empty_postgres_url, study_id)
    threading.Timer(0.15, release.set).start()
    _, number = storage.create_running_trial(study_id, INTERNAL, DISTRIBUTIONS)
    holder.join()
    assert number == 0 and storage.get_n_trials(study_id) == 1
    storage.engine.dispose()


@pytest.mark.postgres
def test_a_write_gives_up_after_a_bounded_number_of_attempts(empty_postgres_url: str) -> None:
    storage = _lock_timeout_storage(empty_postgres_url, 20)
    study_id = storage.create_new_study([StudyDirection.MINIMIZE], "locked")
    holder, release = _hold_study_lock(empty_postgres_url, study_id)
    with pytest.raises(StorageInternalError, match=f"after {MAX_ATTEMPTS} attempt"):
        storage.claim_sequence(study_id, "grid")
    release.set()
    holder.join()
    assert storage.get_sequence(study_id, "grid") == 0
    storage.engine.dispose()


@pytest.mark.postgres
def test_a_connection_lost_between_rounds_is_replaced(empty_postgres_url: str) -> None:
    name = f"limen-test-{uuid.uuid4().hex[:8]}"
    storage = LimenStorage(
        empty_postgres_url, engine_kwargs={"connect_args": {"application_name": name}}
    )
    study_id = storage.create_new_study([StudyDirection.MINIMIZE], "lost")
    _round(storage, study_id, 0.5)
    admin = sqlalchemy.create_engine(empty_postgres_url)
    with admin.begin() as conn:
        killed = conn.exec_driver_sql(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            f"WHERE application_name = '{name}'"
        ).scalar()
    admin.dispose()
    assert killed >= 1
    _round(storage, study_id, 0.25)
    assert [t.number for t in storage.get_all_trials(study_id)] == [0, 1]
    storage.engine.dispose()


def test_sqlite_writers_wait_for_each_other(sqlite_url: str) -> None:
    storage = LimenStorage(sqlite_url)
    study_id = storage.create_new_study([StudyDirection.MINIMIZE], "busy")
    path = sqlite_path(sqlite_url)
    blocker = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    blocker.execute("BEGIN IMMEDIATE")
    timer = threading.Timer(0.3, blocker.execute, args=("COMMIT",))
    timer.start()
    started = time.perf_counter()
    _, number = storage.create_running_trial(study_id, INTERNAL, DISTRIBUTIONS)
    timer.join()
    blocker.close()
    assert number == 0
    assert time.perf_counter() - started >= 0.25
