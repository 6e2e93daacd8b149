"""MSQ: queued combinations as WAITING trials, priority, filters, trim, state."""

from __future__ import annotations

import json

import optuna
import pytest
from optuna.trial import TrialState

import strategy_sfd
from limen.experiment import MSQ, FilterExhaustedError, ParamDomain, UniversalExperimentLoop
from limen.experiment.msq import MemoryRounds
from plain_strategies import InOrder

COMBO = {"x": 13, "lr": 0.01, "mode": "b", "scaler": strategy_sfd.MinMaxScaler}


def make_loop(tmp_path, strategy="random", **kwargs) -> UniversalExperimentLoop:
    return UniversalExperimentLoop(
        sfd=strategy_sfd,
        data=strategy_sfd.data(),
        experiment_dir=tmp_path / "exp",
        objective="score",
        search_strategy=strategy,
        **kwargs,
    )


def steering(loop, action, at=2):
    """A model that calls ``action(loop.msq)`` once, before round ``at`` runs."""
    calls: list[dict] = []

    def model(data, round_params):
        if len(calls) == at:
            action(loop.msq)
        calls.append(round_params)
        return strategy_sfd.model(data, round_params)

    return model, calls


def test_a_prioritised_injection_runs_next(tmp_path):
    loop = make_loop(tmp_path)
    model, calls = steering(loop, lambda msq: msq.inject(COMBO, prioritize=True))
    loop.run("q", n_permutations=5, progress_bar=False, model=model)

    assert {k: calls[3][k] for k in COMBO} == COMBO
    # Rounds, not trials: a rejected duplicate proposal also takes a trial number.
    rounds = [t for t in loop.study.trials if "limen:attempt" not in t.user_attrs]
    trial = rounds[3]
    assert trial.user_attrs["limen:injected"] is True
    assert trial.params["scaler"] == "sklearn.preprocessing.MinMaxScaler"


def test_prioritised_injections_jump_the_queue(tmp_path):
    loop = make_loop(tmp_path)
    first = {**COMBO, "x": 1}
    second = {**COMBO, "x": 2}

    def act(msq):
        msq.inject(first)
        msq.inject(second, prioritize=True)

    model, calls = steering(loop, act)
    loop.run("q", n_permutations=5, progress_bar=False, model=model)
    assert [c["x"] for c in calls[3:5]] == [2, 1]


def test_waiting_trials_left_in_the_study_run_after_a_restart(tmp_path):
    loop = make_loop(tmp_path)
    model, _ = steering(loop, lambda msq: msq.inject(COMBO), at=0)
    loop.run("q", n_permutations=1, progress_bar=False, model=model)
    waiting = loop.study.get_trials(states=(TrialState.WAITING,))
    assert len(waiting) == 1

    again = make_loop(tmp_path)
    again.run("q", n_permutations=3, progress_bar=False, resume=True)
    study = optuna.load_study(study_name="q", storage=f"sqlite:///{tmp_path / 'exp/study.db'}")
    assert not study.get_trials(states=(TrialState.WAITING,))
    assert again.experiment_log["x"].iloc[1] == 13


def test_a_trim_stops_the_run_at_the_requested_total(tmp_path):
    loop = make_loop(tmp_path)
    model, _ = steering(loop, lambda msq: msq.trim(4))
    log = loop.run("q", n_permutations=20, progress_bar=False, model=model)

    assert len(log) == 4
    assert loop.exhausted


def test_filters_are_honoured(tmp_path):
    loop = make_loop(tmp_path)

    def act(msq):
        msq.set_filter(
            "low_x",
            filter_type="keep_between",
            filter_params={"param": "x", "lower": 0, "upper": 5},
        )
        msq.remove_custom(lambda c: c["mode"] == "c")

    model, calls = steering(loop, act)
    loop.run("q", n_permutations=25, progress_bar=False, model=model)
    assert all(c["x"] <= 5 and c["mode"] != "c" for c in calls[3:])
    assert [e["operation"] for e in loop.msq.intervention_log] == ["set_filter", "remove_custom"]


def plain_msq(**kwargs) -> MSQ:
    domain = ParamDomain({"a": [1, 2, 3], "b": ["x", "y"]})
    return MSQ(InOrder(domain), domain, queue=MemoryRounds(), **kwargs)


def test_a_filter_that_refuses_everything_raises_filter_exhausted():
    msq = plain_msq(max_filter_retries=5)
    msq.remove_custom(lambda combo: True)
    with pytest.raises(FilterExhaustedError):
        next(msq)


