"""The loop's search session: the MSQ over the study, the strategy's feedback, checkpoints.

``StudySearch`` wires one run's search together: the strategy and its fallback behind the MSQ,
the study as the MSQ's round store (``StudyRounds``), the study's value codec (which grows with
injected values, widening the stored distributions), and the checkpoint of the mutable search
state (domain, MSQ, strategy, codec) in the study's attrs: every ``checkpoint_interval`` finished
rounds, at once after each domain mutation, and when a run ends.

Workers that share a study (``shared=True``) share its search state: a worker that changes the
domain or the MSQ filters saves the state and then bumps the study counter ``search_state``;
before each claim every worker reads that counter (one small read) and, when it moved, reloads
the domain, the codec and the named filters from the study. Shared workers also cap the study's
rounds at ``target`` inside the claim transaction (``TargetReached``).
"""

from __future__ import annotations

import logging
import weakref
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from optuna.distributions import CategoricalDistribution
from optuna.trial import FrozenTrial, TrialState

from limen.adapters import trials as trial_attrs
from limen.adapters.distributions import (
    LiveCodec,
    decode_value,
    encode_entries,
    encode_value,
)
from limen.adapters.grid_strategy import GridStrategy
from limen.adapters.rounds import ClaimedRound, StudyRounds
from limen.adapters.storage import LimenStorage
from limen.experiment.checkpoint_manager import CheckpointManager
from limen.experiment.errors import ResumeError
from limen.experiment.msq import MSQ
from limen.experiment.param_domain import ParamDomain
from limen.experiment.random_strategy import RandomStrategy
from limen.experiment.search_strategy import SearchStrategy

__all__ = ["SEARCH_VERSION", "StudySearch"]

logger = logging.getLogger(__name__)

SEARCH_VERSION = "search_state"

_SESSIONS: weakref.WeakValueDictionary[int, StudySearch] = weakref.WeakValueDictionary()


