"""One resolver, one study reader: a moved, copied or read-only experiment works with every
command, and trials Limen did not write read back with the values they hold."""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import sqlite3
import stat
from contextlib import closing
from pathlib import Path

import optuna
import pandas as pd
import pytest

from limen.adapters.dashboard import create_app, resolve_target
from limen.adapters.distributions import DomainCodec
from limen.cli import EXIT_OK, EXIT_USAGE, main
from limen.errors import ExperimentNotFoundError, InvalidParameterError, LimenError
from limen.experiment import Trainer
from limen.experiment.errors import HiddenPasswordError, RoundNotFoundError
from limen.experiment.experiment_source import (
    is_redacted,
    recorded_storage,
    resolve_experiment,
)
from limen.experiment.identity import round_id
from limen.experiment.study_record import StudyRecord
from limen.log import Log
from limen.sfd.foundational_sfd import logreg_binary
from product_experiments import N_ROUNDS, NAME, copy_experiment, logreg_experiment


@pytest.fixture(scope="module")
def experiment(tmp_path_factory):
    return logreg_experiment(tmp_path_factory)


def _study_db(directory: Path) -> str:
    return f"sqlite:///{directory / 'study.db'}"


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _record_absolute_storage(directory: Path) -> None:
    """Rewrite metadata.json as older versions wrote it: the study.db by its absolute path."""
    path = directory / "metadata.json"
    metadata = json.loads(path.read_text())
    metadata["storage"] = f"sqlite:///{(directory / 'study.db').resolve()}"
    path.write_text(json.dumps(metadata))


@pytest.fixture(params=["relative", "absolute"])
def moved(request, experiment, tmp_path):
    """An experiment run in A, then moved to B (``mv A B``); ``absolute``: its metadata.json
    records A's study.db by its absolute path, as older versions did."""
    original = copy_experiment(experiment, tmp_path / "A")
    if request.param == "absolute":
        _record_absolute_storage(original)
    return Path(shutil.move(original, tmp_path / "B"))


# ------------------------------------------------------------------------ moved directory


def test_new_metadata_records_the_study_db_relative_to_the_directory(experiment):
    metadata = json.loads((experiment.directory / "metadata.json").read_text())
    assert metadata["storage"] == "sqlite:///study.db"


def test_a_moved_experiment_resolves_to_its_own_study_db(moved):
    source = resolve_experiment(moved)
    assert source.storage_url == f"sqlite:///{(moved / 'study.db').resolve()}"
    assert (source.study_name, source.directory) == (NAME, moved)
    assert len(source.load_study().trials) == N_ROUNDS


def test_status_of_a_moved_experiment(moved, capsys):
    assert main(["status", str(moved)]) == EXIT_OK
    assert f"{N_ROUNDS} of {N_ROUNDS} (100%)" in capsys.readouterr().out


def test_export_of_a_moved_experiment(moved, tmp_path):
    out = tmp_path / "log.csv"
    assert main(["export", str(moved), "--out", str(out)]) == EXIT_OK
    assert len(pd.read_csv(out)) == N_ROUNDS


def test_plot_of_a_moved_experiment(moved, tmp_path):
    assert main(["plot", str(moved), "--out", str(tmp_path / "plots")]) == EXIT_OK
    assert (tmp_path / "plots/optimization_history.png").stat().st_size > 0


def test_train_of_a_moved_experiment(moved, tmp_path):
    out = tmp_path / "sensors"
    assert main(["train", str(moved), "--best", "1", "--out", str(out)]) == EXIT_OK
    assert len(list(out.glob("*.sensor"))) == 1


def test_resume_of_a_moved_experiment(moved):
    assert main(["resume", str(moved), "-n", str(N_ROUNDS + 2), "--no-progress"]) == EXIT_OK
    study = optuna.load_study(study_name=NAME, storage=_study_db(moved))
    assert len(study.trials) == N_ROUNDS + 2


def test_the_dashboard_of_a_moved_experiment(moved):
    target = resolve_target(moved)
    assert target.storage_url == f"sqlite:///{(moved / 'study.db').resolve()}"
    assert target.study_name == NAME
    app, study_id = create_app(target)
    assert callable(app) and study_id is not None


def test_trainer_and_log_of_a_moved_experiment(moved):
    assert len(Trainer(moved).best(2)) == 2
    assert len(Log(moved).experiment_log) == N_ROUNDS


# ----------------------------------------------------------------------- copied directory


