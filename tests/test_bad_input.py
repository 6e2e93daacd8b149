"""Bad input, everywhere a user can give it: each is refused before anything is written.

On the command line a refusal is one line, ``limen <command>: error: <message>``, and exit code
2, never a traceback. In Python it is a ``LimenError`` (an ``InvalidParameterError`` for a
parameter) whose message names the parameter and the value; ``except ValueError`` written
against earlier versions still catches it.
"""

from __future__ import annotations

import os
import sqlite3
from contextlib import closing
from pathlib import Path

import pytest

import toy_sfd
from limen import errors
from limen.cli import main
from limen.errors import InvalidParameterError, LimenError
from limen.experiment import (
    MSQ,
    Manifest,
    ParamDomain,
    Range,
    ResumeError,
    Sensor,
    Trainer,
    UniversalExperimentLoop,
)
from limen.experiment.config import load_config
from limen.experiment.msq import MemoryRounds
from limen.experiment.trainer import SensorFileNotFoundError, SensorIntegrityError
from limen.log import Log
from limen.sfd.loader import SFDLoadError, load_sfd
from plain_strategies import InOrder
from product_experiments import copy_experiment, logreg_experiment

# ------------------------------------------------------------------------------ helpers


@pytest.fixture(scope="module")
def experiment(tmp_path_factory) -> Path:
    """A copy of the session's finished logreg experiment, for commands that read one.

    Its SQLite log is folded into ``study.db`` first, so that a reader closing the database
    (which folds the log too) changes no file size.
    """
    directory = copy_experiment(
        logreg_experiment(tmp_path_factory), tmp_path_factory.mktemp("bad") / "exp"
    )
    with closing(sqlite3.connect(directory / "study.db")) as db:
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return directory


@pytest.fixture(scope="module")
def sensor_path(tmp_path_factory, experiment) -> Path:
    """A real Sensor file of the experiment's best round."""
    trainer = Trainer(experiment)
    [sensor] = trainer.train(trainer.best(1), refit=False)
    return sensor.save(tmp_path_factory.mktemp("sensor") / "best.sensor")


def snapshot(directory: Path) -> dict[str, int]:
    """Every file under ``directory`` with its size: what a refused command must not change
    (SQLite's shared-memory index and an empty log aside, which a reader may create)."""
    return {
        str(p.relative_to(directory)): p.stat().st_size
        for p in sorted(directory.rglob("*"))
        if p.is_file() and not p.name.endswith("-shm") and not _empty_log(p)
    }


def _empty_log(path: Path) -> bool:
    return path.name.endswith("-wal") and path.stat().st_size == 0


def refused(capsys: pytest.CaptureFixture[str], argv: list[str], *named: str) -> str:
    """Run ``limen argv`` in-process; check the one-line refusal and exit code 2."""
    code = main(argv)
    out, err = capsys.readouterr()
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2, (code, out, err)
    assert len(lines) == 1, err
    assert "Traceback" not in err
    command = argv[0] if argv and not argv[0].startswith("-") and argv[0] != "bogus" else None
    assert lines[0].startswith(f"limen {command}: error: " if command else "limen: error: ")
    for text in named:
        assert text in lines[0], (text, lines[0])
    return lines[0]


def fill(argv: list[str], **paths: Path) -> list[str]:
    return [arg.format(**{k: str(v) for k, v in paths.items()}) for arg in argv]


# ------------------------------------------------------------------------------ CLI flags

