"""FeedbackController: source order, isolation, the intervention file, audit, state; the loop."""

from __future__ import annotations

import json
import math
import os

import pandas as pd
import pytest

import strategy_sfd
from limen.experiment import (
    MSQ,
    FeedbackController,
    ParamDomain,
    PruningStrategy,
    SanityReducer,
    UniversalExperimentLoop,
)
from limen.experiment.feedback_controller import apply_intervention
from limen.experiment.msq import MemoryRounds
from plain_strategies import InOrder

LOG = pd.DataFrame({"score": [1.0], "a": [1], "b": ["x"]})


class Emits(PruningStrategy):
    """Returns fixed interventions (or raises), counting its calls."""

    def __init__(self, items=(), error=None):
        super().__init__()
        self.items, self.error, self.calls = list(items), error, 0

    def analyze_and_intervene(self, log, msq):
        self.calls += 1
        if self.error is not None:
            raise self.error
        return [dict(item) for item in self.items]

    def get_state(self):
        return {"calls": self.calls}

    def set_state(self, state):
        self.calls = state["calls"]


def make_msq() -> MSQ:
    domain = ParamDomain({"a": [1, 2, 3, 4], "b": ["x", "y"]})
    return MSQ(InOrder(domain), domain, queue=MemoryRounds())


