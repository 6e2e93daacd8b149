"""Crash safety: interrupted rounds, dead workers, files reconciled with the study."""

from __future__ import annotations

import csv
import itertools
import json
import os
import signal
import threading
import time
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

import toy_sfd
from children import run_script
from limen.adapters import leases
from limen.adapters.distributions import DomainCodec
from limen.adapters.storage import open_storage
from limen.experiment import UniversalExperimentLoop
from limen.experiment.identity import round_id


def make_loop(tmp_path: Path) -> UniversalExperimentLoop:
    return UniversalExperimentLoop(
        sfd=toy_sfd, data=toy_sfd.toy_data(), experiment_dir=tmp_path / "exp", objective="score"
    )


def csv_ids(path: Path) -> list[str]:
    with path.open(newline="") as handle:
        return [row["id"] for row in csv.DictReader(handle)]


def finished_ids(study: optuna.Study) -> list[str]:
    return [
        t.user_attrs["id"]
        for t in study.get_trials()
        if t.state in (TrialState.COMPLETE, TrialState.PRUNED)
        or (t.state == TrialState.FAIL and "limen:attempt" not in t.user_attrs)
    ]


def _zombie_round(storage, study_id: int) -> int:
    """A RUNNING trial of a combination that has not run, owned by a dead local process."""
    done = storage.get_all_trials(study_id)
    codec = DomainCodec(toy_sfd.params())
    ran = {t.user_attrs["id"] for t in done}
    combo = next(
        dict(zip(toy_sfd.params(), values, strict=True))
        for values in itertools.product(*toy_sfd.params().values())
        if round_id(dict(zip(toy_sfd.params(), values, strict=True))) not in ran
    )
    dead = {"host": leases.owner_record()["host"], "pid": 2**22 + 12345}
    _, number = storage.create_running_trial(
        study_id,
        codec.to_internal(combo),
        codec.distributions,
        user_attrs={"id": round_id(combo)},
        system_attrs={leases.OWNER: dead},
    )
    return number


def interrupting_model(at_call: int):
    calls = []

    def model(data, round_params):
        calls.append(1)
        if len(calls) == at_call:
            raise KeyboardInterrupt
        return toy_sfd.model(data, round_params)

    return model


def test_an_interrupted_round_is_an_attempt_and_runs_again_on_resume(tmp_path):
    loop = make_loop(tmp_path)
    loop.run("toy", n_permutations=10, model=interrupting_model(4), progress_bar=False)
    assert loop.interrupted
    trials = loop.study.get_trials()
    attempt = [t for t in trials if t.user_attrs.get("limen:attempt") == "interrupted"]
    waiting = [t for t in trials if t.state == TrialState.WAITING]
    assert len(attempt) == 1 and len(waiting) == 1
    assert waiting[0].params == attempt[0].params

    resumed = make_loop(tmp_path)
    resumed.run("toy", n_permutations=10, resume=True, progress_bar=False)
    study = resumed.study
    ids = finished_ids(study)
    assert len(ids) == 10 and len(set(ids)) == 10
    assert attempt[0].user_attrs["id"] in ids
    assert not [
        t for t in study.get_trials() if t.state in (TrialState.RUNNING, TrialState.WAITING)
    ]
    assert csv_ids(tmp_path / "exp/results.csv") == ids


def test_a_round_left_running_by_a_dead_process_is_failed_and_rerun(tmp_path):
    make_loop(tmp_path).run("toy", n_permutations=3, progress_bar=False)
    storage = open_storage(f"sqlite:///{tmp_path / 'exp/study.db'}")
    study_id = storage.get_study_id_from_name("toy")
    number = _zombie_round(storage, study_id)

    loop = make_loop(tmp_path)
    loop.run("toy", n_permutations=5, resume=True, progress_bar=False)
    trials = loop.study.get_trials()
    zombie = trials[number]
    assert zombie.state == TrialState.FAIL
    assert zombie.user_attrs["limen:attempt"] == "lease expired"
    retries = [t for t in trials if t.system_attrs.get(leases.RETRY_OF) == number]
    assert len(retries) == 1 and retries[0].state == TrialState.COMPLETE
    assert retries[0].params == zombie.params
    assert not [t for t in trials if t.state == TrialState.RUNNING]


