"""Every registered strategy behind one suite: config sources, domain mutations, bad input."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

import strategy_sfd
from limen.adapters.sampler_specs import SAMPLER_SPECS
from limen.adapters.storage import open_storage
from limen.errors import InvalidParameterError
from limen.experiment import (
    STRATEGY_REGISTRY,
    FilterExhaustedError,
    ParamDomain,
    Range,
    ResumeError,
    SearchStrategy,
    UniversalExperimentLoop,
    make_strategy,
)

SLOW = {"gp"}
NAMES = [pytest.param(n, marks=pytest.mark.slow) if n in SLOW else n for n in STRATEGY_REGISTRY]
PROPOSING_INJECTIONS = [n for n in NAMES if n != "grid"]


def make_loop(tmp_path: Path, strategy, **kwargs) -> UniversalExperimentLoop:
    kwargs.setdefault("experiment_dir", tmp_path / "exp")
    kwargs.setdefault("objective", "score")
    return UniversalExperimentLoop(
        sfd=strategy_sfd, data=strategy_sfd.data(), search_strategy=strategy, **kwargs
    )


# ------------------------------------------------------------------ config sources


def _write_toml(path: Path, name: str) -> Path:
    path.write_text(f'[strategy]\nname = "{name}"\nseed = 3\n')
    return path


def _write_yaml(path: Path, name: str) -> Path:
    path.write_text(f"strategy:\n  name: {name}\n  seed: 3\n")
    return path


@pytest.mark.parametrize("source", ["name", "dict", "toml", "yaml"])
@pytest.mark.parametrize("name", NAMES)
def test_the_same_sfd_runs_under_every_strategy_from_every_config_source(tmp_path, name, source):
    config = {
        "name": name,
        "dict": {"name": name, "seed": 3},
        "toml": _write_toml(tmp_path / "s.toml", name),
        "yaml": _write_yaml(tmp_path / "s.yaml", name),
    }[source]
    loop = make_loop(tmp_path, config)
    log = loop.run("s", n_permutations=6, progress_bar=False, seed=1)

    assert len(log) == 6
    assert set(log["state"]) == {"COMPLETE"}
    assert log["id"].is_unique
    attrs = loop.study.user_attrs
    assert attrs["limen:strategy"]["name"] == name


def test_a_sampler_instance_is_a_strategy(tmp_path):
    loop = make_loop(tmp_path, optuna.samplers.TPESampler(seed=1, n_startup_trials=3))
    log = loop.run("s", n_permutations=6, progress_bar=False)

    assert len(log) == 6
    assert loop.study.user_attrs["limen:strategy"]["class"].endswith("TPESampler")


def test_continuous_ranges_are_searched_by_model_based_strategies(tmp_path):
    params = {"x": Range(0, 19), "lr": Range(1e-3, 1.0, log=True), "mode": ["a", "b", "c"]}
    loop = make_loop(tmp_path, {"name": "tpe", "n_startup_trials": 3, "seed": 0})
    log = loop.run("r", n_permutations=8, progress_bar=False, params={**params, "scaler": [None]})

    assert len(log) == 8
    assert all(1e-3 <= v <= 1.0 for v in log["lr"])
    assert all(isinstance(v, int) for v in log["x"])


def test_multi_objective_values_and_metric_names_are_stored(tmp_path):
    loop = make_loop(
        tmp_path, "nsga2", objective=["score", "cost"], direction=["maximize", "minimize"]
    )
    loop.run("m", n_permutations=5, progress_bar=False)

    assert len(loop.study.directions) == 2
    assert loop.study.metric_names == ["score", "cost"]
    assert all(len(t.values) == 2 for t in loop.study.trials if t.state == TrialState.COMPLETE)


def test_a_run_resumes_with_the_stored_strategy_and_refuses_another(tmp_path):
    make_loop(tmp_path, {"name": "tpe", "n_startup_trials": 2}).run(
        "s", n_permutations=4, progress_bar=False
    )
    again = make_loop(tmp_path, None)
    log = again.run("s", n_permutations=7, progress_bar=False, resume=True)

    assert len(log) == 7
    assert again.study.user_attrs["limen:strategy"]["name"] == "tpe"
    with pytest.raises(ResumeError, match="strategy"):
        make_loop(tmp_path, "random").run("s", n_permutations=9, progress_bar=False, resume=True)


# ---------------------------------------------------------------- domain mutations


@pytest.mark.parametrize("name", ["tpe", "cmaes", "qmc", "random", "grid"])
def test_a_mutated_study_stays_one_space_that_plain_optuna_reloads(tmp_path, name):
    loop = make_loop(tmp_path, {"name": name, "seed": 4})

    def model(data, round_params):
        if len(seen) == 8:
            loop.domain.inject_value("mode", "d")
            loop.domain.keep_between("x", 2, 12)
        seen.append(round_params)
        return strategy_sfd.model(data, round_params)

    seen: list = []
    loop.run("s", n_permutations=16, progress_bar=False, model=model)

    study = optuna.load_study(study_name="s", storage=f"sqlite:///{tmp_path / 'exp/study.db'}")
    trials = study.get_trials(states=(TrialState.COMPLETE,))
    assert len(trials) == len(study.trials) == 16
    assert len({str(t.distributions["mode"]) for t in trials}) == 1
    assert trials[0].distributions["mode"].choices == ("a", "b", "c", "d")
    assert all(2 <= r["x"] <= 12 for r in seen[9:])
    assert study.trials_dataframe().shape[0] == len(study.trials)


def test_the_mutated_domain_is_saved_at_once_and_restored_on_resume(tmp_path):
    loop = make_loop(tmp_path, {"name": "random", "seed": 1})

    def model(data, round_params):
        if len(seen) == 3:
            loop.domain.remove_value("mode", "a")
            loop.domain.inject_value("mode", "z")
        seen.append(round_params["mode"])
        return strategy_sfd.model(data, round_params)

    seen: list = []
    loop.run("s", n_permutations=6, progress_bar=False, model=model)
    state = loop.study.user_attrs["limen:search_state"]["state"]
    assert state["domain"]["mode"] == ["b", "c", "z"]
    assert [h["op"] for h in state["domain_history"]] == ["remove_value", "inject_value"]

    again = make_loop(tmp_path, {"name": "random", "seed": 1})
    again.run("s", n_permutations=30, progress_bar=False, resume=True)
    assert again.domain.values_for("mode") == ["b", "c", "z"]
    assert "a" not in set(again.experiment_log["mode"].iloc[6:])


def test_filters_refusing_every_proposal_raise_filter_exhausted(tmp_path):
    loop = make_loop(tmp_path, {"name": "random", "seed": 0})

    def model(data, round_params):
        loop.msq.remove_custom(lambda combo: True)
        loop.msq.max_filter_retries = 20
        return strategy_sfd.model(data, round_params)

    with pytest.raises(FilterExhaustedError, match="refused 20 consecutive"):
        loop.run("s", n_permutations=3, progress_bar=False, model=model)
    storage = open_storage(f"sqlite:///{tmp_path / 'exp/study.db'}")
    assert storage.get_all_trials(1, states=(TrialState.RUNNING,)) == []
    assert len(storage.get_all_trials(1)) == 1


# ----------------------------------------------------------------------- bad input


def test_an_unknown_strategy_names_the_registered_ones(tmp_path):
    with pytest.raises(
        InvalidParameterError, match=r"'search_strategy' parameter .*'bruteforce'.* Got 'tpe2'"
    ):
        make_loop(tmp_path, "tpe2")


def test_an_unknown_keyword_lists_the_accepted_ones():
    with pytest.raises(ValueError, match=r"Unknown parameter 'startup'.*'n_startup_trials'"):
        make_strategy({"name": "tpe", "startup": 3}, ParamDomain(strategy_sfd.params()))


def test_a_deprecated_keyword_is_refused():
    with pytest.raises(ValueError, match=r"'consider_prior' parameter of TPEStrategy"):
        make_strategy({"name": "tpe", "consider_prior": True}, ParamDomain(strategy_sfd.params()))


def test_a_bad_value_follows_the_message_template():
    with pytest.raises(ValueError) as info:
        make_strategy({"name": "tpe", "n_startup_trials": -1}, ParamDomain(strategy_sfd.params()))
    assert str(info.value) == (
        "The 'n_startup_trials' parameter of TPEStrategy must be an int in the range [0, inf). "
        "Got -1 instead."
    )


def test_tpe_pins_multivariate_and_constant_liar():
    assert SAMPLER_SPECS["tpe"].defaults["multivariate"] is True
    assert SAMPLER_SPECS["tpe"].defaults["constant_liar"] is True


def test_a_model_based_strategy_without_objective_fails_before_any_round(tmp_path):
    loop = make_loop(tmp_path, "tpe", objective=None)
    with pytest.raises(ValueError, match="learns from the objective"):
        loop.run("s", n_permutations=3, progress_bar=False)
    assert not (tmp_path / "exp").exists()


def test_a_missing_objective_metric_fails_the_round_naming_the_returned_keys(tmp_path):
    loop = make_loop(tmp_path, "random", objective="auc")
    log = loop.run("s", n_permutations=2, progress_bar=False)

    assert set(log["state"]) == {"FAIL"}
    message = log["error_message"].iloc[0]
    assert "'auc'" in message and "cost" in message and "score" in message


def test_mismatched_multi_objective_lengths_are_refused(tmp_path):
    with pytest.raises(ValueError, match="one direction per"):
        make_loop(tmp_path, "tpe", objective=["score", "cost"], direction=["maximize"])


def test_cmaes_refuses_several_objectives(tmp_path):
    loop = make_loop(tmp_path, "cmaes", objective=["score", "cost"], direction=["maximize"] * 2)
    with pytest.raises(ValueError, match="one objective"):
        loop.run("s", n_permutations=2, progress_bar=False)


def test_bruteforce_refuses_a_continuous_range():
    with pytest.raises(ValueError, match="finitely many"):
        make_strategy("bruteforce", ParamDomain({"x": Range(0.0, 1.0)}))


@pytest.mark.parametrize(
    ("name", "module", "extra"), [("cmaes", "cmaes", "cmaes"), ("gp", "torch", "gp")]
)
def test_a_missing_optional_dependency_names_the_install(monkeypatch, name, module, extra):
    monkeypatch.setitem(sys.modules, module, None)
    with pytest.raises(ImportError, match=rf"pip install 'limen\[{extra}\]'"):
        make_strategy(name, ParamDomain(strategy_sfd.params()))


def test_a_custom_strategy_needs_only_next():
    class First(SearchStrategy):
        def __next__(self):
            return {"a": 1}

    domain = ParamDomain({"a": [1, 2]})
    strategy = make_strategy(First(domain), domain)
    assert strategy.domain is domain and next(strategy) == {"a": 1}
    assert strategy.get_state() == {} and strategy.config["class"].endswith("First")
    assert make_strategy(First, domain, seed=3).seed == 3
    assert math.isinf(ParamDomain({"a": Range(0.0, 1.0)}).total_combinations)


def test_a_strategy_that_is_no_strategy_is_refused(tmp_path):
    with pytest.raises(TypeError, match="SearchStrategy class or instance"):
        make_loop(tmp_path, 42)
