"""Reading a study runs no code it names; only the SFD the user names (or a plain installed
module with the recorded source) is imported by train and resume."""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path
from wsgiref.util import setup_testing_defaults

import pytest

import toy_sfd
from limen import Log
from limen.cli import EXIT_EXPERIMENT, EXIT_OK, EXIT_USAGE, main
from limen.experiment import Trainer
from limen.sfd.foundational_sfd import logreg_binary
from limen.sfd.loader import SFDSourceMismatchError, recorded_sfd
from product_experiments import copy_experiment, logreg_experiment, set_study_user_attr

EVIL = """\
from pathlib import Path
Path({marker!r}).write_text("imported")


def params():
    return {{"C": [1.0]}}
"""


@pytest.fixture(scope="module")
def experiment(tmp_path_factory):
    return logreg_experiment(tmp_path_factory)


def _evil_module(folder: Path, name: str, marker: Path) -> Path:
    """A module that writes ``marker`` when it is imported (it even defines params())."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.py"
    path.write_text(EVIL.format(marker=str(marker)), encoding="utf-8")
    return path


@pytest.fixture
def attacked(experiment, tmp_path, monkeypatch):
    """A copy of the experiment and a factory that points its SFD attr at evil code."""
    copy = copy_experiment(experiment, tmp_path / "copy")
    marker = tmp_path / "marker"
    evil_dir = tmp_path / "elsewhere"
    monkeypatch.syspath_prepend(str(evil_dir))

    def point_at(kind: str) -> str:
        if kind == "absolute path":
            value = str(_evil_module(evil_dir, "evil_abs", marker).with_suffix(""))
        elif kind == "file in the experiment directory":
            _evil_module(copy, "evil_local", marker)
            value = "evil_local"
        else:
            _evil_module(evil_dir, "evil_installed", marker)
            value = "evil_installed"
        set_study_user_attr(copy, "limen:sfd_module", value)
        return value

    yield copy, marker, point_at
    for name in ("evil_abs", "evil_local", "evil_installed"):
        sys.modules.pop(name, None)


KINDS = ["absolute path", "file in the experiment directory", "importable module"]


@pytest.mark.parametrize("kind", KINDS)
def test_status_export_and_plot_never_import_the_recorded_sfd(attacked, kind, tmp_path, capsys):
    copy, marker, point_at = attacked
    name = point_at(kind)
    assert main(["status", str(copy)]) == EXIT_OK
    assert name in capsys.readouterr().out
    assert main(["export", str(copy), "--out", str(tmp_path / "log.csv")]) == EXIT_OK
    assert main(["plot", str(copy), "--out", str(tmp_path / "plots")]) == EXIT_OK
    assert not marker.exists()
    assert name.rsplit("/", 1)[-1] not in sys.modules


@pytest.mark.parametrize("kind", KINDS)
def test_the_dashboard_serves_the_attacked_study_without_importing_it(attacked, kind):
    pytest.importorskip("optuna_dashboard")
    from limen.adapters.dashboard import create_app, resolve_target

    copy, marker, point_at = attacked
    point_at(kind)
    app, study_id = create_app(resolve_target(copy))
    environ: dict = {}
    setup_testing_defaults(environ)
    environ.update(PATH_INFO=f"/api/studies/{study_id}", REQUEST_METHOD="GET", QUERY_STRING="")
    status: list[str] = []
    body = b"".join(app(environ, lambda code, headers, exc_info=None: status.append(code)))
    assert status[0].startswith("200")
    assert len(json.loads(body)["trials"]) == 20
    assert not marker.exists()


@pytest.mark.parametrize("kind", KINDS)
def test_the_log_shows_stored_tokens_and_imports_nothing(attacked, kind):
    copy, marker, point_at = attacked
    point_at(kind)
    log = Log(copy)
    assert not log.decoded
    assert set(log.experiment_log["scaler"]) <= {
        "sklearn.preprocessing.StandardScaler",
        "sklearn.preprocessing.RobustScaler",
        "sklearn.preprocessing.MinMaxScaler",
    }
    assert not marker.exists()


def test_a_directory_log_needs_no_sfd_but_decodes_with_the_one_given(experiment):
    assert not Log(experiment.directory).decoded
    log = Log(experiment.directory, sfd=logreg_binary)
    assert log.decoded
    assert all(isinstance(v, type) for v in log.experiment_log["scaler"])


@pytest.mark.parametrize("kind", KINDS)
def test_train_refuses_the_attacked_sfd_in_one_line_without_importing_it(
    attacked, kind, tmp_path, capsys
):
    copy, marker, point_at = attacked
    point_at(kind)
    code = main(["train", str(copy), "--best", "1", "--out", str(tmp_path / "out")])
    assert code in (EXIT_USAGE, EXIT_EXPERIMENT)
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "--sfd" in err or "--force" in err
    assert not marker.exists()


def test_a_recorded_module_whose_source_differs_is_refused_before_it_is_imported(attacked):
    copy, marker, point_at = attacked
    point_at("importable module")
    with pytest.raises(SFDSourceMismatchError, match="study recorded"):
        recorded_sfd(Log(copy).study.user_attrs)
    assert not marker.exists()


def test_train_with_the_sfd_named_on_the_command_line_works(experiment, attacked, tmp_path):
    copy, marker, point_at = attacked
    point_at("absolute path")
    out = tmp_path / "out"
    code = main(["train", str(copy), "--best", "1", "--out", str(out), "--sfd", "logreg_binary"])
    assert code == EXIT_OK
    assert len(list(out.glob("*.sensor"))) == 1
    assert not marker.exists()


def test_trainer_takes_the_sfd_given_in_python(attacked):
    copy, marker, point_at = attacked
    point_at("absolute path")
    assert Trainer(copy, sfd=logreg_binary).best(1)
    assert not marker.exists()


# ------------------------------------------------------------------ run and resume a .py SFD


def _run_file_sfd(tmp_path: Path, monkeypatch) -> tuple[Path, Path]:
    monkeypatch.chdir(tmp_path)
    sfd_file = tmp_path / "mine" / "my_sfd.py"
    sfd_file.parent.mkdir()
    sfd_file.write_text(Path(logreg_binary.__file__).read_text(encoding="utf-8"), "utf-8")
    monkeypatch.delitem(sys.modules, "my_sfd", raising=False)
    code = main(["run", "--sfd", str(sfd_file), "--test-mode", "-n", "2", "--no-progress",
                 "--experiment-dir", "exp"])  # fmt: skip
    assert code == EXIT_OK
    return tmp_path / "exp", sfd_file


def test_run_with_a_py_file_records_its_hash_and_resumes_with_sfd(tmp_path, monkeypatch, capsys):
    directory, sfd_file = _run_file_sfd(tmp_path, monkeypatch)
    attrs = Log(directory).study.user_attrs
    assert attrs["limen:sfd_source_hash"] == hashlib.sha256(sfd_file.read_bytes()).hexdigest()
    code = main(["resume", str(directory), "-n", "3", "--sfd", str(sfd_file), "--no-progress"])
    assert code == EXIT_OK
    assert "3 finished rounds" in capsys.readouterr().out


def test_resume_of_a_py_sfd_without_sfd_asks_for_it(tmp_path, monkeypatch, capsys):
    directory, _ = _run_file_sfd(tmp_path, monkeypatch)
    monkeypatch.delitem(sys.modules, "my_sfd", raising=False)
    assert main(["resume", str(directory), "-n", "3", "--no-progress"]) == EXIT_USAGE
    assert "--sfd" in capsys.readouterr().err


def test_resume_with_an_edited_sfd_is_refused_unless_forced(tmp_path, monkeypatch, capsys):
    directory, sfd_file = _run_file_sfd(tmp_path, monkeypatch)
    sfd_file.write_text(sfd_file.read_text("utf-8") + "\n# edited\n", "utf-8")
    monkeypatch.delitem(sys.modules, "my_sfd", raising=False)
    args = ["resume", str(directory), "-n", "3", "--sfd", str(sfd_file), "--no-progress"]
    assert main(args) == EXIT_USAGE
    err = capsys.readouterr().err
    assert "SHA-256" in err and "--force" in err and len(err.splitlines()) == 1
    monkeypatch.delitem(sys.modules, "my_sfd", raising=False)
    assert main([*args, "--force"]) == EXIT_OK


def test_the_python_api_refuses_to_resume_with_an_edited_sfd_unless_forced(tmp_path):
    from limen.experiment import UniversalExperimentLoop
    from limen.sfd.loader import SFDSourceMismatchError, load_sfd

    source = tmp_path / "edited_sfd.py"
    source.write_text(Path(toy_sfd.__file__).read_text())
    sfd = load_sfd(str(source))
    kwargs = {"data": toy_sfd.toy_data(), "experiment_dir": tmp_path / "exp", "objective": "score"}
    UniversalExperimentLoop(sfd=sfd, **kwargs).run("e", n_permutations=2, progress_bar=False)
    source.write_text(source.read_text() + "\n# edited after the run\n")
    edited = load_sfd(str(source))

    with pytest.raises(SFDSourceMismatchError, match="SHA-256"):
        UniversalExperimentLoop(sfd=edited, **kwargs).run(
            "e", n_permutations=3, resume=True, progress_bar=False
        )
    forced = UniversalExperimentLoop(sfd=edited, **kwargs)
    assert len(forced.run("e", n_permutations=3, resume="force", progress_bar=False)) == 3


def test_a_trial_distribution_edited_to_name_code_is_read_as_text_and_resumed(
    tmp_path, monkeypatch
):
    import sqlite3

    from limen.experiment import UniversalExperimentLoop

    marker = tmp_path / "imported"
    (tmp_path / "evil_choice.py").write_text(
        f"from pathlib import Path\nPath({str(marker)!r}).write_text('x')\ndef run(): pass\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    kwargs = {"data": toy_sfd.toy_data(), "experiment_dir": tmp_path / "exp", "objective": "score"}
    UniversalExperimentLoop(sfd=toy_sfd, **kwargs).run("d", n_permutations=3, progress_bar=False)
    with sqlite3.connect(tmp_path / "exp" / "study.db") as db:
        param_id, stored = db.execute(
            "SELECT param_id, distribution_json FROM trial_params WHERE param_name = 'scaler'"
        ).fetchone()
        dist = json.loads(stored)
        dist["attributes"]["choices"].append("evil_choice.run")
        index = len(dist["attributes"]["choices"]) - 1
        db.execute(
            "UPDATE trial_params SET distribution_json = ?, param_value = ? WHERE param_id = ?",
            (json.dumps(dist), float(index), param_id),
        )

    assert main(["status", str(tmp_path / "exp")]) == EXIT_OK
    assert main(["export", str(tmp_path / "exp"), "--format", "csv"]) == EXIT_OK
    resumed = UniversalExperimentLoop(sfd=toy_sfd, **kwargs)
    log = resumed.run("d", n_permutations=6, resume=True, progress_bar=False)

    assert len(log) == 6 and not marker.exists()
    assert "evil_choice.run" in set(log["scaler"])
    assert all(v in toy_sfd.params()["scaler"] for v in log["scaler"].iloc[3:])


def test_a_trial_enqueued_with_a_token_naming_code_is_refused_and_resume_goes_on(tmp_path):
    import optuna
    from optuna.trial import TrialState

    from limen.experiment import UniversalExperimentLoop

    kwargs = {"data": toy_sfd.toy_data(), "experiment_dir": tmp_path / "exp", "objective": "score"}
    UniversalExperimentLoop(sfd=toy_sfd, **kwargs).run("q", n_permutations=2, progress_bar=False)
    study = optuna.load_study(study_name="q", storage=f"sqlite:///{tmp_path / 'exp/study.db'}")
    poisoned = {**study.trials[0].params, "scaler": "os.system"}
    study.enqueue_trial(poisoned, skip_if_exists=False)

    resumed = UniversalExperimentLoop(sfd=toy_sfd, **kwargs)
    log = resumed.run("q", n_permutations=4, resume=True, progress_bar=False)

    assert len(log) == 4
    refused = resumed.study.trials[2]
    assert refused.state == TrialState.FAIL
    assert "scaler" in refused.user_attrs["limen:refused"]
    assert "os.system" in refused.user_attrs["limen:refused"]
    again = UniversalExperimentLoop(sfd=toy_sfd, **kwargs)
    assert len(again.run("q", n_permutations=5, resume=True, progress_bar=False)) == 5
