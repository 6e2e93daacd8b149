"""Manifest: setter validation, sequential split, references, and no learning from val/test."""

from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.preprocessing import MinMaxScaler, StandardScaler

from limen.experiment import manifest_core
from limen.experiment.manifest_core import Manifest, resolve_param


def make_bars(n_rows: int = 200, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, n_rows)))
    return pd.DataFrame(
        {
            "datetime": pd.date_range("2024-01-01", periods=n_rows, freq="h"),
            "close": close,
            "volume": rng.uniform(1, 10, n_rows),
        }
    )


def roc(df: pd.DataFrame, period: int) -> pd.DataFrame:
    return df.assign(**{f"roc_{period}": df["close"].pct_change(period)})


def rolling_mean(df: pd.DataFrame, window: int, name: str = "mean") -> pd.DataFrame:
    return df.assign(**{name: df["close"].rolling(window).mean()})


def rolling_max(df: pd.DataFrame, window: int, name: str = "mean") -> pd.DataFrame:
    return df.assign(**{name: df["close"].rolling(window).max()})


def next_return(df: pd.DataFrame) -> pd.Series:
    return df["close"].shift(-1) / df["close"] - 1


class AboveQuantile:
    """Flags rows whose next return is above the train q-quantile."""

    def __init__(self, q: float) -> None:
        self.q = q

    def fit(self, df: pd.DataFrame) -> AboveQuantile:
        self.threshold_ = float(next_return(df).quantile(self.q))
        return self

    def transform(self, df: pd.DataFrame) -> pd.Series:
        forward = next_return(df)
        return (forward > self.threshold_).astype(float).where(forward.notna())


def mean_model(data: dict, alpha: float, beta: int = 2) -> dict:
    return {"score": alpha * beta, "n_test": float(len(data["x_test"]))}


def pipeline(**overrides) -> Manifest:
    manifest = (
        Manifest()
        .set_split_config(6, 2, 2)
        .add_indicator(roc, period="roc_period")
        .add_feature(rolling_mean, window=5, name="mean_5")
        .with_target("label", AboveQuantile, q="q")
        .set_feature_columns(include=["roc_{roc_period}", "mean_5", "volume"])
        .set_scaler("scaler")
        .with_model(mean_model)
    )
    for setter, args in overrides.items():
        getattr(manifest, setter)(*args)
    return manifest


ROUND = {"roc_period": 3, "q": 0.6, "scaler": StandardScaler, "alpha": 0.5}


# Setters ----------------------------------------------------------------------------------


def test_every_setter_returns_the_manifest():
    manifest = Manifest()
    assert manifest.set_data_source(make_bars, {"n_rows": 10}) is manifest
    assert manifest.set_test_data_source(make_bars) is manifest
    assert manifest.set_split_config(1, 0, 0) is manifest
    assert manifest.add_indicator(roc, period=2) is manifest
    assert manifest.add_feature(rolling_mean, window=2) is manifest
    assert manifest.with_target("label", next_return) is manifest
    assert manifest.set_feature_columns(exclude=["close"]) is manifest
    assert manifest.set_scaler(StandardScaler) is manifest
    assert manifest.with_model(mean_model) is manifest
    assert manifest.set_objective("score") is manifest


def test_split_ratio_error_follows_the_template():
    with pytest.raises(ValueError) as error:
        Manifest().set_split_config(0, 1, 1)
    assert str(error.value) == (
        "The 'train' parameter of Manifest.set_split_config must be a number > 0. Got 0 instead."
    )


def not_a_frame() -> list:
    return [1, 2, 3]


