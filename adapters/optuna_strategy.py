"""Any Optuna sampler behind ``SearchStrategy``: proposals from an in-memory study.

``OptunaStrategy`` serves every Optuna-backed name of ``STRATEGY_REGISTRY`` (tpe, cmaes, gp, qmc,
nsga2, nsga3, bruteforce) and any ``optuna.samplers.BaseSampler`` instance. The sampler works on a
private in-memory study that mirrors the rounds it was told about: ``next()`` asks that study for
a trial (no database write per parameter), and ``tell`` completes it. The round pipeline alone
writes rounds to the real study, in one transaction each; proposals it refuses never reach it.
A proposal that is neither run nor told before the next ``next()`` (refused by a filter, or a
duplicate of a round still running) ends as FAIL in the private study, so the sampler does not
wait on it.

Domain mutations: a parameter's distribution covers every value it ever held (``LiveCodec``), so
relative samplers keep one search space. Proposals land on the *current* legal values through
``_DomainSampler``: an independent draw on a removed value is redrawn, a relative proposal is
moved to the nearest legal number (or a random legal choice). An injected value widens its
distribution and the private study is rebuilt from the rounds it was told about.
"""

from __future__ import annotations

import logging
import math
import random
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import optuna
from optuna.distributions import BaseDistribution
from optuna.samplers import BaseSampler, BruteForceSampler
from optuna.samplers._lazy_random_state import LazyRandomState
from optuna.study import StudyDirection
from optuna.trial import FrozenTrial, TrialState, create_trial

from limen.adapters import options as opt
from limen.adapters.distributions import LiveCodec, ParamCodec
from limen.adapters.grid_strategy import check_finite
from limen.adapters.sampler_specs import (
    NOT_MODEL_BASED,
    SAMPLER_SPECS,
    build_sampler,
    require_packages,
)
from limen.errors import InvalidParameterError
from limen.experiment.identity import round_id, value_token
from limen.experiment.param_domain import ParamDomain, Range, same_value
from limen.experiment.search_strategy import STRATEGY_REGISTRY, SearchStrategy
from limen.utils.values import is_number

__all__ = ["PRIVATE_STUDY", "REDRAWS", "OptunaStrategy"]

logger = logging.getLogger(__name__)

REDRAWS = 10
PRIVATE_STUDY = "limen-strategy"


