"""Reducers: each rule on small hand-made logs, against a real MSQ over a real ParamDomain.

Every rule runs on the column kinds a real log has: object (the loop's own log), int64 and
float64 (a frame built by hand), categorical, and a frame read back from ``results.csv``.
"""

from __future__ import annotations

import json
import math
import time

import numpy as np
import pandas as pd
import pytest

from limen.experiment import (
    MSQ,
    REDUCER_REGISTRY,
    BudgetReducer,
    CorrelationReducer,
    FocusReducer,
    ParamDomain,
    PruningStrategy,
    SanityReducer,
    SaturationReducer,
)
from limen.experiment.identity import value_token
from limen.experiment.msq import MemoryRounds, sample_filter
from limen.experiment.records import WARNINGS, ResultsCsv, results_row
from limen.experiment.reducer import make_reducer
from plain_strategies import InOrder

COLUMN_KINDS = ("object", "int64", "float64", "category", "results.csv")


def make_msq(a=(1, 2, 3), b=("x", "y")) -> MSQ:
    domain = ParamDomain({"a": list(a), "b": list(b)})
    return MSQ(InOrder(domain), domain, queue=MemoryRounds())


def make_log(a, b, score, **extra) -> pd.DataFrame:
    """A log as the loop builds it: parameter columns of dtype object."""
    n = len(a)
    frame = pd.DataFrame(
        {"score": score, "_round_index": range(n), "state": ["COMPLETE"] * n, **extra}
    )
    frame["a"] = pd.Series(list(a), dtype=object)
    frame["b"] = pd.Series(list(b), dtype=object)
    return frame


def as_kind(frame: pd.DataFrame, kind: str, directory) -> pd.DataFrame:
    """``frame`` with its parameter columns as a user's frame would hold them."""
    frame = frame.copy()
    if kind == "int64":
        frame["a"] = frame["a"].astype("int64")
        frame["b"] = frame["b"].astype("str")
    elif kind == "float64":
        frame["a"] = frame["a"].astype("float64")
    elif kind == "category":
        frame["a"] = frame["a"].astype("category")
        frame["b"] = frame["b"].astype("category")
    elif kind == "results.csv":
        return read_back(frame, directory / "results.csv")
    return frame


def read_back(frame: pd.DataFrame, path) -> pd.DataFrame:
    """Write ``frame``'s rounds with the loop's results.csv writer and read them with pandas."""
    framework = {"_round_index", "state", "a", "b", WARNINGS}
    metrics = [c for c in frame.columns if c not in framework]
    csv = ResultsCsv(path, ["a", "b"])
    for i, row in frame.iterrows():
        csv.append(
            results_row(
                round_id=f"r{i}",
                number=int(row["_round_index"]),
                state=row["state"],
                execution_time=row.get("execution_time"),
                metrics={m: row[m] for m in metrics if m != "execution_time"},
                params={"a": value_token(row["a"]), "b": value_token(row["b"])},
                warnings=row.get(WARNINGS),
            ),
            metric_names=[m for m in metrics if m != "execution_time"],
        )
    return pd.read_csv(path)


@pytest.fixture(params=COLUMN_KINDS)
def log_of(request, tmp_path):
    """``log_of(a, b, score, **extra)``: ``make_log``'s frame in each column kind."""
    return lambda *args, **extra: as_kind(make_log(*args, **extra), request.param, tmp_path)


def test_read_back_logs_hold_the_column_kinds_under_test(tmp_path):
    frame = make_log([1, 2], ["x", "y"], [0.5, math.nan])
    assert str(as_kind(frame, "int64", tmp_path)["a"].dtype) == "int64"
    assert str(as_kind(frame, "category", tmp_path)["b"].dtype) == "category"
    csv = as_kind(frame, "results.csv", tmp_path)
    assert str(csv["a"].dtype) == "int64" and csv["score"].isna().tolist() == [False, True]


def test_pruning_strategy_is_abstract():
    with pytest.raises(TypeError):
        PruningStrategy()


def test_registry_names_the_five_reducers():
    assert {
        "budget": BudgetReducer,
        "correlation": CorrelationReducer,
        "focus": FocusReducer,
        "sanity": SanityReducer,
        "saturation": SaturationReducer,
    } == REDUCER_REGISTRY


