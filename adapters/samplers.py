"""Optuna samplers behind ``SearchStrategy``, and the proposer the loop claims rounds from.

``OptunaStrategy`` serves every Optuna-backed name of ``STRATEGY_REGISTRY`` (random, tpe, cmaes,
gp, qmc, nsga2, nsga3, bruteforce) and any ``BaseSampler`` instance; ``GridStrategy`` serves
``grid`` through the lazy exactly-once grid. Each proposal is a trial created through Optuna's
own protocol (``study.ask`` with the parameters' distributions), so every sampler learns from
every finished round.

Domain mutations and Optuna's fixed distributions: Optuna refuses a categorical whose choices
change under one name, and relative samplers (multivariate TPE, CMA-ES, GP) only model
parameters whose distribution is identical in every trial. So a parameter's distribution only
ever grows: it covers the union of every value the domain ever held (``LiveCodec``). Removing
values changes nothing in the study; proposals are mapped onto the *current* legal values by
``_DomainSampler`` (numeric values snap to the nearest legal value, other values are redrawn).
Injecting a new value widens the distribution and rewrites it on the study's earlier trials
(appending a categorical choice keeps every stored index valid), so the study stays one
consistent space that plain Optuna and optuna-dashboard read as usual.
"""

from __future__ import annotations

import importlib
import itertools
import json
import logging
import math
import random
import warnings
import weakref
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import optuna
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
    distribution_to_json,
)
from optuna.pruners import BasePruner
from optuna.samplers import (
    BaseSampler,
    BruteForceSampler,
    GridSampler,
    QMCSampler,
    RandomSampler,
)
from optuna.samplers.nsgaii import (
    BLXAlphaCrossover,
    SBXCrossover,
    SPXCrossover,
    UNDXCrossover,
    UniformCrossover,
    VSBXCrossover,
)
from optuna.storages._rdb import models
from optuna.trial import FrozenTrial, TrialState, create_trial
from sqlalchemy import select, update

from limen.adapters import options as opt
from limen.adapters import trials as trial_attrs
from limen.adapters.distributions import DomainCodec, ParamCodec, codec_for
from limen.adapters.pruners import RoundReporter
from limen.adapters.rounds import ClaimedRound, GridProposer, has_waiting, take_waiting
from limen.adapters.storage import LimenStorage
from limen.experiment.checkpoint_manager import CheckpointManager
from limen.experiment.identity import round_id, value_token
from limen.experiment.msq import MSQ, FilterExhaustedError
from limen.experiment.param_domain import ParamDomain, Range, same_value
from limen.experiment.search_strategy import (
    STRATEGY_REGISTRY,
    Admissible,
    Proposal,
    SearchStrategy,
)

logger = logging.getLogger(__name__)

REJECTED = "rejected"
REJECT_REASON = "limen:rejected"
INJECTED = "limen:injected"
PRIORITY = "limen:priority"
SAMPLER_ATTEMPTS = 3
REDRAWS = 10
ENUMERATE_LIMIT = 200_000

# ----------------------------------------------------------------------------- configs

_SEED = opt.optional(opt.integer(0))
_SAMPLER = opt.instance_of(BaseSampler, "an optuna.samplers.BaseSampler instance")
_CROSSOVERS = {
    "uniform": UniformCrossover,
    "blxalpha": BLXAlphaCrossover,
    "sbx": SBXCrossover,
    "spx": SPXCrossover,
    "undx": UNDXCrossover,
    "vsbx": VSBXCrossover,
}
_NSGA = {
    "seed": _SEED,
    "population_size": opt.integer(2),
    "mutation_prob": opt.optional(opt.real(0, 1)),
    "crossover": opt.either(
        opt.choice(*_CROSSOVERS), opt.instance_of(object, "a BaseCrossover instance")
    ),
    "crossover_prob": opt.real(0, 1),
    "swapping_prob": opt.real(0, 1),
}
_CONSTRAINTS = "it is deprecated in Optuna 5; call trial.set_constraint instead."
_TPE_GONE = "it is deprecated in Optuna (removal in 6.0) and Limen pins TPE's behaviour."


@dataclass(frozen=True)
class SamplerSpec:
    """One Optuna sampler: its class path, accepted and deprecated keywords, pinned defaults."""

    owner: str
    sampler: str
    accepted: dict[str, opt.Option]
    deprecated: dict[str, str]
    defaults: dict[str, Any]
    requires: tuple[str, ...] = ()


