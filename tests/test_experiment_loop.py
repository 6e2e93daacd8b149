"""UniversalExperimentLoop's basic (grid) path: rounds as trials, files, errors."""

from __future__ import annotations

import csv
import json
import math
import subprocess
import sys
from pathlib import Path

import optuna
import pandas as pd
import pytest
from optuna.trial import TrialState
from sklearn.preprocessing import MinMaxScaler, StandardScaler

import toy_sfd
from limen.experiment import ResumeError, UniversalExperimentLoop
from limen.experiment.identity import round_id

TESTS = Path(__file__).parent


def make_loop(tmp_path: Path, **kwargs) -> UniversalExperimentLoop:
    kwargs.setdefault("experiment_dir", tmp_path / "exp")
    kwargs.setdefault("objective", "score")
    return UniversalExperimentLoop(sfd=toy_sfd, data=toy_sfd.toy_data(), **kwargs)


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


def test_every_round_is_a_trial_in_a_plain_optuna_study(tmp_path):
    loop = make_loop(tmp_path)
    loop.run("toy", n_permutations=12, progress_bar=False)

    study = optuna.load_study(study_name="toy", storage=f"sqlite:///{tmp_path / 'exp/study.db'}")
    trials = study.get_trials()
    assert len(trials) == 12
    assert {t.state for t in trials} <= {TrialState.COMPLETE, TrialState.FAIL}
    for trial in trials:
        assert trial.params["scaler"] in (
            "sklearn.preprocessing.StandardScaler",
            "sklearn.preprocessing.MinMaxScaler",
        )
        assert trial.params["window"] in ("(2, 3)", "(5, 8)")
        assert trial.user_attrs["id"] == round_id(
            {**study_params_decoded(trial), "window": eval(trial.params["window"])}
        )


def study_params_decoded(trial) -> dict:
    scaler = {"sklearn.preprocessing.StandardScaler": StandardScaler}.get(
        trial.params["scaler"], MinMaxScaler
    )
    transform = math.sqrt if trial.params["transform"] == "math.sqrt" else math.log1p
    return {**trial.params, "scaler": scaler, "transform": transform}


def test_results_csv_and_round_data_match_the_study(tmp_path):
    loop = make_loop(tmp_path)
    loop.run("toy", n_permutations=20, progress_bar=False)

    rows = read_csv(tmp_path / "exp/results.csv")
    trials = loop.study.get_trials()
    assert [r["id"] for r in rows] == [t.user_attrs["id"] for t in trials]
    assert [r["state"] for r in rows] == [t.state.name for t in trials]
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    lines = (tmp_path / "exp/round_data.jsonl").read_text().splitlines()
    records = [json.loads(line) for line in lines]
    assert [r["round_id"] for r in records] == [t.user_attrs["id"] for t in complete]
    assert all(len(r["preds"]) == 3 for r in records)
    metadata = json.loads((tmp_path / "exp/metadata.json").read_text())
    assert metadata["sfd_module"] == "toy_sfd"
    assert metadata["n_permutations"] == 20


def test_the_sfd_receives_real_objects_not_tokens(tmp_path):
    toy_sfd.SEEN.clear()
    make_loop(tmp_path).run("toy", n_permutations=8, progress_bar=False)
    assert toy_sfd.SEEN
    for params in toy_sfd.SEEN:
        assert params["scaler"] in (StandardScaler, MinMaxScaler)
        assert params["transform"] in (math.sqrt, math.log1p)
        assert isinstance(params["window"], tuple)


