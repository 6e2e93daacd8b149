"""Log: read an experiment's study back as a researcher's table, statistics and plots.

A ``Log`` is a snapshot of the study taken when it is created: build a new one to see rounds
finished since. Reading a study never imports anything: parameter values are the readable
tokens the study stores (``sklearn.preprocessing.StandardScaler``), unless the SFD is given
(``sfd=``, or the loop that ran it) and its parameter space is the study's, in which case they
are decoded to the real objects. Values are never snapped to the SFD's lists: a trial another
client added shows what it holds, flagged in the ``foreign`` column (see ``study_reader``).
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import optuna
import pandas as pd
from optuna.storages import InMemoryStorage
from optuna.study import StudyDirection
from optuna.trial import FrozenTrial, TrialState, create_trial

from limen.adapters.leases import OWNER
from limen.adapters.storage import limen_storage_of
from limen.adapters.trials import ATTEMPT, EXECUTION_TIME, is_finished_round
from limen.errors import InvalidParameterError, MissingDependencyError, NoRoundsError
from limen.experiment.experiment_source import ExperimentSource, resolve_experiment
from limen.experiment.identity import value_token
from limen.experiment.round_warnings import convergence_report
from limen.experiment.study_reader import StudyReader, study_codec
from limen.log import trading
from limen.log.plots import PLOT_KINDS, write_plot
from limen.metrics.correlation import bootstrap_correlations, rowwise_correlation
from limen.utils.validation import InstanceOf, Interval, Predicate, validate_params
from limen.utils.values import is_number

if TYPE_CHECKING:
    from limen.experiment.experiment_core import UniversalExperimentLoop

__all__ = [
    "CORRELATION_METHODS",
    "DEFAULT_HEADS",
    "EXPORT_FORMATS",
    "LOG_CONSTRAINTS",
    "RATE_WINDOW",
    "STATES",
    "Log",
    "Progress",
    "WorkerActivity",
]

logger = logging.getLogger(__name__)

DEFAULT_HEADS = (0.99, 0.75, 0.5, 0.25, 0.01)
CORRELATION_METHODS = ("spearman", "pearson")
EXPORT_FORMATS = ("csv", "parquet")
RATE_WINDOW = 100
STATES = ("COMPLETE", "PRUNED", "FAIL", "RUNNING", "WAITING")


def _loop_or_path(value: Any) -> bool:
    if hasattr(value, "study") and hasattr(value, "sfd"):
        return True
    if isinstance(value, ExperimentSource):
        return True
    return isinstance(value, os.PathLike) or (isinstance(value, str) and bool(value.strip()))


#: What each parameter of ``Log()`` accepts.
LOG_CONSTRAINTS: dict[str, list[Any]] = {
    "source": [
        Predicate(
            _loop_or_path,
            "a UniversalExperimentLoop that ran, an experiment directory, a storage URL or "
            "an ExperimentSource",
        )
    ],
    "study_name": [InstanceOf(str, "a str"), None],
    "data": [InstanceOf(pd.DataFrame, "a pandas DataFrame of raw bars"), None],
}


@dataclass(frozen=True)
class WorkerActivity:
    """What one worker process did in the study.

    Attributes:
        host: The worker's host name.
        pid: Its process id.
        finished: Rounds it finished.
        running: Rounds it runs now.
        rounds_per_minute: Its rate between its first start and its last finished round.
        last_seen: Its latest round start or finish.
        last_heartbeat: The latest lease heartbeat of a round it runs now (None when it runs
            none, or the storage keeps no heartbeats).
    """

    host: str
    pid: int | None
    finished: int
    running: int
    rounds_per_minute: float | None
    last_seen: datetime | None
    last_heartbeat: datetime | None = None


@dataclass(frozen=True)
class Progress:
    """How far an experiment is.

    Attributes:
        states: Rounds by state (``COMPLETE``, ``PRUNED``, ``FAIL``, ``RUNNING``, ``WAITING``);
            attempts that reached no outcome are counted in ``interrupted`` instead.
        interrupted: Attempts stopped before an outcome (their parameters run again).
        finished: Rounds whose outcome is known (they count towards the target).
        target: The number of finished rounds the experiment was asked for, when recorded.
        rounds_per_minute: Wall-clock rate over the last (up to 100) finished rounds.
        mean_execution_time: Mean seconds per finished round.
        eta_seconds: Time left at that rate (from the mean execution time when there is no
            rate); 0 when the target is reached; None when unknown.
    """

    states: dict[str, int]
    interrupted: int
    finished: int
    target: int | None
    rounds_per_minute: float | None
    mean_execution_time: float | None
    eta_seconds: float | None


class Log:
    """Analysis of an experiment: decoded log, best rounds, correlations, importance, plots.

    Args:
        source: A ``UniversalExperimentLoop`` after ``run()``, an experiment directory, or a
            storage URL (with ``study_name`` when it holds several studies).
        study_name: The study's name, when ``source`` is a URL or to override the directory's.
        sfd: The SFD module, to decode parameters to real objects. Without it nothing is
            imported: parameters are the tokens the study stores.
        data: The raw bars the experiment ran on, for the trading outcomes
            (``experiment_backtest_results``, ``experiment_confusion_metrics``). Default: the
            loop's data, else the SFD manifest's data source.
    """

    def __init__(
        self,
        source: UniversalExperimentLoop | str | os.PathLike[str] | ExperimentSource,
        study_name: str | None = None,
        *,
        sfd: Any = None,
        data: pd.DataFrame | None = None,
    ) -> None:
        validate_params(
            LOG_CONSTRAINTS,
            {"source": source, "study_name": study_name, "data": data},
            "Log",
        )
        if hasattr(source, "study") and hasattr(source, "sfd"):
            if source.study is None:
                raise InvalidParameterError(
                    "The UniversalExperimentLoop given to Log has not run yet: call run() first, "
                    "or pass its experiment directory."
                )
            self.study: optuna.Study = source.study
            self.directory: Path | None = source.results_dir
            sfd = source.sfd if sfd is None else sfd
            data = source.data if data is None else data
        else:
            located = resolve_experiment(source, study_name, read_only=True)
            self.study = located.load_study()
            self.directory = located.directory
        codec = None if sfd is None else study_codec(sfd, self.study)
        if sfd is not None and codec is None:
            logger.warning(
                "The parameter space of the SFD differs from the study's: parameters are shown "
                "as the tokens the study stores."
            )
        self.decoded = codec is not None
        self.reader = StudyReader(self.study, codec)
        self.record = self.reader.record
        self.trials: tuple[FrozenTrial, ...] = self.reader.trials
        self.experiment_log: pd.DataFrame = self.reader.experiment_log()
        self.param_names: list[str] = list(dict.fromkeys(k for t in self.trials for k in t.params))
        self.sfd = sfd
        self._data = data
        self._round_records: list[dict[str, Any]] | None = None
        self._metric_studies: dict[tuple[str, str], optuna.Study] = {}

    # -------------------------------------------------------------------------- tables

    def best(
        self, n: int = 5, metric: str | None = None, direction: str | None = None
    ) -> pd.DataFrame:
        """The ``n`` best completed rounds as rows of ``experiment_log``, best first.

        ``metric`` defaults to the study's (first) objective; ``direction`` is needed only for
        a metric that is not an objective.
        """
        validate_params({"n": [Interval(int, 1, None)]}, {"n": n}, "Log.best")
        metric, direction = self.reader.metric(metric, direction, "Log.best")
        ranked = self.reader.rank(metric, direction)
        if not ranked:
            raise NoRoundsError(
                f"Study {self.study.study_name!r} has no completed round with a numeric "
                f"{metric!r}: run the experiment first."
            )
        numbers = [trial.number for trial in ranked[:n]]
        rows = self.experiment_log.set_index("_round_index", drop=False)
        return rows.loc[numbers].reset_index(drop=True)

    def readable_log(self) -> pd.DataFrame:
        """``experiment_log`` with every object value as its readable token (for files)."""
        frame = self.experiment_log.copy()
        for column in frame.columns:
            if frame[column].dtype == object:
                frame[column] = frame[column].map(
                    lambda v: None if _missing(v) else str(value_token(v))
                )
        return frame

    def export(self, path: str | os.PathLike[str], format: str | None = None) -> Path:
        """Write ``readable_log()`` to ``path`` as ``csv`` or ``parquet`` (default: suffix)."""
        path = Path(path)
        fmt = format or path.suffix.lstrip(".").lower()
        if fmt not in EXPORT_FORMATS:
            raise InvalidParameterError(
                f"The 'format' parameter of Log.export must be one of {list(EXPORT_FORMATS)} "
                f"(or the suffix of path). Got {fmt!r} instead."
            )
        frame = self.readable_log()
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp")
        try:
            if fmt == "csv":
                frame.to_csv(tmp, index=False)
            else:
                frame.to_parquet(tmp, index=False)
        except ImportError as exc:
            tmp.unlink(missing_ok=True)
            raise MissingDependencyError(
                f"Writing parquet needs pyarrow ({exc}): pip install 'limen[parquet]', or "
                "export as csv."
            ) from exc
        os.replace(tmp, path)
        return path

    # ------------------------------------------------------------------ trading outcomes

    def permutation_prediction_performance(self, round_index: int) -> pd.DataFrame:
        """One round's test bars: ``datetime, open, close, price_change, next_return,
        predictions`` and ``actuals`` (replayed from the manifest when it can be)."""
        return trading.prediction_frame(self, round_index)

    def permutation_confusion_metrics(
        self, x: str, round_index: int, **options: Any
    ) -> pd.DataFrame:
        """One round's confusion metrics against column ``x`` (see ``trading``)."""
        return trading.confusion_metrics(
            self.permutation_prediction_performance(round_index), x, **options
        )

    def experiment_confusion_metrics(self, x: str = "price_change", **options: Any) -> pd.DataFrame:
        """Confusion metrics of every successful round against ``x``: one row per round."""
        return trading.experiment_confusion_metrics(self, x, **options)

    def experiment_backtest_results(self, cost_bps: float | None = None) -> pd.DataFrame:
        """A next-bar long/flat backtest of every successful round's test predictions.

        One row per round: gross and net return, Sharpe per bar, max drawdown, trade count, win
        rate. ``cost_bps`` per round trip defaults to the manifest's ``set_backtest_cost``.
        """
        return trading.experiment_backtest_results(self, cost_bps)

    def trading_outcomes(self) -> tuple[pd.DataFrame | None, pd.DataFrame | None]:
        """``(experiment_confusion_metrics('price_change'), experiment_backtest_results())``,
        or Nones (with a warning) when the rounds are not binary decoders on klines."""
        return trading.trading_outcomes(self)

    # ---------------------------------------------------------------------- statistics

    def convergence_report(self) -> dict[str, Any]:
        """Rounds whose model warned that it did not converge, and the values behind them.

        The report a run writes to ``convergence_report.json``: counts and shares of rounds
        with a convergence warning (rounds stored without the evidence count as unavailable),
        the most frequent warning messages, and for each parameter value seen with such a
        warning its share of warned rounds.
        """
        return convergence_report(self.experiment_log, parameter_columns=self.param_names)

    def parameter_correlation(
        self,
        metric: str,
        *,
        cols_to_drop: Sequence[str] | None = None,
        sort_key: str | None = None,
        sort_ascending: bool | None = None,
        heads: Sequence[float | int] | None = None,
        method: str = "spearman",
        n_boot: int = 300,
        min_n: int = 10,
        random_state: int = 0,
    ) -> pd.DataFrame:
        """How each parameter correlates with ``metric`` among the best rounds, with bootstrap CIs.

        Rounds with a value of ``metric`` are sorted by ``sort_key`` (default ``metric``; best
        first: descending, or ascending for a minimised objective unless ``sort_ascending``
        says otherwise). Each head is a cohort of the top rounds: a float in (0, 1] is a share,
        an int a count; cohorts smaller than ``min_n`` are skipped. Within a cohort each
        parameter's correlation with the metric is computed, then re-computed on ``n_boot``
        bootstrap resamples. Numeric parameters enter as they are; any other parameter as one
        0/1 column per value (``scaler=sklearn.preprocessing.StandardScaler``); parameters
        constant over the rounds are left out.

        Returns:
            Indexed by ``(cohort_pct, feature)``: ``n_rows, corr, corr_med, ci_lo, ci_hi,
            sign_stability`` (share of resamples whose sign agrees with ``corr_med``); cohorts
            in ``heads`` order, features by ``|corr_med|``, largest first.
        """
        owner = "Log.parameter_correlation"
        if method not in CORRELATION_METHODS:
            raise InvalidParameterError(
                f"The 'method' parameter of {owner} must be one of {list(CORRELATION_METHODS)}. "
                f"Got {method!r} instead."
            )
        for name, value, low in (("n_boot", n_boot, 1), ("min_n", min_n, 2)):
            validate_params({name: [Interval(int, low, None)]}, {name: value}, owner)
        log = self.experiment_log
        key = sort_key or metric
        for name, column in (("metric", metric), ("sort_key", key)):
            if column not in log.columns:
                raise InvalidParameterError(
                    f"The {name!r} parameter of {owner} names {column!r}, which is not a column "
                    f"of experiment_log; columns: {list(log.columns)}."
                )
        if sort_ascending is None:
            sort_ascending = dict(self.record.objective).get(key) == "minimize"
        features = _drop_columns(self._parameter_features(), cols_to_drop or ())
        frame = features.assign(
            __metric=pd.to_numeric(log[metric], errors="coerce"),
            __key=pd.to_numeric(log[key], errors="coerce"),
        ).dropna(subset=["__metric"])
        if frame.empty:
            raise NoRoundsError(
                f"{owner}: no rows remain after dropping rounds without a numeric {metric!r}."
            )
        frame = frame.sort_values("__key", ascending=sort_ascending, kind="mergesort")
        names = [c for c in features.columns if frame[c].nunique(dropna=True) > 1]
        if not names:
            raise NoRoundsError(
                f"{owner}: no parameter varies over the rounds with a numeric {metric!r}."
            )
        rng = np.random.default_rng(random_state)
        total = len(frame)
        blocks = []
        for size in _cohort_sizes(heads, total, owner):
            if size < min_n:
                continue
            cohort = frame.head(size)
            block = _cohort_correlations(cohort, names, method, n_boot, rng)
            if not block.empty:
                block.insert(0, "cohort_pct", round(100 * size / total))
                blocks.append(block)
        if not blocks:
            raise NoRoundsError(
                f"{owner}: no cohort produced results ({total} rounds; check heads and min_n)."
            )
        return pd.concat(blocks).set_index(["cohort_pct", "feature"])

    def parameter_importance(
        self,
        metric: str | None = None,
        direction: str | None = None,
        *,
        evaluator: optuna.importance.BaseImportanceEvaluator | None = None,
    ) -> pd.Series:
        """Each parameter's importance for ``metric`` by Optuna's evaluator (sums to 1).

        ``metric`` defaults to the study's objective; ``evaluator`` to Optuna's default
        (PED-ANOVA); pass ``optuna.importance.FanovaImportanceEvaluator()`` for fANOVA.
        """
        study, _ = self._metric_study(metric, direction, "Log.parameter_importance")
        importances = optuna.importance.get_param_importances(study, evaluator=evaluator)
        return pd.Series(importances, name="importance", dtype=float)

    def progress(self) -> Progress:
        """Rounds by state, the target, the rate and the time left."""
        states = dict.fromkeys(STATES, 0)
        interrupted = 0
        for trial in self.trials:
            if trial.state == TrialState.FAIL and ATTEMPT in trial.user_attrs:
                interrupted += 1
            else:
                states[trial.state.name] = states.get(trial.state.name, 0) + 1
        finished = [t for t in self.trials if is_finished_round(t)]
        target = self.record.n_permutations
        times = [
            float(t.user_attrs[EXECUTION_TIME])
            for t in finished
            if isinstance(t.user_attrs.get(EXECUTION_TIME), int | float)
        ]
        mean_time = sum(times) / len(times) if times else None
        rate = _recent_rate(finished)
        eta = None
        if isinstance(target, int):
            remaining = max(target - len(finished), 0)
            if remaining == 0:
                eta = 0.0
            elif rate:
                eta = remaining / rate * 60
            elif mean_time is not None:
                eta = remaining * mean_time
        return Progress(states, interrupted, len(finished), target, rate, mean_time, eta)

    def workers(self) -> list[WorkerActivity]:
        """Rounds per worker process (the ``limen:owner`` of each trial), busiest first."""
        groups: dict[tuple[str, Any], list[FrozenTrial]] = {}
        for trial in self.trials:
            owner = trial.system_attrs.get(OWNER)
            if isinstance(owner, dict):
                key = (str(owner.get("host")), owner.get("pid"))
                groups.setdefault(key, []).append(trial)
        beats = self._heartbeats()
        activity = [
            _worker_activity(host, pid, trials, beats) for (host, pid), trials in groups.items()
        ]
        return sorted(activity, key=lambda a: (-a.finished, a.host, str(a.pid)))

    def _heartbeats(self) -> dict[int, datetime]:
        """The lease heartbeat of each RUNNING trial, by trial id (a study in a LimenStorage)."""
        running = {t._trial_id for t in self.trials if t.state == TrialState.RUNNING}
        storage = limen_storage_of(self.study._storage)
        if not running or storage is None:
            return {}
        beats = storage.heartbeats(self.study._study_id)
        return {trial_id: beat for trial_id, beat in beats.items() if trial_id in running}

    # --------------------------------------------------------------------------- plots

    def plot(
        self,
        kind: str,
        path: str | os.PathLike[str],
        metric: str | None = None,
        direction: str | None = None,
    ) -> Path:
        """Write one plot as a PNG file and return its path.

        ``kind`` is ``optimization_history``, ``param_importances``, ``parallel_coordinate``
        or ``slice``; ``metric`` defaults to the study's objective.
        """
        study, name = self._metric_study(metric, direction, "Log.plot")
        return write_plot(study, kind, Path(path), name)

    def plot_all(
        self,
        out_dir: str | os.PathLike[str],
        metric: str | None = None,
        direction: str | None = None,
    ) -> dict[str, Path]:
        """Write every plot as ``<out_dir>/<kind>.png``; returns kind -> path."""
        out = Path(out_dir)
        return {
            kind: self.plot(kind, out / f"{kind}.png", metric, direction) for kind in PLOT_KINDS
        }

    # ------------------------------------------------------------------------ internals

    def _metric_study(
        self, metric: str | None, direction: str | None, owner: str
    ) -> tuple[optuna.Study, str]:
        """A single-objective study whose values are ``metric``: the study itself if it is."""
        metric, direction = self.reader.metric(metric, direction, owner)
        if not self.reader.rank(metric, direction):
            raise NoRoundsError(
                f"{owner}: study {self.study.study_name!r} has no completed round with a "
                f"numeric {metric!r}: run the experiment first."
            )
        objective = self.record.objective
        if len(self.study.directions) == 1 and objective and objective[0] == (metric, direction):
            return self.study, metric
        cached = self._metric_studies.get((metric, direction))
        if cached is not None:
            return cached, metric
        # In trial order, so the optimisation history reads as the study ran.
        ranked = {r.number for r in self.reader.rank(metric, direction)}
        rounds = [
            create_trial(
                params=r.trial.params, distributions=r.trial.distributions, value=r.metrics[metric]
            )
            for r in self.reader.rounds
            if r.number in ranked
        ]
        storage = InMemoryStorage()
        name = f"{self.study.study_name}:{metric}"
        storage.create_new_study([StudyDirection[direction.upper()]], name)
        study = optuna.Study(study_name=name, storage=storage)
        study.add_trials(rounds)
        self._metric_studies[(metric, direction)] = study
        return study, metric

    def _parameter_features(self) -> pd.DataFrame:
        """Parameters as numeric columns: numbers as they are, other values one-hot."""
        log = self.experiment_log
        columns: dict[str, pd.Series] = {}
        for name in self.param_names:
            values = log[name]
            present = [v for v in values if not _missing(v)]
            if present and all(is_number(v) for v in present):
                columns[name] = pd.to_numeric(values, errors="coerce").astype(float)
                if len(present) < len(values):
                    columns[f"{name}=None"] = values.map(_missing).astype(float)
                continue
            tokens = values.map(lambda v: "None" if _missing(v) else str(value_token(v)))
            for token in dict.fromkeys(tokens):
                columns[f"{name}={token}"] = (tokens == token).astype(float)
        return pd.DataFrame(columns, index=log.index)