@pytest.mark.parametrize("metadata", ["relative", "absolute"])
def test_a_copied_experiment_resumes_into_its_own_study_db(experiment, tmp_path, metadata):
    original = copy_experiment(experiment, tmp_path / "A")
    if metadata == "absolute":
        _record_absolute_storage(original)
    copy = Path(shutil.copytree(original, tmp_path / "C"))
    before = _digest(original / "study.db")

    assert main(["resume", str(copy), "-n", str(N_ROUNDS + 2), "--no-progress"]) == EXIT_OK

    assert _digest(original / "study.db") == before
    study = optuna.load_study(study_name=NAME, storage=_study_db(copy))
    assert len(study.trials) == N_ROUNDS + 2
    assert json.loads((copy / "metadata.json").read_text())["storage"] == "sqlite:///study.db"


def test_the_loop_resumes_a_copied_directory_into_its_own_study_db(experiment, tmp_path):
    from limen.experiment import UniversalExperimentLoop

    original = copy_experiment(experiment, tmp_path / "A")
    _record_absolute_storage(original)
    copy = Path(shutil.copytree(original, tmp_path / "C"))
    before = _digest(original / "study.db")

    loop = UniversalExperimentLoop(sfd=logreg_binary, test_mode=True, experiment_dir=copy)
    log = loop.run(NAME, n_permutations=N_ROUNDS + 1, resume=True, progress_bar=False)

    assert len(log) == N_ROUNDS + 1
    assert _digest(original / "study.db") == before


# -------------------------------------------------------------------- read-only directory


def _listing(directory: Path) -> dict[str, tuple[int, int]]:
    return {
        str(p.relative_to(directory)): (p.stat().st_size, p.stat().st_mtime_ns)
        for p in directory.rglob("*")
    }


@pytest.fixture
def read_only(experiment, tmp_path):
    """A copy of the finished experiment with every file and folder read-only (chmod -R a-w).

    The copy is closed as a finished run leaves it: its write-ahead log checkpointed and gone.
    """
    directory = copy_experiment(experiment, tmp_path / "ro")
    with closing(sqlite3.connect(directory / "study.db")) as db:
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    assert not (directory / "study.db-wal").exists()
    paths = [directory, *directory.rglob("*")]
    modes = {p: p.stat().st_mode for p in paths}
    for path in paths:
        path.chmod(modes[path] & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))
    yield directory
    for path in paths:
        path.chmod(modes[path])


def test_status_and_export_work_on_a_read_only_directory_and_write_nothing(
    read_only, tmp_path, capsys
):
    # Run as root, chmod does not stop writes: the listing shows that nothing was written.
    before = _listing(read_only)
    out = tmp_path / "elsewhere/log.csv"

    assert main(["status", str(read_only)]) == EXIT_OK
    assert main(["export", str(read_only), "--out", str(out)]) == EXIT_OK

    assert f"{N_ROUNDS} of {N_ROUNDS}" in capsys.readouterr().out
    assert len(pd.read_csv(out)) == N_ROUNDS
    assert _listing(read_only) == before


def test_log_and_trainer_read_a_read_only_directory(read_only):
    before = _listing(read_only)
    assert len(Log(read_only).experiment_log) == N_ROUNDS
    assert len(Trainer(read_only).best(3)) == 3
    assert _listing(read_only) == before


# ------------------------------------------------------------------------- what is refused


def test_a_missing_directory_names_what_was_looked_for(tmp_path):
    with pytest.raises(ExperimentNotFoundError, match=r"'.*nowhere' does not exist"):
        resolve_experiment(tmp_path / "nowhere")
    with pytest.raises(FileNotFoundError, match="holds no Limen study"):
        resolve_experiment(tmp_path)


def test_a_missing_study_lists_the_studies_present(experiment):
    source = resolve_experiment(experiment.directory, "other")
    with pytest.raises(ExperimentNotFoundError, match=rf"No study named 'other'.*\['{NAME}'\]"):
        source.load_study()


def test_a_missing_sqlite_file_is_not_created(tmp_path):
    url = f"sqlite:///{tmp_path / 'none.db'}"
    with pytest.raises(ExperimentNotFoundError, match="does not exist"):
        resolve_experiment(url, "x").load_study()
    assert not (tmp_path / "none.db").exists()


@pytest.mark.parametrize("source", [5, None, b"dir", ["a"]])
def test_a_source_of_the_wrong_type_is_an_invalid_parameter(source):
    with pytest.raises(InvalidParameterError, match="experiment directory or a storage URL"):
        resolve_experiment(source)


def test_a_study_name_of_the_wrong_type_is_an_invalid_parameter(experiment):
    with pytest.raises(InvalidParameterError, match="'study' parameter"):
        resolve_experiment(experiment.directory, 3)


