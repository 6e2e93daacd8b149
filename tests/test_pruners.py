"""Optuna pruners by name and ``limen.experiment.report`` from inside model()."""

from __future__ import annotations

import csv

import optuna
import pytest
from optuna.trial import TrialState

import strategy_sfd
from limen.adapters.pruners import make_pruner, pruner_config
from limen.errors import InvalidParameterError
from limen.experiment import PRUNER_REGISTRY, UniversalExperimentLoop, report


def make_loop(tmp_path, **kwargs) -> UniversalExperimentLoop:
    return UniversalExperimentLoop(
        sfd=strategy_sfd,
        data=strategy_sfd.data(),
        experiment_dir=tmp_path / "exp",
        objective="score",
        **kwargs,
    )


def test_median_prunes_a_steadily_bad_curve_after_the_startup_trials(tmp_path):
    loop = make_loop(tmp_path, search_strategy={"name": "grid", "shuffle": False}, pruner="median")
    params = {"x": [1, 2, 3, 4, 5, 11, 12, 13, 14, 15], "lr": [0.1], "mode": ["a"], "scaler": [1]}
    log = loop.run(
        "p", n_permutations=10, progress_bar=False, params=params, model=strategy_sfd.curve_model
    )

    rows = log.sort_values("_round_index").to_dict("records")
    assert all(r["state"] == "COMPLETE" for r in rows if r["x"] < 10)
    complete = 0
    late_bad = []
    for row in rows:
        if row["x"] >= 10 and complete >= 5:
            late_bad.append(row)
        complete += row["state"] == "COMPLETE"
    assert late_bad and all(r["state"] == "PRUNED" for r in late_bad)
    pruned = loop.study.get_trials(states=(TrialState.PRUNED,))
    assert all(t.value is not None and len(t.intermediate_values) == 1 for t in pruned)
    with (tmp_path / "exp/results.csv").open() as handle:
        assert "PRUNED" in {row["state"] for row in csv.DictReader(handle)}


def test_reported_values_are_stored_without_a_pruner(tmp_path):
    loop = make_loop(tmp_path)
    loop.run("p", n_permutations=2, progress_bar=False, model=strategy_sfd.curve_model)

    for trial in loop.study.get_trials():
        assert sorted(trial.intermediate_values) == [0, 1, 2, 3, 4]
        assert trial.state == TrialState.COMPLETE


def test_report_outside_a_round_is_a_clear_error():
    with pytest.raises(RuntimeError, match="outside a running round"):
        report(0.5, 1)


def test_a_pruner_needs_a_single_objective(tmp_path):
    loop = make_loop(tmp_path, pruner="median")
    loop._objective = [("score", "maximize"), ("cost", "minimize")]
    with pytest.raises(ValueError, match="single objective"):
        loop.run("p", n_permutations=2, progress_bar=False)


@pytest.mark.parametrize("name", PRUNER_REGISTRY)
def test_every_registered_pruner_builds(name):
    config = {"name": name}
    if name == "percentile":
        config["percentile"] = 25.0
    if name == "patient":
        config.update(patience=2, wrapped_pruner="median")
    if name == "threshold":
        config["lower"] = 0.0
    assert isinstance(make_pruner(config), optuna.pruners.BasePruner)


def test_pruner_configs_are_validated():
    with pytest.raises(InvalidParameterError, match=r"'pruner' parameter .* Got 'mediam'"):
        pruner_config("mediam")
    with pytest.raises(ValueError, match=r"Unknown parameter 'startup'.*'n_startup_trials'"):
        pruner_config({"name": "median", "startup": 1})
    with pytest.raises(ValueError, match=r"'n_warmup_steps' parameter of MedianPruner"):
        pruner_config({"name": "median", "n_warmup_steps": -1})
    with pytest.raises(ValueError, match=r"'percentile' parameter .* is required"):
        pruner_config("percentile")
