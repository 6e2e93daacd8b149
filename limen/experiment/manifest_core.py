"""The Manifest: a declarative, leakage-safe data and model pipeline for one SFD.

A manifest says where the data comes from, how it is split, which indicators, features, target
and scaler turn raw bars into model inputs, which model function runs and what the objective is.
The experiment loop calls ``prepare_data`` and ``run_model`` once per round; a Sensor calls
``prepare_features`` to apply a round's fitted preparation to new data.

Leakage rules, in the order ``prepare_data`` applies them: the data is split sequentially first;
every step then runs on each split separately; whatever is fitted (target parameters, scaler)
learns from the train split only and is applied unchanged to validation and test; rows left
incomplete (look-back warm-up, no forward target) are dropped within their own split, never
filled from another split.

Round-parameter references: wherever a step takes keyword parameters, a string that names a round
parameter stands for that parameter's value, ``'{name}'`` does too, and a template such as
``'roc_{roc_period}'`` is formatted from the round parameters; any other string is a literal.
Callables (indicator functions, targets, scalers) may likewise be given as the name of a round
parameter whose values are functions or classes, which is how an SFD searches over them.
"""

from __future__ import annotations

import copy
import inspect
import logging
import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NoReturn

import numpy as np
import pandas as pd

from limen.errors import InvalidParameterError
from limen.experiment.backtest import DEFAULT_COST_BPS, backtest, forward_returns, positions
from limen.experiment.pruning import is_reporting, report
from limen.experiment.round_results import scalar_metrics
from limen.experiment.walk_forward import (
    DECLARATION_KEY,
    FOLDS_KEY,
    RETURNS_KEY,
    WalkForward,
    combine_folds,
    fold_geometry,
)
from limen.utils.values import is_number

__all__ = [
    "DATETIME_COLUMN",
    "DIRECTIONS",
    "SPLIT_NAMES",
    "DataSourceConfig",
    "Manifest",
    "resolve_param",
    "resolve_params",
]

logger = logging.getLogger(__name__)

DATETIME_COLUMN = "datetime"
DIRECTIONS = ("maximize", "minimize")
SPLIT_NAMES = ("train", "val", "test")

_PLACEHOLDER = re.compile(r"\{(\w+)\}")


@dataclass(frozen=True)
class DataSourceConfig:
    """A data source: ``method(**params)`` returns the raw bars as a pandas DataFrame."""

    method: Callable[..., pd.DataFrame]
    params: dict[str, Any]

    def fetch(self) -> pd.DataFrame:
        data = self.method(**self.params)
        if not isinstance(data, pd.DataFrame):
            raise InvalidParameterError(
                f"The data source {_name(self.method)} must return a pandas DataFrame. "
                f"Got {type(data).__name__} instead."
            )
        return data


@dataclass(frozen=True)
class _Step:
    setter: str
    func: Callable[..., pd.DataFrame] | str
    params: dict[str, Any]


@dataclass(frozen=True)
class _Target:
    column: str
    source: Callable[..., Any] | str | None
    params: dict[str, Any]


@dataclass(frozen=True)
class _Scaler:
    source: Any
    params: dict[str, Any]


