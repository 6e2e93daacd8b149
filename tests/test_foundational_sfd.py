"""Foundational SFDs and the indicators, targets and result helpers they are built from."""

from __future__ import annotations

import inspect
import math
import pickle
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

import limen.sfd.foundational_sfd
from limen.data import synthetic_klines
from limen.experiment.manifest_core import Manifest
from limen.sfd import indicators
from limen.sfd.foundational_sfd import gbm_regressor, logreg_binary, random_binary
from limen.sfd.targets import BreakoutTarget, QuantileBinaryTarget, forward_excursion

SFDS = [logreg_binary, random_binary, gbm_regressor]
DETERMINISTIC = [logreg_binary, gbm_regressor]


@pytest.fixture(scope="module")
def test_data() -> pd.DataFrame:
    return logreg_binary.manifest().fetch_test_data()


def first_round(sfd) -> dict:
    return {name: values[0] for name, values in sfd.params().items()}


def run_round(sfd, data: pd.DataFrame, round_params: dict) -> tuple[dict, dict]:
    manifest = sfd.manifest()
    data_dict = manifest.prepare_data(data, round_params)
    return data_dict, manifest.run_model(data_dict, round_params)


def metrics_of(results: dict) -> dict:
    return {key: value for key, value in results.items() if not key.startswith("_")}


def callable_values(sfd) -> list[tuple[str, object]]:
    return [
        (name, value)
        for name, values in sfd.params().items()
        for value in values
        if callable(value)
    ]


def test_importing_the_package_exposes_every_sfd():
    for name in ("logreg_binary", "random_binary", "gbm_regressor"):
        assert inspect.ismodule(getattr(limen.sfd.foundational_sfd, name))


@pytest.mark.parametrize("sfd", SFDS, ids=lambda sfd: sfd.__name__.rsplit(".", 1)[-1])
def test_params_are_non_empty_lists_with_a_class_or_function(sfd):
    space = sfd.params()
    assert len(space) >= 6
    assert all(isinstance(values, list) and values for values in space.values())
    assert callable_values(sfd)


@pytest.mark.parametrize("sfd", SFDS, ids=lambda sfd: sfd.__name__.rsplit(".", 1)[-1])
def test_manifest_has_both_data_sources_and_an_objective(sfd):
    manifest = sfd.manifest()
    assert isinstance(manifest, Manifest)
    assert manifest.data_source_config.method is synthetic_klines
    assert manifest.test_data_source_config.method is synthetic_klines
    assert len(manifest.fetch_data()) == 5000
    assert manifest.objective


def test_objectives_per_sfd():
    assert logreg_binary.manifest().objective == [("auc", "maximize")]
    assert random_binary.manifest().objective == [("auc", "maximize")]
    assert gbm_regressor.manifest().objective == [("rmse", "minimize")]


@pytest.mark.parametrize("sfd", SFDS, ids=lambda sfd: sfd.__name__.rsplit(".", 1)[-1])
def test_one_round_on_test_data_returns_finite_metrics(sfd, test_data):
    data_dict, results = run_round(sfd, test_data, first_round(sfd))
    metrics = metrics_of(results)
    (objective, _), *_ = sfd.manifest().objective
    assert objective in metrics
    assert all(isinstance(value, float) and math.isfinite(value) for value in metrics.values())
    assert len(results["_preds"]) == len(data_dict["y_test"])
    assert callable(results["_model"].predict)


@pytest.mark.parametrize(
    ("sfd", "name", "value"),
    [(sfd, name, value) for sfd in SFDS for name, value in callable_values(sfd)],
    ids=lambda item: getattr(item, "__name__", str(item)).rsplit(".", 1)[-1],
)
def test_every_class_and_function_value_runs(sfd, name, value, test_data):
    _, results = run_round(sfd, test_data, {**first_round(sfd), name: value})
    assert all(math.isfinite(metric) for metric in metrics_of(results).values())


@pytest.mark.parametrize("sfd", DETERMINISTIC, ids=lambda sfd: sfd.__name__.rsplit(".", 1)[-1])
def test_deterministic_sfds_reproduce_their_metrics(sfd, test_data):
    round_params = {name: values[-1] for name, values in sfd.params().items()}
    _, first = run_round(sfd, test_data, round_params)
    _, second = run_round(sfd, test_data, round_params)
    assert metrics_of(first) == metrics_of(second)
    np.testing.assert_array_equal(first["_preds"], second["_preds"])
    assert sfd.manifest().stochastic is False


def test_random_binary_differs_between_runs_and_is_declared_stochastic(test_data):
    round_params = first_round(random_binary)
    _, first = run_round(random_binary, test_data, round_params)
    _, second = run_round(random_binary, test_data, round_params)
    assert metrics_of(first) != metrics_of(second)
    assert random_binary.manifest().stochastic is True


@pytest.mark.parametrize("sfd", SFDS, ids=lambda sfd: sfd.__name__.rsplit(".", 1)[-1])
def test_refit_on_all_data_gives_a_model_a_sensor_can_use(sfd, test_data):
    round_params = first_round(sfd)
    manifest = sfd.manifest().set_split_config(1, 0, 0)
    data_dict = manifest.prepare_data(test_data, round_params)
    results = manifest.run_model(data_dict, round_params)
    assert len(results["_preds"]) == 0 and not metrics_of(results)
    new_bars = synthetic_klines(300, 3600, seed=7)
    features = manifest.prepare_features(new_bars, round_params, data_dict["_fitted_params"])
    complete = features.dropna()
    assert len(features) == len(new_bars) and len(complete) > 200
    assert len(results["_model"].predict(complete)) == len(complete)