class OptunaStrategy(SearchStrategy):
    """An Optuna sampler proposing combinations of a ``ParamDomain``.

    Args:
        domain: the space to propose from.
        name: a registered name (``"tpe"``, ...) or ``"sampler"`` for an instance.
        sampler: an ``optuna.samplers.BaseSampler`` instance (with ``name="sampler"``).
        **kwargs: the sampler's keywords (``seed`` included), validated against its spec.
    """

    def __init__(
        self,
        domain: ParamDomain,
        *,
        name: str,
        sampler: BaseSampler | None = None,
        **kwargs: Any,
    ) -> None:
        if sampler is not None:
            kwargs.pop("seed", None)
            if kwargs:
                raise InvalidParameterError(
                    "A sampler instance takes no keywords: configure the instance itself. "
                    f"Got {sorted(kwargs)}."
                )
            self.kwargs: dict[str, Any] = {}
            self.model_based = not isinstance(sampler, NOT_MODEL_BASED)
            seed = None
        else:
            spec = SAMPLER_SPECS[name]
            self.kwargs = opt.validate(spec.owner, kwargs, spec.accepted, spec.deprecated)
            require_packages(name, spec.requires)
            self.model_based = STRATEGY_REGISTRY[name].model_based
            seed = self.kwargs.get("seed")
            if STRATEGY_REGISTRY[name].finite_only:
                check_finite(name, domain)
        self.name = name
        self._instance = sampler
        super().__init__(domain, seed=seed)
        self.codec = LiveCodec(domain.params, discrete=name == "bruteforce")
        self.directions = ["maximize"]
        self.sampler = sampler or build_sampler(name, self.kwargs)
        self._wrapper = _DomainSampler(self.sampler, self, seed)
        self._history: list[tuple[dict[str, Any], str, list[float] | None]] = []
        self._told: set[str] = set()
        self._pending: dict[str, list[int]] = {}
        self._study: optuna.Study | None = None
        self._study_attrs: dict[str, Any] = {}

    @staticmethod
    def accepts_instance(obj: Any) -> bool:
        """Whether ``obj`` is a sampler this adapter can wrap."""
        return isinstance(obj, BaseSampler)

    @property
    def config(self) -> dict[str, Any]:
        if self._instance is not None:
            kind = type(self._instance)
            return {"name": "sampler", "class": f"{kind.__module__}.{kind.__qualname__}"}
        return {"name": self.name, **{k: _config_value(v) for k, v in self.kwargs.items()}}

    def set_objective(self, names: Sequence[str], directions: Sequence[str]) -> None:
        """The directions the private study optimises (one per objective metric)."""
        if list(directions) != self.directions:
            self.directions = list(directions)
            self._study = None

    # ---------------------------------------------------------------------- the port

    def __next__(self) -> dict[str, Any]:
        study = self._private_study()
        self._abandon_pending(study)
        trial = study.ask(self.codec.distributions)
        combo = self.codec.decode(trial.params)
        self._pending.setdefault(round_id(combo), []).append(trial.number)
        return combo

    def tell(self, combo: Mapping[str, Any], state: str, values: list[float] | None) -> None:
        """Complete the private trial(s) that proposed ``combo``, or add the round as a trial.

        A round the sampler already holds (the pipeline answering a duplicate proposal) is not
        observed twice: the proposal ends as FAIL, which samplers ignore. So the private study
        holds each finished round once, in the order it finished, and a resume that replays
        the rounds rebuilds it exactly.
        """
        combo = dict(combo)
        rid = round_id(combo)
        numbers = self._pending.pop(rid, [])
        if rid in self._told:
            if self._study is not None:
                for number in numbers:
                    self._study.tell(number, state=TrialState.FAIL)
            return
        self._told.add(rid)
        self._history.append((combo, state, values))
        if self._study is None:
            return
        if numbers:
            for number in numbers:
                _finish(self._study, number, state, values)
        else:
            self._add(self._study, combo, state, values)

    def on_domain_changed(self, domain: ParamDomain, changed_params: list[str]) -> None:
        """Widen the distributions of parameters that gained a value never seen before."""
        try:
            widened = self.codec.follow(domain.params, changed_params)
        except ValueError as exc:
            logger.warning("The %s strategy cannot propose an injected value: %s", self.name, exc)
            return
        if widened and self._study is not None:
            # Optuna refuses a changed distribution inside one study: start a new private study
            # with the widened distributions and replay the rounds.
            self._study_attrs = self._private_attrs()
            self._study = None

    def get_state(self) -> dict[str, Any]:
        """The sampler's random generators and its private study's system attrs (QMC's index)."""
        study_attrs = self._private_attrs()
        version, internal, gauss = self._wrapper.rng.getstate()
        return {
            "rngs": _rng_states(self.sampler),
            "projection_rng": [version, list(internal), gauss],
            "study_attrs": _jsonable_attrs(study_attrs),
        }

    def set_state(self, state: Mapping[str, Any]) -> None:
        """Continue the sampler's random generators from a ``get_state`` result."""
        _restore_rngs(self.sampler, state.get("rngs", {}))
        saved = state.get("projection_rng")
        if saved is not None:
            version, internal, gauss = saved
            self._wrapper.rng.setstate((version, tuple(internal), gauss))
        self._study_attrs = dict(state.get("study_attrs", {}))
        self._study = None

    # ------------------------------------------------------------------- private study

    def _private_attrs(self) -> dict[str, Any]:
        if self._study is None:
            return dict(self._study_attrs)
        return self._study._storage.get_study_system_attrs(self._study._study_id)

    def _private_study(self) -> optuna.Study:
        if self._study is None:
            # The private study is no user's business: its creation is not logged.
            storage = optuna.storages.InMemoryStorage()
            directions = [StudyDirection[d.upper()] for d in self.directions]
            quiet = logging.getLogger("optuna.storages._in_memory")
            level = quiet.level
            quiet.setLevel(logging.WARNING)
            try:
                storage.create_new_study(directions, study_name=PRIVATE_STUDY)
            finally:
                quiet.setLevel(level)
            study = optuna.Study(study_name=PRIVATE_STUDY, storage=storage, sampler=self._wrapper)
            for key, value in self._study_attrs.items():
                study._storage.set_study_system_attr(study._study_id, key, value)
            for combo, state, values in self._history:
                self._add(study, combo, state, values)
            self._pending = {}
            self._study = study
        return self._study

    def _add(
        self, study: optuna.Study, combo: dict[str, Any], state: str, values: list[float] | None
    ) -> None:
        try:
            trial = _frozen(self.codec, combo, state, values, len(self.directions))
        except ValueError as exc:
            logger.debug("Round %s is not shown to the sampler: %s", combo, exc)
            return
        study.add_trial(trial)

    def _abandon_pending(self, study: optuna.Study) -> None:
        for numbers in self._pending.values():
            for number in numbers:
                study.tell(number, state=TrialState.FAIL)
        self._pending = {}