BAD_SETTER_CALLS = {
    "split train not a number": (
        lambda m: m.set_split_config("8", 1, 1),
        TypeError,
        r"'train' parameter of Manifest\.set_split_config must be a number > 0\. Got '8'",
    ),
    "split ratio a bool": (
        lambda m: m.set_split_config(8, True, 1),
        TypeError,
        r"'val' parameter of Manifest\.set_split_config must be a number >= 0",
    ),
    "split ratio negative": (
        lambda m: m.set_split_config(8, 1, -2),
        ValueError,
        r"'test' parameter of Manifest\.set_split_config must be a number >= 0\. Got -2",
    ),
    "split ratio infinite": (
        lambda m: m.set_split_config(float("inf"), 1, 1),
        ValueError,
        r"'train' parameter of Manifest\.set_split_config must be a number > 0\. Got inf",
    ),
    "data source not callable": (
        lambda m: m.set_data_source("make_bars"),
        TypeError,
        r"'method' parameter of Manifest\.set_data_source must be a callable",
    ),
    "data source params not a dict": (
        lambda m: m.set_test_data_source(make_bars, [("n_rows", 3)]),
        TypeError,
        r"'params' parameter of Manifest\.set_test_data_source must be None or a dict",
    ),
    "data source params the method does not take": (
        lambda m: m.set_data_source(make_bars, {"n_bars": 10}),
        ValueError,
        r"Manifest\.set_data_source must match make_bars\(n_rows=200, seed=0\): it takes no",
    ),
    "indicator not callable": (
        lambda m: m.add_indicator(42),
        TypeError,
        r"'func' parameter of Manifest\.add_indicator must be a function or the name",
    ),
    "feature is a class": (
        lambda m: m.add_feature(StandardScaler),
        TypeError,
        r"'func' parameter of Manifest\.add_feature must be a function",
    ),
    "indicator param the function does not take": (
        lambda m: m.add_indicator(roc, windw=3),
        ValueError,
        r"Manifest\.add_indicator must match roc\(df, period\): it takes no \['windw'\]",
    ),
    "feature missing a required param": (
        lambda m: m.add_feature(roc),
        ValueError,
        r"Manifest\.add_feature must match roc.*missing a required argument: 'period'",
    ),
    "target column empty": (
        lambda m: m.with_target(""),
        TypeError,
        r"'column' parameter of Manifest\.with_target must be a non-empty str",
    ),
    "target neither function nor class": (
        lambda m: m.with_target("label", 3),
        TypeError,
        r"'target' parameter of Manifest\.with_target must be None, a function",
    ),
    "target class without fit and transform": (
        lambda m: m.with_target("label", dict),
        TypeError,
        r"'target' parameter of Manifest\.with_target must be a class or object with fit",
    ),
    "target params without a target": (
        lambda m: m.with_target("label", q=0.5),
        ValueError,
        r"'params' parameter of Manifest\.with_target must be empty when target is None",
    ),
    "target class params the class does not take": (
        lambda m: m.with_target("label", AboveQuantile, quantile=0.5),
        ValueError,
        r"Manifest\.with_target must match AboveQuantile",
    ),
    "feature columns as one string": (
        lambda m: m.set_feature_columns(include="close"),
        TypeError,
        r"'include' parameter of Manifest\.set_feature_columns must be a non-empty list",
    ),
    "feature columns empty": (
        lambda m: m.set_feature_columns(include=[]),
        ValueError,
        r"'include' parameter of Manifest\.set_feature_columns must be a non-empty list",
    ),
    "feature columns included and excluded": (
        lambda m: m.set_feature_columns(include=["close"], exclude=["volume"]),
        ValueError,
        r"'exclude' parameter of Manifest\.set_feature_columns must be None when include",
    ),
    "scaler without fit and transform": (
        lambda m: m.set_scaler(object()),
        TypeError,
        r"'scaler' parameter of Manifest\.set_scaler must be a class or object with fit",
    ),
    "scaler class params it does not take": (
        lambda m: m.set_scaler(StandardScaler, with_meen=False),
        ValueError,
        r"Manifest\.set_scaler must match StandardScaler",
    ),
    "scaler instance with params": (
        lambda m: m.set_scaler(StandardScaler(), with_mean=False),
        ValueError,
        r"'params' parameter of Manifest\.set_scaler must be empty when scaler is an instance",
    ),
    "no scaler with params": (
        lambda m: m.set_scaler(None, with_mean=False),
        ValueError,
        r"'params' parameter of Manifest\.set_scaler must be empty when scaler is None",
    ),
    "model not callable": (
        lambda m: m.with_model("mean_model"),
        TypeError,
        r"'func' parameter of Manifest\.with_model must be a function",
    ),
    "model is a class": (
        lambda m: m.with_model(StandardScaler),
        TypeError,
        r"'func' parameter of Manifest\.with_model must be a function",
    ),
    "model without a positional data parameter": (
        lambda m: m.with_model(lambda *, alpha: {}),
        ValueError,
        r"'func' parameter of Manifest\.with_model must be a function taking the data dict",
    ),
    "stochastic not a bool": (
        lambda m: m.with_model(mean_model, stochastic="yes"),
        TypeError,
        r"'stochastic' parameter of Manifest\.with_model must be a bool\. Got 'yes'",
    ),
}