def test_a_lease_older_than_the_grace_period_expires(tmp_path):
    storage = open_storage(f"sqlite:///{tmp_path / 'study.db'}")
    study = optuna.create_study(storage=storage, study_name="s")
    dist = {"x": optuna.distributions.IntDistribution(0, 3)}
    remote = {"host": "elsewhere", "pid": 1}
    trial_id, _ = storage.create_running_trial(
        study._study_id, {"x": 1.0}, dist, system_attrs={leases.OWNER: remote}
    )
    storage.record_heartbeat(trial_id)
    assert leases.expired_trials(storage, study._study_id, grace=60) == []
    storage.backdate_heartbeat(trial_id, 61)  # its worker stopped beating 61 s ago
    assert [t._trial_id for t in leases.expired_trials(storage, study._study_id, grace=60)] == [
        trial_id
    ]
    assert leases.expired_trials(storage, study._study_id, grace=62) == []


def test_a_lease_keeps_beating_while_the_round_runs_and_stops_after(tmp_path):
    storage = open_storage(f"sqlite:///{tmp_path / 'study.db'}")
    study = optuna.create_study(storage=storage, study_name="s")
    dist = {"x": optuna.distributions.IntDistribution(0, 3)}
    remote = {"host": "elsewhere", "pid": 1}
    trial_id, _ = storage.create_running_trial(
        study._study_id, {"x": 1.0}, dist, system_attrs={leases.OWNER: remote}
    )
    lease = leases.Lease(storage, interval=0.1)
    try:
        with lease.hold(trial_id):
            # An old heartbeat is renewed by the lease thread while the round runs.
            storage.backdate_heartbeat(trial_id, 600)
            assert _wait_until(lambda: storage.heartbeat_ages([trial_id])[trial_id] < 60)
            assert leases.expired_trials(storage, study._study_id, grace=60) == []
        # Dropped: an old heartbeat stays old, however many beats the thread would have made.
        storage.backdate_heartbeat(trial_id, 600)
        time.sleep(5 * lease.interval)
        assert storage.heartbeat_ages([trial_id])[trial_id] >= 600
        assert len(leases.expired_trials(storage, study._study_id, grace=60)) == 1
    finally:
        lease.close()


