"""Declarative checks of the parameters of Limen's public functions and constructors.

A public callable states what each parameter accepts as a list of constraints, and
``validate_params`` checks the values against them. Every refusal is an
``InvalidParameterError`` with one message template, so users read the same sentence
everywhere::

    The 'n_permutations' parameter of UniversalExperimentLoop.run must be an int in the range
    [1, inf). Got 'ten' instead.

A constraint is a ``Constraint`` object (``Interval``, ``Options``, ``StrOptions``, ``Predicate``
...) or a shorthand that ``make_constraint`` turns into one: ``None``, a type, ``"boolean"``,
``"callable"`` or ``"path"``.
"""

from __future__ import annotations

import math
import os
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Mapping
from numbers import Integral, Real
from typing import Any

from limen.errors import InvalidParameterError

__all__ = [
    "Boolean",
    "Callables",
    "Constraint",
    "InstanceOf",
    "Interval",
    "NoneConstraint",
    "Options",
    "PathLike",
    "Predicate",
    "StrOptions",
    "check_keywords",
    "describe",
    "invalid",
    "make_constraint",
    "validate_params",
]

CLOSED = ("left", "right", "both", "neither")


class Constraint(ABC):
    """What one parameter accepts: a test on a value and the phrase that names it."""

    @abstractmethod
    def is_satisfied_by(self, value: Any) -> bool:
        """Whether ``value`` is accepted."""

    @abstractmethod
    def __str__(self) -> str:
        """The accepted values as a phrase, e.g. ``an int in the range [1, inf)``."""


class Interval(Constraint):
    """A number of ``kind`` (``Integral`` or ``Real``) between ``left`` and ``right``.

    ``None`` for a bound means unbounded on that side. ``closed`` is ``"left"``, ``"right"``,
    ``"both"`` or ``"neither"``. Booleans are never numbers here, and a real must be finite.
    """

    def __init__(
        self, kind: type, left: float | None, right: float | None, *, closed: str = "both"
    ) -> None:
        if kind not in (Integral, Real, int, float):
            raise ValueError(f"Interval kind must be Integral or Real. Got {kind!r} instead.")
        if closed not in CLOSED:
            raise ValueError(f"Interval closed must be one of {CLOSED}. Got {closed!r} instead.")
        self.kind = Integral if kind in (Integral, int) else Real
        self.left, self.right, self.closed = left, right, closed

    def is_satisfied_by(self, value: Any) -> bool:
        if isinstance(value, bool) or not isinstance(value, self.kind):
            return False
        if self.kind is Real and not math.isfinite(value):
            return False
        if self.left is not None:
            low_ok = value >= self.left if self.closed in ("left", "both") else value > self.left
            if not low_ok:
                return False
        if self.right is not None:
            high_ok = (
                value <= self.right if self.closed in ("right", "both") else value < self.right
            )
            if not high_ok:
                return False
        return True

    def __str__(self) -> str:
        kind = "an int" if self.kind is Integral else "a float"
        if self.left is None and self.right is None:
            return kind
        left_closed = self.closed in ("left", "both") and self.left is not None
        right_closed = self.closed in ("right", "both") and self.right is not None
        low = "-inf" if self.left is None else repr(self.left)
        high = "inf" if self.right is None else repr(self.right)
        return (
            f"{kind} in the range {'[' if left_closed else '('}{low}, {high}"
            f"{']' if right_closed else ')'}"
        )


class Options(Constraint):
    """One of a finite set of values of type ``kind``."""

    def __init__(self, kind: type | tuple[type, ...], options: Iterable[Any]) -> None:
        self.kind = kind
        self.options = list(options)

    def is_satisfied_by(self, value: Any) -> bool:
        if isinstance(value, bool) and bool not in _as_tuple(self.kind):
            return False
        return isinstance(value, self.kind) and any(
            value == option and type(value) is type(option) for option in self.options
        )

    def __str__(self) -> str:
        return f"one of {', '.join(repr(o) for o in self.options)}"


class StrOptions(Options):
    """One of a finite set of strings."""

    def __init__(self, options: Iterable[str]) -> None:
        super().__init__(str, options)


class InstanceOf(Constraint):
    """An instance of ``kind``, described by ``description`` (default: the type's name)."""

    def __init__(self, kind: type | tuple[type, ...], description: str | None = None) -> None:
        self.kind = kind
        names = " or ".join(k.__name__ for k in _as_tuple(kind))
        self.description = description or f"an instance of {names}"

    def is_satisfied_by(self, value: Any) -> bool:
        if isinstance(value, bool) and bool not in _as_tuple(self.kind):
            return False
        return isinstance(value, self.kind)

    def __str__(self) -> str:
        return self.description


class Boolean(Constraint):
    """A bool: ``True`` or ``False``, not ``1`` or ``"yes"``."""

    def is_satisfied_by(self, value: Any) -> bool:
        return isinstance(value, bool)

    def __str__(self) -> str:
        return "a bool"


class NoneConstraint(Constraint):
    """Exactly ``None``."""

    def is_satisfied_by(self, value: Any) -> bool:
        return value is None

    def __str__(self) -> str:
        return "None"


