"""Acceptance report: Deflated Sharpe Ratio, PBO by CSCV, verdicts, and what cannot be computed."""

from __future__ import annotations

import json
import math

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from limen.experiment import acceptance_report
from limen.experiment.acceptance import (
    ACCEPTANCE_JSON,
    ACCEPTANCE_MD,
    deflated_sharpe_ratio,
    expected_max_sharpe,
    probability_of_backtest_overfitting,
)
from limen.experiment.walk_forward import TRIAL_RETURNS_PARQUET, write_round_outputs

REPORT_KEYS = {
    "n_trials",
    "n_bars",
    "n_blocks",
    "winner_trial",
    "winner_sharpe",
    "trial_sharpe_variance",
    "deflated_sharpe_probability",
    "pbo",
    "thresholds",
    "verdicts",
    "errors",
}


def test_deflated_sharpe_matches_the_papers_numerical_example():
    # Bailey & Lopez de Prado (2014), §4: 100 trials, annualised Sharpe variance 0.5, 1,250
    # daily observations, skewness -3, kurtosis 10, annualised Sharpe 2.5 -> DSR ~ 0.90.
    per_year = 250
    dsr = deflated_sharpe_ratio(
        sharpe=2.5 / math.sqrt(per_year),
        n_trials=100,
        sharpe_variance=0.5 / per_year,
        n_obs=1250,
        skew=-3.0,
        kurtosis=10.0,
    )
    assert dsr == pytest.approx(0.90, abs=0.005)
    assert expected_max_sharpe(100, 0.5) == pytest.approx(1.7894, abs=1e-3)  # annualised SR0


def test_pbo_of_pure_noise_rounds_is_near_one_half():
    values = [
        probability_of_backtest_overfitting(
            np.random.default_rng(seed).normal(0.0, 0.01, (1600, 40)), 16
        )
        for seed in range(8)
    ]
    assert 0.35 < np.mean(values) < 0.6


def test_pbo_with_one_round_of_genuine_edge_is_near_zero():
    returns = np.random.default_rng(0).normal(0.0, 0.01, (1600, 40))
    returns[:, 7] += 0.003
    assert probability_of_backtest_overfitting(returns, 16) < 0.05


def test_pbo_blocks_must_be_even_and_fit_the_bars():
    returns = np.zeros((100, 3))
    with pytest.raises(ValueError, match="'n_blocks' parameter must be an even int"):
        probability_of_backtest_overfitting(returns, 5)
    with pytest.raises(ValueError, match="needs at least 128 bars"):
        probability_of_backtest_overfitting(returns, 64)


def _write_rounds(directory, tracks):
    directory.mkdir(parents=True, exist_ok=True)
    for number, track in enumerate(tracks):
        results = {"_folds": [{"fold": 0}], "_returns": track}
        write_round_outputs(directory, f"round-{number}", number, results)
    return directory


def _noise_with_edge(n_rounds=30, n_bars=800, edge=0.004):
    tracks = np.random.default_rng(1).normal(0.0, 0.01, (n_rounds, n_bars))
    tracks[3] += edge
    return list(tracks)


def test_report_names_the_winner_and_writes_json_and_markdown(tmp_path):
    directory = _write_rounds(tmp_path / "exp", _noise_with_edge())
    report = acceptance_report(directory, n_blocks=8)
    assert set(report) >= REPORT_KEYS
    assert report["winner_trial"] == "round-3"
    assert report["n_trials"] == 30 and report["n_bars"] == 800 and report["n_blocks"] == 8
    assert report["deflated_sharpe_probability"] > 0.95
    assert report["pbo"] < 0.05
    assert json.loads((directory / ACCEPTANCE_JSON).read_text())["winner_trial"] == "round-3"
    markdown = (directory / ACCEPTANCE_MD).read_text()
    assert markdown.startswith("# Walk-forward acceptance report")
    assert "Deflated Sharpe" in markdown and "PBO" in markdown


def test_strict_thresholds_fail_and_permissive_ones_pass(tmp_path):
    directory = _write_rounds(
        tmp_path / "exp", list(np.random.default_rng(2).normal(0, 0.01, (30, 800)))
    )
    strict = {"min_deflated_sharpe_probability": 0.99, "max_pbo": 0.01}
    report = acceptance_report(directory, acceptance=strict, n_blocks=8)
    assert report["verdicts"] == {"deflated_sharpe_probability": False, "pbo": False}
    assert report["accepted"] is False
    permissive = {"min_deflated_sharpe_probability": 0.0, "max_pbo": 1.0}
    report = acceptance_report(directory, acceptance=permissive, n_blocks=8)
    assert report["verdicts"] == {"deflated_sharpe_probability": True, "pbo": True}
    assert report["accepted"] is True


def test_thresholds_recorded_with_the_run_are_used_by_default(tmp_path):
    directory = _write_rounds(tmp_path / "exp", _noise_with_edge())
    (directory / "walk_forward.json").write_text(json.dumps({"acceptance": {"max_pbo": 0.2}}))
    report = acceptance_report(directory, n_blocks=8)
    assert report["thresholds"] == {"max_pbo": 0.2}
    assert report["verdicts"] == {"pbo": True}


def test_one_round_gives_no_pbo_and_says_why(tmp_path):
    directory = _write_rounds(tmp_path / "exp", [np.random.default_rng(0).normal(0, 0.01, 800)])
    report = acceptance_report(directory, acceptance={"max_pbo": 0.5})
    assert report["pbo"] is None and "pbo" in report["errors"]
    assert report["deflated_sharpe_probability"] is None
    assert "deflated_sharpe_probability" in report["errors"]
    assert report["verdicts"] == {"pbo": None}
    assert report["accepted"] is None


def test_flat_returns_give_no_statistics(tmp_path):
    directory = _write_rounds(tmp_path / "exp", [np.zeros(200), np.zeros(200)])
    report = acceptance_report(directory, n_blocks=4)
    assert report["winner_trial"] is None
    assert report["deflated_sharpe_probability"] is None and report["pbo"] is None
    assert report["errors"]


def test_no_trial_returns_means_no_report(tmp_path):
    assert acceptance_report(tmp_path) is None


def test_a_file_with_another_schema_is_refused(tmp_path):
    table = pa.table({"trial": ["a"], "bar": pa.array([0], pa.int32()), "net_return": [0.1]})
    pq.write_table(table, tmp_path / TRIAL_RETURNS_PARQUET)
    with pytest.raises(ValueError, match="schema trial: string, bar: int64"):
        acceptance_report(tmp_path)


def test_thresholds_are_validated():
    from limen.experiment import Manifest

    with pytest.raises(ValueError, match="set_split_walk_forward"):
        Manifest().set_acceptance(max_pbo=0.5)
    manifest = Manifest().set_split_walk_forward(2, 10)
    with pytest.raises(ValueError, match=r"'max_pbo' parameter of Manifest\.set_acceptance"):
        manifest.set_acceptance(max_pbo=1.5)
    with pytest.raises(ValueError, match="at least one threshold"):
        manifest.set_acceptance()
    assert manifest.set_acceptance(max_pbo=0.5).acceptance == {"max_pbo": 0.5}
