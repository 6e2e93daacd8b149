"""One conformance suite for every strategy, on SQLite, PostgreSQL and MariaDB.

Every registered strategy and the README's plain-Python strategy run the whole loop through
``make_loop_on`` (one backend per parametrization) and must show the pipeline's guarantees:
each round runs once whatever the queue and the filters do, domain mutations hold from the next
proposal on, an exhausted space ends the run, a resume continues from the saved state, and the
study holds rounds and nothing else.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
from optuna.trial import TrialState

import strategy_sfd
from limen.experiment import STRATEGY_REGISTRY, ParamDomain, make_strategy

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def _walk_class() -> type:
    spec = importlib.util.spec_from_file_location(
        "custom_strategy", EXAMPLES / "custom_strategy.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.CoordinateWalk


CoordinateWalk = _walk_class()
SLOW = {"gp"}
STRATEGIES = [
    *(pytest.param(n, marks=pytest.mark.slow) if n in SLOW else n for n in STRATEGY_REGISTRY),
    "walk",
]
INJECTED = {"x": 7, "lr": 0.01, "mode": "b", "scaler": strategy_sfd.MinMaxScaler}


def config(name: str):
    """The search_strategy argument for a strategy of the suite."""
    return CoordinateWalk if name == "walk" else {"name": name, "seed": 1}


def steering(loop, action, at: int):
    """A model that calls ``action(loop.msq)`` once, before round ``at`` runs."""
    calls: list[dict] = []

    def model(data, round_params):
        if len(calls) == at:
            action(loop.msq)
        calls.append(dict(round_params))
        return strategy_sfd.model(data, round_params)

    return model, calls


def assert_only_rounds(loop, n: int) -> None:
    """The study holds exactly ``n`` finished rounds, each once, and no other trial."""
    trials = loop.study.get_trials()
    assert len(trials) == n
    assert all(t.state in (TrialState.COMPLETE, TrialState.FAIL, TrialState.PRUNED) for t in trials)
    assert all("limen:attempt" not in t.user_attrs for t in trials)
    ids = [t.user_attrs["id"] for t in trials]
    assert len(set(ids)) == n


@pytest.mark.parametrize("name", STRATEGIES)
def test_each_round_runs_once_whatever_the_queue_and_the_filters_do(make_loop_on, name):
    loop = make_loop_on(search_strategy=config(name))

    def act(msq):
        msq.inject(INJECTED, prioritize=True)
        msq.inject(INJECTED)
        msq.set_filter(
            "no_c", filter_type="remove_values", filter_params={"param": "mode", "values": ["c"]}
        )

    model, calls = steering(loop, act, at=2)
    log = loop.run("s", n_permutations=12, seed=1, model=model, progress_bar=False)

    assert len(log) == 12 and log["id"].is_unique
    assert sum({k: c[k] for k in INJECTED} == INJECTED for c in calls) == 1
    assert all(c["mode"] != "c" for c in calls[3:])
    assert_only_rounds(loop, 12)


@pytest.mark.parametrize("name", STRATEGIES)
def test_domain_mutations_hold_from_the_next_proposal(make_loop_on, name):
    loop = make_loop_on(search_strategy=config(name))

    def act(msq):
        msq.remove_is("mode", "b")
        msq.remove_ge("x", 15)
        msq.inject_value("mode", "d")

    # The Gaussian process refits on every round: 16 rounds keep its case under 15 s.
    rounds = 16 if name in SLOW else 30
    model, calls = steering(loop, act, at=3)
    loop.run("s", n_permutations=rounds, seed=1, model=model, progress_bar=False)

    later = calls[4:]
    assert all(c["mode"] != "b" and c["x"] < 15 for c in later)
    assert any(c["mode"] == "d" for c in later)
    assert_only_rounds(loop, rounds)
    assert loop.study.get_trials()[0].distributions["mode"].choices[-1] == "d"


@pytest.mark.parametrize("name", STRATEGIES)
def test_an_exhausted_space_ends_the_run_with_only_rounds_in_the_study(make_loop_on, name):
    small = {"x": [1, 2, 3], "lr": [0.1], "mode": ["a", "b"], "scaler": [None]}
    loop = make_loop_on(search_strategy=config(name))
    log = loop.run("s", n_permutations=20, seed=1, params=small, progress_bar=False)

    assert len(log) == 6 and loop.exhausted
    assert_only_rounds(loop, 6)


@pytest.mark.parametrize("name", STRATEGIES)
def test_a_resume_continues_from_the_saved_state(make_loop_on, name):
    first = make_loop_on(search_strategy=config(name))
    first.run("s", n_permutations=6, seed=1, progress_bar=False)
    saved = first.study.user_attrs["limen:search_state"]["state"]["strategy"]

    again = make_loop_on(search_strategy=config(name))
    log = again.run("s", n_permutations=12, progress_bar=False, resume=True)

    assert len(log) == 12 and log["id"].is_unique
    assert_only_rounds(again, 12)
    fresh = make_strategy(config(name), ParamDomain(strategy_sfd.params()), seed=1)
    fresh.set_state(saved)
    assert fresh.get_state() == saved


class Counted(CoordinateWalk):
    """The README's strategy, counting what it is told."""

    def __init__(self, domain, *, seed=None):
        super().__init__(domain, seed=seed)
        self.told: list[str] = []

    def tell(self, combo, state, values):
        self.told.append(state)
        super().tell(combo, state, values)


@pytest.mark.parametrize("as_class", [True, False], ids=["class", "instance"])
def test_the_readme_strategy_runs_end_to_end(make_loop_on, as_class):
    strategy = Counted if as_class else Counted(ParamDomain(strategy_sfd.params()), seed=3)
    loop = make_loop_on(search_strategy=strategy)
    log = loop.run("walk", n_permutations=15, seed=3, progress_bar=False)

    assert len(log) == 15 and log["id"].is_unique
    assert len(loop.msq.strategy.told) == 15
    assert_only_rounds(loop, 15)
    assert loop.study.user_attrs["limen:strategy"]["class"].endswith("Counted")