def _wait_until(condition, timeout: float = 30.0) -> bool:
    """Poll ``condition`` until it holds (True) or ``timeout`` seconds pass (False)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def test_two_reapers_requeue_a_dead_round_once(tmp_path):
    url = f"sqlite:///{tmp_path / 'study.db'}"
    storage = open_storage(url)
    study = optuna.create_study(storage=storage, study_name="s")
    dist = {"x": optuna.distributions.IntDistribution(0, 3)}
    dead = {"host": leases.owner_record()["host"], "pid": 2**22 + 54321}
    storage.create_running_trial(
        study._study_id, {"x": 2.0}, dist, system_attrs={leases.OWNER: dead}
    )
    other = open_storage(url)
    assert leases.reap(storage, study._study_id) + leases.reap(other, study._study_id) == 1
    waiting = storage.get_all_trials(study._study_id, states=(TrialState.WAITING,))
    assert len(waiting) == 1 and waiting[0].params == {"x": 2}


def test_resume_drops_file_lines_the_study_does_not_hold_and_rebuilds_missing_ones(tmp_path):
    make_loop(tmp_path).run("toy", n_permutations=8, progress_bar=False)
    results = tmp_path / "exp/results.csv"
    lines = results.read_text().splitlines(keepends=True)
    # Lose round 2's row, add a row for a round the study never finished, tear the last line.
    bogus = "0" * 64 + ",99,COMPLETE,0.1" + "," * (lines[0].count(",") - 3) + "\n"
    results.write_text("".join([lines[0], lines[1], lines[2], *lines[4:], bogus, "abc,1"]))
    round_data = tmp_path / "exp/round_data.jsonl"
    round_data.write_text(round_data.read_text() + '{"round_id": "torn')

    loop = make_loop(tmp_path)
    loop.run("toy", n_permutations=10, resume=True, progress_bar=False)
    ids = finished_ids(loop.study)
    assert csv_ids(results) == ids and len(ids) == 10
    records = [json.loads(x) for x in round_data.read_text().splitlines()]
    complete = [
        t.user_attrs["id"] for t in loop.study.get_trials() if t.state == TrialState.COMPLETE
    ]
    assert [r["round_id"] for r in records] == complete
    audit = [json.loads(x) for x in (tmp_path / "exp/audit.jsonl").read_text().splitlines()]
    assert {"reconcile"} <= {a["event"] for a in audit}


def test_round_data_lines_rebuilt_on_resume_are_marked_and_counted(tmp_path, caplog):
    make_loop(tmp_path).run("toy", n_permutations=8, progress_bar=False)
    round_data = tmp_path / "exp/round_data.jsonl"
    lines = round_data.read_text().splitlines(keepends=True)
    lost = [json.loads(line)["round_id"] for line in lines[1:3]]
    round_data.write_text("".join([lines[0], *lines[3:]]))

    make_loop(tmp_path).run("toy", n_permutations=8, resume=True, progress_bar=False)
    records = [json.loads(x) for x in round_data.read_text().splitlines()]
    rebuilt = [r for r in records if r.get("rebuilt") is True]
    assert [r["round_id"] for r in rebuilt] == lost
    assert all(r["preds"] is None for r in rebuilt)
    assert all("rebuilt" not in r and r["preds"] is not None for r in records if r not in rebuilt)
    assert any("Rebuilt 2 round_data.jsonl line(s)" in r.getMessage() for r in caplog.records)
    audit = [json.loads(x) for x in (tmp_path / "exp/audit.jsonl").read_text().splitlines()]
    assert [a["rebuilt"] for a in audit if a.get("file") == "round_data.jsonl"] == [2]


def test_request_stop_from_another_thread_ends_the_run_after_the_round(tmp_path):
    loop = make_loop(tmp_path)
    third_round = threading.Event()
    calls = []

    def model(data, round_params):
        calls.append(1)
        if len(calls) == 3:
            third_round.set()
            time.sleep(0.2)
        return toy_sfd.model(data, round_params)

    runner = threading.Thread(
        target=loop.run,
        args=("toy",),
        kwargs={"n_permutations": 64, "model": model, "progress_bar": False},
    )
    runner.start()
    assert third_round.wait(timeout=60)
    loop.request_stop()
    runner.join(timeout=60)
    assert not runner.is_alive()
    assert loop.interrupted and len(loop.experiment_log) == 3
    assert not [t for t in loop.study.get_trials() if t.state == TrialState.RUNNING]


def test_sigint_finishes_the_running_round_then_returns(tmp_path):
    loop = make_loop(tmp_path)
    calls = []

    def model(data, round_params):
        calls.append(1)
        if len(calls) == 3:
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.05)
        return toy_sfd.model(data, round_params)

    loop.run("toy", n_permutations=20, model=model, progress_bar=False)
    trials = loop.study.get_trials()
    assert len(calls) == 3
    assert len(trials) == 3
    assert all(t.state.is_finished() and "limen:attempt" not in t.user_attrs for t in trials)
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_a_second_sigint_interrupts_the_round_and_requeues_it(tmp_path):
    loop = make_loop(tmp_path)
    calls = []

    def model(data, round_params):
        calls.append(1)
        if len(calls) == 2:
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.05)
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(5)
        return toy_sfd.model(data, round_params)

    loop.run("toy", n_permutations=20, model=model, progress_bar=False)
    trials = loop.study.get_trials()
    assert trials[1].user_attrs["limen:attempt"] == "interrupted"
    assert trials[2].state == TrialState.WAITING
    assert trials[2].params == trials[1].params


@pytest.mark.parametrize("bad", ["yes", 2])
def test_resume_must_be_true_false_or_force(tmp_path, bad):
    with pytest.raises(ValueError, match="'resume'"):
        make_loop(tmp_path).run("toy", n_permutations=2, resume=bad, progress_bar=False)


def test_resume_after_a_clean_ctrl_c_keeps_strategy_domain_and_queue(tmp_path):
    import strategy_sfd

    def strategy_loop() -> UniversalExperimentLoop:
        return UniversalExperimentLoop(
            sfd=strategy_sfd,
            data=strategy_sfd.data(),
            experiment_dir=tmp_path / "steer",
            objective="score",
            search_strategy={"name": "tpe", "n_startup_trials": 3, "seed": 5},
        )

    queued = {"x": 7, "lr": 0.1, "mode": "c", "scaler": strategy_sfd.StandardScaler}
    loop = strategy_loop()
    calls = []
    stopped = []

    def model(data, round_params):
        calls.append(round_params)
        if len(calls) == 4 and not stopped:
            stopped.append(True)
            loop.domain.remove_value("mode", "a")
            loop.msq.inject(queued, prioritize=True)
            os.kill(os.getpid(), signal.SIGINT)
        return strategy_sfd.model(data, round_params)

    loop.run("steer", n_permutations=12, model=model, progress_bar=False)
    assert loop.interrupted and len(calls) == 4
    strategy = loop.study.user_attrs["limen:strategy"]

    resumed = strategy_loop()
    calls.clear()
    resumed.run("steer", n_permutations=12, model=model, resume=True, progress_bar=False)
    assert resumed.study.user_attrs["limen:strategy"] == strategy
    assert resumed.domain.values_for("mode") == ["b", "c"]
    assert calls[0] == queued
    assert all(c["mode"] != "a" for c in calls)
    assert len(resumed.experiment_log) == 12


def test_a_lost_attempt_without_its_retry_is_requeued_but_a_rejected_proposal_is_not(tmp_path):
    storage = open_storage(f"sqlite:///{tmp_path / 'study.db'}")
    study = optuna.create_study(storage=storage, study_name="s")
    dist = {"x": optuna.distributions.IntDistribution(0, 3)}
    for value, reason in ((1.0, leases.LEASE_EXPIRED), (2.0, "rejected")):
        trial_id, _ = storage.create_running_trial(study._study_id, {"x": value}, dist)
        storage.finish_trial(trial_id, TrialState.FAIL, None, {"limen:attempt": reason})

    assert leases.reap(storage, study._study_id) == 1
    assert leases.reap(storage, study._study_id) == 0
    waiting = storage.get_all_trials(study._study_id, states=(TrialState.WAITING,))
    assert [t.params for t in waiting] == [{"x": 1}]
    assert waiting[0].system_attrs[leases.RETRY_OF] == 0


def test_a_finished_run_holds_no_connection_while_its_loop_is_kept(tmp_path):
    loop = make_loop(tmp_path)
    loop.run("toy", n_permutations=3, progress_bar=False)

    # The study's write-ahead log is folded back into study.db once its last connection closes.
    assert not (tmp_path / "exp" / "study.db-wal").exists()
    assert len(loop.study.get_trials()) == 3  # and the study reconnects on its next query


def test_a_run_is_not_kept_alive_by_the_dashboard_import_it_triggers(tmp_path):
    # The dashboard is imported on the run's first study note; its probes for optional packages
    # keep failed-import tracebacks for the life of the process. In a child that has not
    # imported it yet, nothing of the finished run may stay reachable through them.
    script = f"""
import gc, sys
for name in [m for m in sys.modules if m.split(".")[0] == "optuna_dashboard"]:
    del sys.modules[name]
import toy_sfd
from children import run_script
from limen.experiment import UniversalExperimentLoop
loop = UniversalExperimentLoop(sfd=toy_sfd, data=toy_sfd.toy_data(),
                               experiment_dir={str(tmp_path / "exp")!r}, objective="score")
loop.run("toy", n_permutations=2, progress_bar=False)
assert "optuna_dashboard" in sys.modules
del loop
gc.collect()
left = [type(o).__name__ for o in gc.get_objects() if type(o).__name__ == "RoundRunner"]
print("left:", left)
"""
    child = run_script(script)
    assert child.returncode == 0, child.stderr
    assert "left: []" in child.stdout