def _missing(value: Any) -> bool:
    return value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value))


def _drop_columns(features: pd.DataFrame, drop: Sequence[str]) -> pd.DataFrame:
    """``features`` without the named columns or parameters (all of a parameter's values)."""
    doomed = [c for c in features.columns if c in drop or c.split("=", 1)[0] in drop]
    return features.drop(columns=doomed)


def _cohort_sizes(heads: Sequence[float | int] | None, total: int, owner: str) -> list[int]:
    sizes = []
    for head in DEFAULT_HEADS if heads is None else heads:
        if isinstance(head, bool) or not isinstance(head, int | float) or head <= 0:
            raise InvalidParameterError(
                f"The 'heads' parameter of {owner} must hold shares in (0, 1] or counts >= 1. "
                f"Got {head!r} instead."
            )
        size = max(int(total * head), 1) if isinstance(head, float) and head <= 1 else int(head)
        sizes.append(min(size, total))
    return sizes


def _cohort_correlations(
    cohort: pd.DataFrame,
    names: list[str],
    method: str,
    n_boot: int,
    rng: np.random.Generator,
) -> pd.DataFrame:
    metric = cohort["__metric"].to_numpy(dtype=float)
    rows = []
    for name in names:
        x = cohort[name].to_numpy(dtype=float)
        valid = np.isfinite(x) & np.isfinite(metric)
        xv, yv = x[valid], metric[valid]
        if len(xv) < 3 or np.ptp(xv) == 0 or np.ptp(yv) == 0:
            continue
        corr = float(rowwise_correlation(xv[None, :], yv[None, :], method)[0])
        boots = bootstrap_correlations(xv, yv, method=method, n_boot=n_boot, rng=rng)
        median = float(np.median(boots)) if boots.size else math.nan
        rows.append(
            {
                "feature": name,
                "n_rows": len(xv),
                "corr": corr,
                "corr_med": median,
                "ci_lo": float(np.percentile(boots, 2.5)) if boots.size else math.nan,
                "ci_hi": float(np.percentile(boots, 97.5)) if boots.size else math.nan,
                "sign_stability": float(np.mean(np.sign(boots) == np.sign(median)))
                if boots.size
                else math.nan,
            }
        )
    frame = pd.DataFrame(rows)
    if frame.empty:
        return frame
    order = frame["corr_med"].abs().sort_values(ascending=False, kind="mergesort").index
    return frame.loc[order].reset_index(drop=True)