def test_make_reducer_builds_from_a_config_dict_and_names_unknown_ones():
    reducer = make_reducer({"name": "sanity", "metric": "score", "nan_threshold": 0.5})
    assert isinstance(reducer, SanityReducer) and reducer.nan_threshold == 0.5
    with pytest.raises(ValueError, match=r"Unknown reducer name 'nope'.*'sanity'"):
        make_reducer({"name": "nope"})


@pytest.mark.parametrize(
    ("cls", "kwargs", "message"),
    [
        (SanityReducer, {"metric": "s", "nan_threshold": 1.5}, "'nan_threshold' parameter of "
         "SanityReducer must be a float in the range [0.0, 1.0]. Got 1.5"),
        (SaturationReducer, {"metric": "s", "window_size": 0}, "'window_size' parameter of "
         "SaturationReducer must be an int in the range [1, inf). Got 0"),
        (BudgetReducer, {"trim_strategy": "fast"}, "'trim_strategy' parameter of BudgetReducer"),
        (BudgetReducer, {"trim_strategy": "worst_first"}, "'metric' parameter of BudgetReducer"),
        (CorrelationReducer, {"metric": "s", "method": "x"}, "'method' parameter"),
        (FocusReducer, {"metric": "s", "breakthrough_threshold": 1, "focus_timeout": 0},
         "'focus_timeout' parameter of FocusReducer"),
    ],
)  # fmt: skip
def test_bad_arguments_raise_sklearn_style_messages(cls, kwargs, message):
    with pytest.raises(ValueError) as raised:
        cls(**kwargs)
    assert message in str(raised.value)


def test_inactive_reducers_and_empty_logs_return_nothing():
    msq = make_msq()
    reducer = SanityReducer(metric="score", active=False)
    assert reducer.analyze_and_intervene(make_log([1], ["x"], [math.nan]), msq) == []
    assert SanityReducer(metric="score").analyze_and_intervene(pd.DataFrame(), msq) == []


# ---------------------------------------------------------------- sanity


def test_sanity_removes_a_value_whose_rounds_miss_the_metric_once(log_of):
    msq = make_msq()
    log = log_of([1, 1, 2, 3], ["x", "y", "x", "y"], [math.nan, math.nan, 0.5, 0.7])
    reducer = SanityReducer(metric="score", nan_threshold=0.6)
    assert reducer.analyze_and_intervene(log, msq) == [
        {"op": "remove_is", "param": "a", "value": 1}
    ]
    assert reducer.analyze_and_intervene(log, msq) == []
    assert reducer.get_state()["removed"] == [["a", 1]]


def test_sanity_on_a_plain_pandas_log_removes_what_it_removes_on_an_object_log(log_of):
    log = log_of([1, 1, 2, 2, 3, 3], ["x", "y"] * 3, [math.nan, math.nan, 0.5, 0.6, 0.7, 0.8])
    items = SanityReducer(metric="score", nan_threshold=0.5).analyze_and_intervene(log, make_msq())
    assert items == [{"op": "remove_is", "param": "a", "value": 1}]
    assert type(items[0]["value"]) is int
    json.dumps(items)


def test_sanity_judges_each_value_on_its_own_so_an_all_nan_log_names_every_value(log_of):
    msq = make_msq(a=(1, 2), b=("x", "y"))
    log = log_of([1, 1, 2, 2], ["x", "y", "x", "y"], [math.nan] * 4)
    items = SanityReducer(metric="score", nan_threshold=0.5).analyze_and_intervene(log, msq)
    assert [(i["param"], i["value"]) for i in items] == [
        ("a", 1),
        ("a", 2),
        ("b", "x"),
        ("b", "y"),
    ]


def test_sanity_names_a_parameters_last_value_too(log_of):
    msq = make_msq(b=("x",))
    log = log_of([1, 2, 3], ["x", "x", "x"], [math.nan, 0.5, 0.6])
    items = SanityReducer(metric="score").analyze_and_intervene(log, msq)
    assert items == [
        {"op": "remove_is", "param": "a", "value": 1},
        {"op": "remove_is", "param": "b", "value": "x"},
    ]


