"""Per-round warnings: recorded with each round, reported once per run, read by reducers."""

from __future__ import annotations

import json
import logging
import warnings

import pandas as pd
import pytest

import toy_sfd
from limen.experiment import MSQ, SanityReducer, UniversalExperimentLoop
from limen.experiment.param_domain import ParamDomain
from limen.experiment.round_warnings import (
    RoundWarnings,
    convergence_report,
    is_convergence_warning,
)
from limen.experiment.search_strategy import SearchStrategy
from limen.log import Log
from limen.sfd.foundational_sfd import logreg_binary

MAX_ITER = [1, 1000]


def logreg_params() -> dict[str, list]:
    """One logreg round that cannot converge (max_iter=1) and one that can."""
    space = {k: v[:1] for k, v in logreg_binary.params().items()}
    return {**space, "max_iter": MAX_ITER}


@pytest.fixture(scope="module")
def logreg_run(tmp_path_factory):
    directory = tmp_path_factory.mktemp("warnings") / "exp"
    loop = UniversalExperimentLoop(sfd=logreg_binary, test_mode=True, experiment_dir=directory)
    with warnings.catch_warnings(record=True) as shown:
        warnings.simplefilter("always")
        loop.run(
            "logreg", n_permutations=2, params=logreg_params(), random_search=False,
            progress_bar=False,
        )  # fmt: skip
    return loop, directory, shown