class Manifest:
    """Fluent builder of an SFD's data and model pipeline.

    Every setter validates its arguments at once and returns the manifest, so a manifest reads
    as one chained expression. The split defaults to ``(8, 1, 2)``; every other part is unset
    until its setter is called.
    """

    def __init__(self) -> None:
        self._data_source: DataSourceConfig | None = None
        self._test_data_source: DataSourceConfig | None = None
        self._split: tuple[float, float, float] = (8, 1, 2)
        self._steps: list[_Step] = []
        self._target: _Target | None = None
        self._include: list[str] | None = None
        self._exclude: list[str] = []
        self._scaler: _Scaler | None = None
        self._model: Callable[..., Mapping[str, Any]] | None = None
        self._stochastic = False
        self._objective: list[tuple[str, str]] | None = None
        self._walk_forward: WalkForward | None = None
        self._acceptance: dict[str, float] | None = None
        self._cost_bps: float = DEFAULT_COST_BPS

    # Data sources -------------------------------------------------------------------------

    def set_data_source(
        self, method: Callable[..., pd.DataFrame], params: Mapping[str, Any] | None = None
    ) -> Manifest:
        """Set the production data: ``method(**params)`` must return a pandas DataFrame."""
        self._data_source = _data_source("set_data_source", method, params)
        return self

    def set_test_data_source(
        self, method: Callable[..., pd.DataFrame], params: Mapping[str, Any] | None = None
    ) -> Manifest:
        """Set the small data used in test mode: ``method(**params)`` returns a DataFrame."""
        self._test_data_source = _data_source("set_test_data_source", method, params)
        return self

    def fetch_data(self) -> pd.DataFrame:
        """Fetch the production data."""
        if self._data_source is None:
            raise InvalidParameterError(
                "No data source configured: call Manifest.set_data_source(method, params) "
                "or pass data= to the experiment."
            )
        return self._data_source.fetch()

    def fetch_test_data(self) -> pd.DataFrame:
        """Fetch the test-mode data."""
        if self._test_data_source is None:
            raise InvalidParameterError(
                "No test data source configured: call "
                "Manifest.set_test_data_source(method, params) or pass data= to the experiment."
            )
        return self._test_data_source.fetch()

    @property
    def data_source_config(self) -> DataSourceConfig | None:
        """The production data source, or None when unset."""
        return self._data_source

    @property
    def test_data_source_config(self) -> DataSourceConfig | None:
        """The test-mode data source, or None when unset."""
        return self._test_data_source

    # Split --------------------------------------------------------------------------------

    def set_split_config(self, train: float, val: float, test: float) -> Manifest:
        """Split the rows sequentially (no shuffling) in the proportions train:val:test.

        Each split gets ``int(n_rows * ratio / total)`` rows except the last split with a
        non-zero ratio, which takes the remainder. ``(1, 0, 0)`` puts every row in train.
        With a walk-forward split, call this first: its train:val share divides each fold's
        pool, and calling it afterwards raises.
        """
        if self._walk_forward is not None:
            raise InvalidParameterError(
                "Manifest.set_split_config cannot be combined with split_walk_forward, which "
                "already decides the test windows: call set_split_config(train, val, 0) before "
                "set_split_walk_forward to set each fold's fit:validation share."
            )
        for name, value in zip(SPLIT_NAMES, (train, val, test), strict=True):
            bound = "> 0" if name == "train" else ">= 0"
            if not is_number(value):
                _fail("set_split_config", name, f"a number {bound}", value)
            if not math.isfinite(value) or value < 0 or (name == "train" and value == 0):
                _fail("set_split_config", name, f"a number {bound}", value)
        self._split = (train, val, test)
        return self

    @property
    def split_config(self) -> tuple[float, float, float]:
        """The train, val and test proportions."""
        return self._split

    def split_bounds(self, n_rows: int) -> list[tuple[int, int]]:
        """The ``[start, stop)`` row positions of train, val and test for ``n_rows`` rows."""
        total = sum(self._split)
        sizes = [int(n_rows * ratio / total) for ratio in self._split]
        last = max(i for i, ratio in enumerate(self._split) if ratio > 0)
        sizes[last] = n_rows - sum(size for i, size in enumerate(sizes) if i != last)
        stops = np.cumsum(sizes).tolist()
        return [(stop - size, stop) for size, stop in zip(sizes, stops, strict=True)]

    def set_split_walk_forward(
        self,
        n_folds: int,
        test_bars: int,
        purge_bars: int = 0,
        embargo_bars: int = 0,
        anchored: bool = True,
    ) -> Manifest:
        """Evaluate each round on ``n_folds`` consecutive test windows of ``test_bars`` bars.

        Each fold fits on the bars before its test window (all of them when ``anchored``, else
        a rolling window as long as the first fold's), less ``purge_bars`` before the test and
        before validation, and less the ``embargo_bars`` bars after each earlier test window.
        The train:val share of ``set_split_config`` divides the pool into fit and validation;
        its test share is ignored. Values must be literal ints (a bool for ``anchored``): the
        geometry is the same for every round, so rounds are comparable. Geometry:
        ``limen.experiment.walk_forward``.

        Raises:
            ValueError: a field is not a literal in range (``n_folds >= 2``, ``test_bars >= 1``,
                ``purge_bars`` and ``embargo_bars >= 0``); the message names split_walk_forward.
        """
        self._walk_forward = WalkForward(n_folds, test_bars, purge_bars, embargo_bars, anchored)
        return self

    @property
    def walk_forward(self) -> WalkForward | None:
        """The walk-forward declaration, or None for a single train/val/test split."""
        return self._walk_forward

    def drop_walk_forward(self) -> Manifest:
        """Return to a single train/val/test split (a refit on all data uses this)."""
        self._walk_forward = None
        self._acceptance = None
        return self

    def set_acceptance(
        self,
        min_deflated_sharpe_probability: float | None = None,
        max_pbo: float | None = None,
    ) -> Manifest:
        """Thresholds the acceptance report turns into verdicts (pass/fail per statistic).

        Args:
            min_deflated_sharpe_probability: the least Deflated Sharpe Ratio (a probability)
                the winning round must reach.
            max_pbo: the greatest Probability of Backtest Overfitting accepted.
        """
        if self._walk_forward is None:
            raise InvalidParameterError(
                "Manifest.set_acceptance needs the per-round return tracks of a walk-forward "
                "run: call set_split_walk_forward(...) first."
            )
        thresholds = {
            "min_deflated_sharpe_probability": min_deflated_sharpe_probability,
            "max_pbo": max_pbo,
        }
        for name, value in thresholds.items():
            if value is None:
                continue
            if not is_number(value):
                _fail("set_acceptance", name, "a probability in [0, 1] or None", value)
            if not math.isfinite(value) or not 0 <= value <= 1:
                _fail("set_acceptance", name, "a probability in [0, 1] or None", value)
        chosen = {k: float(v) for k, v in thresholds.items() if v is not None}
        if not chosen:
            raise InvalidParameterError(
                "Manifest.set_acceptance needs at least one threshold: "
                "min_deflated_sharpe_probability=... or max_pbo=..."
            )
        self._acceptance = chosen
        return self

    @property
    def acceptance(self) -> dict[str, float] | None:
        """The acceptance thresholds set by ``set_acceptance``, or None."""
        return None if self._acceptance is None else dict(self._acceptance)

    def set_backtest_cost(self, round_trip_bps: float) -> Manifest:
        """The cost of one round trip (entry + exit) in basis points for net-return tracks."""
        if not is_number(round_trip_bps):
            _fail("set_backtest_cost", "round_trip_bps", "a number >= 0", round_trip_bps)
        if not math.isfinite(round_trip_bps) or round_trip_bps < 0:
            _fail("set_backtest_cost", "round_trip_bps", "a number >= 0", round_trip_bps)
        self._cost_bps = float(round_trip_bps)
        return self

    @property
    def backtest_cost_bps(self) -> float:
        """The round-trip cost in basis points used for net-return tracks."""
        return self._cost_bps

    # Steps --------------------------------------------------------------------------------

    def add_indicator(self, func: Callable[..., pd.DataFrame] | str, **params: Any) -> Manifest:
        """Append ``func(df, **params) -> df`` that adds indicator columns to each split.

        ``func`` may be the name of a round parameter whose value is the function. An
        indicator must keep every row it receives and use only past rows (look-back).
        """
        self._steps.append(_step("add_indicator", func, params))
        return self

    def add_feature(self, func: Callable[..., pd.DataFrame] | str, **params: Any) -> Manifest:
        """Append ``func(df, **params) -> df`` that adds feature columns to each split.

        Same mechanism and rules as ``add_indicator``; steps run in the order they were added.
        """
        self._steps.append(_step("add_feature", func, params))
        return self

    def with_target(
        self, column: str, target: Callable[..., Any] | str | None = None, **params: Any
    ) -> Manifest:
        """Set the target column, the ``y_*`` of the data dict.

        ``target`` is one of:

        * None: ``column`` is already in the data.
        * a function ``target(df, **params) -> Series``: a stateless label, computed per split.
        * a class with ``fit(df)`` and ``transform(df) -> Series`` (e.g. a quantile threshold):
          instantiated as ``target(**params)``, fitted on the train split only, then applied
          to every split.
        * the name of a round parameter whose value is such a function or class.

        Rows whose target is missing (e.g. no forward bars left) are dropped in their split.
        """
        if not isinstance(column, str) or not column:
            _fail("with_target", "column", "a non-empty str", column)
        if target is None:
            if params:
                _fail("with_target", "params", "empty when target is None", params)
        elif isinstance(target, str):
            _check_reference("with_target", "target", target)
        elif inspect.isclass(target):
            _check_estimator("with_target", "target", target)
            _check_signature("with_target", target, (), params)
        elif callable(target):
            _check_signature("with_target", target, (None,), params)
        else:
            _fail("with_target", "target", "None, a function, a class or a str", target)
        self._target = _Target(column, target, dict(params))
        return self

    def set_feature_columns(
        self, include: Sequence[str] | None = None, exclude: Sequence[str] | None = None
    ) -> Manifest:
        """Choose the model's input columns (templates such as ``'roc_{roc_period}'`` allowed).

        By default every numeric or boolean column except the target is a feature. ``include``
        lists the features exactly, in order; ``exclude`` removes columns from the default.
        """
        if include is not None and exclude is not None:
            _fail("set_feature_columns", "exclude", "None when include is given", exclude)
        self._include = None if include is None else _column_list("include", include, False)
        self._exclude = [] if exclude is None else _column_list("exclude", exclude, True)
        return self

    def set_scaler(self, scaler: Any, **params: Any) -> Manifest:
        """Scale the features with a scaler fitted on the train split only.

        ``scaler`` is a class with ``fit``/``transform`` (instantiated with ``params``), an
        unfitted scaler instance (copied each round), None for no scaling, or the name of a
        round parameter holding one of these, which makes the scaler a searched parameter.
        """
        if scaler is None:
            if params:
                _fail("set_scaler", "params", "empty when scaler is None", params)
            self._scaler = None
            return self
        if isinstance(scaler, str):
            _check_reference("set_scaler", "scaler", scaler)
        else:
            _check_estimator("set_scaler", "scaler", scaler)
            if inspect.isclass(scaler):
                _check_signature("set_scaler", scaler, (), params)
            elif params:
                _fail("set_scaler", "params", "empty when scaler is an instance", params)
        self._scaler = _Scaler(scaler, dict(params))
        return self

    # Model and objective ------------------------------------------------------------------

    def with_model(
        self, func: Callable[..., Mapping[str, Any]], *, stochastic: bool = False
    ) -> Manifest:
        """Set the model function ``func(data, **kwargs) -> results``.

        ``func`` receives the data dict and, as keyword arguments, the round parameters named
        in its signature. It returns scalar metrics plus ``_preds`` (test predictions) and
        ``_model`` (the fitted estimator, whose ``predict`` a Sensor calls later). Declare
        ``stochastic=True`` when the same round can give different metrics, so reconstruction
        compares them with a relative tolerance.
        """
        if not callable(func) or inspect.isclass(func):
            _fail("with_model", "func", "a function", func)
        if not isinstance(stochastic, bool):
            _fail("with_model", "stochastic", "a bool", stochastic)
        if not _accepts_positional(func):
            _fail("with_model", "func", "a function taking the data dict first", func)
        self._model = func
        self._stochastic = stochastic
        return self

    @property
    def stochastic(self) -> bool:
        """Whether the model gives different metrics when a round is run again."""
        return self._stochastic

    def set_objective(
        self, metric: str | Sequence[str], direction: str | Sequence[str] = "maximize"
    ) -> Manifest:
        """Set the metric(s) the search optimises and their direction(s).

        ``metric`` is a metric name or a list of names (multi-objective); ``direction`` is
        ``'maximize'`` or ``'minimize'``, or a list with one direction per metric.
        """
        metrics = [metric] if isinstance(metric, str) else metric
        if (
            not isinstance(metrics, Sequence)
            or not metrics
            or not all(isinstance(name, str) for name in metrics)
        ):
            _fail("set_objective", "metric", "a str or a non-empty list of str", metric)
        for name in metrics:
            if not name or name.startswith("_"):
                _fail("set_objective", "metric", "metric names not starting with '_'", metric)
        if len(set(metrics)) != len(metrics):
            _fail("set_objective", "metric", "a list without duplicates", metric)
        if isinstance(direction, str):
            directions = [direction] * len(metrics)
        elif isinstance(direction, Sequence) and len(direction) == len(metrics):
            directions = list(direction)
        else:
            _fail(
                "set_objective",
                "direction",
                f"a str or a list of {len(metrics)} directions (one per metric)",
                direction,
            )
        for value in directions:
            if value not in DIRECTIONS:
                _fail("set_objective", "direction", "'maximize' or 'minimize'", value)
        self._objective = list(zip(metrics, directions, strict=True))
        return self

    @property
    def objective(self) -> list[tuple[str, str]] | None:
        """``[(metric, direction), ...]`` as set by ``set_objective``, or None."""
        return None if self._objective is None else list(self._objective)

    # What the loop, the Trainer and the Sensor call ---------------------------------------

    def prepare_data(self, data: pd.DataFrame, round_params: Mapping[str, Any]) -> dict[str, Any]:
        """Turn raw bars into the data dict of one round.

        Splits first, then per split applies indicators and features, labels the target
        (fitted on train), drops incomplete rows, and scales the features with a scaler fitted
        on train. Returns ``x_train, y_train, x_val, y_val, x_test, y_test``, ``_alignment``,
        ``_scaler``, ``_feature_names`` and ``_fitted_params`` (what ``prepare_features``
        needs to prepare new data the same way).

        With a walk-forward split the dict also holds ``_folds``: one such data dict per fold,
        each prepared by its own copy of the manifest (the top-level keys are the last fold's,
        and ``_alignment`` spans every test window).
        """
        _check_frame("prepare_data", data)
        if self._walk_forward is not None:
            return self._prepare_folds(data, round_params)
        data_dict, _, _ = self._prepare_splits(data, self.split_bounds(len(data)), round_params)
        return data_dict

    def _prepare_splits(
        self,
        data: pd.DataFrame,
        bounds: Sequence[tuple[int, int]],
        round_params: Mapping[str, Any],
        excluded: Sequence[int] = (),
    ) -> tuple[dict[str, Any], list[pd.DataFrame], list[list[Any]]]:
        """Prepare the train, val and test row ranges ``bounds``; ``excluded`` positions are
        dropped from train and validation after labelling. Returns the data dict, the kept
        rows and the dropped datetimes of each split."""
        target_column = self._require_target().column
        frames = [
            self._apply_steps(data.iloc[start:stop].copy(), round_params) for start, stop in bounds
        ]
        target = self._fit_target(frames[0], round_params)
        for frame in frames:
            self._label(target, frame, round_params)
        embargoed: list[list[Any]] = [[] for _ in frames]
        if excluded:
            for i in (0, 1):
                start, _ = bounds[i]
                mask = np.isin(np.arange(start, start + len(frames[i])), excluded)
                embargoed[i] = frames[i].loc[mask, DATETIME_COLUMN].tolist()
                frames[i] = frames[i].loc[~mask]
        features = self._feature_names(frames[0], round_params)
        kept, dropped = zip(
            *(self._complete_rows(frame, features) for frame in frames), strict=True
        )
        dropped = [[*extra, *part] for extra, part in zip(embargoed, dropped, strict=True)]
        scaler = self._fit_scaler(kept[0][features], round_params)
        data_dict: dict[str, Any] = {}
        for name, frame in zip(SPLIT_NAMES, kept, strict=True):
            data_dict[f"x_{name}"] = _scale(scaler, frame[features].astype(float))
            data_dict[f"y_{name}"] = frame[target_column]
        test_times = kept[2][DATETIME_COLUMN]
        data_dict["_alignment"] = {
            "missing_datetimes": [_iso(t) for part in dropped for t in part],
            "first_test_datetime": _iso(test_times.iloc[0]) if len(test_times) else None,
            "last_test_datetime": _iso(test_times.iloc[-1]) if len(test_times) else None,
        }
        data_dict["_scaler"] = scaler
        data_dict["_feature_names"] = list(features)
        data_dict["_fitted_params"] = {
            "feature_names": list(features),
            "scaler": scaler,
            "target": target,
            "target_column": target_column,
        }
        logger.debug("Prepared round: %d rows dropped as incomplete", sum(map(len, dropped)))
        return data_dict, list(kept), dropped

    def _prepare_folds(self, data: pd.DataFrame, round_params: Mapping[str, Any]) -> dict[str, Any]:
        """One data dict per walk-forward fold, each with its test window's next-bar returns."""
        times = data[DATETIME_COLUMN]
        if times.isna().any() or not times.is_unique or not times.is_monotonic_increasing:
            raise InvalidParameterError(
                "split_walk_forward needs unique, strictly increasing datetimes without nulls in "
                f"the {DATETIME_COLUMN!r} column: sort the data and drop duplicate bars."
            )
        train, val, _ = self._split
        next_returns = forward_returns(data).to_numpy() if "close" in data.columns else None
        folds: list[dict[str, Any]] = []
        missing: list[str] = []
        for number, fold in enumerate(fold_geometry(len(data), self._walk_forward, train, val)):
            own = copy.deepcopy(self)
            bounds = [fold.fit, fold.val, fold.test]
            data_dict, kept, dropped = own._prepare_splits(
                data, bounds, round_params, fold.embargoed
            )
            if data_dict["x_test"].empty or data_dict["x_train"].empty:
                raise InvalidParameterError(
                    f"split_walk_forward fold {number} has no complete fit or test rows after "
                    "the look-back and target are applied: use longer test_bars or more data."
                )
            start, stop = fold.test
            if next_returns is not None:
                window = times.iloc[start:stop].to_numpy()
                data_dict["_backtest"] = {
                    "next_returns": next_returns[start:stop],
                    "rows": np.searchsorted(window, kept[2][DATETIME_COLUMN].to_numpy()),
                }
            missing += [_iso(t) for t in dropped[2]]
            folds.append(data_dict)
        return {
            **folds[-1],
            "_alignment": {
                "missing_datetimes": missing,
                "first_test_datetime": folds[0]["_alignment"]["first_test_datetime"],
                "last_test_datetime": folds[-1]["_alignment"]["last_test_datetime"],
            },
            FOLDS_KEY: folds,
        }

    def prepare_features(
        self,
        raw_data: pd.DataFrame,
        round_params: Mapping[str, Any],
        fitted_params: Mapping[str, Any],
    ) -> pd.DataFrame:
        """Prepare new raw bars with a round's fitted preparation, re-fitting nothing.

        Applies the indicators and features to the whole frame, keeps the fitted feature
        columns and applies the fitted scaler. The result has one row per raw row (same
        index); rows that are incomplete (look-back warm-up) are all-NaN.
        """
        _check_frame("prepare_features", raw_data)
        for key in ("feature_names", "scaler"):
            if key not in fitted_params:
                _fail(
                    "prepare_features",
                    "fitted_params",
                    "the '_fitted_params' of a prepare_data data dict",
                    sorted(fitted_params),
                )
        frame = self._apply_steps(raw_data.copy(), round_params)
        names = list(fitted_params["feature_names"])
        missing = [name for name in names if name not in frame.columns]
        if missing:
            raise InvalidParameterError(
                f"The prepared data lacks the fitted feature columns {missing}; check that "
                "round_params are the ones the round was prepared with."
            )
        features = frame[names].astype(float)
        complete = np.isfinite(features.to_numpy()).all(axis=1)
        features.loc[~complete] = np.nan
        features.loc[complete] = _scale(fitted_params["scaler"], features.loc[complete])
        return features

    def model_kwargs(self, round_params: Mapping[str, Any]) -> dict[str, Any]:
        """The keyword arguments ``run_model`` passes to the model function.

        Every parameter of the model function after the data dict is taken from the round
        parameters, or left to its default; a model taking ``**kwargs`` also gets every other
        round parameter whose name does not start with ``_``.
        """
        model = self._require_model()
        signature = inspect.signature(model)
        kwargs: dict[str, Any] = {}
        missing: list[str] = []
        takes_var_keyword = False
        for parameter in list(signature.parameters.values())[1:]:
            if parameter.kind is parameter.VAR_KEYWORD:
                takes_var_keyword = True
            elif parameter.kind is parameter.VAR_POSITIONAL:
                continue
            elif parameter.name in round_params:
                kwargs[parameter.name] = round_params[parameter.name]
            elif parameter.default is parameter.empty:
                missing.append(parameter.name)
        if missing:
            raise InvalidParameterError(
                f"The model function {_name(model)} needs the round parameters {missing}, "
                f"which this round does not have (it has {sorted(round_params)}). Add them to "
                "params() or give them defaults in the model function."
            )
        if takes_var_keyword:
            for key, value in round_params.items():
                if not key.startswith("_"):
                    kwargs.setdefault(key, value)
        return kwargs

    def run_model(
        self, data_dict: Mapping[str, Any], round_params: Mapping[str, Any]
    ) -> dict[str, Any]:
        """Run the model function on a prepared data dict and return its results dict.

        A walk-forward data dict (``_folds``) runs the model once per fold and returns the
        mean of the finite fold metrics, plus ``_folds`` (each fold's metrics), ``_returns``
        (the net-return track of the test windows, concatenated) and the concatenated
        ``_preds``. Inside a running round each fold's objective is reported as the
        intermediate value at step = fold, so an Optuna pruner can stop the round early.
        """
        if FOLDS_KEY not in data_dict:
            return self._run_once(data_dict, round_params)
        rows: list[dict[str, Any]] = []
        preds: list[np.ndarray] = []
        tracks: list[np.ndarray] = []
        results: dict[str, Any] = {}
        for number, fold in enumerate(data_dict[FOLDS_KEY]):
            results = self._run_once(fold, round_params)
            metrics = scalar_metrics(results)
            rows.append({"fold": number, **metrics})
            if "_preds" in results:
                preds.append(np.asarray(results["_preds"]).ravel())
                tracks.append(self._fold_track(fold, preds[-1]))
            self._report_fold(metrics, number)
        combined = combine_folds([{k: v for k, v in r.items() if k != "fold"} for r in rows])
        combined[FOLDS_KEY] = rows
        combined[DECLARATION_KEY] = {
            "split_walk_forward": self._walk_forward.as_dict(),
            "validation_share": list(self._split[:2]),
            "cost_bps": self._cost_bps,
            "acceptance": self.acceptance,
        }
        if preds:
            combined["_preds"] = np.concatenate(preds)
        if tracks and all(track is not None for track in tracks):
            combined[RETURNS_KEY] = np.concatenate(tracks)
        for key in ("_model", "models"):
            if key in results:
                combined[key] = results[key]
        return combined

    def _run_once(
        self, data_dict: Mapping[str, Any], round_params: Mapping[str, Any]
    ) -> dict[str, Any]:
        model = self._require_model()
        results = model(data_dict, **self.model_kwargs(round_params))
        if not isinstance(results, Mapping):
            raise InvalidParameterError(
                f"The model function {_name(model)} must return a dict of results. "
                f"Got {type(results).__name__} instead."
            )
        return dict(results)

    def _fold_track(self, fold: Mapping[str, Any], preds: np.ndarray) -> np.ndarray | None:
        """The fold's per-bar net returns over its whole test window (flat where no row was
        predicted), so every round's track has the same bars."""
        window = fold.get("_backtest")
        if window is None or len(preds) != len(window["rows"]):
            return None
        held = np.zeros(len(window["next_returns"]))
        held[window["rows"]] = positions(preds)
        return backtest(held, window["next_returns"], self._cost_bps).net

    def _report_fold(self, metrics: Mapping[str, Any], fold: int) -> None:
        """Report the fold's objective to the running round (single objective only)."""
        if self._objective is None or len(self._objective) != 1 or not is_reporting():
            return
        value = metrics.get(self._objective[0][0])
        if is_number(value, finite=True):
            report(float(value), step=fold)

    # Internals ----------------------------------------------------------------------------

    def _require_model(self) -> Callable[..., Mapping[str, Any]]:
        if self._model is None:
            raise InvalidParameterError(
                "No model configured: call Manifest.with_model(func) first."
            )
        return self._model

    def _apply_steps(self, frame: pd.DataFrame, round_params: Mapping[str, Any]) -> pd.DataFrame:
        for step in self._steps:
            func = _resolve_callable(step.setter, step.func, round_params)
            result = func(frame, **resolve_params(step.params, round_params))
            if not isinstance(result, pd.DataFrame):
                raise InvalidParameterError(
                    f"The {step.setter} step {_name(func)} must return a pandas DataFrame. "
                    f"Got {type(result).__name__} instead."
                )
            if not result.index.equals(frame.index):
                raise InvalidParameterError(
                    f"The {step.setter} step {_name(func)} must keep every row it receives "
                    f"(same index); it returned {len(result)} rows for {len(frame)}."
                )
            frame = result
        return frame

    def _require_target(self) -> _Target:
        if self._target is None:
            raise InvalidParameterError(
                "No target configured: call Manifest.with_target(column, ...) first."
            )
        return self._target

    def _target_source(self, round_params: Mapping[str, Any]) -> Any:
        source = self._require_target().source
        return None if source is None else _resolve_callable("with_target", source, round_params)

    def _fit_target(self, train: pd.DataFrame, round_params: Mapping[str, Any]) -> Any:
        """The target fitted on the train split; None for a data column or a stateless function."""
        source = self._target_source(round_params)
        if not inspect.isclass(source):
            return None
        _check_estimator("with_target", "target", source)
        fitted = source(**resolve_params(self._require_target().params, round_params))
        fitted.fit(train)
        return fitted

    def _label(self, fitted: Any, frame: pd.DataFrame, round_params: Mapping[str, Any]) -> None:
        """Add the target column to ``frame`` (in place), unless it is a column of the data."""
        spec = self._require_target()
        source = self._target_source(round_params)
        if source is None:
            if spec.column not in frame.columns:
                raise InvalidParameterError(
                    f"The target column {spec.column!r} is not in the data; columns: "
                    f"{list(frame.columns)}. Pass a target function or class to with_target."
                )
            return
        if spec.column in frame.columns:
            raise InvalidParameterError(
                f"The target column {spec.column!r} already exists in the data; pick another "
                f"name, or call Manifest.with_target({spec.column!r}) to use that column."
            )
        if fitted is not None:
            labels = fitted.transform(frame)
        else:
            labels = source(frame, **resolve_params(spec.params, round_params))
        if len(labels) != len(frame):
            raise InvalidParameterError(
                f"The target {_name(source)} must give one label per row; it gave "
                f"{len(labels)} for {len(frame)} rows."
            )
        frame[spec.column] = labels.to_numpy() if isinstance(labels, pd.Series) else labels

    def _feature_names(self, frame: pd.DataFrame, round_params: Mapping[str, Any]) -> list[str]:
        target = self._require_target().column
        if self._include is not None:
            names = [str(resolve_param(name, round_params)) for name in self._include]
            missing = [name for name in names if name not in frame.columns]
            if missing:
                raise InvalidParameterError(
                    f"The feature columns {missing} set by Manifest.set_feature_columns are "
                    f"not in the prepared data; columns: {list(frame.columns)}."
                )
            return names
        exclude = {str(resolve_param(name, round_params)) for name in self._exclude}
        numeric = frame.select_dtypes(include=["number", "bool"]).columns
        return [name for name in numeric if name not in exclude and name != target]

    def _complete_rows(
        self, frame: pd.DataFrame, features: list[str]
    ) -> tuple[pd.DataFrame, list[Any]]:
        """Split ``frame`` into its complete rows and the datetimes of the incomplete ones."""
        values = frame[features].to_numpy(dtype=float)
        labelled = frame[self._require_target().column].notna().to_numpy()
        complete = np.isfinite(values).all(axis=1) & labelled
        return frame.loc[complete], frame.loc[~complete, DATETIME_COLUMN].tolist()

    def _fit_scaler(self, x_train: pd.DataFrame, round_params: Mapping[str, Any]) -> Any:
        if self._scaler is None:
            return None
        source = self._scaler.source
        if isinstance(source, str):
            source = _round_value("set_scaler", source, round_params)
            if source is None:
                return None
            _check_estimator("set_scaler", "scaler", source)
        if x_train.empty:
            raise InvalidParameterError(
                "No complete train rows are left to fit the scaler on: the look-back windows "
                "or the target consume the whole train split. Use more data or a larger "
                "train share in Manifest.set_split_config."
            )
        params = resolve_params(self._scaler.params, round_params)
        scaler = source(**params) if inspect.isclass(source) else copy.deepcopy(source)
        scaler.fit(x_train)
        return scaler