@pytest.mark.parametrize(
    ("call", "error", "match"), BAD_SETTER_CALLS.values(), ids=BAD_SETTER_CALLS.keys()
)
def test_setters_reject_bad_arguments_at_once(call, error, match):
    with pytest.raises(error, match=match):
        call(Manifest())


def test_fetch_without_source_names_the_setter_to_call():
    with pytest.raises(ValueError, match=r"Manifest\.set_data_source"):
        Manifest().fetch_data()
    with pytest.raises(ValueError, match=r"Manifest\.set_test_data_source"):
        Manifest().fetch_test_data()


def test_fetch_calls_the_sources_with_their_params():
    manifest = Manifest().set_data_source(make_bars, {"n_rows": 30})
    manifest.set_test_data_source(make_bars, {"n_rows": 12, "seed": 1})
    assert len(manifest.fetch_data()) == 30
    assert len(manifest.fetch_test_data()) == 12
    assert manifest.data_source_config.method is make_bars
    assert manifest.data_source_config.params == {"n_rows": 30}
    assert Manifest().test_data_source_config is None


def test_fetch_rejects_a_source_that_returns_no_dataframe():
    manifest = Manifest().set_data_source(not_a_frame)
    with pytest.raises(TypeError, match=r"must return a pandas DataFrame\. Got list instead"):
        manifest.fetch_data()


def test_stochastic_flag_is_exposed():
    assert Manifest().with_model(mean_model).stochastic is False
    assert Manifest().with_model(mean_model, stochastic=True).stochastic is True


# Objective --------------------------------------------------------------------------------


def test_objective_is_none_until_set():
    assert Manifest().objective is None


@pytest.mark.parametrize(
    ("metric", "direction", "expected"),
    [
        ("auc", "maximize", [("auc", "maximize")]),
        ("rmse", "minimize", [("rmse", "minimize")]),
        (["auc", "fpr"], "maximize", [("auc", "maximize"), ("fpr", "maximize")]),
        (["auc", "fpr"], ["maximize", "minimize"], [("auc", "maximize"), ("fpr", "minimize")]),
    ],
)
def test_objective_parses_metrics_and_directions(metric, direction, expected):
    assert Manifest().set_objective(metric, direction).objective == expected


@pytest.mark.parametrize(
    ("metric", "direction", "error", "match"),
    [
        (["auc", "fpr"], ["maximize"], ValueError, "list of 2 directions"),
        ("auc", "max", ValueError, "'maximize' or 'minimize'. Got 'max'"),
        (["auc", "fpr"], ["maximize", "up"], ValueError, "Got 'up'"),
        ([], "maximize", TypeError, "non-empty list"),
        (["auc", "auc"], "maximize", ValueError, "without duplicates"),
        ("_preds", "maximize", ValueError, "not starting with '_'"),
        (3, "maximize", TypeError, "'metric' parameter"),
        (["auc", 3], "maximize", TypeError, "non-empty list of str"),
    ],
)
def test_objective_rejects_bad_metrics_and_directions(metric, direction, error, match):
    with pytest.raises(error, match=match):
        Manifest().set_objective(metric, direction)