def test_a_new_process_decodes_stored_tokens_back_to_objects(tmp_path):
    make_loop(tmp_path).run("toy", n_permutations=6, progress_bar=False)
    script = f"""
import optuna, toy_sfd
from limen.adapters.distributions import DomainCodec
study = optuna.load_study(study_name="toy", storage="sqlite:///{tmp_path / "exp/study.db"}")
codec = DomainCodec(toy_sfd.params())
for trial in study.get_trials():
    values = codec.decode(trial.params)
    assert values["scaler"].__name__ in ("StandardScaler", "MinMaxScaler"), values
    assert callable(values["transform"]) and isinstance(values["window"], tuple), values
print(len(study.get_trials()))
"""
    out = subprocess.run(
        [sys.executable, "-c", script], cwd=TESTS, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "6"


def test_a_failing_round_is_a_fail_trial_with_its_traceback_and_the_run_goes_on(tmp_path):
    loop = make_loop(tmp_path, experiment_dir=tmp_path / "exp")
    loop.run("toy", n_permutations=64, random_search=False, progress_bar=False)

    failed = [t for t in loop.study.get_trials() if t.state == TrialState.FAIL]
    assert len(failed) == 8
    assert failed[0].user_attrs["error_type"] == "RuntimeError"
    assert "mode b cannot run at scale 4" in failed[0].user_attrs["traceback"]
    assert len(loop.experiment_log) == 64
    rows = read_csv(tmp_path / "exp/results.csv")
    assert sum(r["state"] == "FAIL" for r in rows) == 8
    assert {r["error_message"] for r in rows if r["state"] == "FAIL"} == {
        "mode b cannot run at scale 4"
    }


def test_more_permutations_than_the_space_runs_each_combination_once_and_stops(tmp_path, caplog):
    loop = make_loop(tmp_path)
    loop.run("toy", n_permutations=1000, progress_bar=False)

    ids = [t.user_attrs["id"] for t in loop.study.get_trials()]
    assert len(ids) == 64 and len(set(ids)) == 64
    assert loop.exhausted
    assert "exhausted" in caplog.text


def test_index_order_enumerates_the_first_parameter_fastest(tmp_path):
    toy_sfd.SEEN.clear()
    make_loop(tmp_path).run("toy", n_permutations=4, random_search=False, progress_bar=False)
    assert [p["scale"] for p in toy_sfd.SEEN] == [1, 2, 3, 4]


def test_the_same_seed_gives_the_same_order(tmp_path):
    orders = []
    for name in ("one", "two"):
        loop = make_loop(tmp_path, experiment_dir=tmp_path / name)
        loop.run(name, n_permutations=10, seed=7, progress_bar=False)
        orders.append([t.user_attrs["id"] for t in loop.study.get_trials()])
    assert orders[0] == orders[1]
    other = make_loop(tmp_path, experiment_dir=tmp_path / "three")
    other.run("three", n_permutations=10, seed=8, progress_bar=False)
    assert [t.user_attrs["id"] for t in other.study.get_trials()] != orders[0]


def test_two_runs_against_one_study_never_repeat_a_combination(tmp_path):
    make_loop(tmp_path).run("toy", n_permutations=20, progress_bar=False)
    loop = make_loop(tmp_path)
    loop.run("toy", n_permutations=50, resume=True, progress_bar=False)

    ids = [t.user_attrs["id"] for t in loop.study.get_trials()]
    assert len(ids) == 50 and len(set(ids)) == 50
    rows = read_csv(tmp_path / "exp/results.csv")
    assert [r["id"] for r in rows] == ids


def test_experiment_log_holds_metrics_ids_states_and_real_parameter_values(tmp_path):
    loop = make_loop(tmp_path)
    log = loop.run("toy", n_permutations=10, progress_bar=False)

    assert isinstance(log, pd.DataFrame) and len(log) == 10
    for column in ("score", "size", "id", "_round_index", "state", "execution_time", "scaler"):
        assert column in log.columns
    assert set(log["scaler"]) <= {StandardScaler, MinMaxScaler}
    assert loop.best_round["values"]["score"] == log["score"].max()
    assert len(loop.preds) == (log["state"] == "COMPLETE").sum()


def test_context_params_reach_the_sfd_and_the_log(tmp_path):
    toy_sfd.SEEN.clear()
    loop = make_loop(tmp_path)
    log = loop.run("toy", n_permutations=3, context_params={"venue": "X"}, progress_bar=False)
    assert all(p["venue"] == "X" for p in toy_sfd.SEEN)
    assert set(log["venue"]) == {"X"}


def test_maintain_details_passes_the_round_index_to_the_sfd_only(tmp_path):
    toy_sfd.SEEN.clear()
    loop = make_loop(tmp_path)
    log = loop.run("toy", n_permutations=3, maintain_details_in_params=True, progress_bar=False)
    assert [p["_experiment_details"]["current_index"] for p in toy_sfd.SEEN] == [0, 1, 2]
    assert "_experiment_details" not in log.columns


def test_without_an_objective_the_first_numeric_metric_is_used_with_a_warning(tmp_path, caplog):
    loop = make_loop(tmp_path, objective=None)
    loop.run("toy", n_permutations=3, progress_bar=False)
    assert "first numeric metric 'score'" in caplog.text
    assert loop.study.metric_names == ["score"]


def test_a_missing_objective_metric_fails_the_round_naming_the_returned_keys(tmp_path):
    loop = make_loop(tmp_path, objective="sharpe")
    loop.run("toy", n_permutations=2, random_search=False, progress_bar=False)
    trial = loop.study.get_trials()[0]
    assert trial.state == TrialState.FAIL
    assert "'sharpe'" in trial.user_attrs["error_message"]
    assert "score" in trial.user_attrs["error_message"]


def test_a_nan_objective_is_a_fail(tmp_path):
    def model(data, round_params):
        return {"score": float("nan")}

    loop = make_loop(tmp_path)
    loop.run("toy", n_permutations=1, model=model, progress_bar=False)
    assert loop.study.get_trials()[0].state == TrialState.FAIL


def test_prep_runs_once_unless_prep_each_round(tmp_path):
    calls = []

    def prep(data, round_params):
        calls.append(1)
        return toy_sfd.prep(data, round_params)

    make_loop(tmp_path).run("toy", n_permutations=4, prep=prep, progress_bar=False)
    assert len(calls) == 1
    loop = make_loop(tmp_path, experiment_dir=tmp_path / "each")
    loop.run("each", n_permutations=4, prep=prep, prep_each_round=True, progress_bar=False)
    assert len(calls) == 5


def test_a_fresh_run_into_a_used_directory_raises_and_changes_nothing(tmp_path):
    make_loop(tmp_path).run("toy", n_permutations=3, progress_bar=False)
    before = {p.name: p.stat().st_mtime_ns for p in (tmp_path / "exp").iterdir()}
    with pytest.raises(FileExistsError, match="resume=True"):
        make_loop(tmp_path).run("toy", n_permutations=3, progress_bar=False)
    after = {p.name: p.stat().st_mtime_ns for p in (tmp_path / "exp").iterdir()}
    assert before == after


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"n_permutations": 0}, ValueError, "n_permutations"),
        ({"n_permutations": -3}, ValueError, "n_permutations"),
        ({"n_permutations": 2.5}, ValueError, "n_permutations"),
        ({"params": {"a": []}}, ValueError, "'a'"),
        ({"params": {"a": 3}}, ValueError, "'a'"),
        ({"params": {}}, ValueError, "non-empty dict"),
        ({"prep_each_round": "yes"}, TypeError, "prep_each_round"),
        ({"experiment_name": ""}, ValueError, "experiment_name"),
        ({"timeout": -1}, ValueError, "timeout"),
    ],
)
def test_bad_run_arguments_raise_typed_errors_and_leave_nothing_behind(
    tmp_path, kwargs, error, match
):
    loop = make_loop(tmp_path)
    name = kwargs.pop("experiment_name", "toy")
    with pytest.raises(error, match=match):
        loop.run(name, progress_bar=False, **kwargs)
    assert not (tmp_path / "exp").exists()


