"""Many workers on one study: exact totals, exactly-once rounds, shared state, entry points."""

from __future__ import annotations

import json
import subprocess
import time
from collections import Counter
from pathlib import Path

import optuna
import pytest
import yaml
from optuna.trial import TrialState

import worker_sfd
from children import run_cli, run_script, start_script
from limen.adapters import leases
from limen.adapters.trials import ATTEMPT, ROUND_ID, is_finished_round
from limen.cli import main, status_report
from limen.experiment import UniversalExperimentLoop
from limen.log import Log

ROOT = Path(__file__).resolve().parents[1]
TESTS = Path(__file__).resolve().parent


def make_loop(directory: Path, storage: str | None, **kwargs: object) -> UniversalExperimentLoop:
    kwargs.setdefault("objective", "score")
    return UniversalExperimentLoop(
        sfd=worker_sfd,
        data=worker_sfd.data(),
        experiment_dir=directory,
        storage=storage,
        **kwargs,
    )


def study_trials(storage: str, name: str) -> list[optuna.trial.FrozenTrial]:
    return optuna.load_study(study_name=name, storage=storage).get_trials(deepcopy=False)


def finished_ids(trials: list[optuna.trial.FrozenTrial]) -> list[str]:
    return [t.user_attrs[ROUND_ID] for t in trials if is_finished_round(t)]


def file_bytes(path: Path) -> bytes:
    return path.read_bytes() if path.exists() else b""


def audit_lines(directory: Path, event: str) -> list[dict]:
    lines = (directory / "audit.jsonl").read_text().splitlines()
    return [record for record in map(json.loads, lines) if record["event"] == event]


# ------------------------------------------------------------------ totals and exactly once


@pytest.mark.slow
@pytest.mark.parametrize("server", ["postgres", "mysql"])
def test_four_tpe_workers_finish_exactly_the_target_and_each_queued_round_once(
    server, request, tmp_path, unique_study_name
):
    storage = request.getfixturevalue(f"{server}_url")
    directory = tmp_path / "exp"
    make_loop(directory, storage, search_strategy="tpe").run(
        unique_study_name, n_permutations=200, n_jobs=0, progress_bar=False
    )
    study = optuna.load_study(study_name=unique_study_name, storage=storage)
    queued = [{"x": x, "mode": "b", "lr": 0.01} for x in (1, 5, 9, 17)]
    for combo in queued:
        study.enqueue_trial(combo)

    loop = make_loop(directory, storage, search_strategy="tpe")
    log = loop.run(unique_study_name, n_permutations=200, resume=True, n_jobs=4, progress_bar=False)

    trials = study_trials(storage, unique_study_name)
    ids = finished_ids(trials)
    assert len(ids) == 200 == len(log)
    assert len(set(ids)) == 200
    assert not [t for t in trials if t.state in (TrialState.RUNNING, TrialState.WAITING)]
    ran = Counter((t.params["x"], t.params["mode"]) for t in trials if is_finished_round(t))
    for combo in queued:
        assert ran[(combo["x"], combo["mode"])] >= 1
    queued_rounds = [t for t in trials if "fixed_params" in t.system_attrs]
    assert len(queued_rounds) == len(queued)
    assert all(is_finished_round(t) for t in queued_rounds)


@pytest.mark.postgres
def test_three_grid_workers_run_each_combination_of_a_60_space_once(
    postgres_url, tmp_path, unique_study_name
):
    loop = make_loop(tmp_path / "exp", postgres_url)
    loop.run(
        unique_study_name,
        n_permutations=60,
        n_jobs=3,
        params={"x": list(range(20)), "mode": ["a", "b", "c"], "lr": [0.01]},
        progress_bar=False,
    )
    trials = study_trials(postgres_url, unique_study_name)
    combos = Counter((t.params["x"], t.params["mode"]) for t in trials if is_finished_round(t))
    assert len(combos) == 60
    assert set(combos.values()) == {1}
    assert len(trials) == 60
    workers = Log(postgres_url, unique_study_name).workers()
    assert len(workers) == 3
    assert sum(w.finished for w in workers) == 60
    assert "Workers:" in status_report(Log(postgres_url, unique_study_name))