# Split ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("ratios", "n_rows", "sizes"),
    [
        ((8, 1, 2), 100, [72, 9, 19]),
        ((6, 2, 2), 200, [120, 40, 40]),
        ((1, 0, 0), 50, [50, 0, 0]),
        ((1, 1, 0), 5, [2, 3, 0]),
        ((0.7, 0.15, 0.15), 1000, [700, 150, 150]),
    ],
)
def test_split_sizes_cover_every_row_once(ratios, n_rows, sizes):
    bounds = Manifest().set_split_config(*ratios).split_bounds(n_rows)
    assert [stop - start for start, stop in bounds] == sizes
    assert bounds[0][0] == 0 and bounds[-1][1] == n_rows
    assert all(bounds[i][1] == bounds[i + 1][0] for i in range(2))


def test_splits_are_sequential_and_in_time_order():
    data = make_bars(200)
    data_dict = pipeline().prepare_data(data, ROUND)
    train, val, test = (data_dict[f"x_{name}"].index for name in ("train", "val", "test"))
    assert train.max() < val.min() and val.max() < test.min()
    assert list(train) == sorted(train)
    assert data_dict["_alignment"]["first_test_datetime"] == data["datetime"][test[0]].isoformat()
    assert data_dict["_alignment"]["last_test_datetime"] == data["datetime"][test[-1]].isoformat()


def test_all_rows_in_train_leaves_val_and_test_empty():
    data_dict = pipeline(set_split_config=(1, 0, 0)).prepare_data(make_bars(100), ROUND)
    assert len(data_dict["x_val"]) == 0 and len(data_dict["x_test"]) == 0
    assert data_dict["_alignment"]["first_test_datetime"] is None


def test_data_must_have_sorted_datetimes():
    data = make_bars(50)
    with pytest.raises(ValueError, match="'datetime' column"):
        pipeline().prepare_data(data.drop(columns="datetime"), ROUND)
    with pytest.raises(ValueError, match="must be sorted"):
        pipeline().prepare_data(data.iloc[::-1], ROUND)
    with pytest.raises(TypeError, match=r"'data' parameter of Manifest\.prepare_data"):
        pipeline().prepare_data(data.to_numpy(), ROUND)


# References -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("roc_period", 3),
        ("{q}", 0.6),
        ("roc_{roc_period}", "roc_3"),
        ("{roc_period}_{q}", "3_0.6"),
        ("close", "close"),
        (7, 7),
        (None, None),
    ],
)
def test_param_references_and_templates_resolve(value, expected):
    assert resolve_param(value, {"roc_period": 3, "q": 0.6}) == expected


def test_template_naming_an_unknown_round_param_fails():
    with pytest.raises(ValueError, match=r"names \['period'\], which are not round parameters"):
        resolve_param("roc_{period}", {"roc_period": 3})


def test_steps_and_feature_names_use_round_params():
    data_dict = pipeline().prepare_data(make_bars(200), {**ROUND, "roc_period": 4})
    assert data_dict["_feature_names"] == ["roc_4", "mean_5", "volume"]
    assert list(data_dict["x_train"].columns) == ["roc_4", "mean_5", "volume"]


def test_a_function_valued_round_param_chooses_the_indicator():
    manifest = pipeline().add_indicator("smoother", window=4, name="smooth")
    manifest.set_feature_columns(include=["smooth"])
    by_mean = manifest.prepare_data(make_bars(200), {**ROUND, "smoother": rolling_mean})
    by_max = manifest.prepare_data(make_bars(200), {**ROUND, "smoother": rolling_max})
    assert not by_mean["x_train"].equals(by_max["x_train"])


