"""Walk-forward rounds: fold geometry, per-fold outputs, pruning between folds, the CLI."""

from __future__ import annotations

import types

import optuna
import pandas as pd
import pyarrow.parquet as pq
import pytest

import walk_forward_sfd
from limen import Log, Trainer, UniversalExperimentLoop
from limen.cli import main
from limen.data import synthetic_klines
from limen.experiment import Manifest
from limen.experiment.acceptance import ACCEPTANCE_ATTR, ACCEPTANCE_JSON
from limen.experiment.walk_forward import (
    FOLD_RESULTS_CSV,
    FOLDS_ATTR,
    TRIAL_RETURNS_PARQUET,
    WalkForward,
    fold_geometry,
)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"n_folds": 1, "test_bars": 10}, "n_folds"),
        ({"n_folds": "2", "test_bars": 10}, "n_folds"),
        ({"n_folds": "{k}", "test_bars": 10}, "n_folds"),
        ({"n_folds": True, "test_bars": 10}, "n_folds"),
        ({"n_folds": 2.0, "test_bars": 10}, "n_folds"),
        ({"n_folds": 2, "test_bars": 0}, "test_bars"),
        ({"n_folds": 2, "test_bars": "test_bars"}, "test_bars"),
        ({"n_folds": 2, "test_bars": 10, "purge_bars": -1}, "purge_bars"),
        ({"n_folds": 2, "test_bars": 10, "embargo_bars": -1}, "embargo_bars"),
        ({"n_folds": 2, "test_bars": 10, "embargo_bars": 1.5}, "embargo_bars"),
        ({"n_folds": 2, "test_bars": 10, "anchored": 1}, "anchored"),
        ({"n_folds": 2, "test_bars": 10, "anchored": "yes"}, "anchored"),
    ],
)
def test_every_invalid_geometry_raises_naming_split_walk_forward(kwargs, field):
    with pytest.raises(ValueError, match=rf"'{field}' field of split_walk_forward"):
        Manifest().set_split_walk_forward(**kwargs)


def test_a_ratio_split_after_walk_forward_raises_naming_split_walk_forward():
    manifest = Manifest().set_split_walk_forward(2, 10)
    with pytest.raises(ValueError, match="split_walk_forward"):
        manifest.set_split_config(8, 1, 2)


def test_walk_forward_needs_unique_increasing_datetimes():
    data = synthetic_klines(n_rows=400, seed=3)
    data.loc[200, "datetime"] = data.loc[199, "datetime"]
    manifest = walk_forward_sfd.manifest()
    with pytest.raises(ValueError, match="split_walk_forward needs unique, strictly increasing"):
        manifest.prepare_data(data, {"quality": 1.0})


def test_too_little_data_for_the_folds_raises():
    with pytest.raises(ValueError, match="split_walk_forward needs more than"):
        fold_geometry(40, WalkForward(2, 20), 3, 1)


def test_anchored_folds_follow_time_series_split_with_purge_and_embargo():
    folds = fold_geometry(100, WalkForward(3, 20, purge_bars=3, embargo_bars=2), 3, 1)
    assert [f.test for f in folds] == [(40, 60), (60, 80), (80, 100)]
    assert [f.val[1] for f in folds] == [37, 57, 77]  # the pool stops purge_bars before the test
    assert folds[0].val == (27, 37) and folds[0].fit == (0, 24)  # 3:1, purged before validation
    assert [f.embargoed for f in folds] == [(), (), (60, 61)]  # bars right after test window 0


def test_rolling_folds_keep_the_first_pool_length():
    folds = fold_geometry(100, WalkForward(3, 20, purge_bars=3, anchored=False), 1, 0)
    assert [(f.fit[0], f.val[1]) for f in folds] == [(0, 37), (20, 57), (40, 77)]
    assert all(f.val[0] == f.val[1] for f in folds)  # no validation share: all fit


def _run(tmp_path, sfd=walk_forward_sfd, name="wf", **loop_kwargs):
    loop = UniversalExperimentLoop(sfd=sfd, experiment_dir=tmp_path / name, **loop_kwargs)
    loop.run(name, n_permutations=2, random_search=False, progress_bar=False)
    return loop


def test_two_rounds_of_two_folds(tmp_path):
    loop = _run(tmp_path)
    directory = tmp_path / "wf"
    log = loop.experiment_log
    assert len(log) == 2
    folds = pd.read_csv(directory / FOLD_RESULTS_CSV)
    assert len(folds) == 4
    assert folds["fold"].tolist() == [0, 1, 0, 1]
    assert list(folds.columns[:2]) == ["id", "_round_index"]
    for _, row in log.iterrows():
        own = folds[folds["id"] == row["id"]]
        assert row["score"] == pytest.approx(own["score"].mean())
        assert row["hit_rate"] == pytest.approx(own["hit_rate"].mean())
    assert folds.groupby("id")["score"].nunique().eq(2).all()  # the folds really differ
    returns = pq.ParquetFile(directory / TRIAL_RETURNS_PARQUET)
    assert returns.num_row_groups == 2
    assert str(returns.schema_arrow) == "trial: string\nbar: int64\nnet_return: double"
    table = returns.read().to_pandas()
    assert set(table["trial"]) == set(log["id"])
    assert (
        table.groupby("trial")["bar"]
        .apply(list)
        .map(lambda bars: bars == list(range(2 * walk_forward_sfd.TEST_BARS)))
        .all()
    )
    for trial in loop.study.trials:
        assert [f["fold"] for f in trial.user_attrs[FOLDS_ATTR]] == [0, 1]
        assert sorted(trial.intermediate_values) == [0, 1]


