"""Per-round trading outcomes: the next-bar backtest and confusion metrics through Log."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from limen import Log, UniversalExperimentLoop
from limen.experiment.backtest import BACKTEST_COLUMNS, backtest, forward_returns
from limen.log.trading import confusion_metrics
from limen.sfd.foundational_sfd import logreg_binary

CONFUSION_COLUMNS = [
    "id",
    "_round_index",
    "pred_pos_rate_pct",
    "actual_pos_rate_pct",
    "precision_pct",
    "recall_pct",
    "tp_x_mean",
    "fp_x_mean",
    "tp_x_median",
    "fp_x_median",
    "pred_pos_count",
    "pred_pos_x_mean",
    "pred_pos_x_median",
    "tp_count",
    "fp_count",
    "tp_fp_cohen_d",
    "tp_fp_ks",
    "x_name",
    "n_kept",
]


def test_backtest_net_is_gross_minus_costs_on_a_ten_bar_frame():
    preds = [0, 1, 1, 0, 1, 0, 0, 1, 1, 1]
    next_returns = [0.01, 0.02, -0.01, 0.03, -0.005, -0.02, 0.01, 0.004, -0.003, 0.002]
    result = backtest(preds, next_returns, cost_bps=20.0)
    # Held bars 1, 2, 4, 7, 8, 9; three round trips (entries at bars 1, 4 and 7) of 20 bps.
    gross = 0.02 - 0.01 - 0.005 + 0.004 - 0.003 + 0.002
    assert result.summary["gross_return"] == pytest.approx(gross)
    assert result.summary["trade_count"] == 3
    assert result.summary["net_return"] == pytest.approx(gross - 3 * 0.002)
    assert result.summary["cost_return"] == pytest.approx(3 * 0.002)
    # Half the round trip on the entry bar, half on the exit bar (both on bar 4).
    expected_net = [0, 0.019, -0.011, 0, -0.007, 0, 0, 0.003, -0.003, 0.001]
    np.testing.assert_allclose(result.net, expected_net, atol=1e-12)
    assert result.summary["win_rate"] == pytest.approx(2 / 3)  # trade 2 loses 0.007
    assert result.summary["max_drawdown"] == pytest.approx(0.019 - 0.001)
    assert result.summary["exposure"] == pytest.approx(0.6)
    net = np.array(expected_net)
    assert result.summary["sharpe_per_bar"] == pytest.approx(net.mean() / net.std(ddof=1))


def test_backtest_without_trades_has_no_win_rate_or_sharpe():
    result = backtest([0, 0, 0], [0.01, -0.01, 0.02])
    assert result.summary["trade_count"] == 0
    assert result.summary["win_rate"] is None and result.summary["sharpe_per_bar"] is None


def test_backtest_needs_one_prediction_per_bar():
    with pytest.raises(ValueError, match="one prediction per bar"):
        backtest([1, 0], [0.01, 0.02, 0.03])


def test_forward_returns_look_one_bar_ahead():
    bars = pd.DataFrame(
        {"datetime": pd.date_range("2024-01-01", periods=3, freq="h"), "close": [100, 110, 99]}
    )
    np.testing.assert_allclose(forward_returns(bars).to_numpy(), [0.1, -0.1, np.nan])


def test_confusion_metrics_validate_their_options():
    frame = pd.DataFrame({"predictions": [1, 0], "actuals": [1, 1], "price_change": [1.0, 2.0]})
    with pytest.raises(ValueError, match='column "missing" not found'):
        confusion_metrics(frame, "missing")
    with pytest.raises(ValueError, match='outlier_mode must be "filter" or "winsor"'):
        confusion_metrics(frame, "price_change", outlier_mode="trim")


@pytest.fixture(scope="module")
def five_rounds(tmp_path_factory):
    directory = tmp_path_factory.mktemp("trading") / "logreg"
    loop = UniversalExperimentLoop(sfd=logreg_binary, test_mode=True, experiment_dir=directory)
    loop.run("logreg", n_permutations=5, seed=3, progress_bar=False, post_processing=True)
    return loop, directory


def test_post_processing_gives_one_row_per_round(five_rounds):
    loop, _ = five_rounds
    confusion, backtests = loop.experiment_confusion_metrics, loop.experiment_backtest_results
    assert list(confusion.columns) == CONFUSION_COLUMNS
    assert len(confusion) == 5 and len(backtests) == 5
    assert set(confusion["id"]) == set(loop.experiment_log["id"])
    assert set(BACKTEST_COLUMNS) <= set(backtests.columns)
    assert (confusion["x_name"] == "price_change").all()
    assert np.allclose(
        backtests["net_return"],
        backtests["gross_return"] - backtests["trade_count"] * 10.0 / 1e4,
    )


def test_log_from_the_directory_gives_the_same_outcomes(five_rounds):
    loop, directory = five_rounds
    log = Log(directory, sfd=logreg_binary)
    pd.testing.assert_frame_equal(
        log.experiment_backtest_results(), loop.experiment_backtest_results
    )
    pd.testing.assert_frame_equal(
        log.experiment_confusion_metrics("price_change"), loop.experiment_confusion_metrics
    )
    costly = log.experiment_backtest_results(cost_bps=50.0)
    assert (costly["net_return"] <= loop.experiment_backtest_results["net_return"]).all()


def test_a_rounds_predictions_line_up_with_its_test_bars(five_rounds):
    _, directory = five_rounds
    frame = Log(directory, sfd=logreg_binary).permutation_prediction_performance(0)
    assert list(frame.columns) == [
        "datetime",
        "open",
        "close",
        "price_change",
        "next_return",
        "predictions",
        "actuals",
    ]
    assert frame["datetime"].is_monotonic_increasing
    assert set(frame["actuals"].unique()) <= {0.0, 1.0}


def test_post_processing_must_be_a_bool(tmp_path):
    loop = UniversalExperimentLoop(sfd=logreg_binary, test_mode=True, experiment_dir=tmp_path)
    with pytest.raises(TypeError, match="'post_processing' parameter"):
        loop.run("x", n_permutations=1, post_processing="yes")
