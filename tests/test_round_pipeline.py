"""The round pipeline's guarantees at the queue, for plain Optuna clients, and at scale."""

from __future__ import annotations

import itertools
import json

import optuna
import pytest
from optuna.trial import TrialState

import strategy_sfd
from limen.adapters.storage import open_storage
from limen.experiment import ResumeError, UniversalExperimentLoop

SHIFTS = {"x": [1, 2, 4, 6, 12], "lr": [0.01, 0.1], "mode": ["a", "b"], "scaler": [None]}
COMBO = {"x": 13, "lr": 0.01, "mode": "b", "scaler": strategy_sfd.MinMaxScaler}


def make_loop(tmp_path, strategy=None, **kwargs) -> UniversalExperimentLoop:
    return UniversalExperimentLoop(
        sfd=strategy_sfd,
        data=strategy_sfd.data(),
        experiment_dir=tmp_path / "exp",
        objective="score",
        search_strategy=strategy,
        **kwargs,
    )


def recording(loop, action=None, at=0):
    calls: list[dict] = []

    def model(data, round_params):
        if action is not None and len(calls) == at:
            action(loop.msq)
        calls.append(dict(round_params))
        return strategy_sfd.model(data, round_params)

    return model, calls


def audit(tmp_path, event):
    lines = (tmp_path / "exp" / "audit.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines if json.loads(line)["event"] == event]


def test_a_queued_combination_the_grid_also_proposes_runs_once(tmp_path):
    loop = make_loop(tmp_path, {"name": "grid", "seed": 1})
    model, calls = recording(loop, lambda msq: msq.inject(COMBO, prioritize=True), at=1)
    space = {**strategy_sfd.params(), "x": [13, 14], "lr": [0.01], "mode": ["a", "b"]}
    log = loop.run("q", n_permutations=20, seed=1, model=model, params=space, progress_bar=False)

    assert len(log) == 8 and loop.exhausted
    assert sum(c == COMBO for c in calls) == 1
    assert len(loop.study.trials) == 8


def test_a_queued_combination_whose_value_was_removed_does_not_run(tmp_path):
    loop = make_loop(tmp_path, {"name": "grid", "seed": 1})

    def act(msq):
        msq.inject(COMBO, prioritize=True)
        msq.remove_is("x", 13)

    model, calls = recording(loop, act, at=1)
    loop.run("q", n_permutations=6, seed=1, model=model, progress_bar=False)

    assert all(c["x"] != 13 for c in calls[2:])
    refused = [t for t in loop.study.trials if t.user_attrs.get("limen:attempt") == "refused"]
    assert len(refused) == 1 and refused[0].state == TrialState.FAIL
    assert "x=13" in refused[0].user_attrs["limen:refused"]
    assert "x=13" in audit(tmp_path, "refused")[0]["reason"]


def test_a_plain_optuna_trial_outside_the_domain_is_refused_not_changed(tmp_path):
    first = make_loop(tmp_path, "random")
    first.run("e", n_permutations=2, seed=0, params=SHIFTS, progress_bar=False)
    ran = [dict(zip(SHIFTS, row, strict=True)) for row in first.experiment_log[list(SHIFTS)].values]
    fresh = next(
        c
        for c in (
            dict(zip(SHIFTS, values, strict=True)) for values in itertools.product(*SHIFTS.values())
        )
        if c not in ran
    )
    study = optuna.load_study(study_name="e", storage=f"sqlite:///{tmp_path / 'exp/study.db'}")
    study.enqueue_trial({"x": 3, "lr": 0.01, "mode": "a", "scaler": None})
    study.enqueue_trial(fresh)

    again = make_loop(tmp_path, "random")
    model, calls = recording(again)
    again.run("e", n_permutations=5, params=SHIFTS, model=model, resume=True, progress_bar=False)

    assert calls[0] == fresh
    assert all(c["x"] != 3 for c in calls)
    off, taken = again.study.trials[2:4]
    assert off.state == TrialState.FAIL and off.user_attrs["limen:attempt"] == "refused"
    reason = off.user_attrs["limen:refused"]
    assert "x=3" in reason and "[1, 2, 4, 6, 12]" in reason
    assert "x=3" in audit(tmp_path, "refused")[0]["reason"]
    assert taken.state == TrialState.COMPLETE and taken.params["x"] == fresh["x"]
    assert len(again.experiment_log) == 5


@pytest.mark.slow
def test_tpe_fills_the_study_with_rounds_only(tmp_path):
    space = {
        "x": list(range(21)),
        "lr": [0.0001, 0.001, 0.01, 0.1, 1.0, 10.0],
        "mode": ["a", "b", "c"],
        "scaler": [None],
    }
    loop = make_loop(tmp_path, {"name": "tpe", "seed": 0})
    log = loop.run("t", n_permutations=300, params=space, progress_bar=False)

    assert len(log) == 300 and log["id"].is_unique
    assert len(loop.study.trials) == 300


def test_an_intervention_a_resume_could_not_restore_is_refused_with_an_audit_line(tmp_path):
    (tmp_path / "exp").mkdir()
    poison = [{"op": "inject_value", "param": "mode", "value": {"a": 1}}]
    (tmp_path / "exp" / "interventions.json").write_text(json.dumps(poison))
    loop = make_loop(tmp_path, "random", feedback_interval=3)
    loop.run("p", n_permutations=6, seed=0, progress_bar=False)

    assert loop.domain.values_for("mode") == ["a", "b", "c"]
    errors = [e for line in audit(tmp_path, "feedback") for e in line.get("errors", [])]
    assert any("mode={'a': 1}" in e["error"] for e in errors)
    again = make_loop(tmp_path, "random")
    assert len(again.run("p", n_permutations=8, resume=True, progress_bar=False)) == 8


def test_a_poisoned_search_state_is_refused_and_force_skips_what_it_cannot_restore(tmp_path):
    make_loop(tmp_path, "random").run("p", n_permutations=3, seed=0, progress_bar=False)
    storage = open_storage(f"sqlite:///{tmp_path / 'exp/study.db'}")
    study_id = storage.get_study_id_from_name("p")
    document = storage.get_study_user_attrs(study_id)["limen:search_state"]
    document["state"]["domain"]["mode"].append({"token": "os.system"})
    storage.set_study_user_attr(study_id, "limen:search_state", document)

    with pytest.raises(ResumeError, match=r"os\.system"):
        make_loop(tmp_path, "random").run("p", n_permutations=5, resume=True, progress_bar=False)
    forced = make_loop(tmp_path, "random")
    log = forced.run("p", n_permutations=5, resume="force", progress_bar=False)
    assert len(log) == 5 and forced.domain.values_for("mode") == ["a", "b", "c"]


def test_a_plain_optuna_round_off_the_list_shows_its_own_values(tmp_path):
    make_loop(tmp_path, "random").run("o", n_permutations=2, seed=0, params=SHIFTS)
    study = optuna.load_study(study_name="o", storage=f"sqlite:///{tmp_path / 'exp/study.db'}")
    done = study.trials[0]
    study.add_trial(
        optuna.trial.create_trial(
            params={**done.params, "x": 7}, distributions=done.distributions, value=0.99
        )
    )

    again = make_loop(tmp_path, "random")
    log = again.run("o", n_permutations=4, params=SHIFTS, resume=True, progress_bar=False)
    foreign = log[log["_round_index"] == 2].iloc[0]
    assert foreign["x"] == 7 and len(log) == 4