def test_a_run_without_walk_forward_writes_neither_file(tmp_path):
    plain = types.SimpleNamespace(
        __name__="plain_sfd",
        params=walk_forward_sfd.params,
        manifest=lambda: walk_forward_sfd.base_manifest().set_split_config(3, 1, 1),
    )
    loop = _run(tmp_path, sfd=plain, name="plain")
    assert len(loop.experiment_log) == 2
    assert not (tmp_path / "plain" / FOLD_RESULTS_CSV).exists()
    assert not (tmp_path / "plain" / TRIAL_RETURNS_PARQUET).exists()


def test_a_pruner_stops_a_bad_round_after_its_first_fold(tmp_path):
    bad = types.SimpleNamespace(
        __name__="bad_sfd", params=lambda: {"quality": [-5.0]}, manifest=walk_forward_sfd.manifest
    )
    loop = UniversalExperimentLoop(
        sfd=bad, experiment_dir=tmp_path / "bad", pruner={"name": "threshold", "lower": 0.0}
    )
    loop.run("bad", n_permutations=1, progress_bar=False)
    (trial,) = loop.study.trials
    assert trial.state == optuna.trial.TrialState.PRUNED
    assert list(trial.intermediate_values) == [0]
    assert not (tmp_path / "bad" / FOLD_RESULTS_CSV).exists()


def test_ranking_by_deflated_sharpe_needs_an_acceptance_report(tmp_path):
    _run(tmp_path)
    trainer = Trainer(tmp_path / "wf", sfd=walk_forward_sfd)
    with pytest.raises(ValueError, match="limen accept"):
        trainer.best(1, by="deflated_sharpe")
    with pytest.raises(ValueError, match=r"'by' parameter of Trainer\.best"):
        trainer.best(1, by="sharpe")


@pytest.mark.slow
def test_the_foundational_walk_forward_sfd_runs_and_is_accepted_from_the_cli(tmp_path, capsys):
    directory = tmp_path / "lwf"
    argv = ["run", "--sfd", "logreg_walk_forward", "--test-mode", "-n", "3"]
    assert main([*argv, "--experiment-dir", str(directory), "--no-progress", "--seed", "0"]) == 0
    assert pq.ParquetFile(directory / TRIAL_RETURNS_PARQUET).num_row_groups == 3
    assert len(pd.read_csv(directory / FOLD_RESULTS_CSV)) == 3 * 4
    capsys.readouterr()
    assert main(["accept", str(directory)]) == 0
    printed = capsys.readouterr().out
    assert printed.startswith("# Walk-forward acceptance report")
    assert "Deflated Sharpe" in printed and "PBO" in printed
    assert (directory / ACCEPTANCE_JSON).exists()
    study = Log(directory).study
    assert study.user_attrs[ACCEPTANCE_ATTR]["thresholds"] == {
        "min_deflated_sharpe_probability": 0.95,
        "max_pbo": 0.5,
    }
    trainer = Trainer(directory)
    best = trainer.best(2, by="deflated_sharpe")
    assert len(best) == 2
    (sensor,) = trainer.train(best[:1])  # reproduces the mean of the folds, then refits
    assert sensor.round_id == best[0]


def test_accept_on_a_directory_without_walk_forward_is_a_usage_error(tmp_path, capsys):
    assert main(["accept", str(tmp_path)]) == 2
    assert "trial_returns.parquet" in capsys.readouterr().err


def test_embargoed_bars_are_left_out_of_a_later_folds_training_rows():
    data = synthetic_klines(n_rows=400, seed=3)
    manifest = walk_forward_sfd.base_manifest().set_split_walk_forward(
        3, 60, purge_bars=1, embargo_bars=5
    )
    prepared = manifest.prepare_data(data, {"quality": 1.0})
    folds = prepared["_folds"]
    assert len(folds) == 3
    first_test_end = 400 - 2 * 60  # the bars right after fold 0's test window
    embargoed = set(data["datetime"].iloc[first_test_end : first_test_end + 5])
    rows = folds[2]["x_train"].index.union(folds[2]["x_val"].index)
    pool_times = set(data["datetime"].loc[rows])
    assert not embargoed & pool_times
    assert set(data["datetime"].iloc[first_test_end + 5 : first_test_end + 10]) <= pool_times
    assert (
        prepared["_alignment"]["first_test_datetime"]
        == folds[0]["_alignment"]["first_test_datetime"]
    )