def resolve_param(value: Any, round_params: Mapping[str, Any]) -> Any:
    """Resolve one step parameter against the round parameters.

    A string naming a round parameter, or ``'{name}'``, becomes that parameter's value; a
    template such as ``'roc_{roc_period}'`` is formatted; anything else is returned unchanged.
    """
    if not isinstance(value, str):
        return value
    if value in round_params:
        return round_params[value]
    placeholders = _PLACEHOLDER.findall(value)
    unknown = [name for name in placeholders if name not in round_params]
    if unknown:
        raise InvalidParameterError(
            f"The template {value!r} names {unknown}, which are not round parameters; round "
            f"parameters: {sorted(round_params)}."
        )
    whole = _PLACEHOLDER.fullmatch(value)
    if whole:
        return round_params[whole.group(1)]
    if placeholders:
        return _PLACEHOLDER.sub(lambda match: str(round_params[match.group(1)]), value)
    return value


def resolve_params(params: Mapping[str, Any], round_params: Mapping[str, Any]) -> dict[str, Any]:
    """Resolve every value of ``params`` with ``resolve_param``."""
    return {key: resolve_param(value, round_params) for key, value in params.items()}


def _data_source(setter: str, method: Any, params: Mapping[str, Any] | None) -> DataSourceConfig:
    if not callable(method):
        _fail(setter, "method", "a callable returning a pandas DataFrame", method)
    if params is None:
        params = {}
    if not isinstance(params, Mapping) or not all(isinstance(key, str) for key in params):
        _fail(setter, "params", "None or a dict with str keys", params)
    _check_signature(setter, method, (), params)
    return DataSourceConfig(method, dict(params))


