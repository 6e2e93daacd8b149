"""Where the loop's next round comes from: the study's queue, then a proposer.

Every source hands the loop a ``ClaimedRound``: a RUNNING trial that already holds the
combination's parameters, so a crash at any instant leaves the study with either no trace of
the round or a RUNNING trial whose parameters can be queued again.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from optuna.storages._rdb import models
from optuna.trial import FrozenTrial, TrialState
from sqlalchemy import select

from limen.adapters import leases
from limen.adapters import trials as trial_attrs
from limen.adapters.distributions import DomainCodec
from limen.adapters.grid import GridSpace
from limen.adapters.storage import LimenStorage, RoundSpec
from limen.experiment.identity import round_id


@dataclass(frozen=True)
class ClaimedRound:
    """A round this process owns: its real parameter values and its RUNNING trial."""

    combo: dict[str, Any]
    trial_id: int
    number: int
    round_id: str


class Proposer(Protocol):
    """A source of new rounds, asked once the study's queue is empty."""

    def claim(self) -> ClaimedRound | None:
        """Create the next round's RUNNING trial, or None when the source is exhausted."""
        ...


def claim_waiting(storage: LimenStorage, study_id: int, codec: DomainCodec) -> ClaimedRound | None:
    """Take the oldest WAITING trial of the study, if any, as this process's round.

    WAITING trials are re-runs of attempts that reached no outcome and combinations enqueued
    with ``study.enqueue_trial`` (whose values sit in the ``fixed_params`` system attr).
    """
    if not has_waiting(storage, study_id):
        return None
    waiting = storage.get_all_trials(study_id, deepcopy=False, states=(TrialState.WAITING,))
    return take_waiting(storage, codec, waiting)


def take_waiting(
    storage: LimenStorage, codec: DomainCodec, waiting: Iterable[FrozenTrial]
) -> ClaimedRound | None:
    """Claim the first of ``waiting`` no other worker took first, as this process's round.

    Moving WAITING -> RUNNING is atomic in the storage, so two workers never take the same one.
    The claimed trial gets its parameters (when it only had ``fixed_params``), its round id and
    this process as its owner, so its lease works like any other round's.
    """
    for trial in waiting:
        if not storage.set_trial_state_values(trial._trial_id, TrialState.RUNNING):
            continue
        stored = trial.params or trial.system_attrs.get("fixed_params", {})
        combo = codec.decode(stored)
        rid = round_id(combo)
        if not trial.params:
            for name, value in codec.to_internal(combo).items():
                storage.set_trial_param(trial._trial_id, name, value, codec.distributions[name])
        storage.set_trial_user_attr(trial._trial_id, trial_attrs.ROUND_ID, rid)
        storage.set_trial_system_attr(trial._trial_id, leases.OWNER, leases.owner_record())
        return ClaimedRound(combo, trial._trial_id, trial.number, rid)
    return None


class WaitingQueue:
    """The study's WAITING trials as a round source, polled at most every ``poll`` seconds.

    Looking for WAITING trials costs a scan of the study's trials, so an empty queue is asked
    again only after ``poll`` seconds or after ``wake()`` (this process queued something).
    Queues filled by other processes are seen within ``poll`` seconds.
    """

    def __init__(
        self, storage: LimenStorage, study_id: int, codec: DomainCodec, poll: float = 2.0
    ) -> None:
        self.storage = storage
        self.study_id = study_id
        self.codec = codec
        self.poll = poll
        self._next_poll = 0.0

    def wake(self) -> None:
        """Look at the queue on the next ``claim``."""
        self._next_poll = 0.0

    def claim(self) -> ClaimedRound | None:
        """The oldest WAITING trial as this process's round, or None."""
        now = time.monotonic()
        if now < self._next_poll:
            return None
        claimed = claim_waiting(self.storage, self.study_id, self.codec)
        if claimed is None:
            self._next_poll = now + self.poll
        return claimed


def has_waiting(storage: LimenStorage, study_id: int) -> bool:
    """One indexed lookup instead of loading every WAITING trial on each round."""
    trials = models.TrialModel
    query = (
        select(trials.trial_id)
        .where(trials.study_id == study_id, trials.state == TrialState.WAITING)
        .limit(1)
    )
    with storage.engine.connect() as conn:
        return conn.execute(query).first() is not None


class GridProposer:
    """The lazy grid: positions from a study-wide counter, each combination at most once.

    The counter lives in the study, so every process sharing the study and every resume
    continues the same sequence; a position maps to a combination through the seeded
    permutation of ``GridSpace``.
    """

    COUNTER = "grid"

    def __init__(
        self,
        storage: LimenStorage,
        study_id: int,
        params: Mapping[str, Sequence[Any]],
        codec: DomainCodec,
        *,
        seed: int,
        shuffle: bool,
    ) -> None:
        self.storage = storage
        self.study_id = study_id
        self.params = {k: list(v) for k, v in params.items()}
        self.codec = codec
        self.space = GridSpace([len(v) for v in self.params.values()], seed=seed, shuffle=shuffle)

    @property
    def total(self) -> int:
        """Number of combinations in the grid."""
        return self.space.total

    def claim(self) -> ClaimedRound | None:
        """Take the next grid position and create its trial; None once the grid is spent.

        The position and the trial commit in one transaction: a crash can neither lose a
        position nor leave a trial without one.
        """
        chosen: dict[int, tuple[dict[str, Any], str]] = {}

        def build(position: int) -> RoundSpec | None:
            if position >= self.space.total:
                return None
            indices = self.space.decode(self.space.index_at(position))
            pairs = zip(self.params.items(), indices, strict=True)
            combo = {name: values[i] for (name, values), i in pairs}
            rid = round_id(combo)
            chosen[position] = (combo, rid)
            return (
                self.codec.to_internal(combo),
                self.codec.distributions,
                {trial_attrs.ROUND_ID: rid, trial_attrs.GRID_POSITION: position},
                {leases.OWNER: leases.owner_record()},
            )

        claimed = self.storage.claim_running_trial(self.study_id, self.COUNTER, build)
        if claimed is None:
            return None
        position, trial_id, number = claimed
        combo, rid = chosen[position]
        return ClaimedRound(combo, trial_id, number, rid)