def by_max_iter(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.sort_values("max_iter").reset_index(drop=True)


def test_a_round_that_does_not_converge_is_marked_and_keeps_its_message(logreg_run):
    loop, _, _ = logreg_run
    log = by_max_iter(loop.experiment_log)
    assert log["max_iter"].tolist() == MAX_ITER
    assert log["_convergence_warning"].tolist() == [True, False]
    assert any("converge" in m for m in json.loads(log["_warnings"][0]))
    assert json.loads(log["_warnings"][1]) == []


def test_the_warnings_are_in_results_csv_and_the_trial_attrs(logreg_run):
    loop, directory, _ = logreg_run
    csv = by_max_iter(pd.read_csv(directory / "results.csv"))
    assert csv["_convergence_warning"].tolist() == [True, False]
    assert any("converge" in m for m in json.loads(csv["_warnings"][0]))
    attrs = {t.params["max_iter"]: t.user_attrs for t in loop.study.get_trials()}
    assert attrs[1]["_convergence_warning"] is True
    assert attrs[1000]["_convergence_warning"] is False
    assert json.loads(attrs[1]["_warnings"]) == json.loads(csv["_warnings"][0])


def test_round_warnings_are_not_shown_one_by_one(logreg_run):
    _, _, shown = logreg_run
    assert not [w for w in shown if is_convergence_warning(w.category, str(w.message))]


def test_the_convergence_report_names_the_value_that_does_not_converge(logreg_run):
    loop, directory, _ = logreg_run
    written = json.loads((directory / "convergence_report.json").read_text())
    report = Log(loop).convergence_report()
    assert written == json.loads(json.dumps(report))
    assert report["rounds"] == 2 and report["observed_rounds"] == 2
    assert report["convergence_warning_rounds"] == 1
    assert report["convergence_warning_pct"] == 50.0
    assert [(p["parameter"], p["value"]) for p in report["parameter_patterns"]] == [
        ("max_iter", "1")
    ]
    assert report["parameter_patterns"][0]["convergence_warning_pct"] == 100.0
    assert [r["_round_index"] for r in report["rounds_with_warnings"]] == [
        int(loop.experiment_log.set_index("max_iter").loc[1, "_round_index"])
    ]


class Idle(SearchStrategy):
    """A strategy that proposes nothing: the reducer only reads the domain through the MSQ."""

    def __next__(self):
        raise StopIteration


def test_a_sanity_reducer_with_a_warning_threshold_suggests_against_it(logreg_run):
    loop, directory, _ = logreg_run
    domain = ParamDomain(logreg_params())
    msq = MSQ(Idle(domain), domain)
    for log in (loop.experiment_log, pd.read_csv(directory / "results.csv")):
        items = SanityReducer(metric="auc", warning_threshold=0.5).analyze_and_intervene(log, msq)
        assert [(i["param"], i["value"], i["action"]) for i in items] == [
            ("max_iter", 1, "suggest")
        ]
        assert items[0]["reason"] == "warning rate 1.00 for max_iter=1"


def test_inside_the_loop_the_sanity_suggestion_reaches_the_audit(tmp_path):
    loop = UniversalExperimentLoop(
        sfd=logreg_binary,
        test_mode=True,
        experiment_dir=tmp_path / "exp",
        search_strategy="random",
        pruning_strategies=[SanityReducer(metric="auc", warning_threshold=0.5)],
        feedback_interval=2,
    )
    loop.run("logreg", n_permutations=2, params=logreg_params(), progress_bar=False)
    lines = (tmp_path / "exp" / "audit.jsonl").read_text().splitlines()
    suggestions = [s for line in lines for s in json.loads(line).get("suggestions", [])]
    assert [(s["param"], s["value"], s["source"]) for s in suggestions] == [
        ("max_iter", 1, "SanityReducer")
    ]


def test_the_run_ends_with_one_summary_line_naming_the_count_and_the_file(tmp_path, caplog):
    def model(data, round_params):
        warnings.warn(f"noisy {round_params['scale']}", UserWarning, stacklevel=1)
        return toy_sfd.model(data, round_params)

    loop = UniversalExperimentLoop(
        sfd=toy_sfd, data=toy_sfd.toy_data(), experiment_dir=tmp_path / "exp", objective="score"
    )
    with caplog.at_level(logging.INFO):
        loop.run("toy", n_permutations=4, model=model, progress_bar=False)
    lines = [r.getMessage() for r in caplog.records if "convergence_report.json" in r.getMessage()]
    assert lines == [
        f"4 of 4 rounds emitted warnings (0 convergence warnings); see "
        f"{tmp_path / 'exp' / 'convergence_report.json'}."
    ]
    assert all(json.loads(w) for w in loop.experiment_log["_warnings"])


def test_a_failed_round_keeps_its_warnings_but_no_convergence_evidence():
    caught = RoundWarnings()
    with pytest.raises(ZeroDivisionError), caught.capture():
        warnings.warn("before the failure", UserWarning, stacklevel=1)
        warnings.warn("before the failure", UserWarning, stacklevel=1)
        _ = 1 / 0
    assert caught.attrs(failed=True) == {
        "_warnings": json.dumps(["before the failure"]),
        "_convergence_warning": None,
    }


def test_convergence_is_told_by_class_name_or_by_text():
    class ConvergenceWarning(UserWarning):
        pass

    assert is_convergence_warning(ConvergenceWarning, "anything")
    assert is_convergence_warning(RuntimeWarning, "Maximum Likelihood failed to converge")
    assert not is_convergence_warning(UserWarning, "the model has converged")


def test_the_report_counts_rounds_without_evidence_as_unavailable():
    frame = pd.DataFrame({"a": [1, 1, 2, 2], "_convergence_warning": [True, None, False, None]})
    report = convergence_report(frame, parameter_columns=["a"])
    assert (report["observed_rounds"], report["unavailable_rounds"]) == (2, 2)
    assert report["parameter_patterns"] == [
        {
            "parameter": "a",
            "value": "1",
            "observed_rounds": 1,
            "convergence_warning_rounds": 1,
            "convergence_warning_pct": 100.0,
        }
    ]


def test_the_report_refuses_bad_evidence_and_missing_parameters():
    with pytest.raises(ValueError, match="_convergence_warning must contain Boolean or null"):
        convergence_report(
            pd.DataFrame({"a": [1], "_convergence_warning": [3]}), parameter_columns=["a"]
        )
    with pytest.raises(ValueError, match=r"requires declared parameter columns: \['b'\]"):
        convergence_report(pd.DataFrame({"a": [1]}), parameter_columns=["a", "b"])
