"""Read a study's trials back as rounds: one reader for the log, status, export, Trainer and files.

Every reader shows the values a trial holds, never values snapped to the SFD's lists. A study is
shared with plain Optuna, so it may hold trials Limen did not write (no round id): such a trial
is ``foreign``. Its round id is computed from its parameters when they lie in the parameter space
(the SFD's, or the one the study records); otherwise it has none, and ``reason`` says why, so
the Trainer skips it with that message instead of failing.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import optuna
import pandas as pd
from optuna.trial import FrozenTrial, TrialState

from limen.adapters.distributions import DomainCodec
from limen.adapters.trials import ROUND_ID, is_finished_round, metric_attrs, round_row
from limen.errors import InvalidParameterError
from limen.experiment import study_keys as keys
from limen.experiment.identity import round_id, space_hash, value_key
from limen.experiment.study_record import StudyRecord
from limen.utils.values import is_number

__all__ = [
    "DIRECTIONS",
    "FOREIGN",
    "StoredRound",
    "StudyReader",
    "experiment_log",
    "rank_rounds",
    "read_round",
    "read_rounds",
    "resolve_metric",
    "study_codec",
]

#: The ``experiment_log`` column that marks a trial Limen did not write.
FOREIGN = keys.FOREIGN
DIRECTIONS = ("maximize", "minimize")


@dataclass(frozen=True)
class StoredRound:
    """One finished trial read as a round.

    Attributes:
        trial: The trial as Optuna stores it.
        params: The values it holds: real objects when they are exactly the parameter space's,
            else the stored values as they are.
        metrics: The metrics it holds (its user attrs; for a foreign trial, its objective values
            under the objective's metric names when it holds no such attr).
        round_id: Its round id: Limen's, or computed from parameters in the space; None when
            its parameters are outside the space.
        foreign: Whether Limen did not write it (it carries no round id attr).
        reason: Why it has no round id (None when it has one).
    """

    trial: FrozenTrial
    params: dict[str, Any]
    metrics: dict[str, Any]
    round_id: str | None
    foreign: bool
    reason: str | None = None

    @property
    def number(self) -> int:
        """The trial's number in the study."""
        return self.trial.number

    def describe(self) -> str:
        """``trial 7 (not written by Limen): shift=7 is not ...``, for messages."""
        origin = " (not written by Limen)" if self.foreign else ""
        return f"trial {self.number}{origin}: {self.reason or 'round ' + str(self.round_id)}"


def study_codec(sfd: Any, study: optuna.Study) -> DomainCodec | None:
    """The codec of the SFD's parameter space, or None when it is not the study's space."""
    params = sfd.params()
    if space_hash(params) != StudyRecord.from_attrs(study.user_attrs).space_hash:
        return None
    return DomainCodec(params)


def read_round(
    trial: FrozenTrial,
    codec: DomainCodec | None = None,
    record: StudyRecord | None = None,
) -> StoredRound:
    """Read one trial as a round (see ``StoredRound``).

    ``codec`` (the SFD's, when it is the study's space) decodes parameters to real objects;
    without it the space the study records (``record.codec``) decides what lies in it.
    """
    record = record or StudyRecord()
    stored_id = trial.user_attrs.get(ROUND_ID)
    params, reason = _params(trial, codec, record)
    metrics = metric_attrs(trial)
    foreign = not isinstance(stored_id, str)
    if foreign:
        for (metric, _), value in zip(record.objective, trial.values or (), strict=False):
            metrics.setdefault(metric, value)
    if not foreign:
        rid: str | None = stored_id
        reason = None
    elif reason is None:
        rid = round_id(params)
    else:
        rid = None
    return StoredRound(trial, params, metrics, rid, foreign, reason)


def read_rounds(
    trials: Iterable[FrozenTrial],
    codec: DomainCodec | None = None,
    record: StudyRecord | None = None,
) -> list[StoredRound]:
    """The finished rounds of ``trials`` (interrupted attempts left out), in trial order."""
    return [read_round(t, codec, record) for t in trials if is_finished_round(t)]


def experiment_log(
    rounds: Sequence[StoredRound], extra: Mapping[str, Any] | None = None
) -> pd.DataFrame:
    """One row per round: metrics, id, trial number, state, ``foreign``, time, parameters
    (the values each trial holds, plus ``extra``), then the round's warnings."""
    rows, names = [], set()
    for stored in rounds:
        params = {**stored.params, **(extra or {})}
        names.update(params)
        row = {**stored.metrics, **round_row(stored.trial, params)}
        row[ROUND_ID] = stored.round_id
        row[FOREIGN] = stored.foreign
        rows.append(row)
    frame = pd.DataFrame(rows)
    for name in names:
        # Parameter values keep their Python objects (None stays None, classes stay classes)
        # instead of pandas' inference turning None into NaN in text columns.
        frame[name] = pd.Series([row.get(name) for row in rows], dtype=object)
    return frame


def resolve_metric(
    record: StudyRecord, metric: str | None, direction: str | None, owner: str, study_name: str
) -> tuple[str, str]:
    """The metric and direction to rank rounds by: the study's objective unless given."""
    objective = dict(record.objective)
    if metric is None:
        if not objective:
            raise InvalidParameterError(
                f"Study {study_name!r} recorded no objective: pass metric=... and "
                f"direction=... to {owner}."
            )
        metric = next(iter(objective))
    if not isinstance(metric, str) or not metric:
        raise InvalidParameterError(
            f"The 'metric' parameter of {owner} must be a str. Got {metric!r} instead."
        )
    direction = direction or objective.get(metric)
    if direction not in DIRECTIONS:
        raise InvalidParameterError(
            f"The 'direction' parameter of {owner} must be 'maximize' or 'minimize' for the "
            f"metric {metric!r}, which is not the study's objective. Got {direction!r} instead."
        )
    return metric, direction


def rank_rounds(rounds: Iterable[StoredRound], metric: str, direction: str) -> list[StoredRound]:
    """Completed rounds with a finite ``metric``, best first (ties by trial number)."""
    sign = -1.0 if direction == "maximize" else 1.0
    scored = [
        (sign * float(value), stored.number, stored)
        for stored in rounds
        if stored.trial.state == TrialState.COMPLETE
        and is_number(value := stored.metrics.get(metric), finite=True)
    ]
    return [stored for _, _, stored in sorted(scored, key=lambda item: item[:2])]


class StudyReader:
    """A study's finished rounds, read once (a snapshot), with its record.

    Args:
        study: The study.
        codec: The SFD's codec when it is the study's space (``study_codec``): parameters are
            then real objects. Without it they are the tokens the study stores.
    """

    def __init__(self, study: optuna.Study, codec: DomainCodec | None = None) -> None:
        self.study = study
        self.record = StudyRecord.from_attrs(study.user_attrs)
        self.trials: tuple[FrozenTrial, ...] = tuple(study.get_trials(deepcopy=False))
        self.rounds: tuple[StoredRound, ...] = tuple(read_rounds(self.trials, codec, self.record))

    def experiment_log(self) -> pd.DataFrame:
        """The rounds as a table, with the study's context parameters (see ``experiment_log``)."""
        return experiment_log(self.rounds, self.record.contexts)

    def metric(self, metric: str | None, direction: str | None, owner: str) -> tuple[str, str]:
        """The metric and direction to rank by (the study's objective unless given)."""
        return resolve_metric(self.record, metric, direction, owner, self.study.study_name)

    def rank(self, metric: str, direction: str) -> list[StoredRound]:
        """Completed rounds with a finite ``metric``, best first."""
        return rank_rounds(self.rounds, metric, direction)

    def unidentified(self) -> list[StoredRound]:
        """Rounds without a round id: trials Limen did not write, off the parameter space."""
        return [stored for stored in self.rounds if stored.round_id is None]


def _params(
    trial: FrozenTrial, codec: DomainCodec | None, record: StudyRecord
) -> tuple[dict[str, Any], str | None]:
    """The values ``trial`` holds, and why they are not in the space (None when they are)."""
    stored = dict(trial.params)
    if codec is not None:
        try:
            return codec.decode_exact(stored), None
        except (ValueError, KeyError, TypeError) as exc:
            return stored, str(exc)
    return stored, _outside(stored, record.codec)


def _outside(stored: Mapping[str, Any], described: Mapping[str, Any] | None) -> str | None:
    """Why ``stored`` lies outside the space the study records, or None when it lies in it."""
    if not described:
        return "the study records no parameter space to place it in."
    missing = [name for name in described if name not in stored]
    if missing:
        return f"the parameters {missing} have no value."
    extra = [name for name in stored if name not in described]
    if extra:
        return f"the parameters {extra} are not in the parameter space."
    for name, value in stored.items():
        tokens = (described[name] or {}).get("tokens")
        if tokens is not None and value_key(value) not in {value_key(t) for t in tokens}:
            return f"{name}={value!r} is not one of the parameter's values {tokens!r}."
    return None