def test_a_custom_sfd_without_data_is_refused():
    with pytest.raises(ValueError, match="'data' parameter"):
        UniversalExperimentLoop(sfd=toy_sfd)


def test_an_sfd_without_params_is_refused():
    class NoParams:
        @staticmethod
        def prep(data, round_params):
            return data

    with pytest.raises(ValueError, match=r"no params\(\)"):
        UniversalExperimentLoop(sfd=NoParams, data=1)


def test_resume_of_a_missing_study_is_refused_and_creates_nothing(tmp_path):
    with pytest.raises(ValueError, match="Cannot resume"):
        make_loop(tmp_path).run("toy", n_permutations=3, resume=True, progress_bar=False)
    assert not (tmp_path / "exp").exists()


def test_resume_with_a_changed_parameter_space_names_the_difference(tmp_path):
    make_loop(tmp_path).run("toy", n_permutations=3, progress_bar=False)
    changed = {**toy_sfd.params(), "scale": [1, 2, 3, 4, 5]}
    with pytest.raises(ResumeError, match="parameter space"):
        make_loop(tmp_path).run(
            "toy", n_permutations=6, params=changed, resume=True, progress_bar=False
        )


def test_a_forced_resume_continues_and_is_audited(tmp_path):
    make_loop(tmp_path).run("toy", n_permutations=3, progress_bar=False)
    changed = {**toy_sfd.params(), "scale": [1, 2, 3, 4, 5]}
    loop = make_loop(tmp_path)
    loop.run("toy", n_permutations=6, params=changed, resume="force", progress_bar=False)
    assert len(loop.experiment_log) == 6
    audit = [json.loads(x) for x in (tmp_path / "exp/audit.jsonl").read_text().splitlines()]
    assert audit[-1]["event"] == "resume" and audit[-1]["forced"] is True
    assert "parameter space" in audit[-1]["changed"]


