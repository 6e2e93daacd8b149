"""A resume is a continuation: stopped with SIGTERM and resumed, a seeded run proposes exactly
what the same run left alone proposes (the strategies' random state travels with the study)."""

from __future__ import annotations

import os
import signal

import pytest
from optuna.trial import TrialState

import strategy_sfd
from limen.experiment import UniversalExperimentLoop

TARGET = 14
STOP_AFTER = 6


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def url_for(request, tmp_path):
    """A storage URL per run name: an SQLite file each, or the session's PostgreSQL."""
    if request.param == "sqlite":
        return lambda name: f"sqlite:///{tmp_path / name}.db"
    server = request.getfixturevalue("empty_postgres_url")
    return lambda name: server


def make_loop(tmp_path, url, name, strategy):
    return UniversalExperimentLoop(
        sfd=strategy_sfd,
        data=strategy_sfd.data(),
        experiment_dir=tmp_path / name,
        storage=url,
        objective="score",
        search_strategy=strategy,
    )


def round_ids(loop) -> list[str]:
    trials = sorted(loop.study.get_trials(), key=lambda t: t.number)
    return [t.user_attrs["id"] for t in trials if t.state == TrialState.COMPLETE]


def terminating_model(stop_after: int):
    """The model sends SIGTERM to its own process while round ``stop_after`` runs."""
    calls: list[dict] = []

    def model(data, round_params):
        calls.append(round_params)
        if len(calls) == stop_after:
            os.kill(os.getpid(), signal.SIGTERM)
        return strategy_sfd.model(data, round_params)

    return model


@pytest.mark.parametrize(
    "strategy",
    [None, {"name": "grid", "seed": 2}, {"name": "random"}, {"name": "tpe"}, {"name": "qmc"}],
    ids=["basic", "grid", "random", "tpe", "qmc"],
)
def test_a_stopped_and_resumed_run_proposes_what_the_same_run_left_alone_does(
    tmp_path, url_for, strategy
):
    straight = make_loop(tmp_path, url_for("a"), "a", strategy)
    straight.run("a", n_permutations=TARGET, seed=5, progress_bar=False)

    stopped = make_loop(tmp_path, url_for("b"), "b", strategy)
    stopped.run(
        "b", n_permutations=TARGET, seed=5, model=terminating_model(STOP_AFTER), progress_bar=False
    )
    assert stopped.interrupted and len(stopped.experiment_log) == STOP_AFTER
    resumed = make_loop(tmp_path, url_for("b"), "b", strategy)
    resumed.run("b", n_permutations=TARGET, resume=True, progress_bar=False)

    assert round_ids(resumed) == round_ids(straight)