def _finish(study: optuna.Study, number: int, state: str, values: list[float] | None) -> None:
    if state == "COMPLETE" and values is not None:
        study.tell(number, values)
        return
    if state == "PRUNED" and values:
        trial_id = study._storage.get_trial_id_from_study_id_trial_number(study._study_id, number)
        study._storage.set_trial_intermediate_value(trial_id, 0, values[0])
    study.tell(number, state=TrialState.PRUNED if state == "PRUNED" else TrialState.FAIL)


def _frozen(
    codec: LiveCodec,
    combo: Mapping[str, Any],
    state: str,
    values: list[float] | None,
    n_objectives: int,
) -> FrozenTrial:
    params = {}
    for name, value in combo.items():
        if name not in codec.params:
            raise ValueError(f"unknown parameter {name!r}")
        params[name] = codec.params[name].to_stored(value)
    complete = state == "COMPLETE" and values is not None and len(values) == n_objectives
    pruned = state == "PRUNED" and bool(values)
    if complete:
        final = TrialState.COMPLETE
    else:
        final = TrialState.PRUNED if state == "PRUNED" else TrialState.FAIL
    return create_trial(
        state=final,
        params=params,
        distributions={name: codec.params[name].distribution for name in params},
        values=list(values) if complete else None,
        intermediate_values={0: values[0]} if pruned else None,
    )


# ------------------------------------------------------------------- random generators


def _generators(sampler: Any, depth: int = 0) -> dict[str, LazyRandomState]:
    """The sampler's ``LazyRandomState`` attributes, and those of the samplers it holds."""
    found: dict[str, LazyRandomState] = {}
    for attr, value in vars(sampler).items():
        if isinstance(value, LazyRandomState):
            found[attr] = value
        elif isinstance(value, BaseSampler) and depth < 2:
            found.update({f"{attr}.{k}": v for k, v in _generators(value, depth + 1).items()})
    return found


def _rng_states(sampler: BaseSampler) -> dict[str, list[Any]]:
    states = {}
    for attr, lazy in _generators(sampler).items():
        kind, keys, pos, has_gauss, cached = lazy.rng.get_state()
        states[attr] = [kind, keys.tolist(), int(pos), int(has_gauss), float(cached)]
    return states


def _restore_rngs(sampler: BaseSampler, states: Mapping[str, Any]) -> None:
    generators = _generators(sampler)
    for attr, saved in states.items():
        if attr not in generators:
            continue
        kind, keys, pos, has_gauss, cached = saved
        state = (kind, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached)
        generators[attr].rng.set_state(state)


def _jsonable_attrs(attrs: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in attrs.items() if isinstance(v, int | float | str | bool | list)}


def _config_value(value: Any) -> Any:
    if isinstance(value, int | float | str | bool) or value is None:
        return value
    return value_token(value)