class Callables(Constraint):
    """Any callable: a function, a class or an object with ``__call__``."""

    def is_satisfied_by(self, value: Any) -> bool:
        return callable(value)

    def __str__(self) -> str:
        return "a callable"


class PathLike(Constraint):
    """A non-empty ``str`` or an ``os.PathLike`` (a ``pathlib.Path``)."""

    def is_satisfied_by(self, value: Any) -> bool:
        if isinstance(value, str):
            return bool(value.strip())
        return isinstance(value, os.PathLike)

    def __str__(self) -> str:
        return "a path (a non-empty str or a pathlib.Path)"


class Predicate(Constraint):
    """Any test that the classes above do not express, with the phrase that names it."""

    def __init__(self, check: Callable[[Any], bool], description: str) -> None:
        self.check = check
        self.description = description

    def is_satisfied_by(self, value: Any) -> bool:
        try:
            return bool(self.check(value))
        except (TypeError, ValueError):
            return False

    def __str__(self) -> str:
        return self.description


def make_constraint(spec: Any) -> Constraint:
    """The ``Constraint`` a shorthand stands for.

    ``None`` -> ``NoneConstraint``, ``"boolean"`` -> ``Boolean``, ``"callable"`` ->
    ``Callables``, ``"path"`` -> ``PathLike``, a type -> ``InstanceOf``; a ``Constraint`` is
    returned as it is.
    """
    if isinstance(spec, Constraint):
        return spec
    if spec is None:
        return NoneConstraint()
    if spec is bool or spec == "boolean":
        return Boolean()
    if spec == "callable":
        return Callables()
    if spec == "path":
        return PathLike()
    if isinstance(spec, type):
        if spec is int:
            return Interval(Integral, None, None)
        if spec is float:
            return Interval(Real, None, None)
        if spec is str:
            return InstanceOf(str, "a str")
        return InstanceOf(spec)
    raise ValueError(f"Unknown constraint {spec!r}.")


def describe(constraints: Iterable[Any]) -> str:
    """The accepted values as one phrase: ``a, b or c``; ``None`` always comes last."""
    made = [make_constraint(c) for c in constraints]
    phrases = [str(c) for c in made if not isinstance(c, NoneConstraint)]
    phrases += [str(c) for c in made if isinstance(c, NoneConstraint)]
    if len(phrases) <= 1:
        return "".join(phrases)
    return f"{', '.join(phrases[:-1])} or {phrases[-1]}"


def invalid(
    name: str, owner: str, accepted: str, value: Any, fix: str = ""
) -> InvalidParameterError:
    """The one refusal message: parameter, owner, accepted values, the value given, the fix."""
    tail = f" {fix}" if fix else ""
    return InvalidParameterError(
        f"The '{name}' parameter of {owner} must be {accepted}. Got {value!r} instead.{tail}"
    )


def validate_params(
    constraints: Mapping[str, Iterable[Any]],
    params: Mapping[str, Any],
    owner: str,
    fixes: Mapping[str, str] | None = None,
) -> None:
    """Check each value of ``params`` that ``constraints`` names against its constraints.

    A value is accepted when any one of its parameter's constraints accepts it. Parameters
    that ``constraints`` does not name are not checked, so a caller can leave open ones out.

    Args:
        constraints: parameter name -> its constraints (objects or shorthands).
        params: parameter name -> value given.
        owner: the callable's public name, e.g. ``"UniversalExperimentLoop.run"``.
        fixes: parameter name -> a sentence telling the user what to do instead.

    Raises:
        InvalidParameterError: the first value no constraint accepts.
    """
    for name, accepted in constraints.items():
        if name not in params:
            continue
        value = params[name]
        made = [make_constraint(c) for c in accepted]
        if not any(c.is_satisfied_by(value) for c in made):
            raise invalid(name, owner, describe(made), value, (fixes or {}).get(name, ""))


def check_keywords(
    owner: str,
    kwargs: Mapping[str, Any],
    accepted: Mapping[str, Iterable[Any]],
    refused: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """Check free keyword arguments: each must be known, not refused, and valid.

    Args:
        owner: the callable's public name.
        kwargs: the keywords given.
        accepted: keyword -> its constraints.
        refused: keyword -> why it is not accepted (e.g. an Optuna keyword Limen replaces).

    Returns:
        ``kwargs`` as a new dict.

    Raises:
        InvalidParameterError: an unknown or refused keyword, or an invalid value.
    """
    refused = refused or {}
    for key in kwargs:
        if key in refused:
            raise InvalidParameterError(
                f"The '{key}' parameter of {owner} is not accepted: {refused[key]} "
                f"Accepted parameters: {sorted(accepted)}."
            )
        if key not in accepted:
            raise InvalidParameterError(
                f"Unknown parameter {key!r} for {owner}. Accepted parameters: {sorted(accepted)}."
            )
    validate_params(accepted, kwargs, owner)
    return dict(kwargs)


def _as_tuple(kind: type | tuple[type, ...]) -> tuple[type, ...]:
    return kind if isinstance(kind, tuple) else (kind,)