def _step(setter: str, func: Any, params: dict[str, Any]) -> _Step:
    if isinstance(func, str):
        _check_reference(setter, "func", func)
    elif callable(func) and not inspect.isclass(func):
        _check_signature(setter, func, (None,), params)
    else:
        _fail(setter, "func", "a function or the name of a round parameter", func)
    return _Step(setter, func, dict(params))


def _column_list(name: str, columns: Any, allow_empty: bool) -> list[str]:
    expected = "a list of column names" if allow_empty else "a non-empty list of column names"
    if isinstance(columns, str) or not isinstance(columns, Sequence):
        _fail("set_feature_columns", name, expected, columns)
    if not all(isinstance(column, str) and column for column in columns):
        _fail("set_feature_columns", name, expected, columns)
    if not columns and not allow_empty:
        _fail("set_feature_columns", name, expected, columns)
    return list(columns)


def _resolve_callable(setter: str, func: Any, round_params: Mapping[str, Any]) -> Any:
    if not isinstance(func, str):
        return func
    value = _round_value(setter, func, round_params)
    if not callable(value):
        raise InvalidParameterError(
            f"The round parameter {func!r} used by Manifest.{setter} must hold a function or "
            f"a class. Got {_describe(value)} instead."
        )
    return value


def _round_value(setter: str, name: str, round_params: Mapping[str, Any]) -> Any:
    if name not in round_params:
        raise InvalidParameterError(
            f"Manifest.{setter} refers to the round parameter {name!r}, which this round does "
            f"not have; round parameters: {sorted(round_params)}. Add it to params()."
        )
    return round_params[name]