class StudySearch:
    """One run's search over a study (see the module docstring).

    Args:
        strategy: proposes combinations; its domain is the run's domain.
        storage: the study's storage.
        study_id: the study.
        initial: the SFD's parameter space (the codec starts from it).
        seed: the run's seed (the fallback grid's order).
        checkpoint_interval: finished rounds between checkpoints.
        on_refused: called with (combination or None, reason) for a queued trial that cannot run.
        shared: other workers may run the same study (see the module docstring).
        target: the study's target of rounds (only enforced when ``shared``).
    """

    def __init__(
        self,
        strategy: SearchStrategy,
        *,
        storage: LimenStorage,
        study_id: int,
        initial: Mapping[str, Any],
        seed: int,
        checkpoint_interval: int,
        on_refused: Callable[[Mapping[str, Any] | None, str], None] | None = None,
        shared: bool = False,
        target: int | None = None,
    ) -> None:
        self.strategy = strategy
        self.shared = shared
        self._seen_version = 0
        self.domain: ParamDomain = strategy.domain
        self.storage = storage
        self.study_id = study_id
        self.known = [v for entry in initial.values() if isinstance(entry, list) for v in entry]
        self.codec = LiveCodec(initial)
        self.codec.follow(self.domain.params, self.domain.keys)
        self.rounds = StudyRounds(storage, study_id, self.codec)
        self.rounds.target = target if shared else None
        fallback = (
            GridStrategy(self.domain, seed=seed)
            if strategy.is_finite
            else RandomStrategy(self.domain, seed=seed)
        )
        self.msq = MSQ(strategy, self.domain, queue=self.rounds, fallback=fallback)
        self.msq.on_refused = on_refused
        self.msq.restorable = self.restorable
        self.checkpoints = CheckpointManager(
            storage, study_id, checkpoint_interval=checkpoint_interval
        )
        self._history: list[dict[str, Any]] = []
        self._finished = 0
        # A domain reused by a later run must not keep saving into the earlier run's study.
        previous = _SESSIONS.get(id(self.domain))
        if previous is not None:
            self.domain.remove_observer(previous)
        _SESSIONS[id(self.domain)] = self
        self.domain.add_observer(self)

    def restorable(self, name: str, value: Any) -> bool:
        """Whether ``value`` of ``name`` survives a resume: a JSON scalar, or a value the SFD
        declares (a token becomes an object again only by lookup among those)."""
        encoded = encode_value(value)
        if not isinstance(encoded, dict):
            return True
        return any(encode_value(known) == encoded for known in self.known)

    @property
    def total(self) -> int | float:
        """Combinations in the current domain."""
        return self.domain.total_combinations

    @property
    def stop_reason(self) -> str | None:
        """Why the last ``claim`` returned None."""
        return self.msq.stop_reason

    def open(
        self,
        trials: Sequence[FrozenTrial],
        objective: Sequence[tuple[str, str]] | None,
        *,
        resume: bool,
        force: bool = False,
    ) -> list[str]:
        """Load the study's rounds; on resume restore the search state and tell the strategy
        every finished round. Returns the MSQ filters that could not be restored.

        Raises:
            ResumeError: a stored value cannot be restored (``force`` skips it instead).
        """
        if objective:
            self.set_objective(objective)
        self.rounds.load(trials)
        self._finished = trial_attrs.count_finished(trials)
        lost = self._restore(force) if resume else []
        if resume:
            self._adopt_stored_choices(trials)
            for trial in sorted(trials, key=lambda t: t.number):
                self._replay(trial)
        return lost

    def _adopt_stored_choices(self, trials: Sequence[FrozenTrial]) -> None:
        """Extend the codec with categorical choices the study holds and the SFD does not.

        Another client (or an edit of the database) may have widened a categorical in the
        study. Its extra choices join the codec as plain text, so new rounds stay compatible
        with the study's distribution; the domain never holds them, so they are never proposed,
        and nothing is imported for them.
        """
        widest: dict[str, CategoricalDistribution] = {}
        for trial in trials:
            for name, dist in trial.distributions.items():
                if isinstance(dist, CategoricalDistribution) and len(dist.choices) > len(
                    getattr(widest.get(name), "choices", ())
                ):
                    widest[name] = dist
        for name, dist in widest.items():
            codec = self.codec.params.get(name)
            if codec is None or codec.kind != "categorical":
                continue
            ours = codec.choices
            if len(dist.choices) > len(ours) and tuple(dist.choices[: len(ours)]) == ours:
                for extra in dist.choices[len(ours) :]:
                    logger.warning(
                        "The study holds the choice %r of '%s', which the SFD does not list: it "
                        "is kept as text and never proposed.",
                        extra,
                        name,
                    )
                    self.codec.extend(name, str(extra))

    def set_objective(self, objective: Sequence[tuple[str, str]]) -> None:
        """Tell the strategy the objective metrics and their directions."""
        self.strategy.set_objective([m for m, _ in objective], [d for _, d in objective])

    @property
    def target(self) -> int | None:
        """The study's target of rounds that claims respect (None: not enforced here)."""
        return self.rounds.target

    @target.setter
    def target(self, value: int | None) -> None:
        self.rounds.target = value if self.shared else None

    def claim(self) -> ClaimedRound | None:
        """The next round as a RUNNING trial, or None when the MSQ stops.

        Raises:
            TargetReached: a shared study already holds its target of finished and running
                rounds; nothing was claimed.
        """
        if self.shared:
            self.sync()
        proposal = self.msq.next_proposal()
        return None if proposal is None else ClaimedRound.of(proposal)

    def finished(
        self, claimed: ClaimedRound, state: TrialState, values: list[float] | None
    ) -> None:
        """Tell the strategy a round's outcome; checkpoint when due."""
        self._finished += 1
        self.rounds.finished(claimed.round_id, state.name, values)
        self.strategy.tell(claimed.combo, state.name, values)
        if self.checkpoints.should_checkpoint(self._finished):
            if self.shared:
                # Never write back a domain older than the one another worker saved.
                self.sync()
            self.save()

    def requeued(self) -> None:
        """Lost rounds were queued again: look at the queue at once."""
        self.rounds.wake()

    def on_domain_changed(self, domain: ParamDomain, changed_params: list[str]) -> None:
        """Widen the study's distributions for injected values; persist the domain at once."""
        for name in self.codec.follow(domain.params, changed_params):
            self.storage.widen_distribution(
                self.study_id, name, self.codec.params[name].distribution
            )
        self.save(changed=True)

    # ------------------------------------------------------------------ checkpoints

    def state(self) -> dict[str, Any]:
        """The mutable search state as JSON."""
        return {
            "domain": encode_entries(self.domain.get_state()),
            "domain_history": [*self._history, *self.domain.version_history],
            "codec": {
                name: [encode_value(v) for v in codec.values]
                for name, codec in self.codec.params.items()
                if codec.values is not None
            },
            "msq": self.msq.get_state(),
            "strategy": self.strategy.get_state(),
            "fallback": self.msq.fallback.get_state(),
        }

    def save(self, *, changed: bool = False) -> None:
        """Store the mutable search state in the study.

        ``changed``: the domain or the filters changed; workers sharing the study reload them
        before their next claim.
        """
        self.checkpoints.save(self.state(), finished_rounds=self._finished)
        if changed and self.shared:
            # Saved first, counted second: a worker that sees the new count reads the new state.
            self._seen_version = self.storage.claim_sequence(self.study_id, SEARCH_VERSION) + 1

    def sync(self) -> bool:
        """Reload the domain and the named filters when another worker changed them.

        Returns:
            Whether anything was reloaded.
        """
        version = self.storage.get_sequence(self.study_id, SEARCH_VERSION)
        if version == self._seen_version:
            return False
        self._seen_version = version
        state = self.checkpoints.load()
        if state is None:
            return False
        self.domain.remove_observer(self)
        try:
            self._load_domain(state)
            if "msq" in state:
                self.msq.set_shared_state(state["msq"])
        finally:
            self.domain.add_observer(self)
        logger.info("Reloaded the search state another worker changed (version %d).", version)
        return True

    def _restore(self, force: bool) -> list[str]:
        state = self.checkpoints.load()
        if self.shared:
            self._seen_version = self.storage.get_sequence(self.study_id, SEARCH_VERSION)
        if state is None:
            return []
        self.domain.remove_observer(self)
        try:
            self._load_domain(state, force)
            lost = self.msq.set_state(state["msq"]) if "msq" in state else []
            self.strategy.set_state(state.get("strategy", {}))
            self.msq.fallback.set_state(state.get("fallback", {}))
        finally:
            self.domain.add_observer(self)
        self._history = list(state.get("domain_history", []))
        self.msq.yielded_count = max(self.msq.yielded_count, self._finished)
        return lost

    def _load_domain(self, state: Mapping[str, Any], force: bool = False) -> None:
        """The codec's values and the domain from a saved state (observer already removed).

        Raises:
            ResumeError: a stored value cannot be restored (``force`` skips it instead).
        """
        known = [*self.known, *self._domain_values()]
        for name, encoded in state.get("codec", {}).items():
            if name in self.codec.params:
                values = self._decode(name, encoded, known, force)
                known.extend(values)
                for value in values:
                    if not self.codec.knows(name, value):
                        self.codec.extend(name, value)
        domain = {
            name: entry if isinstance(entry, dict) else self._decode(name, entry, known, force)
            for name, entry in state["domain"].items()
        }
        self.domain.set_state(domain)

    @staticmethod
    def _decode(name: str, encoded: Sequence[Any], known: list[Any], force: bool) -> list[Any]:
        values = []
        for item in encoded:
            try:
                values.append(decode_value(item, known))
            except ValueError as exc:
                if not force:
                    raise ResumeError(
                        f"The search state of parameter '{name}' holds a value that cannot be "
                        f"restored: {exc} resume='force' (CLI: limen resume --force) skips it."
                    ) from None
                logger.warning("Resume skips a value of '%s' it cannot restore: %s", name, exc)
        return values

    def _domain_values(self) -> list[Any]:
        return [
            v for entry in self.domain.params.values() if isinstance(entry, list) for v in entry
        ]

    def _replay(self, trial: FrozenTrial) -> None:
        if not trial_attrs.is_finished_round(trial) or not trial.params:
            return
        try:
            combo = self.codec.decode_exact(trial.params)
        except (ValueError, KeyError, TypeError):
            return
        values = trial.values if trial.state != TrialState.FAIL else None
        self.strategy.tell(combo, trial.state.name, values)
