"""The study as the round pipeline's store: claimed rounds, the queue, and the ids of rounds.

``StudyRounds`` is what ``MSQ.next_proposal`` claims rounds from when the MSQ runs a study:

* a new round is one transaction (trial, parameters, distributions, round id, owner) that first
  reads the ids of the trials any process added since this process last looked, under the
  study lock, and writes nothing for a duplicate;
* the queue is the study's WAITING trials (``MSQ.inject``, re-runs of lost attempts, and plain
  Optuna's ``study.enqueue_trial``), prioritised first; a queued trial becomes RUNNING in one
  transaction, or ends FAIL with the reason it cannot run (a value outside the domain, a
  duplicate), so it never runs silently changed;
* the ids of every round that ran, runs or waits are kept in memory and grow incrementally, so
  most duplicates are answered without a query.

Every claimed round is a ``ClaimedRound``: a RUNNING trial that already holds its parameters, so
a crash at any instant leaves the study with either no trace of the round or a RUNNING trial
whose lease expires and whose parameters run again.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from optuna.trial import FrozenTrial, TrialState, create_trial

from limen.adapters import leases
from limen.adapters import trials as trial_attrs
from limen.adapters.distributions import LiveCodec
from limen.adapters.storage import LimenStorage
from limen.experiment.identity import round_id
from limen.experiment.msq import Proposal, Queued

__all__ = ["QUEUE_POLL_S", "REFUSED", "ClaimedRound", "StudyRounds"]

logger = logging.getLogger(__name__)

REFUSED = "refused"
QUEUE_POLL_S = 2.0


@dataclass(frozen=True)
class ClaimedRound:
    """A round this process owns: its real parameter values and its RUNNING trial."""

    combo: dict[str, Any]
    trial_id: int
    number: int
    round_id: str
    injected: bool = False

    @classmethod
    def of(cls, proposal: Proposal) -> ClaimedRound:
        """The claimed round behind a proposal of ``StudyRounds``."""
        trial_id, number = proposal.ticket
        return cls(proposal.combo, trial_id, number, proposal.round_id, proposal.injected)


class StudyRounds:
    """The round store of one study (see the module docstring).

    ``target`` (None by default) caps the study's finished plus running rounds when workers
    share the study: a claim past it raises ``TargetReached`` and writes nothing.

    Args:
        storage: the study's storage.
        study_id: the study.
        codec: how the study stores parameter values (grows with injections).
        poll: seconds between looks at an empty queue (queues filled by other processes are
            seen within this time; this process's own pushes are seen at once).
    """

    def __init__(
        self, storage: LimenStorage, study_id: int, codec: LiveCodec, *, poll: float = QUEUE_POLL_S
    ) -> None:
        self.storage = storage
        self.study_id = study_id
        self.codec = codec
        self.poll = poll
        self._ids: set[str] = set()
        self._outcomes: dict[str, tuple[str, list[float] | None]] = {}
        self._watermark = -1
        self._next_poll = 0.0
        self.target: int | None = None

    # ------------------------------------------------------------------------- ledger

    def load(self, trials: Iterable[FrozenTrial]) -> None:
        """Learn the rounds of ``trials`` (the study's trials, read once when a run opens)."""
        for trial in trials:
            self._watermark = max(self._watermark, trial._trial_id)
            rid = trial.user_attrs.get(trial_attrs.ROUND_ID)
            if rid is None and trial.state == TrialState.WAITING:
                rid = self._queued_id(trial)
            if rid is None or trial_attrs.ATTEMPT in trial.user_attrs:
                continue
            self._ids.add(rid)
            if trial_attrs.is_finished_round(trial):
                self._outcomes[rid] = (trial.state.name, trial.values)

    def _queued_id(self, trial: FrozenTrial) -> str | None:
        """The round id of a trial plain Optuna queued (``enqueue_trial`` stores no id): known
        here, the strategy never claims the same round beside it."""
        stored = trial.params or trial.system_attrs.get("fixed_params") or {}
        try:
            return round_id(self.codec.decode_exact(stored))
        except (ValueError, KeyError, TypeError):
            return None

    def is_known(self, rid: str) -> bool:
        """Whether round ``rid`` ran, runs or waits (as far as this process has seen)."""
        return rid in self._ids

    def outcome(self, rid: str) -> tuple[str, list[float] | None] | None:
        """The state and values of finished round ``rid``, when known here."""
        return self._outcomes.get(rid)

    def finished(self, rid: str, state: str, values: list[float] | None) -> None:
        """Remember the outcome of a round this process finished."""
        self._outcomes[rid] = (state, values)

    def wake(self) -> None:
        """Look at the queue on the next proposal (something was queued)."""
        self._next_poll = 0.0

    # -------------------------------------------------------------------- new rounds

    def claim(self, combo: Mapping[str, Any], rid: str) -> Proposal | None:
        """Create round ``rid``'s RUNNING trial; None when another process holds it already."""
        spec = (
            self.codec.to_internal(combo),
            self.codec.distributions,
            {trial_attrs.ROUND_ID: rid},
            {leases.OWNER: leases.owner_record()},
        )
        created, rows = self.storage.claim_new_round(
            self.study_id,
            spec,
            id_key=trial_attrs.ROUND_ID,
            round_id=rid,
            after_trial_id=self._watermark,
            limit=self.target,
        )
        self._absorb(rows)
        if created is None:
            return None
        trial_id, number = created
        self._ids.add(rid)
        self._watermark = max(self._watermark, trial_id)
        return Proposal(dict(combo), rid, ticket=(trial_id, number))

    def _absorb(self, rows: Sequence[tuple[int, str | None]]) -> None:
        for trial_id, rid in rows:
            self._watermark = max(self._watermark, trial_id)
            if rid is not None:
                self._ids.add(rid)

    # ------------------------------------------------------------------------- queue

    def push(self, combo: Mapping[str, Any], *, prioritize: bool) -> bool:
        """Queue ``combo`` as a WAITING trial; False when that round already ran, runs or waits.

        Raises:
            ValueError: a value was never in the domain (inject it into the domain first).
        """
        combo = dict(combo)
        for name, value in combo.items():
            if self.codec.params[name].values is not None and not self.codec.knows(name, value):
                raise ValueError(
                    f"MSQ cannot queue {name}={value!r}: the value was never in the domain. "
                    f"Inject it first with inject_value({name!r}, ...)."
                )
        rid = round_id(combo)
        if rid in self._ids:
            logger.info("Not queued: the round %s already ran, runs or waits.", rid[:12])
            return False
        attrs: dict[str, Any] = {trial_attrs.ROUND_ID: rid, trial_attrs.INJECTED: True}
        if prioritize:
            attrs[trial_attrs.PRIORITY] = self.storage.claim_sequence(self.study_id, "msq") + 1
        template = create_trial(
            state=TrialState.WAITING,
            params={name: self.codec.params[name].to_stored(v) for name, v in combo.items()},
            distributions={name: self.codec.params[name].distribution for name in combo},
            user_attrs=attrs,
        )
        self.storage.create_new_trial(self.study_id, template_trial=template)
        self._ids.add(rid)
        self.wake()
        return True

    def queued(self) -> Iterator[Queued]:
        """The WAITING trials, prioritised first (latest priority first), then oldest first."""
        now = time.monotonic()
        if now < self._next_poll:
            return
        if not self.storage.has_waiting_trials(self.study_id):
            self._next_poll = now + self.poll
            return
        for trial in self._waiting():
            stored = trial.params or trial.system_attrs.get("fixed_params") or {}
            try:
                yield Queued(trial, self.codec.decode_exact(stored))
            except (ValueError, KeyError, TypeError) as exc:
                yield Queued(trial, None, problem=f"trial {trial.number}: {exc}")
        self._next_poll = time.monotonic() + self.poll

    def start(self, queued: Queued, rid: str) -> Proposal | str | None:
        """Move a WAITING trial to RUNNING as round ``rid`` (owned by this process)."""
        trial: FrozenTrial = queued.handle
        params = []
        if not trial.params:
            internal = self.codec.to_internal(queued.combo)
            params = [(n, v, self.codec.params[n].distribution) for n, v in internal.items()]
        started, holder = self.storage.start_waiting_round(
            self.study_id,
            trial._trial_id,
            params=params,
            user_attrs={trial_attrs.ROUND_ID: rid},
            system_attrs={leases.OWNER: leases.owner_record()},
            id_key=trial_attrs.ROUND_ID,
            exclude_key=trial_attrs.ATTEMPT,
            limit=self.target,
        )
        if started:
            self._ids.add(rid)
            injected = bool(trial.user_attrs.get(trial_attrs.INJECTED))
            return Proposal(queued.combo, rid, (trial._trial_id, trial.number), injected)
        if holder is None:
            return None
        return f"it duplicates round {holder}"

    def refuse(self, queued: Queued, reason: str) -> None:
        """End a queued trial that will not run as FAIL, with its reason."""
        trial: FrozenTrial = queued.handle
        attrs = {trial_attrs.ATTEMPT: REFUSED, trial_attrs.REFUSED: reason}
        if self.storage.end_waiting_trial(trial._trial_id, attrs):
            logger.warning("Queued trial %d does not run: %s.", trial.number, reason)

    def _waiting(self) -> list[FrozenTrial]:
        trials = self.storage.get_all_trials(
            self.study_id, deepcopy=False, states=(TrialState.WAITING,)
        )
        return sorted(trials, key=lambda t: (-t.user_attrs.get(trial_attrs.PRIORITY, 0), t.number))

    def __len__(self) -> int:
        return len(self._waiting())

    def items(self) -> list[dict[str, Any]]:
        """The queued combinations that can run, in the order they will."""
        combos = []
        for trial in self._waiting():
            try:
                combos.append(self.codec.decode_exact(trial.params))
            except (ValueError, KeyError, TypeError):
                continue
        return combos
