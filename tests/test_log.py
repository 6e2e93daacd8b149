"""Log: the decoded experiment log, best rounds, correlations, importance, plots, export."""

from __future__ import annotations

import pandas as pd
import pytest
from PIL import Image
from sklearn.preprocessing import MinMaxScaler, RobustScaler, StandardScaler

from limen import Log
from limen.adapters.storage import default_storage_url
from limen.sfd.foundational_sfd import logreg_binary
from product_experiments import copy_experiment, logreg_experiment, set_study_user_attr


@pytest.fixture(scope="module")
def experiment(tmp_path_factory):
    return logreg_experiment(tmp_path_factory)


@pytest.fixture(scope="module")
def log(experiment):
    return Log(experiment.directory, sfd=logreg_binary)


def test_a_loop_a_directory_and_a_storage_url_give_the_same_log(experiment, log):
    from_loop = Log(experiment.loop)
    from_url = Log(default_storage_url(experiment.directory), "logreg", sfd=logreg_binary)
    for other in (from_loop, from_url):
        pd.testing.assert_frame_equal(other.experiment_log, log.experiment_log)


def test_the_experiment_log_holds_the_real_parameter_values(log):
    assert log.decoded
    assert len(log.experiment_log) == 20
    assert set(log.experiment_log["scaler"]) <= {StandardScaler, RobustScaler, MinMaxScaler}


def test_without_the_sfd_the_log_shows_the_stored_tokens(experiment, tmp_path):
    copy = copy_experiment(experiment, tmp_path / "copy")
    set_study_user_attr(copy, "limen:sfd_module", "no_such_package.my_sfd")
    log = Log(copy)
    assert not Log(experiment.directory).decoded
    assert not log.decoded
    assert set(log.experiment_log["scaler"]) <= {
        "sklearn.preprocessing.StandardScaler",
        "sklearn.preprocessing.RobustScaler",
        "sklearn.preprocessing.MinMaxScaler",
    }


def test_best_gives_the_top_rounds_best_first(log):
    best = log.best(3)
    assert list(best["auc"]) == sorted(log.experiment_log["auc"], reverse=True)[:3]


def test_best_by_a_minimised_metric(log):
    best = log.best(2, "fpr", "minimize")
    assert list(best["fpr"]) == sorted(log.experiment_log["fpr"].dropna())[:2]


def test_parameter_correlation_gives_bootstrap_statistics_per_cohort(log):
    table = log.parameter_correlation("auc", heads=(1.0, 0.5), min_n=5, n_boot=200)
    assert table.index.names == ["cohort_pct", "feature"]
    assert list(table.columns) == [
        "n_rows", "corr", "corr_med", "ci_lo", "ci_hi", "sign_stability"
    ]  # fmt: skip
    assert set(table.index.get_level_values("cohort_pct")) == {100, 50}
    assert (table["ci_lo"] <= table["corr_med"]).all()
    assert (table["corr_med"] <= table["ci_hi"]).all()
    assert table["sign_stability"].between(0, 1).all()


def test_parameter_correlation_matches_spearman_on_the_whole_log(log):
    table = log.parameter_correlation("auc", heads=(1.0,), n_boot=10)
    frame = log.experiment_log
    assert table.loc[(100, "C"), "corr"] == pytest.approx(frame["C"].corr(frame["auc"], "spearman"))


def test_parameter_correlation_encodes_other_values_one_column_per_value(log):
    features = log.parameter_correlation("auc", heads=(1.0,), n_boot=10).index.get_level_values(1)
    assert "scaler=sklearn.preprocessing.StandardScaler" in set(features)


def test_parameter_correlation_is_reproducible_with_its_seed(log):
    first = log.parameter_correlation("auc", heads=(1.0,), n_boot=50, random_state=3)
    again = log.parameter_correlation("auc", heads=(1.0,), n_boot=50, random_state=3)
    pd.testing.assert_frame_equal(first, again)


def test_parameter_correlation_rejects_an_unknown_metric(log):
    with pytest.raises(ValueError, match=r"'metric' parameter .* 'sharpe'"):
        log.parameter_correlation("sharpe")


def test_parameter_importance_covers_every_parameter(log):
    importance = log.parameter_importance()
    assert set(importance.index) == set(log.param_names)
    assert importance.sum() == pytest.approx(1.0)


def test_parameter_importance_of_another_metric(log):
    importance = log.parameter_importance("accuracy", "maximize")
    assert importance.sum() == pytest.approx(1.0)


def test_a_plot_is_written_as_a_png_image_that_opens(log, tmp_path):
    path = log.plot("optimization_history", tmp_path / "plots" / "history.png")
    with Image.open(path) as image:
        assert image.format == "PNG"
        assert min(image.size) > 100


def test_an_unknown_plot_kind_is_refused(log, tmp_path):
    with pytest.raises(ValueError, match=r"'kind' parameter must be one of .*Got 'contour'"):
        log.plot("contour", tmp_path / "contour.png")


def test_progress_counts_rounds_by_state_and_is_done_at_the_target(log):
    progress = log.progress()
    assert progress.states["COMPLETE"] == progress.finished == progress.target == 20
    assert progress.eta_seconds == 0.0
    assert progress.rounds_per_minute > 0 and progress.mean_execution_time > 0


def test_export_writes_readable_values_as_csv_and_parquet(log, tmp_path):
    csv = pd.read_csv(log.export(tmp_path / "log.csv"))
    parquet = pd.read_parquet(log.export(tmp_path / "log.parquet"))
    for frame in (csv, parquet):
        assert list(frame["id"]) == list(log.experiment_log["id"])
        assert set(frame["scaler"]) <= {
            "sklearn.preprocessing.StandardScaler",
            "sklearn.preprocessing.RobustScaler",
            "sklearn.preprocessing.MinMaxScaler",
        }


def test_a_loop_that_has_not_run_is_refused(tmp_path):
    from limen.experiment import UniversalExperimentLoop
    from limen.sfd.foundational_sfd import logreg_binary

    loop = UniversalExperimentLoop(sfd=logreg_binary, test_mode=True, experiment_dir=tmp_path)
    with pytest.raises(ValueError, match="has not run yet"):
        Log(loop)
