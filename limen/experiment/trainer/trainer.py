"""Trainer: rebuild an experiment's winning rounds, prove the rebuild, refit them as Sensors.

Pass 1 re-runs each round's preparation and model with its stored parameters on the
experiment's data and compares every numeric metric with the value the study recorded: a
round that does not reproduce is refused (``ReconstructionError``), because a Sensor built
from it would not be the model that was measured. Pass 2 refits the proven rounds on all the
data (split ``(1, 0, 0)``) and wraps each in a ``Sensor``.
"""

from __future__ import annotations

import inspect
import json
import logging
import math
import os
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from types import ModuleType
from typing import Any

import optuna
import pandas as pd
from optuna.trial import FrozenTrial, TrialState

from limen.adapters.distributions import DomainCodec
from limen.adapters.trials import ERROR_MESSAGE, ERROR_TYPE, is_finished_round
from limen.errors import InvalidParameterError, NoRoundsError
from limen.experiment.errors import RoundNotFoundError
from limen.experiment.experiment_source import ExperimentSource, resolve_experiment
from limen.experiment.identity import data_fingerprint, round_id, source_hash, space_hash
from limen.experiment.manifest_core import DATETIME_COLUMN, Manifest
from limen.experiment.study_reader import StoredRound, StudyReader
from limen.experiment.study_record import StudyRecord
from limen.experiment.trainer.errors import MetricMismatch, ReconstructionError, TrainerError
from limen.experiment.trainer.sensor import Sensor, library_versions
from limen.sfd.loader import check_source, recorded_sfd
from limen.utils.validation import InstanceOf, Interval, Predicate, StrOptions, validate_params
from limen.utils.values import is_number

__all__ = [
    "ABS_TOL",
    "MIN_ID_PREFIX",
    "REFIT_SPLIT",
    "STOCHASTIC_REL_TOL",
    "TRAINER_CONSTRAINTS",
    "Trainer",
    "compare_metrics",
]

logger = logging.getLogger(__name__)

ABS_TOL = 1e-6
STOCHASTIC_REL_TOL = 0.01
MIN_ID_PREFIX = 8
REFIT_SPLIT = (1, 0, 0)

#: What each parameter of ``Trainer()`` accepts.
TRAINER_CONSTRAINTS: dict[str, list[Any]] = {
    "experiment_dir_or_storage": ["path", ExperimentSource],
    "study_name": [InstanceOf(str, "a str"), None],
    "data": [InstanceOf(pd.DataFrame, "a pandas DataFrame of raw bars"), None],
    "sfd": [Predicate(lambda v: callable(getattr(v, "params", None)), "an SFD module"), None],
    "context_params": [InstanceOf(Mapping, "a dict"), None],
    "force": ["boolean"],
}