def test_several_workers_on_sqlite_are_refused_with_the_way_out(tmp_path):
    loop = make_loop(tmp_path / "exp", None)
    with pytest.raises(ValueError, match=r"PostgreSQL.*allow_sqlite_workers=True"):
        loop.run("exp", n_permutations=4, n_jobs=4)
    assert not (tmp_path / "exp").exists()


def test_two_forced_workers_on_sqlite_still_finish_exactly_the_target(tmp_path):
    loop = make_loop(tmp_path / "exp", None)
    log = loop.run(
        "exp", n_permutations=12, n_jobs=2, allow_sqlite_workers=True, progress_bar=False
    )
    assert len(log) == 12
    assert log["id"].is_unique


# ------------------------------------------------------------------ a worker dies


@pytest.mark.slow
@pytest.mark.postgres
def test_a_worker_killed_mid_round_has_its_round_run_by_another(
    postgres_url, tmp_path, unique_study_name
):
    directory = tmp_path / "exp"
    make_loop(directory, postgres_url).run(
        unique_study_name, n_permutations=12, n_jobs=0, progress_bar=False
    )
    script = (
        "import sys, worker_sfd\n"
        "from limen.experiment import UniversalExperimentLoop\n"
        "loop = UniversalExperimentLoop(sfd=worker_sfd, data=worker_sfd.data(), "
        "experiment_dir=sys.argv[1], storage=sys.argv[2], objective='score')\n"
        "loop.work(sys.argv[3], progress_bar=False)\n"
    )
    argv = [str(directory), postgres_url, unique_study_name]
    # The victim holds its first round until it is killed; the survivor runs every round.
    victim = start_script(script, *argv, env={"LIMEN_TEST_HOLD_AFTER": "0"})
    assert _wait_for_heartbeat(postgres_url, unique_study_name, victim.pid).running == 1
    running = _wait_for_running_round(postgres_url, unique_study_name, victim.pid)
    victim.kill()
    victim.wait()
    survivor = run_script(script, *argv)
    assert survivor.returncode == 0, survivor.stderr

    trials = study_trials(postgres_url, unique_study_name)
    ids = finished_ids(trials)
    assert len(ids) == 12 and len(set(ids)) == 12
    lost = next(t for t in trials if t.number == running.number)
    assert lost.user_attrs[ATTEMPT] == leases.LEASE_EXPIRED
    assert running.user_attrs[ROUND_ID] in ids
    assert not [t for t in trials if t.state == TrialState.RUNNING]


def _wait_for_heartbeat(storage: str, name: str, pid: int):
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        for worker in Log(storage, name).workers():
            if worker.pid == pid and worker.last_heartbeat is not None:
                return worker
        time.sleep(0.05)
    raise AssertionError("limen status never showed the worker's heartbeat")


def _wait_for_running_round(storage: str, name: str, pid: int) -> optuna.trial.FrozenTrial:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        for trial in study_trials(storage, name):
            owner = trial.system_attrs.get(leases.OWNER) or {}
            if trial.state == TrialState.RUNNING and owner.get("pid") == pid:
                return trial
        time.sleep(0.05)
    raise AssertionError("the worker never started a round")


# ------------------------------------------------------------------ shared search state


@pytest.mark.postgres
def test_a_value_one_worker_removes_is_never_proposed_by_any_worker_afterwards(
    postgres_url, tmp_path, unique_study_name, monkeypatch
):
    monkeypatch.setenv("LIMEN_TEST_ROUND_S", "0.02")
    marker = tmp_path / "removed_at"

    def remove_zero(log, msq):
        if 0 in msq.domain.params["x"]:
            msq.remove_is("x", 0)
            marker.write_text(str(time.time()))

    loop = make_loop(
        tmp_path / "exp",
        postgres_url,
        search_strategy="random",
        intra_callback=remove_zero,
        feedback_interval=15,
    )
    loop.run(unique_study_name, n_permutations=90, n_jobs=3, progress_bar=False)

    removed_at = float(marker.read_text())
    trials = study_trials(postgres_url, unique_study_name)
    later = [t for t in trials if t.datetime_start.timestamp() > removed_at + 0.5]
    assert len(later) > 20
    assert not [t for t in later if t.params["x"] == 0]
    assert len(finished_ids(trials)) == 90


