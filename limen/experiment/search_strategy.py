"""SearchStrategy, the port every search algorithm plugs into, and the strategy registry.

A strategy proposes parameter combinations from a ``ParamDomain``; the loop runs them and tells
the strategy how they ended. The loop calls a strategy in this order:

1. ``attach(session)`` once, after the study is open and before the first proposal. The session
   is whatever the adapter needs to reach the study (for the Optuna adapters: the storage and
   the study id); a strategy restores its own state from the study here.
2. ``ask(admissible, max_attempts)`` for each new round, after the queued combinations of the
   MSQ ran out. It returns a ``Proposal`` whose combination ``admissible`` accepts, ``None``
   when the space is exhausted, or raises ``FilterExhaustedError`` when ``max_attempts``
   proposals in a row were refused. The strategy rejects duplicates of finished rounds itself.
3. ``tell(proposal, state, values)`` once the round is finished (``state`` is ``"COMPLETE"``,
   ``"PRUNED"`` or ``"FAIL"``; ``values`` the objective values or ``None``).
4. ``on_domain_changed(domain, changed)`` whenever the domain is mutated, at any time between
   the calls above (the strategy is a domain observer from construction).
5. ``get_state()`` / ``set_state(state)`` around checkpoints and resumes, for state the study
   does not already hold.

This module is plain Python: the registry names adapter classes by import path, so importing
it never imports Optuna.
"""

from __future__ import annotations

import importlib
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from limen.experiment.param_domain import ParamDomain


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


_OPTUNA = "limen.adapters.samplers:OptunaStrategy"

STRATEGY_REGISTRY: dict[str, StrategyInfo] = {
    "grid": StrategyInfo("limen.adapters.samplers:GridStrategy", finite_only=True),
    "random": StrategyInfo(_OPTUNA),
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


@dataclass
class Proposal:
    """One combination a strategy (or the MSQ queue) hands the loop.

    Attributes:
        combo: parameter name -> real value (decoded, legal in the domain).
        ticket: the adapter's handle on the round (for Optuna: the trial id and number).
        injected: it came from the MSQ queue, not from the strategy.
        meta: free-form details the adapter keeps with the proposal.
    """

    combo: dict[str, Any]
    ticket: Any = None
    injected: bool = False
    meta: dict[str, Any] = field(default_factory=dict)


Admissible = Callable[[Mapping[str, Any]], bool]


class SearchStrategy(ABC):
    """Proposes combinations from a ``ParamDomain`` (see the module docstring for the calls).

    Args:
        domain: the mutable space to propose from; the strategy observes it.
        seed: seed of the strategy's randomness (None: random).
    """

    name: str = "custom"
    model_based: bool = False

    def __init__(self, domain: ParamDomain, *, seed: int | None = None) -> None:
        if not isinstance(domain, ParamDomain):
            raise TypeError(
                f"The 'domain' parameter of {type(self).__name__} must be a ParamDomain. "
                f"Got {domain!r} instead."
            )
        self.domain = domain
        self.seed = seed
        domain.add_observer(self)

    @property
    def config(self) -> dict[str, Any]:
        """``{"name": ..., **kwargs}``: enough to rebuild the strategy on resume."""
        return {"name": self.name, "seed": self.seed}

    @property
    def is_finite(self) -> bool:
        """Whether the strategy can run out of proposals (every parameter has finitely many)."""
        return self.domain.total_combinations != float("inf")

    def attach(self, session: Any) -> None:  # noqa: B027 - optional hook
        """Connect to the study before the first ``ask`` (adapter-specific session)."""

    @abstractmethod
    def ask(self, admissible: Admissible, max_attempts: int) -> Proposal | None:
        """The next combination ``admissible`` accepts; None once the space is exhausted."""

    @abstractmethod
    def tell(self, proposal: Proposal, state: str, values: list[float] | None) -> None:
        """The outcome of a proposal the loop ran."""

    def on_domain_changed(self, domain: ParamDomain, changed_params: list[str]) -> None:  # noqa: B027
        """React to a domain mutation (default: nothing, proposals are checked anyway)."""

    def get_state(self) -> dict[str, Any]:
        """JSON-safe state the study does not already hold (default: none)."""
        return {}

    def set_state(self, state: Mapping[str, Any]) -> None:  # noqa: B027 - optional hook
        """Restore what ``get_state`` returned."""


def strategy_info(name: str) -> StrategyInfo:
    """The registry entry of ``name``, or a ValueError listing the registered names."""
    try:
        return STRATEGY_REGISTRY[name]
    except (KeyError, TypeError):
        raise ValueError(
            f"Unknown search strategy {name!r}. Registered strategies: "
            f"{sorted(STRATEGY_REGISTRY)}; or pass an optuna.samplers.BaseSampler instance, a "
            "config dict {'name': ..., **kwargs} or a TOML/YAML file."
        ) from None


def resolve_strategy_config(config: Any) -> dict[str, Any] | Any:
    """Normalise a strategy config: a name, a dict, a TOML/YAML path, or an object as is.

    Returns ``{"name": ..., **kwargs}`` for names, dicts and files; other objects (a sampler or
    a ``SearchStrategy`` instance) are returned unchanged.
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
            raise ValueError(
                "A strategy config dict needs a 'name' key naming one of "
                f"{sorted(STRATEGY_REGISTRY)}. Got {dict(config)!r} instead."
            )
        strategy_info(config["name"])
        return dict(config)
    return config


def make_strategy(config: Any, domain: ParamDomain) -> SearchStrategy:
    """Build a strategy over ``domain`` from a name, a dict, a file, or a sampler instance.

    Args:
        config: ``"tpe"``, ``{"name": "tpe", "n_startup_trials": 5}``, a path to a TOML or
            YAML file (its ``[strategy]`` table, or the whole file), an
            ``optuna.samplers.BaseSampler`` instance, or a ``SearchStrategy`` (returned as is).
        domain: the space to propose from.

    Raises:
        ValueError: unknown name, unknown or deprecated keyword, invalid value.
        ImportError: the strategy's optional dependency is missing (the message names the
            ``pip install`` to run).
    """
    if isinstance(config, SearchStrategy):
        return config
    resolved = resolve_strategy_config(config)
    if isinstance(resolved, Mapping):
        kwargs = dict(resolved)
        name = kwargs.pop("name")
        adapter = _load(strategy_info(name).adapter)
        return adapter(domain, name=name, **kwargs)
    adapter = _load(_OPTUNA)
    if not adapter.accepts_instance(resolved):
        raise TypeError(
            "The 'search_strategy' must be a strategy name, a config dict, a TOML/YAML file, an "
            f"optuna.samplers.BaseSampler or a SearchStrategy. Got {resolved!r} instead."
        )
    return adapter(domain, name="sampler", sampler=resolved)


def _load(path: str) -> Any:
    module, _, attr = path.partition(":")
    return getattr(importlib.import_module(module), attr)
