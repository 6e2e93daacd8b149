"""Plain-Python strategies for tests: the port needs nothing but ``__next__``."""

from __future__ import annotations

import itertools

from limen.experiment import SearchStrategy


class InOrder(SearchStrategy):
    """Proposes the domain's current combinations in order, then from the start again."""

    def __init__(self, domain, *, seed=None) -> None:
        super().__init__(domain, seed=seed)
        self.count = 0
        self.told: list[tuple[dict, str, list | None]] = []

    def __next__(self) -> dict:
        keys = self.domain.keys
        combos = list(itertools.product(*(self.domain.values_for(k) for k in keys)))
        combo = dict(zip(keys, combos[self.count % len(combos)], strict=True))
        self.count += 1
        return combo

    def tell(self, combo, state, values) -> None:
        self.told.append((dict(combo), state, values))
