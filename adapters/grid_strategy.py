"""GridStrategy: the lazy grid as a search strategy (the basic path's ``search_strategy=None``).

The grid walks positions 0, 1, 2, ... of a ``GridSpace`` over every parameter's list of values:
index order, or a seeded permutation (``shuffle=True``), never materialising the product. A
position whose combination is no longer legal in the domain (a value was removed) is skipped.
An injected value joins its parameter's list and the walk starts again over the larger grid: the
round pipeline skips the combinations that already ran, so each runs once. The position is the
strategy's state, so a resumed run continues the walk where it stopped.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from limen.adapters import options as opt
from limen.adapters.grid import GridSpace
from limen.errors import InvalidParameterError
from limen.experiment.identity import value_token
from limen.experiment.param_domain import ParamDomain, Range, same_value
from limen.experiment.search_strategy import SearchStrategy

__all__ = ["GridStrategy", "as_list", "check_finite"]


class GridStrategy(SearchStrategy):
    """Every combination of the domain once, in index order or a seeded random order.

    Args:
        domain: the space to walk; every parameter needs finitely many values.
        name: the registry name (``"grid"``).
        seed: key of the shuffled order (None: drawn at random and kept in ``config``).
        shuffle: visit combinations in a seeded random order (False: index order, the first
            parameter varying fastest).
    """

    name = "grid"
    exhaustive = True

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
            {"seed": opt.optional(opt.integer(0)), "shuffle": opt.BOOL},
        )
        check_finite("grid", domain)
        self.lists = {key: as_list(entry) for key, entry in domain.params.items()}
        self.shuffle = shuffle
        self.position = 0
        self.space = GridSpace(self._sizes(), seed=seed, shuffle=shuffle)
        super().__init__(domain, seed=self.space.seed)

    @property
    def config(self) -> dict[str, Any]:
        return {"name": "grid", "seed": self.seed, "shuffle": self.shuffle}

    @property
    def total(self) -> int:
        """Combinations in the grid (the union of every value each parameter ever held)."""
        return self.space.total

    def __next__(self) -> dict[str, Any]:
        while self.position < self.space.total:
            indices = self.space.decode(self.space.index_at(self.position))
            self.position += 1
            combo = {
                key: values[i] for (key, values), i in zip(self.lists.items(), indices, strict=True)
            }
            if self.domain.is_valid_combination(combo):
                return combo
        raise StopIteration

    def on_domain_changed(self, domain: ParamDomain, changed_params: list[str]) -> None:
        """Add injected values to their lists and walk the larger grid from the start."""
        grown = False
        for key in changed_params:
            entry = domain.values_for(key)
            for value in as_list(entry) if not _is_continuous(entry) else []:
                if not any(same_value(value, known) for known in self.lists[key]):
                    self.lists[key].append(value)
                    grown = True
        if grown:
            self.space = GridSpace(self._sizes(), seed=self.seed, shuffle=self.shuffle)
            self.position = 0

    def get_state(self) -> dict[str, Any]:
        """The walk's position and each parameter's list (as readable tokens)."""
        return {
            "position": self.position,
            "lists": {key: [value_token(v) for v in values] for key, values in self.lists.items()},
        }

    def set_state(self, state: Mapping[str, Any]) -> None:
        """Continue the walk of a ``get_state`` result over the same lists."""
        tokens = state.get("lists", {})
        for key, saved in tokens.items():
            if key not in self.lists:
                continue
            by_token = {value_token(v): v for v in self.lists[key]}
            if all(t in by_token for t in saved) and len(saved) == len(self.lists[key]):
                self.lists[key] = [by_token[t] for t in saved]
        self.space = GridSpace(self._sizes(), seed=self.seed, shuffle=self.shuffle)
        position = state.get("position", 0)
        if not isinstance(position, int) or isinstance(position, bool) or position < 0:
            raise ValueError(
                f"The grid position in the saved search state must be an int >= 0. "
                f"Got {position!r} instead; resume with resume='force' to walk afresh."
            )
        self.position = min(position, self.space.total)

    def _sizes(self) -> list[int]:
        return [len(values) for values in self.lists.values()]


def as_list(entry: list[Any] | Range) -> list[Any]:
    """Every value of a list or a finite ``Range``, in order."""
    if isinstance(entry, Range):
        return [entry._value_at(i) for i in range(int(entry.size))]
    return list(entry)


def _is_continuous(entry: list[Any] | Range) -> bool:
    return isinstance(entry, Range) and entry.size == math.inf


def check_finite(name: str, domain: ParamDomain) -> None:
    """Refuse a domain with a continuous ``Range`` for a strategy that enumerates values."""
    infinite = [k for k, e in domain.params.items() if _is_continuous(e)]
    if infinite:
        raise InvalidParameterError(
            f"The {name!r} strategy enumerates the space, so every parameter needs finitely many "
            f"values; {infinite} are continuous Ranges. Give them a step or use another strategy."
        )