CLI_CASES = {
    "run -n 0": (["run", "--sfd", "logreg_binary", "-n", "0"], ["'-n'", "[1, inf)", "Got 0"]),
    "run -n -5": (["run", "--sfd", "logreg_binary", "-n", "-5"], ["'-n'", "Got -5"]),
    "run -n ten": (["run", "--sfd", "logreg_binary", "-n", "ten"], ["-n", "'ten'"]),
    "run --jobs -1": (["run", "--sfd", "logreg_binary", "--jobs", "-1"], ["'--jobs'", "Got -1"]),
    "run --jobs x": (["run", "--sfd", "logreg_binary", "--jobs", "x"], ["--jobs", "'x'"]),
    "run --jobs 2 on sqlite": (["run", "--sfd", "logreg_binary", "--jobs", "2"], ["--force"]),
    "run --strategy unknown": (
        ["run", "--sfd", "logreg_binary", "--strategy", "tpe2"],
        ["'search_strategy'", "'tpe2'", "'tpe'"],
    ),
    "run --strategy missing file": (
        ["run", "--sfd", "logreg_binary", "--strategy", "{tmp}/none.toml"],
        ["none.toml", "does not exist"],
    ),
    "run --pruner unknown": (
        ["run", "--sfd", "logreg_binary", "--pruner", "mediam"],
        ["'pruner'", "'mediam'", "'median'"],
    ),
    "run --name a/b": (["run", "--sfd", "logreg_binary", "--name", "a/b"], ["'a/b'"]),
    "run --name blank": (["run", "--sfd", "logreg_binary", "--name", " "], ["'name'"]),
    "run --seed text": (["run", "--sfd", "logreg_binary", "--seed", "abc"], ["--seed", "'abc'"]),
    "run --resume yes": (["run", "--sfd", "logreg_binary", "--resume", "yes"], ["--resume"]),
    "run --sfd missing file": (["run", "--sfd", "{tmp}/none.py"], ["none.py", "does not exist"]),
    "run --sfd unknown module": (["run", "--sfd", "no_such_sfd_xyz"], ["'no_such_sfd_xyz'"]),
    "run --sfd a directory": (["run", "--sfd", "{tmp}/folder.py"], ["folder.py"]),
    "run without an SFD": (["run"], ["--sfd"]),
    "run with a config and --sfd": (
        ["run", "{tmp}/c.toml", "--sfd", "logreg_binary"],
        ["one of the two"],
    ),
    "run --set without =": (["run", "--sfd", "logreg_binary", "--set", "oops"], ["key=value"]),
    "run --set unknown key": (["run", "--sfd", "logreg_binary", "--set", "colour=1"], ["colour"]),
    "run --set wrong type": (
        ["run", "--sfd", "logreg_binary", "--set", "n_permutations=ten"],
        ["'n_permutations'", "'ten'"],
    ),
    "run --set strategy keyword": (
        [
            "run",
            "--sfd",
            "logreg_binary",
            "--strategy",
            "tpe",
            "--set",
            "strategy.n_startup_trials=-1",
        ],
        ["'n_startup_trials'", "[0, inf)", "Got -1"],
    ),
    "run --set pruner keyword": (
        [
            "run",
            "--sfd",
            "logreg_binary",
            "--pruner",
            "median",
            "--set",
            "pruner.n_warmup_steps=-2",
        ],
        ["'n_warmup_steps'", "Got -2"],
    ),
    "run --storage in memory": (
        ["run", "--sfd", "logreg_binary", "--storage", "sqlite:///:memory:"],
        [":memory:"],
    ),
    "run --storage not a URL": (
        ["run", "--sfd", "logreg_binary", "--storage", "not a url"],
        ["'storage'"],
    ),
    "resume a missing directory": (["resume", "{tmp}/nowhere"], ["metadata.json"]),
    "resume -n 0": (["resume", "{exp}", "-n", "0"], ["'-n'", "Got 0"]),
    "resume -n text": (["resume", "{exp}", "-n", "x"], ["-n", "'x'"]),
    "resume with another SFD": (["resume", "{exp}", "--sfd", "random_binary"], ["--force"]),
    "resume with a missing SFD file": (["resume", "{exp}", "--sfd", "{tmp}/none.py"], ["none.py"]),
    "resume broken metadata": (["resume", "{tmp}/broken"], ["not valid JSON"]),
    "worker --jobs 0": (["worker", "{exp}", "--jobs", "0"], ["'--jobs'", "Got 0"]),
    "worker with nothing": (["worker"], ["--storage", "--study"]),
    "worker a missing directory": (["worker", "{tmp}/nowhere"], ["metadata.json"]),
    "worker without --study": (["worker", "--storage", "sqlite:///{tmp}/x.db"], ["--study"]),
    "dashboard a missing directory": (["dashboard", "{tmp}/nowhere"], ["does not exist"]),
    "dashboard --port text": (["dashboard", "{exp}", "--port", "http"], ["--port", "'http'"]),
    "train --best 0": (["train", "{exp}", "--best", "0", "--out", "{tmp}/o"], ["'--best'"]),
    "train a missing directory": (
        ["train", "{tmp}/nowhere", "--best", "1", "--out", "{tmp}/o"],
        ["nowhere"],
    ),
    "train an unknown id": (
        ["train", "{exp}", "--id", "deadbeefdeadbeef", "--out", "{tmp}/o"],
        ["'deadbeefdeadbeef'"],
    ),
    "train a short id": (["train", "{exp}", "--id", "abc", "--out", "{tmp}/o"], ["'abc'"]),
    "train pickle without a key": (
        ["train", "{exp}", "--best", "1", "--out", "{tmp}/o", "--format", "pickle"],
        ["--key-env"],
    ),
    "train an unset key variable": (
        ["train", "{exp}", "--best", "1", "--out", "{tmp}/o", "--key-env", "LIMEN_NO_SUCH_VAR"],
        ["LIMEN_NO_SUCH_VAR"],
    ),
    "train without --out": (["train", "{exp}", "--best", "1"], ["--out"]),
    "train without a selection": (["train", "{exp}", "--out", "{tmp}/o"], ["--best", "--id"]),
    "predict a missing Sensor": (["predict", "{tmp}/none.sensor", "{tmp}/d.csv"], ["none.sensor"]),
    "predict a directory": (["predict", "{tmp}", "{tmp}/d.csv"], ["not a file"]),
    "predict garbage bytes": (["predict", "{tmp}/garbage.sensor", "{tmp}/d.csv"], ["not a Limen"]),
    "predict --tail 0": (
        ["predict", "{tmp}/garbage.sensor", "{tmp}/d.csv", "--tail", "0"],
        ["'--tail'"],
    ),
    "status a missing directory": (["status", "{tmp}/nowhere"], ["nowhere"]),
    "status --top -1": (["status", "{exp}", "--top", "-1"], ["'--top'", "Got -1"]),
    "status --top text": (["status", "{exp}", "--top", "x"], ["--top"]),
    "export a missing directory": (["export", "{tmp}/nowhere"], ["nowhere"]),
    "export --format xml": (["export", "{exp}", "--format", "xml"], ["--format", "'xml'"]),
    "plot without --out": (["plot", "{exp}"], ["--out"]),
    "plot a missing directory": (["plot", "{tmp}/nowhere", "--out", "{tmp}/p"], ["nowhere"]),
    "accept a missing directory": (["accept", "{tmp}/nowhere"], ["does not exist"]),
    "accept --blocks text": (["accept", "{exp}", "--blocks", "x"], ["--blocks"]),
    "accept a run without returns": (["accept", "{exp}"], ["trial_returns.parquet"]),
    "no command": ([], ["COMMAND"]),
    "an unknown command": (["bogus"], ["'bogus'"]),
}


