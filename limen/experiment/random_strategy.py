"""RandomStrategy: independent uniform draws from the current domain, in plain Python.

Each proposal draws every parameter on its own: a uniform choice among the values the domain
holds now (so a removed value is never drawn and an injected one is drawn at once), or a point of
a ``Range`` (uniform, or uniform in log space for ``log=True``, snapped to its step). The random
generator's state travels with ``get_state``, so a resumed run proposes exactly what the same run
left alone would have.
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping
from typing import Any

from limen.experiment.param_domain import ParamDomain, Range
from limen.experiment.search_strategy import SearchStrategy

__all__ = ["RandomStrategy", "random_value"]


class RandomStrategy(SearchStrategy):
    """Uniform random proposals from the domain's current values (never exhausted).

    Args:
        domain: the space to propose from.
        name: the registry name (``"random"``).
        seed: seed of the generator (None: random).
    """

    name = "random"

    def __init__(
        self, domain: ParamDomain, *, name: str = "random", seed: int | None = None
    ) -> None:
        super().__init__(domain, seed=seed)
        self.rng = random.Random(seed)

    @property
    def config(self) -> dict[str, Any]:
        return {"name": "random", "seed": self.seed}

    def __next__(self) -> dict[str, Any]:
        return {key: random_value(entry, self.rng) for key, entry in self.domain.params.items()}

    def get_state(self) -> dict[str, Any]:
        """The generator's state as JSON (``random.Random.getstate`` in lists)."""
        version, internal, gauss = self.rng.getstate()
        return {"rng": [version, list(internal), gauss]}

    def set_state(self, state: Mapping[str, Any]) -> None:
        """Continue from a ``get_state`` result (a state without ``rng`` keeps the seed's)."""
        saved = state.get("rng")
        if saved is None:
            return
        try:
            version, internal, gauss = saved
            self.rng.setstate((int(version), tuple(int(v) for v in internal), gauss))
        except (TypeError, ValueError) as exc:
            raise ValueError(
                f"The RandomStrategy state is not a saved generator state: {exc}. Resume with "
                "resume='force' to start the generator afresh."
            ) from None


def random_value(entry: list[Any] | Range, rng: random.Random) -> Any:
    """A uniform draw from a list of values or a ``Range`` (log-uniform for ``log=True``)."""
    if not isinstance(entry, Range):
        return entry[rng.randrange(len(entry))]
    if entry.log:
        value = math.exp(rng.uniform(math.log(entry.low), math.log(entry.high)))
        return min(max(round(value), entry.low), entry.high) if entry.is_int else value
    if entry.size != math.inf:
        return entry._value_at(rng.randrange(int(entry.size)))
    return rng.uniform(entry.low, entry.high)