def _check_reference(setter: str, name: str, value: str) -> None:
    if not value:
        _fail(setter, name, "a callable or the name of a round parameter", value)


def _check_estimator(setter: str, name: str, value: Any) -> None:
    if not (hasattr(value, "fit") and hasattr(value, "transform")):
        _fail(setter, name, "a class or object with fit() and transform()", value)


def _check_signature(
    setter: str, func: Callable[..., Any], args: tuple[Any, ...], params: Mapping[str, Any]
) -> None:
    """Fail now when ``func(*args, **params)`` could never be called (unknown or missing)."""
    try:
        signature = inspect.signature(func)
    except (TypeError, ValueError):
        return
    parameters = signature.parameters.values()
    takes_any = any(parameter.kind is parameter.VAR_KEYWORD for parameter in parameters)
    unknown = [key for key in params if key not in signature.parameters]
    if unknown and not takes_any:
        problem = f"it takes no {unknown}"
    else:
        try:
            signature.bind(*args, **params)
            return
        except TypeError as error:
            problem = str(error)
    plain = signature.replace(
        parameters=[parameter.replace(annotation=parameter.empty) for parameter in parameters],
        return_annotation=signature.empty,
    )
    raise InvalidParameterError(
        f"The parameters of Manifest.{setter} must match {_name(func)}{plain}: {problem}. "
        f"Got {dict(params)!r} instead."
    )