def _worker_activity(
    host: str, pid: Any, trials: Sequence[FrozenTrial], beats: dict[int, datetime]
) -> WorkerActivity:
    finished = [t for t in trials if is_finished_round(t)]
    starts = [t.datetime_start for t in trials if t.datetime_start is not None]
    ends = [t.datetime_complete for t in finished if t.datetime_complete is not None]
    rate = None
    if starts and ends:
        minutes = (max(ends) - min(starts)).total_seconds() / 60
        rate = len(finished) / minutes if minutes > 0 else None
    moments = [*starts, *ends]
    heartbeats = [beats[t._trial_id] for t in trials if t._trial_id in beats]
    return WorkerActivity(
        host=host,
        pid=pid if isinstance(pid, int) else None,
        finished=len(finished),
        running=sum(t.state == TrialState.RUNNING for t in trials),
        rounds_per_minute=rate,
        last_seen=max(moments) if moments else None,
        last_heartbeat=max(heartbeats) if heartbeats else None,
    )


def _recent_rate(finished: Sequence[FrozenTrial]) -> float | None:
    """Finished rounds per minute of wall-clock time over the most recent ones."""
    timed = sorted(
        (t for t in finished if t.datetime_start and t.datetime_complete),
        key=lambda t: t.datetime_complete,
    )[-RATE_WINDOW:]
    if len(timed) < 2:
        return None
    start: datetime = min(t.datetime_start for t in timed)
    span = (timed[-1].datetime_complete - start).total_seconds()
    return len(timed) / span * 60 if span > 0 else None
