"""The legacy ``ParamSpace`` API, kept for old scripts, on top of the lazy grid.

The original pre-sampled ``n_permutations`` rows of the cartesian product and popped them at
random, which cost seconds and hundreds of megabytes for large spaces. This one walks a
``GridSpace`` instead: memory is O(1) in the size of the space and every combination is drawn
at most once.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator
from typing import Any

from limen.adapters.grid import GridCursor, GridSpace
from limen.utils.validation import Interval, validate_params

__all__ = ["ParamSpace"]


class ParamSpace:
    """Draws distinct combinations of a parameter space, one dict per call.

    Args:
        params: Parameter name -> non-empty list of values. The first key varies fastest in
            index order.
        n_permutations: How many combinations ``generate`` returns at most (capped at the size
            of the space).
        seed: Key of the random order. ``None`` draws one from the global ``random`` module,
            so ``random.seed(...)`` before construction makes the order reproducible.
    """

    def __init__(
        self, params: dict[str, list], n_permutations: int, *, seed: int | None = None
    ) -> None:
        _validate_params(params)
        validate_params(
            {"n_permutations": [Interval(int, 1, None)], "seed": [int, None]},
            {"n_permutations": n_permutations, "seed": seed},
            "ParamSpace",
        )
        self.keys: list[str] = list(params)
        self.param_sizes: list[int] = [len(values) for values in params.values()]
        self.total_space: int = math.prod(self.param_sizes)
        self.n_permutations: int = min(n_permutations, self.total_space)
        self._values = [list(values) for values in params.values()]
        self._seed = random.getrandbits(64) if seed is None else seed
        self._rows: Iterator[tuple[Any, ...]] | None = None
        self._random_search: bool | None = None

    def generate(self, random_search: bool = True) -> dict[str, Any] | None:
        """The next combination as ``{name: value}``; ``None`` once ``n_permutations`` were drawn.

        ``random_search=True`` draws in a seeded random order, ``False`` in index order (first
        key fastest). Either way no combination repeats; the order is fixed by the first call.
        """
        if self._rows is None:
            self._random_search = bool(random_search)
            self._rows = iter(self._open(self._random_search))
        elif bool(random_search) != self._random_search:
            raise ValueError(
                f"ParamSpace.generate was first called with random_search="
                f"{self._random_search}; one ParamSpace draws in one order. Got "
                f"random_search={random_search} instead: build a new ParamSpace to change order."
            )
        row = next(self._rows, None)
        return None if row is None else dict(zip(self.keys, row, strict=False))

    def _open(self, random_search: bool) -> GridCursor:
        space = GridSpace(self.param_sizes, seed=self._seed, shuffle=random_search)
        return GridCursor(space, 0, self.n_permutations, values=self._values)


def _validate_params(params: Any) -> None:
    if not isinstance(params, dict) or not params:
        raise ValueError(
            f"The 'params' parameter of ParamSpace must be a non-empty dict of parameter name "
            f"-> non-empty list of values. Got {params!r} instead."
        )
    for name, values in params.items():
        if not isinstance(values, list) or not values:
            raise ValueError(f"Parameter {name!r} must be a non-empty list, got {values!r}")