def test_a_missing_referenced_round_param_is_named():
    with pytest.raises(ValueError, match="round parameter 'smoother'"):
        pipeline().add_indicator("smoother", window=4).prepare_data(make_bars(100), ROUND)


def test_scaler_named_by_a_round_param_and_none_means_unscaled():
    data = make_bars(200)
    scaled = pipeline().prepare_data(data, {**ROUND, "scaler": MinMaxScaler})
    raw = pipeline().prepare_data(data, {**ROUND, "scaler": None})
    assert isinstance(scaled["_scaler"], MinMaxScaler) and raw["_scaler"] is None
    assert scaled["x_train"].min().min() == pytest.approx(0.0)
    assert raw["x_train"]["volume"].equals(data["volume"].loc[raw["x_train"].index])


def test_default_features_are_numeric_columns_but_the_target():
    manifest = pipeline().set_feature_columns(exclude=["close"])
    data_dict = manifest.prepare_data(make_bars(100), ROUND)
    assert data_dict["_feature_names"] == ["volume", "roc_3", "mean_5"]


def test_an_existing_column_can_be_the_target():
    data = make_bars(100).assign(label=lambda df: (df["volume"] > 5).astype(int))
    manifest = Manifest().with_target("label").set_feature_columns(include=["volume"])
    data_dict = manifest.prepare_data(data, {})
    assert data_dict["y_test"].equals(data["label"].loc[data_dict["y_test"].index])
    assert data_dict["_fitted_params"]["target"] is None


def test_a_computed_target_may_not_overwrite_a_data_column():
    with pytest.raises(ValueError, match="'volume' already exists"):
        Manifest().with_target("volume", next_return).prepare_data(make_bars(50), {})


# Incomplete rows --------------------------------------------------------------------------


def test_warm_up_rows_are_dropped_within_each_split():
    data = make_bars(200)
    data_dict = pipeline().prepare_data(data, ROUND)
    bounds = pipeline().split_bounds(len(data))
    # mean_5 needs 4 past rows inside the split; the target needs 1 future row inside it.
    for name, (start, stop) in zip(("train", "val", "test"), bounds, strict=True):
        assert list(data_dict[f"x_{name}"].index) == list(range(start + 4, stop - 1))
    dropped = data_dict["_alignment"]["missing_datetimes"]
    assert len(dropped) == 3 * 5
    assert dropped[0] == data["datetime"][0].isoformat()


# No learning from validation or test rows -------------------------------------------------


def test_nothing_is_learned_from_validation_or_test_rows():
    data = make_bars(300)
    (_, train_stop), _, _ = pipeline().split_bounds(len(data))
    shocked = data.copy()
    later = shocked.index >= train_stop
    shocked.loc[later, "close"] = shocked.loc[later, "close"][::-1].to_numpy() * 10
    shocked.loc[later, "volume"] = 1000.0

    original = pipeline().prepare_data(data, ROUND)
    changed = pipeline().prepare_data(shocked, ROUND)

    for key in ("mean_", "scale_", "var_"):
        np.testing.assert_array_equal(
            getattr(original["_scaler"], key), getattr(changed["_scaler"], key)
        )
    target_before = original["_fitted_params"]["target"]
    target_after = changed["_fitted_params"]["target"]
    assert target_before.threshold_ == target_after.threshold_
    pd.testing.assert_frame_equal(original["x_train"], changed["x_train"])
    pd.testing.assert_series_equal(original["y_train"], changed["y_train"])
    assert not original["x_test"].equals(changed["x_test"])


def test_the_target_threshold_is_the_train_quantile():
    data = make_bars(300)
    (start, stop), _, _ = pipeline().split_bounds(len(data))
    data_dict = pipeline().prepare_data(data, ROUND)
    expected = next_return(data.iloc[start:stop]).quantile(ROUND["q"])
    assert data_dict["_fitted_params"]["target"].threshold_ == expected