def test_sanity_removes_a_numpy_value_from_the_domain_through_the_msq():
    msq = make_msq()
    log = make_log([1, 1, 2, 3], ["x", "y", "x", "y"], [math.nan, math.nan, 0.5, 0.7])
    log["a"] = log["a"].astype("int64")
    for item in SanityReducer(metric="score", nan_threshold=0.6).analyze_and_intervene(log, msq):
        msq.remove_is(item["param"], item["value"])
    assert msq.domain.values_for("a") == [2, 3]
    assert msq.intervention_log[0]["value"] == 1


def test_sanity_suggests_against_values_whose_rounds_warn(log_of):
    warned = json.dumps(["lbfgs failed to converge"])
    log = log_of(
        [1, 1, 2, 2], ["x", "y", "x", "y"], [0.5, 0.6, 0.7, 0.8],
        **{WARNINGS: [warned, warned, "[]", "[]"]},
    )  # fmt: skip
    reducer = SanityReducer(metric="score", warning_threshold=0.5)
    items = reducer.analyze_and_intervene(log, make_msq())
    assert [(i["param"], i["value"], i["action"]) for i in items] == [("a", 1, "suggest")]
    assert items[0]["reason"] == "warning rate 1.00 for a=1"


def test_sanity_suggests_on_zero_metrics_without_applying(log_of):
    msq = make_msq()
    log = log_of([1, 1, 2], ["x", "x", "x"], [0.0, 0.0, 0.5])
    items = SanityReducer(metric="score", zero_metric_threshold=0.7).analyze_and_intervene(log, msq)
    assert [(i["param"], i["value"], i["action"]) for i in items] == [("a", 1, "suggest")]
    assert items[0]["reason"] == "zero_metric rate 1.00 for a=1"


def test_sanity_state_round_trip_and_required_keys():
    reducer = SanityReducer(metric="score")
    reducer.analyze_and_intervene(make_log([1, 2], ["x", "x"], [math.nan, 1.0]), make_msq())
    other = SanityReducer(metric="score")
    other.set_state(reducer.get_state())
    assert other.get_state() == reducer.get_state()
    with pytest.raises(ValueError, match="missing required key 'removed'"):
        other.set_state({})


# ------------------------------------------------------------ saturation


def test_saturation_samples_a_flat_value_and_clears_it_when_it_varies_again(log_of):
    msq = make_msq()
    reducer = SaturationReducer(metric="score", window_size=4, min_samples_per_value=3)
    a, score = [1, 1, 1, 2, 2, 2], [1.0, 1.0, 1.0, 1.0, 2.0, 3.0]
    flat = log_of(a, ["x"] * 6, score)
    items = reducer.analyze_and_intervene(flat, msq)
    assert [(i["op"], i["key"]) for i in items] == [("set_filter", "saturation_a_1")]
    assert items[0]["filter_type"] == "sample"
    assert items[0]["filter_params"] == {"param": "a", "value": 1, "fraction": 0.1}
    moving = log_of([*a, 1, 1], ["x"] * 8, [*score, 5.0, 9.0])
    assert reducer.analyze_and_intervene(moving, msq) == [
        {"op": "clear_filter", "key": "saturation_a_1", "reason": "no longer saturated"}
    ]


def test_sample_filter_keeps_about_the_fraction_of_a_values_combinations():
    remove = sample_filter("a", 1, 0.25)
    combos = [{"a": 1, "b": i} for i in range(2000)]
    kept = sum(not remove(c) for c in combos) / len(combos)
    assert 0.2 < kept < 0.3
    assert not remove({"a": 2, "b": 0})


def test_sample_filter_keys_numpy_values_like_python_values():
    python, numpy = sample_filter("a", 1, 0.25), sample_filter("a", np.int64(1), 0.25)
    combos = [{"a": 1, "b": i} for i in range(200)]
    assert [python(c) for c in combos] == [numpy(c) for c in combos]
    assert any(numpy(c) for c in combos)


# ---------------------------------------------------------------- budget


def test_budget_trims_to_the_round_budget_once(log_of):
    msq = make_msq(a=range(10))
    for _ in range(4):
        msq.next_proposal()
    reducer = BudgetReducer(max_permutations=6)
    log = log_of([0, 1, 2, 3], ["x"] * 4, [1.0] * 4)
    assert reducer.analyze_and_intervene(log, msq) == [
        {"op": "trim", "target_count": 6, "reason": "budget trim to 6 total rounds"}
    ]
    assert reducer.analyze_and_intervene(log, msq) == []