def test_resume_of_a_study_not_made_by_limen_is_refused_and_untouched(tmp_path):
    directory = tmp_path / "exp"
    directory.mkdir()
    url = f"sqlite:///{directory / 'study.db'}"
    study = optuna.create_study(study_name="toy", storage=url)
    study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=2)
    with pytest.raises(ResumeError, match="not created by Limen"):
        make_loop(tmp_path).run("toy", n_permutations=3, resume=True, progress_bar=False)
    assert len(optuna.load_study(study_name="toy", storage=url).trials) == 2


def test_resume_when_everything_is_finished_runs_nothing(tmp_path):
    make_loop(tmp_path).run("toy", n_permutations=5, progress_bar=False)
    toy_sfd.SEEN.clear()
    loop = make_loop(tmp_path)
    loop.run("toy", n_permutations=5, resume=True, progress_bar=False)
    assert toy_sfd.SEEN == []
    assert len(loop.experiment_log) == 5


def test_the_log_attribute_analyses_the_run_and_none_values_stay_none(tmp_path):
    def params():
        return {**toy_sfd.params(), "weight": [None, "balanced"]}

    loop = make_loop(tmp_path)
    log = loop.run("toy", n_permutations=8, params=params, progress_bar=False)
    assert set(log["weight"]) <= {None, "balanced"}
    assert len(loop.log.experiment_log) == 8


@pytest.mark.parametrize("name", ["id", "state"])
def test_a_parameter_named_like_a_round_column_is_refused(tmp_path, name):
    loop = make_loop(tmp_path)
    with pytest.raises(ValueError, match=rf"\['{name}'\].*rename them"):
        loop.run("toy", n_permutations=2, params={**toy_sfd.params(), name: [1, 2]})
    assert not (tmp_path / "exp").exists()


def test_a_value_listed_twice_is_refused(tmp_path):
    loop = make_loop(tmp_path)
    with pytest.raises(ValueError, match=r"'scale'.*1\.0 more than once"):
        loop.run("toy", n_permutations=2, params={**toy_sfd.params(), "scale": [1.0, 1.0, 10.0]})


def test_an_in_memory_sqlite_storage_is_refused():
    with pytest.raises(ValueError, match="in-memory SQLite"):
        UniversalExperimentLoop(
            sfd=toy_sfd, data=toy_sfd.toy_data(), storage="sqlite:///:memory:", objective="score"
        )