SAMPLER_SPECS: dict[str, SamplerSpec] = {
    "random": SamplerSpec("RandomStrategy", "RandomSampler", {"seed": _SEED}, {}, {}),
    "tpe": SamplerSpec(
        "TPEStrategy",
        "TPESampler",
        {
            "seed": _SEED,
            "n_startup_trials": opt.integer(0),
            "n_ei_candidates": opt.integer(1),
            "multivariate": opt.BOOL,
            "group": opt.BOOL,
            "constant_liar": opt.BOOL,
        },
        {
            **dict.fromkeys(
                (
                    "consider_prior",
                    "prior_weight",
                    "consider_magic_clip",
                    "consider_endpoints",
                    "gamma",
                    "weights",
                    "warn_independent_sampling",
                ),
                _TPE_GONE,
            ),
            "constraints_func": _CONSTRAINTS,
        },
        # Pinned so an Optuna upgrade cannot silently change the algorithm.
        {"multivariate": True, "constant_liar": True, "group": False},
    ),
    "cmaes": SamplerSpec(
        "CmaEsStrategy",
        "CmaEsSampler",
        {
            "seed": _SEED,
            "n_startup_trials": opt.integer(0),
            "independent_sampler": _SAMPLER,
            "consider_pruned_trials": opt.BOOL,
            "popsize": opt.optional(opt.integer(1)),
            "use_separable_cma": opt.BOOL,
            "with_margin": opt.BOOL,
            "lr_adapt": opt.BOOL,
        },
        {
            "x0": "it is deprecated in Optuna 4.9.",
            "sigma0": "it is deprecated in Optuna 4.9.",
            "restart_strategy": "it is deprecated in Optuna 4.4 (IPOP/BIPOP moved to OptunaHub).",
            "inc_popsize": "it is deprecated in Optuna 4.4 (IPOP/BIPOP moved to OptunaHub).",
        },
        {"warn_independent_sampling": False},
        ("cmaes",),
    ),
    "gp": SamplerSpec(
        "GPStrategy",
        "GPSampler",
        {
            "seed": _SEED,
            "n_startup_trials": opt.integer(0),
            "independent_sampler": _SAMPLER,
            "deterministic_objective": opt.BOOL,
        },
        {"constraints_func": _CONSTRAINTS},
        {"warn_independent_sampling": False},
        ("torch", "scipy"),
    ),
    "qmc": SamplerSpec(
        "QMCStrategy",
        "QMCSampler",
        {
            "seed": _SEED,
            "qmc_type": opt.choice("sobol", "halton"),
            "scramble": opt.BOOL,
            "independent_sampler": _SAMPLER,
        },
        {},
        {"warn_independent_sampling": False},
        ("scipy",),
    ),
    "nsga2": SamplerSpec("NSGAIIStrategy", "NSGAIISampler", dict(_NSGA), {}, {}),
    "nsga3": SamplerSpec(
        "NSGAIIIStrategy",
        "NSGAIIISampler",
        {**_NSGA, "dividing_parameter": opt.integer(1)},
        {"constraints_func": _CONSTRAINTS},
        {},
    ),
    "bruteforce": SamplerSpec(
        "BruteForceStrategy",
        "BruteForceSampler",
        {"seed": _SEED, "avoid_premature_stop": opt.BOOL},
        {},
        {},
    ),
}
SAMPLER_SPECS["nsga2"].deprecated["constraints_func"] = _CONSTRAINTS
_EXTRAS = {"cmaes": "cmaes", "torch": "gp", "scipy": "gp"}
_NOT_MODEL_BASED = (RandomSampler, QMCSampler, BruteForceSampler, GridSampler)


def _require(name: str, modules: tuple[str, ...]) -> None:
    for module in modules:
        try:
            importlib.import_module(module)
        except ImportError as exc:
            raise ImportError(
                f"The {name!r} strategy needs the {module!r} package: "
                f"pip install 'limen[{_EXTRAS[module]}]'."
            ) from exc


def build_sampler(name: str, kwargs: Mapping[str, Any]) -> BaseSampler:
    """The Optuna sampler for a registered name and validated keywords."""
    spec = SAMPLER_SPECS[name]
    _require(name, spec.requires)
    arguments = {**spec.defaults, **kwargs}
    crossover = arguments.get("crossover")
    if isinstance(crossover, str):
        arguments["crossover"] = _CROSSOVERS[crossover]()
    with warnings.catch_warnings():
        # QMC and brute force still carry Optuna's "experimental" label.
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return getattr(optuna.samplers, spec.sampler)(**arguments)


