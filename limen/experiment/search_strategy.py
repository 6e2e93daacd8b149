"""SearchStrategy, the port every search algorithm plugs into, and the strategy registry.

A strategy knows search only: it proposes combinations of a ``ParamDomain`` and hears how they
ended. Everything else (the study's trials, how values are stored, exactly-once, the domain and
filter checks, the MSQ queue) belongs to the round pipeline (``MSQ.next_proposal``). The
pipeline calls a strategy in this order:

1. ``set_objective(names, directions)`` once before anything else (the objective metrics and
   ``"maximize"``/``"minimize"`` for each); on resume ``set_state(state)`` with what
   ``get_state`` returned at the last checkpoint, then ``tell`` once for every round the study
   already finished, oldest first.
2. ``next(strategy)`` whenever a new round is wanted (after the MSQ queue ran dry). It returns a
   combination: a dict of parameter name -> domain value. ``StopIteration`` means the strategy
   has nothing more to propose. The pipeline may refuse a proposal (illegal in the domain,
   removed by a filter, a duplicate of a round already run or running) and call ``next`` again;
   a duplicate of a finished round is answered with that round's outcome through ``tell``.
3. ``tell(combo, state, values)`` once per finished round (``state`` is ``"COMPLETE"``,
   ``"PRUNED"`` or ``"FAIL"``; ``values`` the objective values, or None).
4. ``on_domain_changed(domain, changed)`` whenever the domain is mutated (the strategy is a
   domain observer from construction), at any time between the calls above.
5. ``update_from_feedback(log, interventions)`` once per feedback trigger, with the
   interventions it applied.
6. ``get_state()`` at each checkpoint: JSON-safe state that lets ``set_state`` continue.

Only ``__next__`` is required. This module is plain Python: the registry names adapter classes
by import path, so importing it never imports Optuna.
"""

from __future__ import annotations

import importlib
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from limen.experiment.param_domain import ParamDomain
from limen.utils.validation import invalid

__all__ = [
    "PRUNER_REGISTRY",
    "STRATEGY_REGISTRY",
    "SearchStrategy",
    "StrategyInfo",
    "make_strategy",
    "resolve_strategy_config",
    "strategy_info",
]


@dataclass(frozen=True)
class StrategyInfo:
    """What the loop must know about a registered strategy before it runs.

    Attributes:
        adapter: ``"module:Class"`` of the implementation, imported on first use.
        model_based: the algorithm learns from objective values, so it needs an objective.
        finite_only: every parameter must have finitely many values (no continuous Range).
        extra: the optional-dependency extra it needs (``pip install limen[extra]``).
    """

    adapter: str
    model_based: bool = False
    finite_only: bool = False
    extra: str | None = None


_OPTUNA = "limen.adapters.optuna_strategy:OptunaStrategy"

STRATEGY_REGISTRY: dict[str, StrategyInfo] = {
    "grid": StrategyInfo("limen.adapters.grid_strategy:GridStrategy", finite_only=True),
    "random": StrategyInfo("limen.experiment.random_strategy:RandomStrategy"),
    "tpe": StrategyInfo(_OPTUNA, model_based=True),
    "cmaes": StrategyInfo(_OPTUNA, model_based=True, extra="cmaes"),
    "gp": StrategyInfo(_OPTUNA, model_based=True, extra="gp"),
    "qmc": StrategyInfo(_OPTUNA),
    "nsga2": StrategyInfo(_OPTUNA, model_based=True),
    "nsga3": StrategyInfo(_OPTUNA, model_based=True),
    "bruteforce": StrategyInfo(_OPTUNA, finite_only=True),
}

PRUNER_REGISTRY: tuple[str, ...] = (
    "median",
    "percentile",
    "hyperband",
    "successive_halving",
    "threshold",
    "patient",
    "wilcoxon",
    "nop",
)


