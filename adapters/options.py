"""Strategy and pruner keyword arguments, checked with ``limen.utils.validation``.

The sampler and pruner registries describe each keyword with the short helpers below; they
build the constraints of ``limen.utils.validation``, so these keywords are refused with the
same message as every other parameter: "The 'n_startup_trials' parameter of TPEStrategy must
be an int in the range [0, inf). Got -1 instead."
"""

from __future__ import annotations

from collections.abc import Mapping
from numbers import Integral, Real
from typing import Any

from limen.utils.validation import (
    Boolean,
    Constraint,
    InstanceOf,
    Interval,
    NoneConstraint,
    Options,
    Predicate,
    check_keywords,
    describe,
)

__all__ = [
    "BOOL",
    "Option",
    "choice",
    "either",
    "instance_of",
    "integer",
    "optional",
    "real",
    "validate",
]

Option = Constraint
BOOL: Constraint = Boolean()


def integer(
    low: float | None = None, high: float | None = None, closed: str = "both"
) -> Constraint:
    """An int (not a bool) in the interval; a missing bound is unbounded."""
    return Interval(Integral, low, high, closed=closed)


def real(low: float | None = None, high: float | None = None, closed: str = "both") -> Constraint:
    """A finite number (not a bool) in the interval; a missing bound is unbounded."""
    return Interval(Real, low, high, closed=closed)


def choice(*options: Any) -> Constraint:
    """One of ``options``."""
    return Options(object, options)


def instance_of(kind: type | tuple[type, ...], description: str) -> Constraint:
    """An instance of ``kind``, named by ``description``."""
    return InstanceOf(kind, description)


def optional(option: Constraint) -> Constraint:
    """``option`` or None."""
    return either(option, NoneConstraint())


def either(*options: Constraint) -> Constraint:
    """Any of ``options``."""
    return Predicate(lambda v: any(o.is_satisfied_by(v) for o in options), describe(options))


def validate(
    owner: str,
    kwargs: Mapping[str, Any],
    accepted: Mapping[str, Constraint],
    deprecated: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """Check ``kwargs`` against ``accepted``; returns them as a new dict.

    Raises:
        limen.InvalidParameterError: an unknown or deprecated keyword, or a value outside its
            constraint (a ``ValueError`` too).
    """
    return check_keywords(owner, kwargs, {k: [c] for k, c in accepted.items()}, deprecated)