def test_budget_worst_first_removes_the_worst_value_before_trimming(log_of):
    msq = make_msq(a=(1, 2))
    msq.next_proposal()
    log = log_of([1, 2, 1, 2], ["x", "x", "y", "y"], [0.1, 0.9, 0.2, 0.8])
    reducer = BudgetReducer(max_permutations=3, trim_strategy="worst_first", metric="score")
    items = reducer.analyze_and_intervene(log, msq)
    assert [(i["op"], i.get("param"), i.get("value")) for i in items] == [
        ("remove_is", "a", 1),
        ("trim", None, None),
    ]
    assert type(items[0]["value"]) is int


def test_budget_wall_time_projects_from_the_rate_so_far(log_of):
    msq = make_msq(a=range(100))
    for _ in range(10):
        msq.next_proposal()
    start = time.time() - 1800
    reducer = BudgetReducer(start_time=start, max_walltime_hours=1.0)
    items = reducer.analyze_and_intervene(log_of([0], ["x"], [1.0]), msq)
    assert items[0]["op"] == "trim" and 18 <= items[0]["target_count"] <= 20
    assert reducer.get_state() == {"start_time": start, "trimmed": True}


# ----------------------------------------------------------- correlation


def test_correlation_removes_the_worst_value_of_a_wrong_direction_parameter(log_of):
    msq = make_msq()
    a = [1, 2, 3] * 10
    score = [10.0 - v + 0.01 * i for i, v in enumerate(a)]
    reducer = CorrelationReducer(metric="score", min_observations=20, n_boot=50)
    items = reducer.analyze_and_intervene(log_of(a, ["x"] * 30, score), msq)
    assert [(i["op"], i["param"], i["value"]) for i in items] == [("remove_is", "a", 3)]
    assert type(items[0]["value"]) is int
    assert items[0]["reason"].startswith("wrong-direction negative correlation")
    assert reducer.analyze_and_intervene(log_of(a, ["x"] * 30, score), msq) == []


def test_correlation_needs_min_observations(log_of):
    reducer = CorrelationReducer(metric="score", min_observations=50)
    assert reducer.analyze_and_intervene(log_of([1, 2, 3], ["x"] * 3, [3, 2, 1]), make_msq()) == []


# ----------------------------------------------------------------- focus


def test_focus_narrows_and_injects_on_a_breakthrough_then_releases_after_timeout(log_of):
    msq = make_msq(a=(10, 20, 30))
    reducer = FocusReducer(
        metric="score", breakthrough_threshold=0.8, min_observations=2, focus_timeout=2,
        variation_count=3,
    )  # fmt: skip
    log = log_of([10, 20, 30], ["x", "y", "x"], [0.1, 0.9, 0.3])
    items = reducer.analyze_and_intervene(log, msq)
    filters = {i["key"]: i for i in items if i["op"] == "set_filter"}
    assert filters["focus_score_a"]["filter_params"] == {"param": "a", "lower": 16, "upper": 24}
    assert filters["focus_score_b"]["filter_params"] == {"param": "b", "values": ["y"]}
    assert [i["value"] for i in items if i["op"] == "inject_value"] == [16, 20, 24]
    json.dumps(items)
    assert reducer.analyze_and_intervene(log, msq) == []
    released = reducer.analyze_and_intervene(log, msq)
    assert [(i["op"], i["key"]) for i in released] == [
        ("clear_filter", "focus_score_a"),
        ("clear_filter", "focus_score_b"),
    ]
    assert reducer.get_state()["focus_active"] is False


def test_focus_state_round_trip(log_of):
    reducer = FocusReducer(metric="score", breakthrough_threshold=0.5, min_observations=1)
    reducer.analyze_and_intervene(log_of([1], ["x"], [0.9]), make_msq())
    other = FocusReducer(metric="score", breakthrough_threshold=0.5)
    other.set_state(reducer.get_state())
    assert other.get_state() == reducer.get_state()
    assert other.get_state()["breakthrough_combo"] == {"a": 1, "b": "x"}