# ------------------------------------------------------------------------ value codec


def encode_value(value: Any) -> Any:
    """A JSON form of a parameter value that ``decode_value`` turns back into it."""
    if isinstance(value, bool | str) or value is None:
        return value
    if isinstance(value, int | float) and math.isfinite(value):
        return value
    if isinstance(value, tuple):
        return {"tuple": [encode_value(v) for v in value]}
    if isinstance(value, list):
        return {"list": [encode_value(v) for v in value]}
    return {"token": value_token(value)}


def decode_value(encoded: Any, known: list[Any]) -> Any:
    """The value ``encode_value`` produced ``encoded`` from.

    Objects are found among ``known`` values by their readable token, else imported by path.
    """
    if not isinstance(encoded, dict):
        return encoded
    if "tuple" in encoded:
        return tuple(decode_value(v, known) for v in encoded["tuple"])
    if "list" in encoded:
        return [decode_value(v, known) for v in encoded["list"]]
    token = encoded["token"]
    for value in known:
        if value_token(value) == token:
            return value
    module, _, attr = str(token).rpartition(".")
    try:
        return getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError, ValueError):
        raise ValueError(
            f"Cannot restore the parameter value {token!r}: it is not among the SFD's values and "
            "cannot be imported. Resume with resume='force' after re-injecting it."
        ) from None


def encode_domain(domain: ParamDomain) -> dict[str, Any]:
    """The domain's state in JSON form."""
    return {
        key: entry if isinstance(entry, dict) else [encode_value(v) for v in entry]
        for key, entry in domain.get_state().items()
    }


def decode_domain(state: Mapping[str, Any], known: list[Any]) -> dict[str, Any]:
    """``encode_domain``'s result as a state ``ParamDomain.set_state`` accepts."""
    return {
        key: entry if isinstance(entry, dict) else [decode_value(v, known) for v in entry]
        for key, entry in state.items()
    }


# -------------------------------------------------------------------------- live codec


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _discrete(codec: ParamCodec) -> ParamCodec:
    """A codec whose distribution enumerates exactly its values (brute force needs that)."""
    if codec.values is None or codec.kind in ("int", "float", "categorical"):
        return codec
    values = codec.values
    return ParamCodec(codec.name, "categorical", CategoricalDistribution(values), values, values)


class LiveCodec(DomainCodec):
    """A ``DomainCodec`` whose lists only grow: the union of every value the domain ever held.

    Args:
        params: the initial parameter space.
        discrete: map unevenly spaced numeric lists to categoricals (for brute force).
    """

    def __init__(self, params: Mapping[str, list[Any] | Range], *, discrete: bool = False):
        super().__init__(params)
        if discrete:
            self.params = {name: _discrete(codec) for name, codec in self.params.items()}

    def knows(self, name: str, value: Any) -> bool:
        """Whether ``value`` is in ``name``'s union."""
        values = self.params[name].values
        return values is not None and any(same_value(v, value) for v in values)

    def extend(self, name: str, value: Any) -> ParamCodec:
        """Add ``value`` to ``name``'s union; returns the new codec (its distribution widened).

        Raises:
            ValueError: the value cannot join the parameter's distribution kind (a float into
                an integer parameter, a string into a numeric one).
        """
        old = self.params[name]
        values = (*old.values, value)
        if old.kind == "categorical":
            choices = (*old.choices, _new_choice(old, value))
            new = ParamCodec(name, "categorical", CategoricalDistribution(choices), values, choices)
        else:
            new = _numeric_union(old, values)
        self.params[name] = new
        return new

    def get_state(self) -> dict[str, list[Any]]:
        """The union of each list parameter, JSON-encoded."""
        return {
            name: [encode_value(v) for v in codec.values]
            for name, codec in self.params.items()
            if codec.values is not None
        }

    def set_state(self, state: Mapping[str, list[Any]], known: list[Any]) -> None:
        """Rebuild the unions ``get_state`` recorded (extending, never shrinking)."""
        for name, encoded in state.items():
            if name not in self.params:
                continue
            for value in (decode_value(v, known) for v in encoded):
                if not self.knows(name, value):
                    self.extend(name, value)