@pytest.mark.parametrize("sfd", DETERMINISTIC, ids=lambda sfd: sfd.__name__.rsplit(".", 1)[-1])
def test_fitted_params_and_model_survive_pickling(sfd, test_data):
    data_dict, results = run_round(sfd, test_data, first_round(sfd))
    fitted, model = pickle.loads(pickle.dumps((data_dict["_fitted_params"], results["_model"])))
    features = sfd.manifest().prepare_features(test_data, first_round(sfd), fitted)
    train_rows = features.loc[data_dict["x_train"].index]
    np.testing.assert_array_equal(
        model.predict(train_rows), results["_model"].predict(data_dict["x_train"])
    )


def test_logreg_target_threshold_ignores_test_rows(test_data):
    round_params = first_round(logreg_binary)
    shocked = test_data.copy()
    later = shocked.index >= 1600
    shocked.loc[later, ["open", "high", "low", "close"]] *= 3
    before, _ = run_round(logreg_binary, test_data, round_params)
    after, _ = run_round(logreg_binary, shocked, round_params)
    assert before["_fitted_params"]["target"].threshold_ == (
        after["_fitted_params"]["target"].threshold_
    )
    pd.testing.assert_frame_equal(before["x_train"], after["x_train"])


# Building blocks --------------------------------------------------------------------------

INDICATOR_CALLS = [
    (indicators.roc, {"period": 4}),
    (indicators.rsi, {"period": 14}),
    (indicators.atr, {"period": 14}),
    (indicators.ppo, {}),
    (indicators.close_to_close_volatility, {"window": 12}),
    (indicators.parkinson_volatility, {"window": 12}),
    (indicators.garman_klass_volatility, {"window": 12}),
    (indicators.volume_ratio, {"window": 24}),
    (indicators.order_flow_imbalance, {}),
    (indicators.candle_shape, {}),
    (indicators.lags, {"column": "close", "periods": 3}),
]


@pytest.mark.parametrize(
    ("func", "kwargs"), INDICATOR_CALLS, ids=lambda f: getattr(f, "__name__", "")
)
def test_indicators_use_only_past_rows(func, kwargs):
    bars = synthetic_klines(400, 3600, seed=3)
    shocked = bars.copy()
    shocked.loc[250:, ["open", "high", "low", "close", "volume"]] *= 2
    shocked.loc[250:, "maker_ratio"] = 0.1
    before, after = func(bars, **kwargs), func(shocked, **kwargs)
    added = [column for column in before.columns if column not in bars.columns]
    assert added and before.index.equals(bars.index)
    pd.testing.assert_frame_equal(before.loc[:249, added], after.loc[:249, added])
    assert before.loc[100:249, added].notna().all().all()


@pytest.mark.parametrize("bad", [0, -3, 2.5, True])
def test_indicator_windows_must_be_positive_ints(bad):
    with pytest.raises((TypeError, ValueError), match="'window' parameter of volume_ratio"):
        indicators.volume_ratio(synthetic_klines(50), window=bad)


def test_forward_excursion_is_the_highest_high_ahead():
    bars = pd.DataFrame({"high": [10.0, 12.0, 11.0, 15.0, 9.0], "close": [10.0] * 5})
    expected = [0.2, 0.5, 0.5, np.nan, np.nan]
    np.testing.assert_allclose(forward_excursion(bars, shift=2), expected)


@pytest.mark.parametrize("target_class", [QuantileBinaryTarget, BreakoutTarget])
def test_quantile_targets_label_the_share_above_the_train_quantile(target_class):
    bars = synthetic_klines(1000, 3600, seed=4)
    target = target_class(shift=2, q=0.7).fit(bars)
    labels = target.transform(bars)
    assert labels.iloc[-2:].isna().all()
    assert labels.dropna().mean() == pytest.approx(0.3, abs=0.01)


@pytest.mark.parametrize(("shift", "q"), [(0, 0.5), (1.5, 0.5), (1, 0.0), (1, 1.0), (1, "0.5")])
def test_quantile_targets_validate_their_parameters(shift, q):
    with pytest.raises(ValueError, match="parameter of QuantileBinaryTarget"):
        QuantileBinaryTarget(shift=shift, q=q)


def test_a_quantile_target_must_be_fitted_before_labelling():
    with pytest.raises(ValueError, match="fit on the train split first"):
        QuantileBinaryTarget(shift=1, q=0.5).transform(synthetic_klines(20))


SHELL_SESSION = """
import limen
sfd = limen.sfd.foundational_sfd.{name}
log = limen.UniversalExperimentLoop(sfd=sfd, test_mode=True).run("x", n_permutations=20)
objective = sfd.manifest().objective[0][0]
assert len(log) == 20 and log["id"].is_unique, log
assert (log["state"] == "COMPLETE").all(), log["state"]
assert log[objective].notna().all()
print("ok", len(log))
"""


@pytest.mark.slow
@pytest.mark.parametrize("name", ["logreg_binary", "random_binary", "gbm_regressor"])
def test_each_foundational_sfd_runs_twenty_rounds_as_typed_in_a_shell(name, tmp_path):
    done = subprocess.run(
        [sys.executable, "-c", SHELL_SESSION.format(name=name)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok 20"
    assert (tmp_path / "limen-runs/x/study.db").exists()