@pytest.mark.postgres
def test_feedback_fires_once_per_interval_across_three_workers(
    postgres_url, tmp_path, unique_study_name
):
    directory = tmp_path / "exp"
    loop = make_loop(
        directory,
        postgres_url,
        search_strategy="random",
        intra_callback=lambda log, msq: None,
        feedback_interval=10,
    )
    loop.run(unique_study_name, n_permutations=100, n_jobs=3, progress_bar=False)
    triggers = audit_lines(directory, "feedback")
    assert sorted(t["trigger_number"] for t in triggers) == list(range(10))
    assert len(finished_ids(study_trials(postgres_url, unique_study_name))) == 100


def test_reducers_are_stored_and_rebuilt_on_resume(tmp_path):
    reducer = {"name": "sanity", "metric": "score", "nan_threshold": 0.2}
    loop = make_loop(tmp_path / "exp", None, pruning_strategies=[reducer], feedback_interval=7)
    loop.run("exp", n_permutations=3, progress_bar=False)

    again = make_loop(tmp_path / "exp", None)
    again.run("exp", n_permutations=5, resume=True, progress_bar=False)
    assert [type(r).__name__ for r in again.pruning_strategies] == ["SanityReducer"]
    assert again.pruning_strategies[0].nan_threshold == 0.2
    assert again.feedback_interval == 7


# ------------------------------------------------------------------ resume="auto"


def test_resume_auto_starts_where_start_up_died_before_the_study_existed(tmp_path):
    directory = tmp_path / "exp"
    directory.mkdir()
    storage = f"sqlite:///{directory / 'study.db'}"
    optuna.storages.RDBStorage(storage).engine.dispose()
    log = make_loop(directory, None).run("exp", n_permutations=4, resume="auto", progress_bar=False)
    assert len(log) == 4


def test_resume_auto_replaces_a_study_that_start_up_left_without_limen_attrs(tmp_path):
    directory = tmp_path / "exp"
    directory.mkdir()
    optuna.create_study(study_name="exp", storage=f"sqlite:///{directory / 'study.db'}")
    log = make_loop(directory, None).run("exp", n_permutations=4, resume="auto", progress_bar=False)
    assert len(log) == 4


@pytest.mark.slow
def test_resume_auto_continues_a_run_killed_mid_round_and_then_has_nothing_to_do(tmp_path):
    directory = tmp_path / "exp"
    storage = f"sqlite:///{directory / 'study.db'}"
    script = (
        "import sys, worker_sfd\n"
        "from limen.experiment import UniversalExperimentLoop\n"
        "loop = UniversalExperimentLoop(sfd=worker_sfd, data=worker_sfd.data(), "
        "experiment_dir=sys.argv[1], objective='score')\n"
        "loop.run('exp', n_permutations=6, resume='auto', progress_bar=False)\n"
    )
    # The victim finishes two rounds and holds its third until it is killed.
    victim = start_script(script, str(directory), env={"LIMEN_TEST_HOLD_AFTER": "2"})
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if (directory / "metadata.json").exists():
            trials = study_trials(storage, "exp")
            if len(finished_ids(trials)) >= 2 and trials[-1].state == TrialState.RUNNING:
                break
        time.sleep(0.05)
    else:
        raise AssertionError("the victim never held its third round")
    victim.kill()
    victim.wait()

    log = make_loop(directory, None).run("exp", n_permutations=6, resume="auto", progress_bar=False)
    assert len(log) == 6 and log["id"].is_unique
    trials = study_trials(storage, "exp")
    assert [t.user_attrs.get(ATTEMPT) for t in trials].count(leases.LEASE_EXPIRED) == 1
    assert not [t for t in trials if t.state == TrialState.RUNNING]
    rows = (directory / "results.csv").read_text().splitlines()
    assert len(rows) == 7
    again = make_loop(directory, None).run(
        "exp", n_permutations=6, resume="auto", progress_bar=False
    )
    assert len(again) == 6
    assert (directory / "results.csv").read_text().splitlines() == rows


def test_resume_auto_continues_a_run_and_does_nothing_once_it_finished(tmp_path):
    directory = tmp_path / "exp"
    make_loop(directory, None).run("exp", n_permutations=3, progress_bar=False)
    log = make_loop(directory, None).run("exp", n_permutations=6, resume="auto", progress_bar=False)
    assert len(log) == 6
    rows = (directory / "results.csv").read_text().splitlines()
    again = make_loop(directory, None).run(
        "exp", n_permutations=6, resume="auto", progress_bar=False
    )
    assert len(again) == 6
    assert (directory / "results.csv").read_text().splitlines() == rows