@pytest.mark.parametrize(
    "url",
    [
        "postgresql+psycopg://me:***@db.example/limen",
        "postgresql+psycopg://me@db.example/limen?password=***",
        "mysql+pymysql://me@db.example/limen?passwd=***",
    ],
)
def test_a_hidden_password_is_recognised_in_userinfo_and_query(tmp_path, url):
    assert is_redacted(url)
    with pytest.raises(HiddenPasswordError, match="Pass the storage URL itself"):
        resolve_experiment(url, "x")
    (tmp_path / "metadata.json").write_text(json.dumps({"study_name": "x", "storage": url}))
    with pytest.raises(HiddenPasswordError, match="password is hidden"):
        resolve_experiment(tmp_path)
    assert main(["status", str(tmp_path)]) == EXIT_USAGE


def test_a_real_password_is_not_taken_for_a_hidden_one():
    assert not is_redacted("postgresql+psycopg://me:s3cret@db.example/limen")
    assert not is_redacted("postgresql+psycopg://me@db.example/limen?sslmode=require")


def test_a_hidden_password_error_is_a_limen_value_error():
    assert issubclass(HiddenPasswordError, LimenError)
    assert issubclass(HiddenPasswordError, ValueError)


def test_an_sqlite_file_outside_the_directory_is_recorded_by_its_absolute_path(tmp_path):
    outside = tmp_path / "db/other.db"
    recorded = recorded_storage(f"sqlite:///{outside}", tmp_path / "exp")
    assert recorded == f"sqlite:///{outside.resolve()}"
    inside = recorded_storage(f"sqlite:///{tmp_path / 'exp/sub/x.db'}", tmp_path / "exp")
    assert inside == "sqlite:///sub/x.db"


# ---------------------------------------------------------------------------- study record


def test_the_study_record_round_trips_through_the_study_attrs(experiment):
    attrs = experiment.loop.study.user_attrs
    record = StudyRecord.from_attrs(attrs)
    assert record.is_limen and record.sfd_module == logreg_binary.__name__
    assert record.objective == (("auc", "maximize"),)
    assert record.n_permutations == N_ROUNDS and record.test_mode is True
    assert StudyRecord.from_attrs(record.to_attrs()) == record
    assert {k: attrs[k] for k in record.to_attrs()} == record.to_attrs()


def test_a_study_limen_did_not_create_reads_as_an_empty_record():
    record = StudyRecord.from_attrs({"note": "plain optuna"})
    assert not record.is_limen
    assert record.objective == () and record.n_permutations is None


# ----------------------------------------------------------------- trials Limen did not write


@pytest.fixture(scope="module")
def shared(experiment, tmp_path_factory):
    """The experiment plus two trials added by plain Optuna: one off the parameter space
    (``shift=7``; the SFD lists [1, 2, 4, 6, 12]) ranking first, one in it ranking last."""
    directory = copy_experiment(experiment, tmp_path_factory.mktemp("shared") / "exp")
    study = optuna.load_study(study_name=NAME, storage=_study_db(directory))
    done = study.trials[0]
    codec = DomainCodec(logreg_binary.params())
    ids = {t.user_attrs["id"] for t in study.trials}
    inside = next(
        params
        for shift in (1, 2, 4, 6, 12)
        for C in (0.01, 0.1, 1.0, 10.0)
        if round_id(codec.decode_exact(params := {**done.params, "shift": shift, "C": C}))
        not in ids
    )
    add = optuna.trial.create_trial
    study.add_trial(add(params=inside, distributions=done.distributions, value=0.0))
    off = {**done.params, "shift": 7, "C": 3.0}
    study.add_trial(add(params=off, distributions=done.distributions, value=0.999))
    return {
        "directory": directory,
        "inside": (N_ROUNDS, round_id(codec.decode_exact(inside))),
        "off": N_ROUNDS + 1,
    }


def _row(frame: pd.DataFrame, number: int) -> pd.Series:
    return frame[frame["_round_index"] == number].iloc[0]


@pytest.mark.parametrize("sfd", [None, logreg_binary], ids=["tokens", "decoded"])
def test_the_log_shows_the_values_foreign_trials_hold(shared, sfd):
    log = Log(shared["directory"], sfd=sfd).experiment_log
    off = _row(log, shared["off"])
    assert (off["shift"], off["C"], off["auc"]) == (7, 3.0, 0.999)
    assert bool(off["foreign"]) and pd.isna(off["id"])
    number, rid = shared["inside"]
    inside = _row(log, number)
    assert bool(inside["foreign"]) and inside["id"] == rid
    assert not log[log["_round_index"] < N_ROUNDS]["foreign"].any()