def audit_lines(path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_should_trigger_every_interval_after_round_zero():
    controller = FeedbackController(feedback_interval=5)
    assert [r for r in range(16) if controller.should_trigger(r)] == [5, 10, 15]
    with pytest.raises(ValueError, match="'feedback_interval' parameter of FeedbackController"):
        FeedbackController(feedback_interval=0)


def test_sources_run_in_order_reducers_callback_file(tmp_path):
    (tmp_path / "interventions.json").write_text(
        json.dumps([{"op": "remove_is", "param": "a", "value": 3}])
    )
    controller = FeedbackController(
        pruning_strategies=[Emits([{"op": "remove_is", "param": "a", "value": 1}])],
        intra_callback=lambda log, msq: msq.remove_is("a", 2),
        intervention_path=tmp_path / "interventions.json",
    )
    msq = make_msq()
    applied = controller.trigger(LOG, msq, 100)
    assert [(i["source"], i["value"]) for i in applied] == [
        ("Emits", 1),
        ("intra_callback", 2),
        ("intervention_file", 3),
    ]
    assert msq.domain.values_for("a") == [4]


def test_a_failing_source_is_recorded_and_the_others_still_run(tmp_path):
    audit = tmp_path / "audit.jsonl"
    controller = FeedbackController(
        pruning_strategies=[
            Emits(error=RuntimeError("boom")),
            Emits([{"op": "trim", "target_count": 9}]),
        ],
        intra_callback=lambda log, msq: msq.inject({"a": 9}),
        audit_log_path=audit,
    )
    applied = controller.trigger(LOG, make_msq(), 7)
    assert [i["op"] for i in applied] == ["trim", "inject"]
    errors = audit_lines(audit)[0]["errors"]
    assert [(e["source"], e["error"]) for e in errors] == [
        ("Emits", "RuntimeError: boom"),
        ("intra_callback", "InvalidParameterError: MSQ Injected combo missing parameters: ['b']"),
    ]


def test_suggestions_are_audited_not_applied(tmp_path):
    audit = tmp_path / "audit.jsonl"
    suggestion = {"op": "remove_is", "param": "a", "value": 1, "action": "suggest"}
    controller = FeedbackController(pruning_strategies=[Emits([suggestion])], audit_log_path=audit)
    msq = make_msq()
    assert controller.trigger(LOG, msq, 1) == []
    assert msq.domain.values_for("a") == [1, 2, 3, 4]
    assert audit_lines(audit)[0]["suggestions"] == [{**suggestion, "source": "Emits"}]


def test_the_intervention_file_is_applied_once_per_change(tmp_path):
    path = tmp_path / "interventions.json"
    path.write_text(json.dumps([{"op": "inject_value", "param": "a", "value": 7}]))
    controller = FeedbackController(intervention_path=path)
    msq = make_msq()
    assert len(controller.trigger(LOG, msq, 1)) == 1
    assert controller.trigger(LOG, msq, 2) == []
    path.write_text(json.dumps([{"op": "remove_is", "param": "a", "value": 7}]))
    os.utime(path, (path.stat().st_atime, path.stat().st_mtime + 5))
    assert [i["op"] for i in controller.trigger(LOG, msq, 3)] == ["remove_is"]
    assert 7 not in msq.domain.values_for("a")


def test_an_intervention_file_that_is_not_a_list_is_an_error(tmp_path):
    path = tmp_path / "interventions.json"
    path.write_text(json.dumps({"op": "trim"}))
    audit = tmp_path / "audit.jsonl"
    controller = FeedbackController(intervention_path=path, audit_log_path=audit)
    assert controller.trigger(LOG, make_msq(), 1) == []
    assert "must contain a JSON array" in audit_lines(audit)[0]["errors"][0]["error"]


def test_unknown_op_names_the_accepted_ops():
    with pytest.raises(ValueError, match=r"Unknown intervention op: 'keep_values'.*'remove_is'"):
        apply_intervention(make_msq(), {"op": "keep_values", "param": "a", "values": [1]})
    with pytest.raises(ValueError, match="'trim' is missing the key 'target_count'"):
        apply_intervention(make_msq(), {"op": "trim"})


def test_every_dispatch_op_reaches_the_msq():
    msq = make_msq()
    for item in [
        {"op": "remove_ge", "param": "a", "threshold": 4},
        {"op": "remove_le", "param": "a", "threshold": 1},
        {"op": "keep_between", "param": "a", "lower": 2, "upper": 3},
        {"op": "keep_is", "param": "b", "value": "x"},
        {
            "op": "set_filter",
            "key": "k",
            "filter_type": "remove_values",
            "filter_params": {"param": "a", "values": [2]},
        },
        {"op": "clear_filter", "key": "k"},
        {"op": "inject", "combo": {"a": 2, "b": "x"}, "prioritize": True},
    ]:
        apply_intervention(msq, item)
    assert msq.domain.params == {"a": [2, 3], "b": ["x"]}
    assert [e["operation"] for e in msq.intervention_log][-1] == "inject"
    assert msq.priority_queue_size == 1


def test_the_audit_line_describes_the_trigger(tmp_path):
    audit = tmp_path / "audit.jsonl"
    controller = FeedbackController(
        pruning_strategies=[
            Emits([{"op": "remove_is", "param": "a", "value": 1, "reason": "bad"}])
        ],
        audit_log_path=audit,
    )
    controller.trigger(LOG, make_msq(), 10)
    controller.trigger(LOG, make_msq(), 20)
    first, second = audit_lines(audit)
    assert first["event"] == "feedback" and first["round"] == 10
    assert (first["trigger_number"], second["trigger_number"]) == (0, 1)
    assert first["interventions"] == [
        {"op": "remove_is", "param": "a", "value": 1, "reason": "bad", "source": "Emits"}
    ]
    assert first["errors"] == [] and first["suggestions"] == []
    assert first["msq_state_after"] == {
        "remaining_count": 6,
        "yielded_count": 0,
        "priority_queue_size": 0,
    }


def test_state_round_trip_restores_count_mtime_and_reducer_states(tmp_path):
    path = tmp_path / "interventions.json"
    path.write_text("[]")
    controller = FeedbackController(pruning_strategies=[Emits()], intervention_path=path)
    controller.trigger(LOG, make_msq(), 1)
    restored = FeedbackController(pruning_strategies=[Emits()], intervention_path=path)
    restored.set_state(json.loads(json.dumps(controller.get_state())))
    assert restored.get_state() == controller.get_state()
    assert restored.trigger_count == 1 and restored.pruning_strategies[0].calls == 1
    with pytest.raises(ValueError, match="missing required key 'intervention_last_mtime'"):
        restored.set_state({"trigger_count": 1})


# ------------------------------------------------------------------- loop


def nan_for_mode_c(data, round_params):
    if round_params["mode"] == "c":
        return {"score": math.nan}
    return strategy_sfd.model(data, round_params)


def make_loop(tmp_path, **kwargs) -> UniversalExperimentLoop:
    kwargs.setdefault("search_strategy", "random")
    kwargs.setdefault("feedback_interval", 10)
    kwargs.setdefault(
        "pruning_strategies",
        [{"name": "sanity", "metric": "score", "nan_threshold": 0.9, "min_observations": 2}],
    )
    return UniversalExperimentLoop(
        sfd=strategy_sfd,
        data=strategy_sfd.data(),
        experiment_dir=tmp_path / "exp",
        objective="score",
        **kwargs,
    )


def test_reducers_act_on_the_basic_path_too(tmp_path):
    calls: list[dict] = []

    def model(data, round_params):
        calls.append(round_params)
        return nan_for_mode_c(data, round_params)

    loop = make_loop(tmp_path, search_strategy=None)
    loop.run("fb", n_permutations=30, seed=3, model=model, progress_bar=False)

    assert sum(c["mode"] == "c" for c in calls[:20]) >= 2
    assert all(c["mode"] != "c" for c in calls[20:])
    assert loop.domain.values_for("mode") == ["a", "b"]


def test_a_reducer_removes_a_failing_value_for_the_rest_of_the_run_and_across_resume(tmp_path):
    calls: list[dict] = []

    def model(data, round_params):
        calls.append(round_params)
        return nan_for_mode_c(data, round_params)

    loop = make_loop(tmp_path)
    loop.run("fb", n_permutations=25, seed=3, model=model, progress_bar=False)
    assert any(c["mode"] == "c" for c in calls[:10])
    assert all(c["mode"] != "c" for c in calls[10:])
    assert loop.domain.values_for("mode") == ["a", "b"]
    lines = [
        line
        for line in audit_lines(tmp_path / "exp" / "audit.jsonl")
        if line["event"] == "feedback"
    ]
    assert [line["round"] for line in lines] == [10, 20]
    removed = [(i["op"], i["param"], i["value"]) for i in lines[0]["interventions"]]
    assert ("remove_is", "mode", "c") in removed

    resumed_reducer = SanityReducer(metric="score", nan_threshold=0.9, min_observations=2)
    resumed = UniversalExperimentLoop(
        sfd=strategy_sfd,
        data=strategy_sfd.data(),
        experiment_dir=tmp_path / "exp",
        objective="score",
        search_strategy="random",
        feedback_interval=10,
        pruning_strategies=[resumed_reducer],
    )
    calls.clear()
    resumed.run("fb", n_permutations=32, model=model, resume=True, progress_bar=False)
    assert len(calls) == 7 and all(c["mode"] != "c" for c in calls)
    assert ["mode", "c"] in resumed_reducer.get_state()["removed"]
    lines = [
        line
        for line in audit_lines(tmp_path / "exp" / "audit.jsonl")
        if line["event"] == "feedback"
    ]
    assert [line["trigger_number"] for line in lines] == [0, 1, 2]


class Listening(InOrder):
    """Counts the feedback triggers it hears about, with what they applied."""

    def __init__(self, domain, *, seed=None) -> None:
        super().__init__(domain, seed=seed)
        self.heard: list[tuple[int, list[dict]]] = []

    def update_from_feedback(self, log, interventions) -> None:
        self.heard.append((len(log), interventions))


def test_the_strategy_hears_every_feedback_trigger_once_with_what_it_applied(tmp_path):
    clear = {"op": "clear_filter", "key": "absent"}
    loop = make_loop(
        tmp_path,
        search_strategy=Listening,
        feedback_interval=5,
        pruning_strategies=[Emits([clear])],
    )
    loop.run("fb", n_permutations=20, seed=1, progress_bar=False)

    heard = loop.msq.strategy.heard
    assert [n for n, _ in heard] == [5, 10, 15, 20]
    assert all(
        [(i["op"], i["source"]) for i in items] == [("clear_filter", "Emits")] for _, items in heard
    )


def test_a_corrupt_feedback_state_stops_a_resume_unless_forced(tmp_path):
    import optuna

    from limen.experiment import ResumeError
    from limen.experiment import study_keys as keys

    loop = make_loop(tmp_path)
    loop.run("fb", n_permutations=12, seed=3, model=nan_for_mode_c, progress_bar=False)
    study = optuna.load_study(study_name="fb", storage=f"sqlite:///{tmp_path}/exp/study.db")
    assert study.user_attrs[keys.FEEDBACK_STATE]["trigger_count"] == 1
    study.set_user_attr(keys.FEEDBACK_STATE, "not a state")

    with pytest.raises(ResumeError, match=r"feedback_state.*resume='force'"):
        make_loop(tmp_path).run("fb", n_permutations=14, resume=True, progress_bar=False)
    forced = make_loop(tmp_path)
    forced.run("fb", n_permutations=21, resume="force", progress_bar=False)
    assert len(forced.study.get_trials()) == 21
    assert forced.study.user_attrs[keys.FEEDBACK_STATE]["trigger_count"] == 1