class Trainer:
    """Rebuild an experiment's rounds and turn them into Sensors.

    Args:
        experiment_dir_or_storage: The experiment directory (its ``metadata.json`` names the
            study and the storage), or a storage URL such as ``sqlite:///runs/x/study.db``.
            A storage with a password is never written to disk: pass its URL.
        study_name: The study, when the storage holds several (default: the directory's).
        data: The raw data the experiment ran on. Default: the manifest's data source (its
            test data source when the experiment ran with ``test_mode=True``).
        sfd: The SFD module itself (the code you trust to rebuild the rounds). Default: the
            module the study recorded, only when that is a plain module name importable from
            this environment (never a file path from the database).
        context_params: The ``context_params`` the experiment ran with. Default: the values
            the study recorded, which are exact for numbers, strings, bools and None; pass
            them when they hold functions, classes or objects.
        force: Use the SFD even when its source differs from the one the study recorded
            (``SFDSourceMismatchError`` otherwise).

    Example:
        >>> trainer = Trainer("limen-runs/demo")
        >>> sensors = trainer.train(trainer.best(2))
        >>> sensors[0].save("demo-best.sensor")
    """

    def __init__(
        self,
        experiment_dir_or_storage: str | os.PathLike[str] | ExperimentSource,
        study_name: str | None = None,
        data: pd.DataFrame | None = None,
        *,
        sfd: ModuleType | Any | None = None,
        context_params: Mapping[str, Any] | None = None,
        force: bool = False,
    ) -> None:
        validate_params(
            TRAINER_CONSTRAINTS,
            {
                "experiment_dir_or_storage": experiment_dir_or_storage,
                "study_name": study_name,
                "data": data,
                "sfd": sfd,
                "context_params": context_params,
                "force": force,
            },
            "Trainer",
        )
        self.source: ExperimentSource = resolve_experiment(
            experiment_dir_or_storage, study_name, read_only=True
        )
        self.study: optuna.Study = self.source.load_study()
        attrs = self.study.user_attrs
        self.record = StudyRecord.from_attrs(attrs)
        self.sfd_module: str | None = self.record.sfd_module
        if sfd is None:
            if not self.sfd_module:
                raise ValueError(
                    f"Study {self.study.study_name!r} was not created by Limen (it records no "
                    "SFD module): pass the SFD with sfd=..."
                )
            sfd = recorded_sfd(attrs, force=force)
        else:
            check_source(sfd, attrs, force=force)
        self.sfd = sfd
        self.manifest = _manifest_of(sfd)
        self.codec = DomainCodec(sfd.params())
        self.reader = StudyReader(self.study, self.codec)
        self.context_params = dict(
            self.record.contexts if context_params is None else context_params
        )
        #: The rounds the last ``best()`` passed over, each with the reason (``describe()``).
        self.skipped: list[StoredRound] = []
        self._data = data
        self._data_fingerprint: str | None = None

    @property
    def data(self) -> pd.DataFrame:
        """The raw data the rounds are rebuilt on (fetched once from the manifest if needed)."""
        if self._data is None:
            if self.record.test_mode and self.manifest.test_data_source_config is not None:
                self._data = self.manifest.fetch_test_data()
            elif self.manifest.data_source_config is not None:
                self._data = self.manifest.fetch_data()
            else:
                raise InvalidParameterError(
                    f"SFD {self.sfd_module!r} has no data source in its manifest: pass the data "
                    "the experiment ran on as Trainer(..., data=...)."
                )
        return self._data

    @property
    def data_fingerprint(self) -> str:
        """SHA-256 of the rebuild data (values, index, column names and dtypes)."""
        if self._data_fingerprint is None:
            self._data_fingerprint = data_fingerprint(self.data)
        return self._data_fingerprint

    # ---------------------------------------------------------------------------- select

    def best(
        self,
        n: int = 1,
        metric: str | None = None,
        direction: str | None = None,
        *,
        by: str | None = None,
    ) -> list[str]:
        """The ids of the ``n`` best completed rounds (fewer when the study has fewer).

        Args:
            n: How many rounds.
            metric: The metric to rank by; default the study's (first) objective.
            direction: ``'maximize'`` or ``'minimize'``; needed only for a metric that is not
                an objective of the study.
            by: ``'deflated_sharpe'`` ranks walk-forward rounds by their Deflated Sharpe Ratio
                from the experiment's ``acceptance_report.json`` (``limen accept DIR``).

        A round without a round id (a trial Limen did not write, whose parameters lie outside
        the parameter space) cannot be rebuilt: it is passed over with a warning naming it and
        why, and kept in ``self.skipped``.

        Raises:
            ValueError: the study has no completed round with a finite value of ``metric``, or
                ``by='deflated_sharpe'`` and no acceptance report exists.
        """
        validate_params(
            {"n": [Interval(int, 1, None)], "by": [StrOptions(["deflated_sharpe"]), None]},
            {"n": n, "by": by},
            "Trainer.best",
        )
        if by is not None:
            return self._best_by_report(n, by, metric)
        metric, direction = self.reader.metric(metric, direction, "Trainer.best")
        ranked = self.reader.rank(metric, direction)
        if not ranked:
            raise NoRoundsError(
                f"Study {self.study.study_name!r} has no completed round with a numeric "
                f"{metric!r} ({_state_counts(self.reader.trials)}): run the experiment first "
                "(UniversalExperimentLoop.run, or `limen run` / `limen resume`)."
            )
        chosen: list[StoredRound] = []
        self.skipped = []
        for stored in ranked:
            if len(chosen) == n:
                break
            (chosen if stored.round_id is not None else self.skipped).append(stored)
        for stored in self.skipped:
            logger.warning("Trainer.best skips %s It cannot be rebuilt.", stored.describe())
        if len(chosen) < n:
            logger.warning("Only %d completed rounds are ranked by %r.", len(chosen), metric)
        return [stored.round_id for stored in chosen]

    def _best_by_report(self, n: int, by: str, metric: str | None) -> list[str]:
        """Round ids ranked by the acceptance report's Deflated Sharpe Ratio, best first."""
        from limen.experiment.acceptance import ACCEPTANCE_JSON

        if by != "deflated_sharpe":
            raise InvalidParameterError(
                f"The 'by' parameter of Trainer.best must be 'deflated_sharpe' or None. "
                f"Got {by!r} instead."
            )
        if metric is not None:
            raise InvalidParameterError("Trainer.best takes metric= or by=, not both.")
        directory = self.source.directory
        path = None if directory is None else directory / ACCEPTANCE_JSON
        if path is None or not path.is_file():
            raise InvalidParameterError(
                "Trainer.best(by='deflated_sharpe') needs the experiment's acceptance report: "
                "run `limen accept DIR` (or limen.experiment.acceptance_report(DIR)) on a "
                "walk-forward experiment first."
            )
        rounds = json.loads(path.read_text(encoding="utf-8")).get("rounds") or {}
        scored = [
            (entry["deflated_sharpe_probability"], trial)
            for trial, entry in rounds.items()
            if entry.get("deflated_sharpe_probability") is not None
        ]
        if not scored:
            raise TrainerError(
                f"{path} has no round with a Deflated Sharpe Ratio (see its 'errors')."
            )
        scored.sort(key=lambda pair: -pair[0])
        return [trial for _, trial in scored[:n]]

    # ----------------------------------------------------------------------------- train

    def train(self, round_ids: str | Sequence[str], *, refit: bool = True) -> list[Sensor]:
        """Rebuild the rounds, check each against its stored metrics, and return Sensors.

        Every id is checked before any work starts, then every round is rebuilt and checked
        (pass 1) before any refit (pass 2), so a bad round fails fast.

        Args:
            round_ids: Round ids (64-hex, or a unique prefix of at least 8 characters), e.g.
                from ``best(n)`` or the ``id`` column of ``results.csv``.
            refit: Refit each round on all the data (split ``(1, 0, 0)``), as production
                models should be. With False the Sensor keeps the model of pass 1, fitted on
                the train split only.

        Raises:
            ValueError: an id is unknown, ambiguous, or names a round that did not complete.
            ReconstructionError: a round does not reproduce its stored metrics.
        """
        ids = [round_ids] if isinstance(round_ids, str) else list(round_ids)
        if not ids:
            raise InvalidParameterError(
                "The 'round_ids' parameter of Trainer.train is empty: pass ids."
            )
        found = [self._find(rid) for rid in ids]
        rebuilt = [self._reproduce(stored) for stored in found]
        return [
            self._sensor(stored, params, refit, model, fitted)
            for stored, (params, model, fitted) in zip(found, rebuilt, strict=True)
        ]

    def _find(self, rid: Any) -> StoredRound:
        if not isinstance(rid, str) or len(rid) < MIN_ID_PREFIX:
            raise InvalidParameterError(
                f"A round id must be a str of at least {MIN_ID_PREFIX} characters. Got {rid!r}; "
                "take ids from Trainer.best(n) or the 'id' column of results.csv."
            )
        rounds = self.reader.rounds
        matches = [r for r in rounds if r.round_id and r.round_id.startswith(rid.lower())]
        complete = {r.round_id: r for r in matches if r.trial.state == TrialState.COMPLETE}
        if len(complete) == 1:
            return next(iter(complete.values()))
        if len(complete) > 1:
            raise RoundNotFoundError(
                f"The round id prefix {rid!r} matches {len(complete)} rounds of study "
                f"{self.study.study_name!r}; give more characters."
            )
        finished = [r.trial for r in matches if is_finished_round(r.trial)]
        if finished:
            trial = finished[-1]
            error = trial.user_attrs.get(ERROR_TYPE)
            detail = f": {error}: {trial.user_attrs.get(ERROR_MESSAGE)}" if error else ""
            raise RoundNotFoundError(
                f"Round {rid} (trial {trial.number}) ended {trial.state.name}{detail}. Only "
                "completed rounds can be trained; pick another with Trainer.best(n)."
            )
        n_complete = sum(r.trial.state == TrialState.COMPLETE for r in rounds)
        unidentified = self.reader.unidentified()
        note = ""
        if unidentified:
            note = " Trials without a round id cannot be trained: " + "; ".join(
                r.describe() for r in unidentified
            )
        raise RoundNotFoundError(
            f"Round id {rid!r} is not a round of study {self.study.study_name!r} in "
            f"{self.source.storage_label} ({n_complete} completed rounds). Take ids from "
            f"Trainer.best(n) or the 'id' column of results.csv.{note}"
        )

    def round_params(self, stored: StoredRound) -> dict[str, Any]:
        """The real parameter values of a stored round (plus the context parameters)."""
        trial, rid = stored.trial, stored.round_id
        try:
            params = self.codec.decode(trial.params)
        except (KeyError, ValueError) as exc:
            raise TrainerError(
                f"Round {rid} (trial {trial.number}) cannot be decoded with the current "
                f"params() of SFD {self.sfd_module!r}: {exc}. The parameter space changed "
                "since the run; restore the SFD that ran the experiment."
            ) from exc
        if round_id(params) != rid:
            raise TrainerError(
                f"Round {rid} (trial {trial.number}) decodes to other values with the current "
                f"params() of SFD {self.sfd_module!r} (id {round_id(params)}): the parameter "
                "space changed since the run; restore the SFD that ran the experiment."
            )
        return {**params, **self.context_params}

    def _reproduce(self, stored: StoredRound) -> tuple[dict[str, Any], Any, dict[str, Any]]:
        """Pass 1: re-run prep + model and compare the metrics; the params, model, fitted."""
        params = self.round_params(stored)
        trial, rid = stored.trial, stored.round_id
        try:
            data_dict = self.manifest.prepare_data(self.data, params)
            results = self.manifest.run_model(data_dict, params)
        except Exception as exc:
            exc.add_note(f"Raised while rebuilding round {rid} (trial {trial.number}).")
            raise
        stochastic = self.manifest.stochastic
        mismatches = compare_metrics(stored.metrics, results, stochastic=stochastic)
        if mismatches:
            raise ReconstructionError(rid, trial.number, mismatches, self._causes(stochastic))
        if self._sfd_edited():
            logger.warning(
                "Round %s reproduces its metrics, but the SFD source changed since the run.", rid
            )
        return params, results.get("_model"), data_dict["_fitted_params"]

    def _sensor(
        self,
        stored: StoredRound,
        params: dict[str, Any],
        refit: bool,
        model: Any,
        fitted: dict[str, Any],
    ) -> Sensor:
        """Pass 2: refit on all the data (unless ``refit`` is False); wrap it in a Sensor."""
        manifest = self.manifest
        if refit:
            manifest = _manifest_of(self.sfd).drop_walk_forward().set_split_config(*REFIT_SPLIT)
            data_dict = manifest.prepare_data(self.data, params)
            results = manifest.run_model(data_dict, params)
            model, fitted = results.get("_model"), data_dict["_fitted_params"]
            n_rows = len(data_dict["x_train"])
        else:
            n_rows = None
        if model is None:
            raise TrainerError(
                f"The model function of SFD {self.sfd_module!r} returned no '_model': a Sensor "
                "needs the fitted estimator. Return it as results['_model'] (the helpers in "
                "limen.sfd.results do)."
            )
        return Sensor(
            manifest=manifest,
            model=model,
            fitted_params=fitted,
            round_params=params,
            round_id=stored.round_id,
            metrics=dict(stored.metrics),
            provenance=self._provenance(stored, refit, n_rows),
        )

    # ------------------------------------------------------------------------ diagnosis

    def _sfd_edited(self) -> bool:
        stored = self.record.sfd_source_hash
        current = source_hash(self.sfd)
        return bool(stored and current and stored != current)

    def _causes(self, stochastic: bool) -> list[str]:
        """Why a round may not reproduce: the causes detected first, then the possible ones."""
        detected, possible = [], []
        stored_hash = self.record.sfd_source_hash
        if self._sfd_edited():
            detected.append(
                f"the SFD was edited since the run: {_source_path(self.sfd)} has SHA-256 "
                f"{source_hash(self.sfd)[:16]}..., the study recorded {stored_hash[:16]}...; "
                "restore the version that ran (e.g. from version control) or run a new "
                "experiment"
            )
        elif stored_hash is None:
            possible.append("the SFD was edited since the run (the study recorded no source hash)")
        if space_hash(self.sfd.params()) != self.record.space_hash:
            detected.append("the SFD's params() changed since the run (parameter-space hash)")
        stored_data = self.record.data_fingerprint
        if stored_data and stored_data != self.data_fingerprint:
            detected.append(
                "the data differ from the run's (data fingerprint): pass the data the "
                "experiment ran on as Trainer(..., data=...)"
            )
        elif not stored_data:
            possible.append(
                "the data differ from the run's (pass the exact data to Trainer(..., data=...); "
                "a data source may return other rows today)"
            )
        if stochastic:
            detected.append(
                "the model is declared stochastic (Manifest.with_model(..., stochastic=True)) "
                "and its metrics moved beyond the tolerance (1e-6, or "
                f"{STOCHASTIC_REL_TOL:.0%} of max(|stored|, |rebuilt|, 1)): seed its "
                "randomness (e.g. random_state) so a round can be reproduced"
            )
        possible.append(
            "non-deterministic preparation or model (unseeded randomness, results that depend "
            "on thread count or library versions)"
        )
        possible.append("the stored metrics were changed in the study after the run")
        return [f"detected: {cause}" for cause in detected] + [
            f"possible: {cause}" for cause in possible
        ]

    def _provenance(self, stored: StoredRound, refit: bool, n_rows: int | None) -> dict[str, Any]:
        trial, data = stored.trial, self.data
        times = data[DATETIME_COLUMN] if DATETIME_COLUMN in data.columns else None
        return {
            "sfd_module": self.sfd_module or getattr(self.sfd, "__name__", None),
            "sfd_source_hash": source_hash(self.sfd),
            "sfd_source_hash_at_run": self.record.sfd_source_hash,
            "study_name": self.study.study_name,
            "storage": self.source.storage_label,
            "trial_number": trial.number,
            "round_id": stored.round_id,
            "objective": [list(pair) for pair in self.record.objective] or None,
            "trained_on": "all data, split (1, 0, 0)" if refit else "the run's train split",
            "training_rows": n_rows,
            "data_fingerprint": self.data_fingerprint,
            "data_rows": len(data),
            "data_start": None if times is None or times.empty else str(times.iloc[0]),
            "data_end": None if times is None or times.empty else str(times.iloc[-1]),
            "versions": library_versions(),
            "created_at": datetime.now(UTC).isoformat(),
        }


