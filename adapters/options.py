"""Declarative validation of strategy and pruner keyword arguments.

Every message follows one template: "The 'n_startup_trials' parameter of TPEStrategy must be an
int in [0, inf). Got -1 instead." Unknown keywords list the accepted ones; deprecated Optuna
keywords say why they are refused.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from numbers import Integral, Real
from typing import Any


@dataclass(frozen=True)
class Option:
    """One accepted keyword: a predicate on its value and the phrase that describes it."""

    check: Callable[[Any], bool]
    description: str


def _interval(low: float, high: float, closed: str) -> str:
    left = "[" if closed in ("both", "left") else "("
    right = "]" if closed in ("both", "right") and math.isfinite(high) else ")"
    hi = "inf" if math.isinf(high) else repr(high)
    lo = "-inf" if math.isinf(low) else repr(low)
    return f"{left}{lo}, {hi}{right}"


def _within(value: float, low: float, high: float, closed: str) -> bool:
    above = value >= low if closed in ("both", "left") else value > low
    below = value <= high if closed in ("both", "right") else value < high
    return above and below


def integer(low: float = -math.inf, high: float = math.inf, closed: str = "both") -> Option:
    """An int (not a bool) in the interval."""
    return Option(
        lambda v: (
            isinstance(v, Integral) and not isinstance(v, bool) and _within(v, low, high, closed)
        ),
        f"an int in {_interval(low, high, closed)}",
    )


def real(low: float = -math.inf, high: float = math.inf, closed: str = "both") -> Option:
    """A finite number (not a bool) in the interval."""
    return Option(
        lambda v: (
            isinstance(v, Real)
            and not isinstance(v, bool)
            and math.isfinite(v)
            and _within(v, low, high, closed)
        ),
        f"a float in {_interval(low, high, closed)}",
    )


BOOL = Option(lambda v: isinstance(v, bool), "a bool")


def choice(*options: Any) -> Option:
    """One of ``options``."""
    return Option(lambda v: v in options, f"one of {list(options)}")


def instance_of(kind: type | tuple[type, ...], description: str) -> Option:
    """An instance of ``kind``."""
    return Option(lambda v: isinstance(v, kind), description)


def optional(option: Option) -> Option:
    """``option`` or None."""
    return Option(lambda v: v is None or option.check(v), f"{option.description} or None")


def either(*options: Option) -> Option:
    """Any of ``options``."""
    return Option(
        lambda v: any(o.check(v) for o in options), " or ".join(o.description for o in options)
    )


def validate(
    owner: str,
    kwargs: Mapping[str, Any],
    accepted: Mapping[str, Option],
    deprecated: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """Check ``kwargs`` against ``accepted``; returns them as a new dict.

    Raises:
        ValueError: an unknown or deprecated keyword, or a value outside its option.
    """
    deprecated = deprecated or {}
    for key, value in kwargs.items():
        if key in deprecated:
            raise ValueError(
                f"The '{key}' parameter of {owner} is not accepted: {deprecated[key]} "
                f"Accepted parameters: {sorted(accepted)}."
            )
        if key not in accepted:
            raise ValueError(
                f"Unknown parameter {key!r} for {owner}. Accepted parameters: {sorted(accepted)}."
            )
        option = accepted[key]
        if not option.check(value):
            raise ValueError(
                f"The '{key}' parameter of {owner} must be {option.description}. "
                f"Got {value!r} instead."
            )
    return dict(kwargs)