# ---------------------------------------------------------------------- domain sampler


class _DomainSampler(BaseSampler):
    """Wraps a sampler so every value it proposes is legal in the current domain.

    Independent draws that land on a removed value are redrawn (up to ``REDRAWS`` times) so the
    remaining values keep their share; relative proposals and the last redraw are projected:
    numbers to the nearest legal value, other values to a uniform legal choice.
    """

    def __init__(self, inner: BaseSampler, strategy: OptunaStrategy, seed: int | None):
        self.inner = inner
        self.strategy = strategy
        self.rng = random.Random(seed)

    def infer_relative_search_space(
        self, study: optuna.Study, trial: FrozenTrial
    ) -> dict[str, BaseDistribution]:
        # A sampler that cached the space of an earlier trial (QMC does) would propose a
        # widened parameter from its old distribution: leave such parameters to independent
        # sampling.
        current = self.strategy.codec.distributions
        space = self.inner.infer_relative_search_space(study, trial)
        return {name: d for name, d in space.items() if current.get(name) == d}

    def sample_relative(
        self, study: optuna.Study, trial: FrozenTrial, search_space: dict[str, BaseDistribution]
    ) -> dict[str, Any]:
        proposed = self.inner.sample_relative(study, trial, search_space)
        return {name: self._project(name, value) for name, value in proposed.items()}

    def sample_independent(
        self,
        study: optuna.Study,
        trial: FrozenTrial,
        param_name: str,
        param_distribution: BaseDistribution,
    ) -> Any:
        value = None
        for _ in range(REDRAWS):
            value = self.inner.sample_independent(study, trial, param_name, param_distribution)
            if self._legal(param_name, value):
                return self._stored(param_name, value)
        return self._project(param_name, value)

    def before_trial(self, study: optuna.Study, trial: FrozenTrial) -> None:
        self.inner.before_trial(study, trial)

    def after_trial(
        self,
        study: optuna.Study,
        trial: FrozenTrial,
        state: TrialState,
        values: Any,
    ) -> None:
        # BruteForceSampler.after_trial only decides whether to call study.stop(), which
        # raises outside optimize(); the pipeline ends an exhausted space itself.
        if not isinstance(self.inner, BruteForceSampler):
            self.inner.after_trial(study, trial, state, values)

    def reseed_rng(self) -> None:
        self.inner.reseed_rng()

    def _codec(self, name: str) -> ParamCodec:
        return self.strategy.codec.params[name]

    def _stored(self, name: str, external: Any) -> Any:
        codec = self._codec(name)
        return codec.to_stored(codec.decode(external)) if codec.values is not None else external

    def _legal(self, name: str, external: Any) -> bool:
        codec = self._codec(name)
        entry = self.strategy.domain.values_for(name)
        real = codec.decode(external)
        if isinstance(entry, Range):
            return entry.contains(real)
        return any(same_value(v, real) for v in entry)

    def _project(self, name: str, external: Any) -> Any:
        """The legal stored value nearest to ``external`` (a random one for categoricals)."""
        if self._legal(name, external):
            return self._stored(name, external)
        codec = self._codec(name)
        entry = self.strategy.domain.values_for(name)
        if isinstance(entry, Range):
            return _into_range(entry, external)
        if codec.kind == "categorical" or not is_number(external, finite=True):
            return codec.to_stored(self.rng.choice(entry))
        log = getattr(codec.distribution, "log", False)

        def gap(v: Any) -> float:
            return abs(math.log(v) - math.log(external)) if log else abs(v - external)

        return codec.to_stored(min(entry, key=gap))


def _into_range(entry: Range, value: float) -> int | float:
    clipped = min(max(value, entry.low), entry.high)
    if entry.is_int:
        step = entry.step or 1
        return entry.low + round((clipped - entry.low) / step) * step
    if entry.step is not None:
        k = round((clipped - entry.low) / entry.step)
        return min(entry.low + k * entry.step, entry.high)
    return float(clipped)