def compare_metrics(
    stored: Mapping[str, Any], rebuilt: Mapping[str, Any], *, stochastic: bool = False
) -> list[MetricMismatch]:
    """The numeric metrics of ``stored`` that ``rebuilt`` does not reproduce.

    Two values match when they differ by at most ``1e-6``; for a stochastic model also when
    the difference is at most 1% of ``max(|stored|, |rebuilt|, 1)``. NaN matches NaN. A
    metric missing from ``rebuilt`` is a mismatch; non-numeric stored values are ignored.
    """
    mismatches = []
    for name, old in stored.items():
        if not is_number(old):
            continue
        new = rebuilt.get(name)
        if not is_number(new):
            mismatches.append(MetricMismatch(name, float(old), None))
            continue
        old, new = float(old), float(new)
        if not _close(old, new, stochastic):
            mismatches.append(MetricMismatch(name, old, new))
    return mismatches


def _close(old: float, new: float, stochastic: bool) -> bool:
    if old == new or (math.isnan(old) and math.isnan(new)):
        return True
    diff = abs(new - old)
    if not math.isfinite(diff):
        return False
    if diff <= ABS_TOL:
        return True
    return stochastic and diff / max(abs(old), abs(new), 1.0) <= STOCHASTIC_REL_TOL


def _manifest_of(sfd: Any) -> Manifest:
    build = getattr(sfd, "manifest", None)
    if not callable(build):
        name = getattr(sfd, "__name__", type(sfd).__name__)
        raise InvalidParameterError(
            f"SFD {name!r} has no manifest(): the Trainer rebuilds manifest-driven SFDs only, "
            "because a Sensor applies the manifest's preparation to new data. Describe the "
            "SFD's pipeline with limen.Manifest."
        )
    return build()


def _source_path(sfd: Any) -> str:
    try:
        return inspect.getsourcefile(sfd) or repr(sfd)
    except TypeError:
        return repr(sfd)


def _state_counts(trials: Sequence[FrozenTrial]) -> str:
    if not trials:
        return "no rounds at all"
    counts: dict[str, int] = {}
    for trial in trials:
        counts[trial.state.name] = counts.get(trial.state.name, 0) + 1
    return ", ".join(f"{n} {state}" for state, n in sorted(counts.items()))