# ------------------------------------------------------------------ the command line


def test_resume_with_a_larger_n_raises_the_stored_target(tmp_path):
    directory = tmp_path / "exp"
    make_loop(directory, None).run("exp", n_permutations=3, progress_bar=False)
    make_loop(directory, None).run("exp", n_permutations=5, resume=True, progress_bar=False)
    metadata = json.loads((directory / "metadata.json").read_text())
    study = optuna.load_study(study_name="exp", storage=f"sqlite:///{directory / 'study.db'}")
    assert metadata["n_permutations"] == 5
    assert study.user_attrs["limen:n_permutations"] == 5


def test_worker_on_a_missing_study_says_so_and_writes_nothing(tmp_path, capsys):
    storage = f"sqlite:///{tmp_path / 'none.db'}"
    code = main(["worker", "--storage", storage, "--study", "nope", "--experiment-dir",
                 str(tmp_path / "out")])  # fmt: skip
    assert code == 2
    assert "No study 'nope'" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_worker_with_four_jobs_on_sqlite_names_postgresql(tmp_path, capsys):
    directory = tmp_path / "exp"
    make_loop(directory, None).run("exp", n_permutations=2, progress_bar=False)
    before = sorted(p.name for p in directory.iterdir())
    code = main(["worker", str(directory), "--sfd", str(TESTS / "worker_sfd.py"), "--jobs", "4"])
    err = capsys.readouterr().err
    assert code == 2
    assert "PostgreSQL" in err and "--force" in err
    assert sorted(p.name for p in directory.iterdir()) == before


def test_worker_with_another_sfd_is_refused_and_writes_nothing(tmp_path, capsys):
    directory = tmp_path / "exp"
    make_loop(directory, None).run("exp", n_permutations=2, progress_bar=False)
    audit = (
        (directory / "audit.jsonl").read_bytes() if (directory / "audit.jsonl").exists() else b""
    )
    code = main(["worker", str(directory), "--sfd", "logreg_binary"])
    err = capsys.readouterr().err
    assert code in (1, 2)
    assert len(err.strip().splitlines()) == 1
    assert len(study_trials(f"sqlite:///{directory / 'study.db'}", "exp")) == 2
    after = (
        (directory / "audit.jsonl").read_bytes() if (directory / "audit.jsonl").exists() else b""
    )
    assert after == audit


@pytest.mark.slow
@pytest.mark.postgres
def test_cli_jobs_zero_then_a_worker_from_a_new_directory(
    postgres_url, tmp_path, unique_study_name
):
    created = run_cli(
        "run", "--sfd", "logreg_binary", "--test-mode", "-n", "4", "--storage", postgres_url,
        "--name", unique_study_name, "--experiment-dir", str(tmp_path / "exp"), "--jobs", "0",
        "--no-progress", cwd=tmp_path,
    )  # fmt: skip
    assert created.returncode == 0, created.stderr
    assert study_trials(postgres_url, unique_study_name) == []
    worked = run_cli(
        "worker", "--storage", postgres_url, "--study", unique_study_name,
        "--experiment-dir", str(tmp_path / "other"), "--no-progress", cwd=tmp_path,
    )  # fmt: skip
    assert worked.returncode == 0, worked.stderr
    assert len(finished_ids(study_trials(postgres_url, unique_study_name))) == 4
    assert json.loads((tmp_path / "other/metadata.json").read_text())["n_permutations"] == 4
    status = run_cli("status", str(tmp_path / "other"), "--storage", postgres_url, cwd=tmp_path)
    assert status.returncode == 0, status.stderr
    assert "4 of 4" in status.stdout


def test_the_cluster_examples_run_the_same_worker_command():
    cluster = ROOT / "examples" / "cluster"
    script = (cluster / "slurm_array.sh").read_text()
    assert subprocess.run(["bash", "-n", str(cluster / "slurm_array.sh")]).returncode == 0
    job = yaml.safe_load((cluster / "kubernetes_job.yaml").read_text())
    command = job["spec"]["template"]["spec"]["containers"][0]["command"]
    assert command[:2] == ["limen", "worker"]
    assert "exec limen worker" in script
    for flag in ("--storage", "--study", "--experiment-dir"):
        assert flag in command and flag in script