def _new_choice(old: ParamCodec, value: Any) -> Any:
    """The stored choice of a value joining a categorical: itself when Optuna can store it
    beside the existing choices, else its readable token (made unique)."""
    raw_choices = all(c is v for c, v in zip(old.choices, old.values, strict=True))
    storable = isinstance(value, str | bool) or value is None or _is_number(value)
    keys = {_choice_key(c) for c in old.choices}
    if raw_choices and storable and _choice_key(value) not in keys:
        return value
    token = str(value_token(value))
    candidate, n = token, 2
    while _choice_key(candidate) in keys:
        candidate, n = f"{token} #{n}", n + 1
    return candidate


def _choice_key(choice: Any) -> tuple[str, Any]:
    # Optuna's storage cannot tell True from 1 or 1 from 1.0.
    if isinstance(choice, bool | int | float):
        return ("number", float(choice))
    return (type(choice).__name__, choice)


def _numeric_union(old: ParamCodec, values: tuple[Any, ...]) -> ParamCodec:
    name, dist = old.name, old.distribution
    if not all(_is_number(v) for v in values):
        raise ValueError(
            f"Cannot inject {values[-1]!r} into the numeric parameter '{name}': its values are "
            "numbers in the study. Use a new parameter for other kinds of values."
        )
    is_int = isinstance(dist, IntDistribution)
    if is_int and not all(isinstance(v, int) for v in values):
        raise ValueError(
            f"Cannot inject {values[-1]!r} into the integer parameter '{name}': the study "
            "stores it as an IntDistribution. Inject an int, or use a float list from the start."
        )
    fresh = codec_for(name, list(values))
    same_kind = type(fresh.distribution) is type(dist) and fresh.distribution.log == dist.log
    if same_kind:
        return ParamCodec(name, fresh.kind, fresh.distribution, values)
    low, high = min(values), max(values)
    widened = (
        IntDistribution(low, high, log=dist.log)
        if is_int
        else FloatDistribution(float(low), float(high), log=dist.log)
    )
    return ParamCodec(name, "ordered", widened, values)


def replace_distribution(
    storage: LimenStorage, study_id: int, name: str, distribution: BaseDistribution
) -> None:
    """Give every stored trial parameter ``name`` of the study the (widened) ``distribution``."""
    params, trials = models.TrialParamModel.__table__, models.TrialModel.__table__
    in_study = select(trials.c.trial_id).where(trials.c.study_id == study_id)
    statement = (
        update(params)
        .where(params.c.param_name == name, params.c.trial_id.in_(in_study))
        .values(distribution_json=distribution_to_json(distribution))
    )
    with storage.engine.begin() as conn:
        conn.execute(statement)
    # LimenStorage remembers the first distribution it saw per (study, name).
    getattr(storage, "_distributions", {}).pop((study_id, name), None)


# -------------------------------------------------------------------- domain sampler


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
        # raises outside optimize(); the loop ends an exhausted space itself.
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
        if codec.kind == "categorical" or not _is_number(external):
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


def _random_value(entry: list[Any] | Range, rng: random.Random) -> Any:
    if not isinstance(entry, Range):
        return rng.choice(entry)
    if entry.log:
        value = math.exp(rng.uniform(math.log(entry.low), math.log(entry.high)))
    else:
        value = rng.uniform(entry.low, entry.high)
    return _into_range(entry, value)


# ---------------------------------------------------------------------- strategies


@dataclass
class StudySession:
    """What a strategy needs to reach the study: storage, ids, pruner, run seed."""

    storage: LimenStorage
    study_id: int
    study_name: str
    pruner: BasePruner
    seed: int


