"""The `limen` command, end to end."""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from limen.cli import main

ROOT = Path(__file__).resolve().parents[1]


def limen_command(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "limen.cli", *args], cwd=cwd, capture_output=True, text=True
    )


@pytest.mark.slow
def test_the_make_run_command_leaves_a_plain_optuna_study_and_matching_results(tmp_path):
    done = limen_command(
        "run", "--sfd", "logreg_binary", "--test-mode", "-n", "50",
        "--experiment-dir", "runs/demo", "--no-progress",
        cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "Best rounds by auc" in done.stdout
    directory = tmp_path / "runs/demo"
    assert str(directory.resolve()) in done.stdout

    study = optuna.load_study(study_name="demo", storage=f"sqlite:///{directory / 'study.db'}")
    trials = study.get_trials()
    assert len(trials) == 50
    assert all(t.state in (TrialState.COMPLETE, TrialState.FAIL) for t in trials)
    scalers = {t.params["scaler"] for t in trials}
    assert scalers <= {
        "sklearn.preprocessing.StandardScaler",
        "sklearn.preprocessing.RobustScaler",
        "sklearn.preprocessing.MinMaxScaler",
    }
    with (directory / "results.csv").open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [r["id"] for r in rows] == [t.user_attrs["id"] for t in trials]


def test_run_then_resume_from_the_directory(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["run", "--sfd", "logreg_binary", "--test-mode", "-n", "3", "--no-progress",
                 "--experiment-dir", "exp"]) == 0  # fmt: skip
    assert main(["resume", "exp", "-n", "5", "--no-progress"]) == 0
    study = optuna.load_study(study_name="exp", storage="sqlite:///exp/study.db")
    ids = [t.user_attrs["id"] for t in study.get_trials()]
    assert len(ids) == 5 and len(set(ids)) == 5
    assert "5 finished rounds" in capsys.readouterr().out


def test_an_unknown_sfd_is_a_usage_error_and_leaves_nothing(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    code = main(["run", "--sfd", "no_such_sfd", "-n", "3", "--experiment-dir", "exp"])
    assert code == 2
    assert "Unknown SFD 'no_such_sfd'" in capsys.readouterr().err
    assert not (tmp_path / "exp").exists()
    assert list(tmp_path.iterdir()) == []


def test_a_non_positive_round_count_is_a_usage_error(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["run", "--sfd", "logreg_binary", "-n", "0"]) == 2
    err = capsys.readouterr().err
    assert err == (
        "limen run: error: The '-n' parameter of limen run must be an int in the range [1, inf). "
        "Got 0 instead.\n"
    )
    assert list(tmp_path.iterdir()) == []


def test_a_second_fresh_run_into_the_same_directory_is_refused(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    args = ["run", "--sfd", "logreg_binary", "--test-mode", "-n", "2", "--no-progress",
            "--experiment-dir", "exp"]  # fmt: skip
    assert main(args) == 0
    capsys.readouterr()
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "limen resume" in err and len(err.splitlines()) == 1


def test_resume_of_a_directory_without_an_experiment_is_a_usage_error(tmp_path, capsys):
    assert main(["resume", str(tmp_path / "missing")]) == 2
    assert "no metadata.json" in capsys.readouterr().err


def test_help_documents_the_commands():
    done = limen_command("--help", cwd=ROOT)
    assert done.returncode == 0
    for word in ("run", "resume"):
        assert word in done.stdout
    run_help = limen_command("run", "--help", cwd=ROOT).stdout
    for flag in ("--sfd", "--test-mode", "--experiment-dir", "--storage", "--seed", "-n"):
        assert flag in run_help


def test_resume_of_a_directory_with_a_corrupt_metadata_file_is_a_usage_error(
    tmp_path, monkeypatch, capsys
):
    monkeypatch.chdir(tmp_path)
    args = ["run", "--sfd", "logreg_binary", "--test-mode", "-n", "2", "--no-progress",
            "--experiment-dir", "exp"]  # fmt: skip
    assert main(args) == 0
    (tmp_path / "exp/metadata.json").write_text("{not json")
    before = (tmp_path / "exp/study.db").read_bytes()
    assert main(["resume", "exp", "-n", "4", "--no-progress"]) == 2
    assert "not valid JSON" in capsys.readouterr().err
    assert (tmp_path / "exp/study.db").read_bytes() == before