def test_injections_are_checked_and_do_not_mutate_the_caller_dict():
    msq = plain_msq()
    combo = {"a": 2, "b": "y"}
    msq.inject(combo)
    with pytest.raises(ValueError, match="missing parameters"):
        msq.inject({"a": 2})
    assert next(msq).combo == {"a": 2, "b": "y"} and next(msq).combo == {"a": 1, "b": "x"}
    assert combo == {"a": 2, "b": "y"}


def test_remaining_count_and_distribution():
    msq = plain_msq(n_permutations=10)
    next(msq)
    assert msq.remaining_count() == 9
    assert msq.distribution("a") == {1: 3, 2: 3, 3: 3}
    msq.trim(4)
    assert msq.remaining_count() == 3


def test_state_round_trips_with_declarative_filters():
    msq = plain_msq()
    msq.set_filter("f", filter_type="keep_values", filter_params={"param": "a", "values": [1]})
    msq.remove_custom(lambda c: False)
    next(msq)
    msq.trim(7)
    state = msq.get_state()

    restored = plain_msq()
    with pytest.warns(UserWarning, match="non-restorable"):
        lost = restored.set_state(state)
    assert len(lost) == 1 and lost[0].startswith("custom filter ")
    assert restored.yielded_count == 1 and restored.trim_budget == 6
    assert not restored.admits({"a": 2, "b": "x"}) and restored.admits({"a": 1, "b": "x"})
    assert restored.intervention_log == msq.intervention_log


def test_domain_interventions_go_through_the_domain():
    msq = plain_msq()
    assert msq.remove_is("a", 3) is True
    assert msq.keep_between("a", 1, 1) == 1
    assert msq.inject_value("b", "z") is True
    assert msq.domain.get_state() == {"a": [1], "b": ["x", "y", "z"]}


def test_a_queued_round_is_owned_by_the_worker_that_takes_it(tmp_path):
    from limen.adapters.leases import OWNER, owner_record

    loop = make_loop(tmp_path)
    model, _ = steering(loop, lambda msq: msq.inject(COMBO, prioritize=True))
    loop.run("s", n_permutations=4, progress_bar=False, model=model)
    injected = [t for t in loop.study.get_trials() if t.user_attrs.get("limen:injected")]
    assert len(injected) == 1 and injected[0].state.is_finished()
    assert injected[0].system_attrs[OWNER] == owner_record()


def test_state_round_trip_keeps_the_n_permutations_cap():
    queue = MemoryRounds()
    domain = ParamDomain({"a": [1, 2, 3], "b": ["x", "y"]})
    msq = MSQ(InOrder(domain), domain, queue=queue, n_permutations=100)
    next(msq), next(msq)
    msq.inject({"a": 2, "b": "y"})
    assert msq.remaining_count() == 99
    state = msq.get_state()

    again = ParamDomain({"a": [1, 2, 3], "b": ["x", "y"]})
    restored = MSQ(InOrder(again), again, queue=queue)
    restored.set_state(state)
    assert restored.n_permutations == 100
    assert restored.remaining_count() == 99


def test_a_callable_filter_is_named_in_one_non_restorable_warning():
    def no_threes(combo):
        return combo["a"] == 3

    msq = plain_msq()
    msq.set_filter("mine", lambda combo: False)
    msq.remove_custom(no_threes)
    msq.set_filter("kept", filter_type="keep_values", filter_params={"param": "a", "values": [1]})
    with pytest.warns(UserWarning) as caught:
        lost = plain_msq().set_state(msq.get_state())
    assert len(caught) == 1
    message = str(caught[0].message)
    assert "non-restorable" in message and "'mine'" in message and "no_threes" in message
    assert "kept" not in message
    assert lost[0] == "named filter 'mine'"
    assert lost[1].startswith("custom filter ") and lost[1].endswith("<locals>.no_threes")


def test_a_resume_names_the_lost_filter_in_the_log_and_the_audit(tmp_path, caplog):
    def callback(log, msq):
        msq.set_filter("mine", lambda combo: combo["x"] > 90)

    loop = make_loop(tmp_path, intra_callback=callback, feedback_interval=2)
    loop.run("q", n_permutations=3, progress_bar=False)

    again = make_loop(tmp_path, feedback_interval=2)
    with pytest.warns(UserWarning, match=r"non-restorable.*'mine'"):
        again.run("q", n_permutations=4, progress_bar=False, resume=True)
    assert any(
        "non-restorable" in r.getMessage() and "'mine'" in r.getMessage() for r in caplog.records
    )
    audit = [json.loads(line) for line in (tmp_path / "exp/audit.jsonl").read_text().splitlines()]
    lost = [line for line in audit if line.get("event") == "non_restorable_filters"]
    assert [line["filters"] for line in lost] == [["named filter 'mine'"]]