class _StudyStrategy(SearchStrategy):
    """Shared plumbing of the study-backed strategies: seen ids, rejections, trials."""

    codec: DomainCodec

    def __init__(self, domain: ParamDomain, *, seed: int | None = None) -> None:
        super().__init__(domain, seed=seed)
        self.session: StudySession | None = None
        self.study: optuna.Study | None = None

    @property
    def _storage(self) -> LimenStorage:
        return self.session.storage

    def _seen_ids(self) -> set[str]:
        """Ids of every round finished, running or queued in the study (any worker's)."""
        trials = self.study._storage.get_all_trials(self.session.study_id, deepcopy=False)
        return {
            t.user_attrs[trial_attrs.ROUND_ID]
            for t in trials
            if trial_attrs.ROUND_ID in t.user_attrs and trial_attrs.ATTEMPT not in t.user_attrs
        }

    def _reject(self, trial_id: int, reason: str) -> None:
        self._storage.finish_trial(
            trial_id,
            TrialState.FAIL,
            None,
            {trial_attrs.ATTEMPT: REJECTED, REJECT_REASON: reason},
        )

    def _accept(self, combo: dict[str, Any], trial_id: int, number: int, **meta: Any) -> Proposal:
        rid = round_id(combo)
        self._storage.set_trial_user_attr(trial_id, trial_attrs.ROUND_ID, rid)
        return Proposal(combo, ticket=(trial_id, number), meta={"id": rid, **meta})

    def _create(self, combo: dict[str, Any], **attrs: Any) -> Proposal:
        rid = round_id(combo)
        trial_id, number = self._storage.create_running_trial(
            self.session.study_id,
            self.codec.to_internal(combo),
            self.codec.distributions,
            user_attrs={trial_attrs.ROUND_ID: rid, **attrs},
        )
        return Proposal(combo, ticket=(trial_id, number), meta={"id": rid})

    def _exhausted(self, seen: set[str]) -> bool:
        total = self.domain.total_combinations
        return math.isfinite(total) and len(seen) >= total and self._enumerate(seen) == []

    def _enumerate(self, seen: set[str]) -> list[dict[str, Any]] | None:
        """Every legal combination not in ``seen`` (None when the space is too large)."""
        params = self.domain.params
        if any(isinstance(e, Range) and e.size == math.inf for e in params.values()):
            return None
        if self.domain.total_combinations > ENUMERATE_LIMIT:
            return None
        lists = [
            [e._value_at(i) for i in range(int(e.size))] if isinstance(e, Range) else e
            for e in params.values()
        ]
        combos = (dict(zip(params, values, strict=True)) for values in itertools.product(*lists))
        return [c for c in combos if round_id(c) not in seen]

    def _fallback(
        self, admissible: Admissible, seen: set[str], attempts: int, rng: random.Random
    ) -> Proposal | None:
        """A random admissible unseen combination drawn from the domain itself."""
        for _ in range(attempts):
            combo = {k: _random_value(e, rng) for k, e in self.domain.params.items()}
            if round_id(combo) not in seen and admissible(combo):
                return self._create(combo, **{"limen:source": "fallback"})
        remaining = self._enumerate(seen)
        if remaining is not None:
            candidates = [c for c in remaining if admissible(c)]
            if not remaining:
                return None
            if candidates:
                return self._create(rng.choice(candidates), **{"limen:source": "fallback"})
        raise FilterExhaustedError(
            f"Filters or duplicates refused {attempts} consecutive proposals of the {self.name!r} "
            "strategy. Relax or clear the MSQ filters, or widen the domain."
        )

    def tell(self, proposal: Proposal, state: str, values: list[float] | None) -> None:
        """Nothing to do by default: the outcome is already in the study."""