def _accepts_positional(func: Callable[..., Any]) -> bool:
    try:
        parameters = inspect.signature(func).parameters.values()
    except (TypeError, ValueError):
        return True
    positional = (
        inspect.Parameter.POSITIONAL_ONLY,
        inspect.Parameter.POSITIONAL_OR_KEYWORD,
        inspect.Parameter.VAR_POSITIONAL,
    )
    return any(parameter.kind in positional for parameter in parameters)


def _check_frame(method: str, data: Any) -> None:
    if not isinstance(data, pd.DataFrame):
        _fail(method, "data", "a pandas DataFrame", data)
    if DATETIME_COLUMN not in data.columns:
        raise InvalidParameterError(
            f"The data passed to Manifest.{method} needs a {DATETIME_COLUMN!r} column; "
            f"columns: {list(data.columns)}."
        )
    if not data[DATETIME_COLUMN].is_monotonic_increasing:
        raise InvalidParameterError(
            f"The data passed to Manifest.{method} must be sorted by {DATETIME_COLUMN!r}, "
            "oldest first: the split is sequential."
        )


def _scale(scaler: Any, features: pd.DataFrame) -> pd.DataFrame:
    if scaler is None or features.empty:
        return features
    values = scaler.transform(features)
    return pd.DataFrame(
        np.asarray(values, dtype=float), index=features.index, columns=features.columns
    )


def _iso(value: Any) -> str:
    return value.isoformat() if hasattr(value, "isoformat") else str(value)


def _name(obj: Any) -> str:
    return getattr(obj, "__qualname__", None) or type(obj).__qualname__


def _describe(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else f"a {type(value).__name__}"


def _fail(method: str, name: str, expected: str, got: Any) -> NoReturn:
    raise InvalidParameterError(
        f"The {name!r} parameter of Manifest.{method} must be {expected}. "
        f"Got {_describe(got)} instead."
    )