class SearchStrategy(ABC):
    """Proposes combinations from a ``ParamDomain`` (the module docstring gives the call order).

    A subclass implements ``__next__``; every other method has a do-nothing default.

    Args:
        domain: the mutable space to propose from; the strategy observes it.
        seed: seed of the strategy's randomness (None: random).
    """

    name: str = "custom"
    model_based: bool = False
    #: True for a strategy that proposes each legal combination once, so that its
    #: ``StopIteration`` means the space is spent (the grid): the pipeline then skips the
    #: duplicates it walks over instead of falling back to the lazy grid.
    exhaustive: bool = False

    def __init__(self, domain: ParamDomain, *, seed: int | None = None) -> None:
        if not isinstance(domain, ParamDomain):
            raise invalid("domain", type(self).__name__, "a ParamDomain", domain)
        if seed is not None and (not isinstance(seed, int) or isinstance(seed, bool)):
            raise invalid("seed", type(self).__name__, "an int or None", seed)
        self.domain = domain
        self.seed = seed
        domain.add_observer(self)

    def __iter__(self) -> SearchStrategy:
        return self

    @abstractmethod
    def __next__(self) -> dict[str, Any]:
        """The next combination to try; ``StopIteration`` when there is none."""

    def set_objective(self, names: Sequence[str], directions: Sequence[str]) -> None:  # noqa: B027
        """The objective metrics and their directions, before the first proposal."""

    def tell(self, combo: Mapping[str, Any], state: str, values: list[float] | None) -> None:  # noqa: B027
        """The outcome of a finished round (default: ignored)."""

    def on_domain_changed(self, domain: ParamDomain, changed_params: list[str]) -> None:  # noqa: B027
        """React to a domain mutation (default: nothing; proposals are checked anyway)."""

    def update_from_feedback(  # noqa: B027 - optional hook
        self, log: pd.DataFrame, interventions: list[dict[str, Any]]
    ) -> None:
        """Learn from a feedback trigger: the experiment log and the applied interventions."""

    def get_state(self) -> dict[str, Any]:
        """JSON-safe state to continue from after a resume (default: none)."""
        return {}

    def set_state(self, state: Mapping[str, Any]) -> None:  # noqa: B027 - optional hook
        """Restore what ``get_state`` returned."""

    @property
    def config(self) -> dict[str, Any]:
        """``{"name": ..., **kwargs}``: enough to rebuild the strategy on resume."""
        kind = type(self)
        return {"name": "custom", "class": f"{kind.__module__}.{kind.__qualname__}"}

    @property
    def is_finite(self) -> bool:
        """Whether every parameter has finitely many values."""
        return self.domain.total_combinations != float("inf")


def _accepted() -> str:
    return (
        f"a strategy name {sorted(STRATEGY_REGISTRY)}, a config dict {{'name': ..., **kwargs}}, "
        "a TOML/YAML file, an optuna.samplers.BaseSampler, or a SearchStrategy class or instance"
    )


def strategy_info(name: str) -> StrategyInfo:
    """The registry entry of ``name``, or an InvalidParameterError listing them."""
    try:
        return STRATEGY_REGISTRY[name]
    except (KeyError, TypeError):
        raise invalid("search_strategy", "UniversalExperimentLoop", _accepted(), name) from None


def resolve_strategy_config(config: Any) -> dict[str, Any] | Any:
    """Normalise a strategy config: a name, a dict, a TOML/YAML path, or an object as is.

    Returns ``{"name": ..., **kwargs}`` for names, dicts and files; other objects (a sampler, a
    ``SearchStrategy`` class or instance) are returned unchanged.
    """
    if isinstance(config, Path) or (
        isinstance(config, str) and config.lower().endswith((".toml", ".yaml", ".yml"))
    ):
        from limen.experiment.config import read_config_file

        document = read_config_file(config)
        section = document.get("strategy", document)
        return resolve_strategy_config(section)
    if isinstance(config, str):
        strategy_info(config)
        return {"name": config}
    if isinstance(config, Mapping):
        if "name" not in config:
            raise invalid(
                "search_strategy",
                "UniversalExperimentLoop",
                f"a config dict with a 'name' key naming one of {sorted(STRATEGY_REGISTRY)}",
                dict(config),
            )
        strategy_info(config["name"])
        return dict(config)
    is_class = isinstance(config, type) and issubclass(config, SearchStrategy)
    is_sampler = callable(getattr(config, "sample_independent", None))
    if not (isinstance(config, SearchStrategy) or is_class or is_sampler):
        raise invalid("search_strategy", "UniversalExperimentLoop", _accepted(), config)
    return config


def make_strategy(config: Any, domain: ParamDomain, *, seed: int | None = None) -> SearchStrategy:
    """Build a strategy over ``domain`` from a name, a dict, a file, a class or a sampler.

    Args:
        config: ``"tpe"``, ``{"name": "tpe", "n_startup_trials": 5}``, a path to a TOML or
            YAML file (its ``[strategy]`` table, or the whole file), an
            ``optuna.samplers.BaseSampler`` instance, a ``SearchStrategy`` subclass (built on
            ``domain`` with ``seed``) or instance (returned as is).
        domain: the space to propose from.
        seed: the seed when the config names none (the run's seed).

    Raises:
        ValueError: unknown name, unknown or deprecated keyword, invalid value.
        TypeError: ``config`` is none of the above.
        ImportError: the strategy's optional dependency is missing (the message names the
            ``pip install`` to run).
    """
    if isinstance(config, SearchStrategy):
        return config
    if isinstance(config, type) and issubclass(config, SearchStrategy):
        return config(domain, seed=seed)
    resolved = resolve_strategy_config(config)
    if isinstance(resolved, Mapping):
        kwargs = dict(resolved)
        name = kwargs.pop("name")
        if kwargs.get("seed") is None:
            kwargs["seed"] = seed
        adapter = _load(strategy_info(name).adapter)
        return adapter(domain, name=name, **kwargs)
    adapter = _load(_OPTUNA)
    if not adapter.accepts_instance(resolved):
        raise invalid("search_strategy", "UniversalExperimentLoop", _accepted(), resolved)
    return adapter(domain, name="sampler", sampler=resolved)


def _load(path: str) -> Any:
    module, _, attr = path.partition(":")
    return getattr(importlib.import_module(module), attr)
