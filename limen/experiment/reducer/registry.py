"""REDUCER_REGISTRY: reducer names -> classes, and building reducers from config dicts."""

from __future__ import annotations

import inspect
from collections.abc import Mapping, Sequence
from typing import Any

from limen.errors import InvalidParameterError
from limen.experiment.reducer.base import PruningStrategy
from limen.experiment.reducer.budget import BudgetReducer
from limen.experiment.reducer.correlation import CorrelationReducer
from limen.experiment.reducer.focus import FocusReducer
from limen.experiment.reducer.sanity import SanityReducer
from limen.experiment.reducer.saturation import SaturationReducer

__all__ = ["REDUCER_REGISTRY", "make_reducer", "make_reducers", "reducer_config"]

REDUCER_REGISTRY: dict[str, type[PruningStrategy]] = {
    "budget": BudgetReducer,
    "correlation": CorrelationReducer,
    "focus": FocusReducer,
    "sanity": SanityReducer,
    "saturation": SaturationReducer,
}


def make_reducer(config: PruningStrategy | Mapping[str, Any]) -> PruningStrategy:
    """A reducer from an instance (returned as is) or a config ``{"name": "sanity", **kwargs}``.

    Raises:
        ValueError: an unknown name (the message lists the known ones) or bad kwargs.
        TypeError: neither a PruningStrategy nor a dict.
    """
    if isinstance(config, PruningStrategy):
        return config
    if not isinstance(config, Mapping):
        raise InvalidParameterError(
            "A reducer must be a PruningStrategy or a config dict {'name': 'sanity', ...}. "
            f"Got {config!r} instead."
        )
    kwargs = dict(config)
    name = kwargs.pop("name", None)
    if name not in REDUCER_REGISTRY:
        raise InvalidParameterError(
            f"Unknown reducer name {name!r}. Known reducers: {sorted(REDUCER_REGISTRY)}."
        )
    try:
        return REDUCER_REGISTRY[name](**kwargs)
    except TypeError as exc:
        raise InvalidParameterError(f"Reducer {name!r}: {exc}") from None


def make_reducers(configs: Sequence[Any] | None) -> list[PruningStrategy]:
    """Reducers from a list of instances and config dicts (None: none)."""
    if configs is None:
        return []
    if isinstance(configs, Mapping | str) or not isinstance(configs, Sequence):
        raise InvalidParameterError(
            "The 'pruning_strategies' parameter must be a list of PruningStrategy instances or "
            f"config dicts. Got {configs!r} instead."
        )
    return [make_reducer(config) for config in configs]


def reducer_config(reducer: PruningStrategy) -> dict[str, Any] | None:
    """The config dict that rebuilds ``reducer`` (stored in the study so a resume or a worker
    gets the same reducers), or None for a reducer outside the registry or whose arguments are
    not all kept as plain attributes."""
    names = [name for name, cls in REDUCER_REGISTRY.items() if type(reducer) is cls]
    if not names:
        return None
    config: dict[str, Any] = {"name": names[0]}
    for param in inspect.signature(type(reducer).__init__).parameters.values():
        if param.name == "self":
            continue
        if not hasattr(reducer, param.name):
            return None
        value = getattr(reducer, param.name)
        if not isinstance(value, str | int | float | bool | list | tuple | type(None)):
            return None
        config[param.name] = list(value) if isinstance(value, tuple) else value
    return config