class OptunaStrategy(_StudyStrategy):
    """Any Optuna sampler behind ``SearchStrategy``; proposals go through ``study.ask``.

    Args:
        domain: the space to propose from.
        name: a registered name (``"tpe"``, ...) or ``"sampler"`` for an instance.
        sampler: an ``optuna.samplers.BaseSampler`` instance (with ``name="sampler"``).
        **kwargs: the sampler's keywords, validated against its spec.
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
            if kwargs:
                raise ValueError(
                    "A sampler instance takes no keywords: configure the instance itself. "
                    f"Got {sorted(kwargs)}."
                )
            self.sampler_spec = None
            self.kwargs: dict[str, Any] = {}
            self.model_based = not isinstance(sampler, _NOT_MODEL_BASED)
            seed = None
        else:
            spec = SAMPLER_SPECS[name]
            self.kwargs = opt.validate(spec.owner, kwargs, spec.accepted, spec.deprecated)
            _require(name, spec.requires)
            self.sampler_spec = spec
            self.model_based = STRATEGY_REGISTRY[name].model_based
            seed = self.kwargs.get("seed")
        self.name = name
        self._instance = sampler
        if STRATEGY_REGISTRY.get(name) is not None and STRATEGY_REGISTRY[name].finite_only:
            _check_finite(name, domain)
        super().__init__(domain, seed=seed)
        self.codec: LiveCodec = LiveCodec(domain.params, discrete=name == "bruteforce")
        self.rng = random.Random(seed)
        self.wrapper: _DomainSampler | None = None

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

    def attach(self, session: StudySession) -> None:
        """Open the study with the wrapped sampler, seeded from the run unless configured."""
        self.session = session
        n_trials = len(session.storage.get_all_trials(session.study_id, deepcopy=False))
        seed = self.seed if self.seed is not None else session.seed
        # A resumed run continues from a fresh seed rather than replaying the first proposals.
        seed = None if seed is None else seed + n_trials
        self.rng = random.Random(seed)
        inner = self._instance or build_sampler(self.name, {**self.kwargs, "seed": seed})
        self.wrapper = _DomainSampler(inner, self, seed)
        self._open_study()

    def _open_study(self) -> None:
        self.study = optuna.load_study(
            study_name=self.session.study_name,
            storage=self.session.storage,
            sampler=self.wrapper,
            pruner=self.session.pruner,
        )

    def ask(self, admissible: Admissible, max_attempts: int) -> Proposal | None:
        seen = self._seen_ids()
        for _ in range(min(max_attempts, SAMPLER_ATTEMPTS)):
            trial = self.study.ask(self.codec.distributions)
            combo = self.codec.decode(trial.params)
            rid = round_id(combo)
            if rid in seen:
                self._reject(trial._trial_id, "duplicate of a finished round")
            elif not admissible(combo):
                self._reject(trial._trial_id, "refused by the domain or an MSQ filter")
            else:
                return self._accept(combo, trial._trial_id, trial.number)
        if self._exhausted(seen):
            return None
        return self._fallback(admissible, seen, max_attempts, self.rng)

    def tell(self, proposal: Proposal, state: str, values: list[float] | None) -> None:
        """Give the sampler its after-trial hook (the loop stored the outcome already)."""
        trial_id, _ = proposal.ticket
        frozen = self._storage.get_trial(trial_id)
        self.wrapper.after_trial(self.study, frozen, TrialState[state], values)

    def on_domain_changed(self, domain: ParamDomain, changed_params: list[str]) -> None:
        """Widen the distribution of any parameter that gained a value never seen before."""
        widened = False
        for name in changed_params:
            entry = domain.values_for(name)
            if isinstance(entry, Range):
                continue
            for value in entry:
                if not self.codec.knows(name, value):
                    new = self.codec.extend(name, value)
                    widened = True
                    if self.session is not None:
                        replace_distribution(
                            self.session.storage, self.session.study_id, name, new.distribution
                        )
        if widened and self.session is not None:
            # Optuna's cached storage keeps the old distributions: start from a fresh cache.
            self._open_study()

    def get_state(self) -> dict[str, Any]:
        return {"values": self.codec.get_state()}

    def set_state(self, state: Mapping[str, Any]) -> None:
        known = [v for e in self.domain.params.values() if isinstance(e, list) for v in e]
        self.codec.set_state(state.get("values", {}), known)


class GridStrategy(_StudyStrategy):
    """The lazy, exactly-once grid (seeded random order, or index order with shuffle=False).

    The grid is the space the study started with: removed values are skipped, injected values
    are not proposed (queue them with ``MSQ.inject``).
    """

    name = "grid"

    def __init__(
        self,
        domain: ParamDomain,
        *,
        name: str = "grid",
        seed: int | None = None,
        shuffle: bool = True,
    ) -> None:
        opt.validate(
            "GridStrategy",
            {"seed": seed, "shuffle": shuffle},
            {"seed": _SEED, "shuffle": opt.BOOL},
        )
        _check_finite("grid", domain)
        super().__init__(domain, seed=seed)
        self.shuffle = shuffle
        self.initial = domain.params
        self.codec = DomainCodec(self.initial)
        self.proposer: GridProposer | None = None

    @property
    def config(self) -> dict[str, Any]:
        return {"name": "grid", "seed": self.seed, "shuffle": self.shuffle}

    def attach(self, session: StudySession) -> None:
        """Continue the study's grid counter (seeded with the run's seed unless configured)."""
        self.session = session
        if self.seed is None:
            self.seed = session.seed
        self.study = optuna.load_study(
            study_name=session.study_name, storage=session.storage, pruner=session.pruner
        )
        lists = {k: _as_list(v) for k, v in self.initial.items()}
        self.proposer = GridProposer(
            session.storage,
            session.study_id,
            lists,
            self.codec,
            seed=self.seed,
            shuffle=self.shuffle,
        )

    def ask(self, admissible: Admissible, max_attempts: int) -> Proposal | None:
        for _ in range(max_attempts):
            claimed = self.proposer.claim()
            if claimed is None:
                return None
            if admissible(claimed.combo):
                return Proposal(claimed.combo, ticket=(claimed.trial_id, claimed.number))
            self._reject(claimed.trial_id, "refused by the domain or an MSQ filter")
        raise FilterExhaustedError(
            f"Filters refused {max_attempts} consecutive grid combinations. Relax or clear the "
            "MSQ filters."
        )


def _as_list(entry: list[Any] | Range) -> list[Any]:
    if isinstance(entry, Range):
        return [entry._value_at(i) for i in range(int(entry.size))]
    return list(entry)


def _check_finite(name: str, domain: ParamDomain) -> None:
    infinite = [k for k, e in domain.params.items() if isinstance(e, Range) and e.size == math.inf]
    if infinite:
        raise ValueError(
            f"The {name!r} strategy enumerates the space, so every parameter needs finitely many "
            f"values; {infinite} are continuous Ranges. Give them a step or use another strategy."
        )


def _config_value(value: Any) -> Any:
    try:
        json.dumps(value)
    except TypeError:
        return value_token(value)
    return value


# --------------------------------------------------------------------------- queue


class StudyQueue:
    """The MSQ queue kept in the study as WAITING trials (dashboard-visible, crash-safe).

    Prioritised combinations run first, the latest prioritised first; then the rest in the
    order they were queued (retries of interrupted rounds included).
    """

    def __init__(self, strategy: _StudyStrategy) -> None:
        self.strategy = strategy

    @property
    def _session(self) -> StudySession:
        return self.strategy.session

    def push(self, combo: Mapping[str, Any], *, prioritize: bool) -> None:
        """Create a WAITING trial holding ``combo``."""
        codec = self.strategy.codec
        combo = dict(combo)
        for name, value in combo.items():
            union = codec.params[name].values
            if union is not None and not any(same_value(v, value) for v in union):
                raise ValueError(
                    f"MSQ cannot queue {name}={value!r}: the value was never in the domain. "
                    f"Inject it first with inject_value({name!r}, ...)."
                )
        attrs: dict[str, Any] = {trial_attrs.ROUND_ID: round_id(combo), INJECTED: True}
        if prioritize:
            storage, study_id = self._session.storage, self._session.study_id
            attrs[PRIORITY] = storage.claim_sequence(study_id, "msq_priority") + 1
        template = create_trial(
            state=TrialState.WAITING,
            params={name: codec.params[name].to_stored(v) for name, v in combo.items()},
            distributions={name: codec.params[name].distribution for name in combo},
            user_attrs=attrs,
        )
        self._session.storage.create_new_trial(self._session.study_id, template_trial=template)

    def _waiting(self) -> list[FrozenTrial]:
        trials = self._session.storage.get_all_trials(
            self._session.study_id, deepcopy=False, states=(TrialState.WAITING,)
        )
        return sorted(trials, key=lambda t: (-t.user_attrs.get(PRIORITY, 0), t.number))

    def pop(self) -> Proposal | None:
        """Claim the next WAITING trial (atomically: two workers never take the same one)."""
        storage, study_id = self._session.storage, self._session.study_id
        if not has_waiting(storage, study_id):
            return None
        claimed = take_waiting(storage, self.strategy.codec, self._waiting())
        if claimed is None:
            return None
        ticket = (claimed.trial_id, claimed.number)
        return Proposal(claimed.combo, ticket=ticket, injected=True)

    def __len__(self) -> int:
        return len(self._waiting())

    def items(self) -> list[dict[str, Any]]:
        """The queued combinations, in the order they will run."""
        codec = self.strategy.codec
        return [codec.decode(t.params) for t in self._waiting() if t.params]


# ------------------------------------------------------------------------ proposer


_PROPOSERS: weakref.WeakValueDictionary[int, StrategyProposer] = weakref.WeakValueDictionary()


class StrategyProposer:
    """The loop's round source on the advanced path: MSQ queue, then strategy proposals.

    It owns the checkpoint of the mutable search state: every ``checkpoint_interval`` finished
    rounds and at once after each domain mutation.
    """

    def __init__(
        self,
        strategy: SearchStrategy,
        session: StudySession,
        *,
        n_permutations: int | None,
        checkpoint_interval: int,
        max_filter_retries: int = 1000,
    ) -> None:
        self.strategy = strategy
        self.domain = strategy.domain
        self.session = session
        strategy.attach(session)
        self.msq = MSQ(
            strategy,
            self.domain,
            n_permutations=None,
            max_filter_retries=max_filter_retries,
            queue=StudyQueue(strategy),
        )
        self.n_permutations = n_permutations
        self.checkpoints = CheckpointManager(
            session.storage, session.study_id, checkpoint_interval=checkpoint_interval
        )
        self._history: list[dict[str, Any]] = []
        self._running: dict[int, Proposal] = {}
        # A domain reused by a later run must not keep saving into the earlier run's study.
        previous = _PROPOSERS.get(id(self.domain))
        if previous is not None:
            self.domain.remove_observer(previous)
        _PROPOSERS[id(self.domain)] = self
        self.domain.add_observer(self)

    @property
    def codec(self) -> DomainCodec:
        """How this study stores values (grows with injections)."""
        return self.strategy.codec

    @property
    def total(self) -> int | float:
        """Combinations in the current domain."""
        return self.domain.total_combinations

    @property
    def stop_reason(self) -> str | None:
        """Why the last ``claim`` returned None."""
        return self.msq.stop_reason

    def claim(self) -> ClaimedRound | None:
        """The next round as a RUNNING trial, or None when the MSQ stops."""
        proposal = self.msq.next_proposal()
        if proposal is None:
            return None
        trial_id, number = proposal.ticket
        self._running[trial_id] = proposal
        rid = proposal.meta.get("id") or round_id(proposal.combo)
        return ClaimedRound(proposal.combo, trial_id, number, rid)

    def after_trial(
        self, trial_id: int, state: TrialState, values: list[float] | None, finished: int
    ) -> None:
        """Tell the strategy a round's outcome; checkpoint when due."""
        proposal = self._running.pop(trial_id, None)
        if proposal is not None:
            self.strategy.tell(proposal, state.name, values)
        if self.checkpoints.should_checkpoint(finished):
            self.save(finished)

    def reporter(self, trial_id: int, number: int) -> RoundReporter:
        """The ``report()`` sink of a running round."""
        study = getattr(self.strategy, "study", None)
        return RoundReporter(study, trial_id, number)

    def on_domain_changed(self, domain: ParamDomain, changed_params: list[str]) -> None:
        """Persist the mutated domain at once."""
        self.save(self.msq.yielded_count)

    def state(self) -> dict[str, Any]:
        """The mutable search state as JSON."""
        return {
            "domain": encode_domain(self.domain),
            "domain_history": [*self._history, *self.domain.version_history],
            "msq": self.msq.get_state(),
            "strategy": self.strategy.get_state(),
        }

    def save(self, finished: int) -> None:
        """Store the mutable search state in the study."""
        self.checkpoints.save(self.state(), finished_rounds=finished)

    def restore(self, finished: int) -> list[str]:
        """Reload the saved search state (resume); returns filters that could not be restored."""
        state = self.checkpoints.load()
        if state is None:
            return []
        self.domain.remove_observer(self)
        try:
            known = [v for e in self.domain.params.values() if isinstance(e, list) for v in e]
            self.strategy.set_state(state.get("strategy", {}))
            self.domain.set_state(decode_domain(state["domain"], known))
            lost = self.msq.set_state(state["msq"]) if "msq" in state else []
        finally:
            self.domain.add_observer(self)
        self._history = list(state.get("domain_history", []))
        self.msq.yielded_count = max(self.msq.yielded_count, finished)
        return lost


def open_proposer(
    strategy: SearchStrategy,
    *,
    storage: LimenStorage,
    study_id: int,
    study_name: str,
    pruner: BasePruner,
    seed: int,
    checkpoint_interval: int,
    n_permutations: int | None = None,
) -> StrategyProposer:
    """Attach ``strategy`` to the study and wrap it with the MSQ and checkpoints."""
    session = StudySession(storage, study_id, study_name, pruner, seed)
    return StrategyProposer(
        strategy,
        session,
        n_permutations=n_permutations,
        checkpoint_interval=checkpoint_interval,
    )