def test_export_shows_the_values_foreign_trials_hold(shared, tmp_path):
    out = tmp_path / "log.csv"
    assert main(["export", str(shared["directory"]), "--out", str(out)]) == EXIT_OK
    frame = pd.read_csv(out)
    off = _row(frame, shared["off"])
    assert (off["shift"], off["C"], off["auc"]) == (7, 3.0, 0.999)
    assert off["foreign"] and pd.isna(off["id"])
    assert _row(frame, shared["inside"][0])["id"] == shared["inside"][1]


def test_status_ranks_a_foreign_trial_by_its_stored_values(shared, capsys):
    assert main(["status", str(shared["directory"])]) == EXIT_OK
    out = capsys.readouterr().out
    [line] = [row for row in out.splitlines() if row.strip().startswith("(none)")]
    assert line.split()[1:4] == [str(shared["off"]), "0.999000", "7"]


def test_trainer_best_skips_a_trial_off_the_space_and_says_why(shared, caplog):
    trainer = Trainer(shared["directory"])
    with caplog.at_level(logging.WARNING):
        ids = trainer.best(3)
    assert len(ids) == 3 and all(isinstance(rid, str) for rid in ids)
    [skipped] = trainer.skipped
    assert skipped.number == shared["off"] and skipped.foreign
    assert f"trial {shared['off']} (not written by Limen)" in caplog.text
    assert "shift=7" in caplog.text


def test_train_best_prints_the_skipped_trial(shared, tmp_path, capsys):
    out = tmp_path / "sensors"
    code = main(["train", str(shared["directory"]), "--best", "1", "--out", str(out)])
    assert code == EXIT_OK
    assert f"Skipped trial {shared['off']} (not written by Limen)" in capsys.readouterr().out
    assert len(list(out.glob("*.sensor"))) == 1


def test_asking_the_trainer_for_a_trial_off_the_space_is_a_typed_error(shared):
    trainer = Trainer(shared["directory"])
    off = next(t for t in trainer.study.trials if t.number == shared["off"])
    guessed = round_id(off.params)
    with pytest.raises(RoundNotFoundError, match=r"shift=7 is not one of"):
        trainer.train([guessed])


def test_the_loop_reconciles_results_with_the_ids_of_foreign_trials(shared, tmp_path):
    from limen.experiment import UniversalExperimentLoop

    directory = Path(shutil.copytree(shared["directory"], tmp_path / "exp"))
    (directory / "results.csv").unlink()
    loop = UniversalExperimentLoop(sfd=logreg_binary, test_mode=True, experiment_dir=directory)
    loop.run(NAME, n_permutations=N_ROUNDS + 2, resume=True, progress_bar=False)

    results = pd.read_csv(directory / "results.csv")
    assert _row(results, shared["inside"][0])["id"] == shared["inside"][1]
    off = _row(results, shared["off"])
    assert pd.isna(off["id"]) and off["shift"] == 7
    assert bool(_row(loop.experiment_log, shared["off"])["foreign"])


# ------------------------------------------------------------------------------ PostgreSQL


@pytest.mark.postgres
def test_a_directory_whose_study_is_on_a_server_resolves_with_the_url(
    postgres_url, unique_study_name, tmp_path
):
    from limen.experiment import UniversalExperimentLoop

    directory = tmp_path / "exp"
    loop = UniversalExperimentLoop(
        sfd=logreg_binary, test_mode=True, experiment_dir=directory, storage=postgres_url
    )
    loop.run(unique_study_name, n_permutations=2, progress_bar=False)
    moved = Path(shutil.move(directory, tmp_path / "moved"))

    source = resolve_experiment(moved, storage=postgres_url, read_only=True)
    assert source.study_name == unique_study_name
    assert len(Log(source).experiment_log) == 2
    assert len(Trainer(source).best(1)) == 1
    assert resolve_experiment(moved).storage_url == postgres_url


def test_a_hidden_password_error_never_shows_another_password():
    url = "postgresql+psycopg://me:s3cret@db.example/limen?password=***"
    with pytest.raises(HiddenPasswordError) as error:
        resolve_experiment(url, "x")
    assert "s3cret" not in str(error.value)


def test_resume_of_a_directory_naming_a_missing_study_is_a_usage_error(
    experiment, tmp_path, capsys
):
    directory = copy_experiment(experiment, tmp_path / "exp")
    path = directory / "metadata.json"
    metadata = json.loads(path.read_text())
    path.write_text(json.dumps({**metadata, "study_name": "ghost", "experiment_name": "ghost"}))
    before = _digest(directory / "study.db")

    assert main(["resume", str(directory), "--no-progress"]) == EXIT_USAGE
    assert "No study named 'ghost'" in capsys.readouterr().err
    assert _digest(directory / "study.db") == before