def test_look_back_steps_use_only_past_rows():
    data = make_bars(300)
    shocked = data.copy()
    shocked.loc[100:, "close"] *= 3
    original = pipeline().prepare_data(data, ROUND)["_fitted_params"]
    manifest = pipeline()
    before = manifest.prepare_features(data, ROUND, original)
    after = manifest.prepare_features(shocked, ROUND, original)
    pd.testing.assert_frame_equal(before.loc[:99], after.loc[:99])
    assert not before.loc[100:].equals(after.loc[100:])


# Sensor-side preparation ------------------------------------------------------------------


def test_prepare_features_reproduces_train_time_features():
    data = make_bars(300)
    manifest = pipeline()
    data_dict = manifest.prepare_data(data, ROUND)
    features = manifest.prepare_features(data, ROUND, data_dict["_fitted_params"])
    assert features.index.equals(data.index)
    assert list(features.columns) == data_dict["_feature_names"]
    pd.testing.assert_frame_equal(features.loc[data_dict["x_train"].index], data_dict["x_train"])
    assert features.loc[:3].isna().all().all()


def test_prepare_features_does_not_refit_the_scaler():
    data = make_bars(300)
    manifest = pipeline()
    fitted = manifest.prepare_data(data, ROUND)["_fitted_params"]
    mean_before = fitted["scaler"].mean_.copy()
    new_bars = make_bars(80, seed=5)
    new_bars["volume"] *= 50
    features = manifest.prepare_features(new_bars, ROUND, fitted)
    np.testing.assert_array_equal(fitted["scaler"].mean_, mean_before)
    expected = (new_bars["volume"] - mean_before[2]) / fitted["scaler"].scale_[2]
    pd.testing.assert_series_equal(
        features["volume"].loc[10:], expected.loc[10:], check_names=False
    )


def test_prepare_features_needs_the_fitted_params():
    with pytest.raises(ValueError, match="'fitted_params' parameter"):
        pipeline().prepare_features(make_bars(50), ROUND, {"scaler": None})


# Model ------------------------------------------------------------------------------------


def test_run_model_passes_matching_round_params():
    manifest = pipeline()
    data_dict = manifest.prepare_data(make_bars(200), ROUND)
    results = manifest.run_model(data_dict, {**ROUND, "beta": 4})
    assert results == {"score": 2.0, "n_test": float(len(data_dict["x_test"]))}


def test_missing_model_kwargs_are_named():
    manifest = pipeline()
    data_dict = manifest.prepare_data(make_bars(200), ROUND)
    with pytest.raises(ValueError, match=r"needs the round parameters \['alpha'\]"):
        manifest.run_model(data_dict, {"q": 0.5})


def test_a_model_with_var_keywords_gets_every_public_round_param():
    seen = {}

    def model(data, alpha, **rest):
        seen.update(rest, alpha=alpha)
        return {}

    Manifest().with_model(model).run_model({}, {"alpha": 1, "beta": 2, "_meta": 3})
    assert seen == {"alpha": 1, "beta": 2}


def test_run_model_requires_a_model_returning_a_dict():
    with pytest.raises(ValueError, match=r"Manifest\.with_model"):
        Manifest().run_model({}, {})
    with pytest.raises(TypeError, match=r"must return a dict of results\. Got list"):
        Manifest().with_model(lambda data: [1]).run_model({}, {})


def test_prepare_data_requires_a_target():
    with pytest.raises(ValueError, match=r"Manifest\.with_target"):
        Manifest().prepare_data(make_bars(30), {})


def test_manifest_core_imports_neither_optuna_nor_adapters():
    tree = ast.parse(Path(manifest_core.__file__).read_text())
    modules = {
        alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.Import)
        for alias in node.names
    }
    modules |= {node.module or "" for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    assert not {m for m in modules if m.startswith(("optuna", "limen.adapters", "adapters"))}