@pytest.mark.parametrize(("argv", "named"), CLI_CASES.values(), ids=CLI_CASES.keys())
def test_a_bad_command_line_is_one_line_and_exit_2(
    argv, named, experiment, tmp_path, monkeypatch, capsys
):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "folder.py").mkdir()
    (tmp_path / "c.toml").write_text('sfd = "logreg_binary"\n', encoding="utf-8")
    (tmp_path / "garbage.sensor").write_bytes(os.urandom(64))
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "metadata.json").write_text("{", encoding="utf-8")
    before = snapshot(experiment)
    refused(capsys, fill(argv, tmp=tmp_path, exp=experiment), *named)
    after = snapshot(experiment)
    assert after == before, {k: (before.get(k), after.get(k)) for k in {*before, *after}}
    assert not (tmp_path / "limen-runs").exists()
    assert not (tmp_path / "o").exists()


def test_debug_adds_the_traceback(capsys):
    assert main(["--debug", "run", "--sfd", "no_such_sfd_xyz"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" in err and err.rstrip().splitlines()[-1].startswith("limen run: error: ")


def test_the_help_lists_the_exit_codes(capsys):
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    assert "exit codes:" in out and "the input was refused" in out


def test_the_installed_command_prints_one_line_and_exits_2(tmp_path):
    import subprocess
    import sys

    bad = tmp_path / "bad_syntax_cli.py"
    bad.write_text("def params(:\n", encoding="utf-8")
    done = subprocess.run(
        [sys.executable, "-m", "limen.cli", "run", "--sfd", str(bad)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=120,
    )
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr
    assert "line 1" in done.stderr and not (tmp_path / "limen-runs").exists()


# ------------------------------------------------------------------------------ SFD files

MANIFEST = "from limen.sfd.foundational_sfd.logreg_binary import manifest  # noqa: F401\n"

SFD_CASES = {
    "syntax error": ("def params(:\n    return {}\n", ["SyntaxError", "line 1"]),
    "import error": ("import no_such_package_xyz\n", ["no_such_package_xyz", "line 1"]),
    "error at import": ("x = 1\ny = undefined_name\n", ["NameError", "line 2"]),
    "no params": ("def manifest():\n    return None\n", ["params()"]),
    "params not a function": ("params = {'a': [1, 2]}\n", ["params()"]),
    "params returns a list": (MANIFEST + "def params():\n    return [1, 2]\n", ["params()"]),
    "params returns nothing": (MANIFEST + "def params():\n    return {}\n", ["params()"]),
    "params raises": (MANIFEST + "def params():\n    return 1 / 0\n", ["ZeroDivisionError"]),
    "a value that is not a list": (MANIFEST + "def params():\n    return {'a': 3}\n", ["'a'"]),
    "an empty list": (MANIFEST + "def params():\n    return {'a': []}\n", ["'a'"]),
    "repeated values": (
        MANIFEST + "def params():\n    return {'C': [1.0, 1.0, 10.0]}\n",
        ["'C'", "1.0", "more than once"],
    ),
    "a parameter named id": (MANIFEST + "def params():\n    return {'id': [1, 2]}\n", ["'id'"]),
    "a parameter named state": (
        MANIFEST + "def params():\n    return {'state': [1, 2]}\n",
        ["'state'"],
    ),
    "a private parameter name": (MANIFEST + "def params():\n    return {'_a': [1]}\n", ["_a"]),
    "a name that is not a str": (MANIFEST + "def params():\n    return {1: [1]}\n", ["1"]),
    "a manifest that raises": (
        "def params():\n    return {'a': [1, 2]}\n\ndef manifest():\n    raise KeyError('x')\n",
        ["manifest()", "KeyError"],
    ),
}


@pytest.mark.parametrize(("source", "named"), SFD_CASES.values(), ids=SFD_CASES.keys())
def test_a_bad_sfd_file_is_refused_before_anything_is_written(
    source, named, tmp_path, monkeypatch, capsys
):
    monkeypatch.chdir(tmp_path)
    path = tmp_path / f"sfd_{abs(hash(source))}.py"
    path.write_text(source, encoding="utf-8")
    argv = ["run", "--sfd", str(path), "--test-mode", "--experiment-dir", str(tmp_path / "exp")]
    refused(capsys, argv, *named)
    assert not (tmp_path / "exp").exists()


def test_load_sfd_names_the_file_and_line_of_a_syntax_error(tmp_path):
    path = tmp_path / "broken_sfd.py"
    path.write_text("def params():\n    return {\n", encoding="utf-8")
    with pytest.raises(SFDLoadError, match=r"broken_sfd\.py, line 2.*SyntaxError") as info:
        load_sfd(str(path))
    assert isinstance(info.value, ImportError) and isinstance(info.value, ValueError)
    assert "\n" not in str(info.value)


# ------------------------------------------------------------------------------ config files

CONFIG_CASES = {
    "n_permutations text": ('n_permutations = "ten"\n', ["'n_permutations'", "'ten'"]),
    "n_permutations zero": ("n_permutations = 0\n", ["'n_permutations'", "[1, inf)"]),
    "seed text": ('seed = "x"\n', ["'seed'"]),
    "test_mode text": ('test_mode = "yes"\n', ["'test_mode'", "a bool"]),
    "unknown key": ("colour = 1\n", ["colour", "Accepted keys"]),
    "strategy a number": ("strategy = 5\n", ["'strategy'"]),
    "strategy unknown": ('strategy = "tpe2"\n', ["'tpe2'"]),
    "strategy table unknown": ('[strategy]\nname = "tpe2"\n', ["'tpe2'"]),
    "strategy table without name": ("[strategy]\nseed = 1\n", ["'strategy'", "'name'"]),
    "strategy keyword": ('[strategy]\nname = "tpe"\nn_startup_trials = -1\n', ["n_startup"]),
    "pruner keyword": ('[pruner]\nname = "median"\nstartup = 1\n', ["'startup'"]),
    "objective a number": ("objective = 5\n", ["'objective'", "Got 5"]),
    "direction unknown": ('objective = "auc"\ndirection = "up"\n', ["'direction'", "'up'"]),
    "reducers a str": ('reducers = "sanity"\n', ["'reducers'"]),
    "reducer unknown": ('[[reducers]]\nname = "nope"\n', ["'nope'"]),
    "checkpoint_interval zero": ("checkpoint_interval = 0\n", ["'checkpoint_interval'"]),
    "feedback_interval text": ('feedback_interval = "x"\n', ["'feedback_interval'"]),
    "name a number": ("name = 5\n", ["'name'"]),
    "storage a number": ("storage = 5\n", ["'storage'"]),
}


@pytest.mark.parametrize(("body", "named"), CONFIG_CASES.values(), ids=CONFIG_CASES.keys())
def test_a_config_file_with_a_wrong_value_names_the_key(body, named, tmp_path, capsys):
    config = tmp_path / "exp.toml"
    head = f'sfd = "logreg_binary"\ntest_mode = true\nexperiment_dir = "{tmp_path / "exp"}"\n'
    if body.startswith("test_mode"):
        head = head.replace("test_mode = true\n", "")
    config.write_text(head + body, encoding="utf-8")
    refused(capsys, ["run", str(config)], *named)
    assert not (tmp_path / "exp").exists()


CONFIG_FILES = {
    "TOML syntax": ("exp.toml", "sfd = \n", ["not valid TOML"]),
    "YAML syntax": ("exp.yaml", "sfd: [unclosed\n", ["not valid YAML"]),
    "YAML list": ("exp.yaml", "- sfd\n- n\n", ["mapping"]),
    "no sfd": ("exp.toml", "n_permutations = 2\n", ["sfd"]),
    "sfd a number": ("exp.toml", "sfd = 5\n", ["'sfd'"]),
    "another suffix": ("exp.json", "{}", [".toml", "exp.json"]),
    "not UTF-8": ("exp.toml", b"sfd = '\xff\xfe'\n", ["UTF-8"]),
}


@pytest.mark.parametrize(("name", "body", "named"), CONFIG_FILES.values(), ids=CONFIG_FILES.keys())
def test_a_broken_config_file_is_one_line(name, body, named, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    path = tmp_path / name
    path.write_bytes(body if isinstance(body, bytes) else body.encode("utf-8"))
    refused(capsys, ["run", str(path)], *named)
    assert not (tmp_path / "limen-runs").exists()


def test_a_missing_config_file_is_refused(tmp_path, capsys):
    refused(capsys, ["run", str(tmp_path / "none.toml")], "none.toml", "does not exist")


# ------------------------------------------------------------------------------ the loop

LOOP_CASES = {
    "objective a number": ({"objective": 5}, {}, "objective", "5"),
    "direction unknown": ({"objective": "score", "direction": "up"}, {}, "direction", "'up'"),
    "direction without objective": ({"direction": "maximize"}, {}, "direction", "objective"),
    "one direction for two metrics": (
        {"objective": ["a", "b"], "direction": ["maximize"]},
        {},
        "direction",
        "one direction per objective metric",
    ),
    "feedback_interval zero": ({"feedback_interval": 0}, {}, "feedback_interval", "[1, inf)"),
    "checkpoint_interval text": ({"checkpoint_interval": "10"}, {}, "checkpoint_interval", "'10'"),
    "test_mode text": ({"test_mode": "yes"}, {}, "test_mode", "a bool"),
    "save_artifacts int": ({"save_artifacts": 1}, {}, "save_artifacts", "a bool"),
    "intra_callback not callable": ({"intra_callback": 5}, {}, "intra_callback", "callable"),
    "experiment_dir a number": ({"experiment_dir": 5}, {}, "experiment_dir", "path"),
    "storage a number": ({"storage": 5}, {}, "storage", "URL"),
    "storage in memory": ({"storage": "sqlite:///:memory:"}, {}, "storage", ":memory:"),
    "search_strategy a number": ({"search_strategy": 5}, {}, "search_strategy", "'tpe'"),
    "search_strategy unknown": ({"search_strategy": "tpe2"}, {}, "search_strategy", "'tpe2'"),
    "pruner a number": ({"pruner": 5}, {}, "pruner", "'median'"),
    "pruning_strategies a str": ({"pruning_strategies": "x"}, {}, "pruning_strategies", "list"),
    "reducer unknown": ({"pruning_strategies": [{"name": "nope"}]}, {}, "reducer", "'nope'"),
    "n_permutations text": ({}, {"n_permutations": "ten"}, "n_permutations", "'ten'"),
    "n_permutations zero": ({}, {"n_permutations": 0}, "n_permutations", "[1, inf)"),
    "n_permutations bool": ({}, {"n_permutations": True}, "n_permutations", "True"),
    "experiment_name with a slash": ({}, {"experiment_name": "a/b"}, "experiment_name", "a/b"),
    "experiment_name blank": ({}, {"experiment_name": " "}, "experiment_name", "' '"),
    "resume unknown": ({}, {"resume": "maybe"}, "resume", "'maybe'"),
    "seed text": ({}, {"seed": "x"}, "seed", "'x'"),
    "timeout negative": ({}, {"timeout": -1}, "timeout", "-1"),
    "n_jobs negative": ({}, {"n_jobs": -1}, "n_jobs", "-1"),
    "progress_bar text": ({}, {"progress_bar": "no"}, "progress_bar", "a bool"),
    "prep not callable": ({}, {"prep": 5}, "prep", "callable"),
    "context_params a list": ({}, {"context_params": [1]}, "context_params", "a dict"),
    "context clashes with params": ({}, {"context_params": {"mode": "a"}}, "context", "mode"),
    "repeated values": ({}, {"params": {"a": [1.0, 1.0, 10.0]}}, "'a'", "1.0"),
    "a parameter named id": ({}, {"params": {"id": [1, 2]}}, "'id'", "rename"),
    "a parameter named state": ({}, {"params": {"state": [1, 2]}}, "'state'", "rename"),
    "an empty list": ({}, {"params": {"a": []}}, "'a'", "non-empty list"),
}


@pytest.mark.parametrize(
    ("init", "run", "parameter", "value"), LOOP_CASES.values(), ids=LOOP_CASES.keys()
)
def test_the_loop_refuses_a_bad_argument_before_writing(init, run, parameter, value, tmp_path):
    directory = tmp_path / "exp"
    with pytest.raises(InvalidParameterError) as info:
        loop = UniversalExperimentLoop(
            sfd=toy_sfd, data=toy_sfd.toy_data(), **{"experiment_dir": directory, **init}
        )
        loop.run(**{"experiment_name": "exp", "progress_bar": False, **run})
    assert parameter in str(info.value) and value in str(info.value)
    assert not directory.exists()


def test_a_study_that_does_not_exist_cannot_be_resumed(tmp_path):
    loop = UniversalExperimentLoop(
        sfd=toy_sfd, data=toy_sfd.toy_data(), experiment_dir=tmp_path / "exp"
    )
    with pytest.raises(errors.ExperimentNotFoundError, match="no study of that name") as info:
        loop.run("exp", n_permutations=2, resume=True, progress_bar=False)
    assert isinstance(info.value, ValueError)
    assert not (tmp_path / "exp").exists()


@pytest.fixture
def toy_run(tmp_path) -> Path:
    directory = tmp_path / "toy"
    loop = UniversalExperimentLoop(sfd=toy_sfd, data=toy_sfd.toy_data(), experiment_dir=directory)
    loop.run("toy", n_permutations=2, progress_bar=False, seed=3)
    return directory


def test_a_resume_with_a_changed_space_is_refused(toy_run):
    before = snapshot(toy_run)
    loop = UniversalExperimentLoop(sfd=toy_sfd, data=toy_sfd.toy_data(), experiment_dir=toy_run)
    changed = {**toy_sfd.params(), "mode": ["a", "b", "c"]}
    with pytest.raises(ResumeError, match="parameter space changed"):
        loop.run("toy", n_permutations=3, resume=True, progress_bar=False, params=changed)
    assert snapshot(toy_run) == before


def test_a_fresh_run_into_a_used_experiment_is_refused(toy_run):
    loop = UniversalExperimentLoop(sfd=toy_sfd, data=toy_sfd.toy_data(), experiment_dir=toy_run)
    with pytest.raises(FileExistsError, match="resume=True") as info:
        loop.run("toy", n_permutations=3, progress_bar=False)
    assert isinstance(info.value, LimenError)


# ------------------------------------------------------------------------------ interventions


def _msq(**kwargs) -> MSQ:
    domain = ParamDomain({"a": [1, 2, 3], "b": ["x", "y"]})
    return MSQ(InOrder(domain), domain, queue=MemoryRounds(), **kwargs)


MSQ_CASES = {
    "inject a missing parameter": (lambda m: m.inject({"a": 1}), "['b']"),
    "inject an extra key": (lambda m: m.inject({"a": 1, "b": "x", "c": 0}), "['c']"),
    "inject not a dict": (lambda m: m.inject(5), "'combo'"),
    "remove from an unknown parameter": (lambda m: m.remove_is("z", 1), "'z'"),
    "keep_between incomparable": (lambda m: m.keep_between("a", "x", 3), "'a'"),
    "remove_ge incomparable": (lambda m: m.remove_ge("b", 3), "'b'"),
    "inject_value unknown parameter": (lambda m: m.inject_value("z", 1), "'z'"),
    "set_filter unknown type": (
        lambda m: m.set_filter("k", filter_type="x", filter_params={}),
        "'x'",
    ),
    "set_filter params not a dict": (
        lambda m: m.set_filter("k", filter_type="remove_values", filter_params=[1]),
        "filter_params",
    ),
    "set_filter half given": (lambda m: m.set_filter("k", filter_type="sample"), "filter_params"),
    "set_filter not callable": (lambda m: m.set_filter("k", 5), "callable"),
    "remove_custom not callable": (lambda m: m.remove_custom("x"), "callable"),
    "trim negative": (lambda m: m.trim(-1), "'target_count'"),
    "remove the last value": (lambda m: m.keep_is("a", 9), "keep_values(a, [9])"),
}


@pytest.mark.parametrize(("action", "named"), MSQ_CASES.values(), ids=MSQ_CASES.keys())
def test_a_bad_intervention_is_an_invalid_parameter(action, named):
    msq = _msq()
    values = {k: msq.domain.values_for(k) for k in msq.domain.keys}
    with pytest.raises(InvalidParameterError) as info:
        action(msq)
    assert named in str(info.value)
    assert {k: msq.domain.values_for(k) for k in msq.domain.keys} == values


def test_an_unknown_parameter_is_still_a_key_error():
    with pytest.raises(KeyError) as info:
        _msq().remove_is("z", 1)
    assert isinstance(info.value, InvalidParameterError)
    assert str(info.value).startswith("Unknown parameter 'z'")


# ------------------------------------------------------------------------------ Sensor files


def _truncated(path: Path, target: Path) -> Path:
    data = path.read_bytes()
    target.write_bytes(data[: len(data) // 2])
    return target


SENSOR_CASES = {
    "a missing file": (lambda s, t: t / "none.sensor", SensorFileNotFoundError, "none.sensor"),
    "a directory": (lambda s, t: t, SensorFileNotFoundError, "not a file"),
    "an empty file": (lambda s, t: _write(t / "e.sensor", b""), SensorIntegrityError, "not a"),
    "garbage bytes": (
        lambda s, t: _write(t / "g.sensor", os.urandom(256)),
        SensorIntegrityError,
        "not a Limen Sensor file",
    ),
    "a pickle": (
        lambda s, t: _write(t / "m.pkl", b"\x80\x05K\x01."),
        SensorIntegrityError,
        "not a Limen Sensor file",
    ),
    "a JSON file": (
        lambda s, t: _write(t / "s.json", b'{"model": 1}'),
        SensorIntegrityError,
        "not a Limen Sensor file",
    ),
    "a truncated file": (
        lambda s, t: _truncated(s, t / "half.sensor"),
        SensorIntegrityError,
        "half.sensor",
    ),
    "a header only": (
        lambda s, t: _write(t / "h.sensor", s.read_bytes().split(b"\n", 2)[0] + b"\n"),
        SensorIntegrityError,
        "h.sensor",
    ),
}


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


@pytest.mark.parametrize(("make", "error", "named"), SENSOR_CASES.values(), ids=SENSOR_CASES.keys())
def test_a_bad_sensor_file_is_refused(make, error, named, sensor_path, tmp_path, capsys):
    path = make(sensor_path, tmp_path)
    with pytest.raises(error) as info:
        Sensor.load(path)
    assert isinstance(info.value, LimenError) and named in str(info.value)
    data = tmp_path / "d.csv"
    data.write_text("open_time,open\n", encoding="utf-8")
    refused(capsys, ["predict", str(path), str(data)], named)


def test_a_wrong_key_type_is_refused_without_showing_it(sensor_path):
    with pytest.raises(InvalidParameterError, match="'key'") as info:
        Sensor.load(sensor_path, key=12345)
    assert "12345" not in str(info.value)


# ------------------------------------------------------------------------------ constructors


CONSTRUCTOR_CASES = {
    "UniversalExperimentLoop": (
        lambda: UniversalExperimentLoop(
            sfd=toy_sfd, data=toy_sfd.toy_data(), feedback_interval="x"
        ),
        lambda: UniversalExperimentLoop(sfd=toy_sfd, data=toy_sfd.toy_data(), feedback_interval=0),
        ["'feedback_interval'", "an int in the range [1, inf)"],
    ),
    "UniversalExperimentLoop.run": (
        lambda: UniversalExperimentLoop(sfd=toy_sfd, data=toy_sfd.toy_data()).run("e", "ten"),
        lambda: UniversalExperimentLoop(sfd=toy_sfd, data=toy_sfd.toy_data()).run("e", 0),
        ["'n_permutations'", "an int in the range [1, inf)"],
    ),
    "Trainer": (lambda: Trainer(5), lambda: Trainer(""), ["'experiment_dir_or_storage'", "path"]),
    "Log": (lambda: Log(5), lambda: Log(""), ["'source'", "an experiment directory"]),
    "ParamDomain": (
        lambda: ParamDomain(5),
        lambda: ParamDomain({"a": []}),
        ["non-empty list or a Range"],
    ),
    "Range": (lambda: Range("a", 2), lambda: Range(2, 1), ["parameter of Range must be a number"]),
    "Manifest.set_split_config": (
        lambda: Manifest().set_split_config("8", 1, 1),
        lambda: Manifest().set_split_config(0, 1, 1),
        ["'train' parameter of Manifest.set_split_config", "a number > 0"],
    ),
    "Sensor.load": (
        lambda: Sensor.load(5),
        lambda: Sensor.load("x.sensor", trusted="os.system"),
        ["parameter of Sensor.load must be"],
    ),
    "MSQ": (
        lambda: _msq(n_permutations="x"),
        lambda: _msq(n_permutations=0),
        ["'n_permutations' parameter of MSQ"],
    ),
    "load_sfd": (lambda: load_sfd(5), lambda: load_sfd(" "), ["'sfd'", "a non-empty str"]),
    "load_config": (
        lambda: load_config({"sfd": "x", "n_permutations": "ten"}),
        lambda: load_config({"sfd": "x", "n_permutations": 0}),
        ["'n_permutations'", "an int in the range [1, inf)"],
    ),
}


@pytest.mark.parametrize(
    ("wrong_type", "wrong_value", "named"), CONSTRUCTOR_CASES.values(), ids=CONSTRUCTOR_CASES.keys()
)
def test_a_constructor_refuses_a_wrong_type_and_a_wrong_value(wrong_type, wrong_value, named):
    for call in (wrong_type, wrong_value):
        with pytest.raises(InvalidParameterError) as info:
            call()
        for text in named:
            assert text in str(info.value), (text, str(info.value))
        try:
            call()
        except ValueError as caught:
            assert isinstance(caught, LimenError)
        try:
            call()
        except TypeError as caught:
            assert isinstance(caught, LimenError)


def test_every_limen_exception_derives_from_limen_error():
    from limen.adapters.dashboard import DashboardError
    from limen.cli import UsageError
    from limen.experiment import FilterExhaustedError
    from limen.experiment.trainer import (
        ReconstructionError,
        SensorTrustError,
        TrainerError,
    )
    from limen.sfd.loader import SFDSourceMismatchError

    for cls, builtin in (
        (FilterExhaustedError, RuntimeError),
        (ReconstructionError, Exception),
        (SensorIntegrityError, ValueError),
        (SensorTrustError, ValueError),
        (SFDSourceMismatchError, ValueError),
        (SFDLoadError, ImportError),
        (DashboardError, ValueError),
        (UsageError, Exception),
        (TrainerError, ValueError),
        (ResumeError, RuntimeError),
        (errors.MissingDependencyError, ImportError),
        (errors.NoRoundsError, ValueError),
    ):
        assert issubclass(cls, LimenError) and issubclass(cls, builtin), cls
