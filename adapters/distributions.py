"""ParamDomain values <-> Optuna distributions, and the codec for values Optuna cannot store.

Only this module knows how a parameter value is represented in the study. The rules:

* ``Range`` -> ``IntDistribution`` / ``FloatDistribution`` with its ``log`` and ``step``.
* An evenly spaced numeric list -> an int or float distribution with that ``step``.
* Any other numeric list keeps its order for samplers: a log-scaled distribution when its
  values are positive and span at least a decade (log-spaced grids such as
  ``[1e-5, 1e-4, 1e-3]``), a linear one otherwise. The stored value is the real value, so it
  stays readable in optuna-dashboard; proposals in between are snapped to the nearest listed
  value (in log space for log distributions).
* Everything else -> ``CategoricalDistribution``. When every value is a JSON scalar Optuna
  can tell apart, the choices are the values themselves; otherwise (functions, classes,
  tuples, objects, ``True`` beside ``1``) every choice is a readable token such as
  ``sklearn.preprocessing.StandardScaler`` and is decoded back to the real object.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)

from limen.experiment.identity import value_token
from limen.experiment.param_domain import Range, same_value
from limen.utils.values import is_number

__all__ = [
    "LOG_SPAN",
    "DomainCodec",
    "LiveCodec",
    "ParamCodec",
    "codec_for",
    "decode_value",
    "encode_entries",
    "encode_value",
]

_STORABLE = (str, int, float, bool, type(None))
_REL_TOL = 1e-9
LOG_SPAN = 10.0


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _native_key(value: Any) -> tuple[str, Any]:
    """How Optuna's storage sees a scalar: ``True`` and ``1`` collide, ``1`` and ``1.0`` too."""
    if isinstance(value, bool | int | float):
        return ("number", float(value))
    return (type(value).__name__, value)


@dataclass(frozen=True)
class ParamCodec:
    """How one parameter is stored: its distribution and the value <-> stored-value maps."""

    name: str
    kind: str
    distribution: BaseDistribution
    values: tuple[Any, ...] | None = None
    choices: tuple[Any, ...] | None = None

    def to_stored(self, value: Any) -> Any:
        """The external (stored, readable) representation of a legal ``value``."""
        if self.kind == "categorical":
            return self.choices[self._choice_index(value)]
        if self.values is not None:
            return self.values[self._value_index(value)]
        return value

    def to_internal(self, value: Any) -> float:
        """The float Optuna keeps in ``trial_params.param_value``."""
        return self.distribution.to_internal_repr(self.to_stored(value))

    def decode(self, stored: Any) -> Any:
        """The real value for a stored one; numeric proposals snap to the nearest listed value."""
        if self.kind == "categorical":
            for index, choice in enumerate(self.choices):
                if _native_key(choice) == _native_key(stored):
                    return self.values[index]
            raise ValueError(
                f"Stored value {stored!r} of parameter '{self.name}' is not one of its "
                f"choices {list(self.choices)!r}; the parameter space changed since it was stored."
            )
        if self.values is None:
            return round(stored) if isinstance(self.distribution, IntDistribution) else stored
        return self.values[self._nearest(stored)]

    def decode_exact(self, stored: Any) -> Any:
        """The real value for a stored one that must be exactly one of the legal values.

        Unlike ``decode``, nothing is snapped to a neighbour: a trial written by another client
        (``study.enqueue_trial``) with a value outside the list is refused, not changed.

        Raises:
            ValueError: naming the parameter and the value.
        """
        if self.kind == "categorical" or self.values is None:
            real = self.decode(stored)
            integral = self.values is None and isinstance(self.distribution, IntDistribution)
            if integral and (not is_number(stored, finite=True) or real != stored):
                raise ValueError(
                    f"{self.name}={stored!r} is not an integer of the parameter's range."
                )
            return real
        for value in self.values:
            if same_value(value, stored):
                return value
        raise ValueError(
            f"{self.name}={stored!r} is not one of the parameter's values "
            f"{[value_token(v) for v in self.values]!r}."
        )

    def value_at(self, index: int) -> Any:
        """The ``index``-th legal value (list order), for grid enumeration."""
        if self.values is None:
            raise TypeError(f"Parameter '{self.name}' is a continuous Range and has no index.")
        return self.values[index]

    def _choice_index(self, value: Any) -> int:
        for index, known in enumerate(self.values):
            if same_value(known, value):
                return index
        raise ValueError(
            f"Value {value!r} is not a legal value of parameter '{self.name}'. "
            f"Legal values: {[value_token(v) for v in self.values]!r}."
        )

    def _value_index(self, value: Any) -> int:
        return self._choice_index(value)

    def _nearest(self, stored: float) -> int:
        log = getattr(self.distribution, "log", False)
        target = math.log(stored) if log and stored > 0 else stored
        best, best_gap = 0, math.inf
        for index, value in enumerate(self.values):
            point = math.log(value) if log else value
            gap = abs(point - target)
            if gap < best_gap:
                best, best_gap = index, gap
        return best

    def describe(self) -> dict[str, Any]:
        """A JSON-safe description kept in the study so the codec is readable without code."""
        entry: dict[str, Any] = {"kind": self.kind}
        if self.values is not None:
            entry["tokens"] = [value_token(v) for v in self.values]
        return entry


def codec_for(name: str, entry: list[Any] | Range) -> ParamCodec:
    """Build the codec of one parameter from its list of values or its ``Range``."""
    if isinstance(entry, Range):
        return _range_codec(name, entry)
    values = tuple(entry)
    if len(values) > 1 and all(is_number(v, finite=True) for v in values):
        numeric = _numeric_codec(name, values)
        if numeric is not None:
            return numeric
    return _categorical_codec(name, values)


def _range_codec(name: str, entry: Range) -> ParamCodec:
    if entry.is_int:
        dist: BaseDistribution = IntDistribution(
            entry.low, entry.high, log=entry.log, step=entry.step or 1
        )
    else:
        dist = FloatDistribution(entry.low, entry.high, log=entry.log, step=entry.step)
    return ParamCodec(name=name, kind="range", distribution=dist)


def _numeric_codec(name: str, values: tuple[Any, ...]) -> ParamCodec | None:
    ordered = sorted(values)
    if any(a == b for a, b in itertools.pairwise(ordered)):
        return None
    low, high = ordered[0], ordered[-1]
    all_int = all(_is_int(v) for v in values)
    step = _even_step(ordered)
    if step is not None:
        if all_int:
            return ParamCodec(name, "int", IntDistribution(low, high, step=int(step)), values)
        dist = FloatDistribution(float(low), float(high), step=step)
        if math.isclose(dist.high, high, rel_tol=_REL_TOL, abs_tol=1e-12):
            return ParamCodec(name, "float", dist, values)
    log = low > 0 and high / low >= LOG_SPAN
    if all_int:
        return ParamCodec(name, "ordered", IntDistribution(low, high, log=log), values)
    return ParamCodec(name, "ordered", FloatDistribution(float(low), float(high), log=log), values)


def _even_step(ordered: Sequence[float]) -> float | None:
    gaps = [b - a for a, b in itertools.pairwise(ordered)]
    step = round(gaps[0], 12)
    if step <= 0 or not all(math.isclose(g, step, rel_tol=1e-7, abs_tol=1e-12) for g in gaps):
        return None
    return step


def _categorical_codec(name: str, values: tuple[Any, ...]) -> ParamCodec:
    keys = [_native_key(v) for v in values] if all(isinstance(v, _STORABLE) for v in values) else []
    if keys and len(set(keys)) == len(keys) and all(_storable_float(v) for v in values):
        choices: tuple[Any, ...] = values
    else:
        choices = _unique_tokens(values)
    return ParamCodec(name, "categorical", CategoricalDistribution(choices), values, choices)


def _storable_float(value: Any) -> bool:
    return not isinstance(value, float) or math.isfinite(value)


def _unique_tokens(values: tuple[Any, ...]) -> tuple[str, ...]:
    tokens: list[str] = []
    for value in values:
        token = str(value_token(value))
        candidate, n = token, 2
        while candidate in tokens:
            candidate, n = f"{token} #{n}", n + 1
        tokens.append(candidate)
    return tuple(tokens)


class DomainCodec:
    """The codecs of every parameter of a space, in the space's key order."""

    def __init__(self, params: Mapping[str, list[Any] | Range]) -> None:
        self.params: dict[str, ParamCodec] = {k: codec_for(k, v) for k, v in params.items()}

    @property
    def distributions(self) -> dict[str, BaseDistribution]:
        """Parameter name -> Optuna distribution."""
        return {name: codec.distribution for name, codec in self.params.items()}

    def to_internal(self, combo: Mapping[str, Any]) -> dict[str, float]:
        """Internal (float) representation of a combination of real values."""
        return {name: self.params[name].to_internal(combo[name]) for name in self.params}

    def decode(self, stored: Mapping[str, Any]) -> dict[str, Any]:
        """Real values for a trial's stored (external) parameters."""
        return {name: self.params[name].decode(stored[name]) for name in self.params}

    def describe(self) -> dict[str, Any]:
        """JSON-safe description of every parameter's encoding."""
        return {name: codec.describe() for name, codec in self.params.items()}

    def decode_exact(self, stored: Mapping[str, Any]) -> dict[str, Any]:
        """Real values for stored parameters that must hold exactly legal values.

        Raises:
            ValueError: a parameter is missing, unknown or holds a value outside its codec,
                naming the parameter and the value.
        """
        missing = [name for name in self.params if name not in stored]
        if missing:
            raise ValueError(f"the parameters {missing} have no value.")
        extra = [name for name in stored if name not in self.params]
        if extra:
            raise ValueError(f"the parameters {extra} are not in the parameter space.")
        return {name: codec.decode_exact(stored[name]) for name, codec in self.params.items()}


class LiveCodec(DomainCodec):
    """A ``DomainCodec`` whose lists only grow: the union of every value the domain ever held.

    Optuna refuses a categorical whose choices change under one name, and relative samplers
    only model parameters whose distribution is the same in every trial. So a parameter's
    distribution covers every value it ever had: removing a value changes nothing stored, and
    injecting one widens the distribution (appending a categorical choice keeps every stored
    index valid).

    Args:
        params: the initial parameter space.
        discrete: map unevenly spaced numeric lists to categoricals (brute force needs
            distributions that enumerate exactly the listed values).
    """

    def __init__(self, params: Mapping[str, list[Any] | Range], *, discrete: bool = False):
        super().__init__(params)
        if discrete:
            self.params = {name: _discrete(codec) for name, codec in self.params.items()}

    def knows(self, name: str, value: Any) -> bool:
        """Whether ``value`` is in ``name``'s union."""
        values = self.params[name].values
        return values is not None and any(same_value(v, value) for v in values)

    def extend(self, name: str, value: Any) -> ParamCodec:
        """Add ``value`` to ``name``'s union; returns the new codec (its distribution widened).

        Raises:
            ValueError: the value cannot join the parameter's distribution kind (a float into
                an integer parameter, a string into a numeric one).
        """
        old = self.params[name]
        values = (*old.values, value)
        if old.kind == "categorical":
            choices = (*old.choices, _new_choice(old, value))
            new = ParamCodec(name, "categorical", CategoricalDistribution(choices), values, choices)
        else:
            new = _numeric_union(old, values)
        self.params[name] = new
        return new

    def follow(
        self, domain_params: Mapping[str, list[Any] | Range], names: Sequence[str]
    ) -> list[str]:
        """Extend the unions of ``names`` with every value the domain holds that they lack.

        Returns the names whose distribution was widened.
        """
        widened = []
        for name in names:
            entry = domain_params[name]
            if isinstance(entry, Range):
                continue
            grew = False
            for value in entry:
                if not self.knows(name, value):
                    self.extend(name, value)
                    grew = True
            if grew:
                widened.append(name)
        return widened


def _discrete(codec: ParamCodec) -> ParamCodec:
    if codec.values is None or codec.kind in ("int", "float", "categorical"):
        return codec
    values = codec.values
    return ParamCodec(codec.name, "categorical", CategoricalDistribution(values), values, values)


def _new_choice(old: ParamCodec, value: Any) -> Any:
    """The stored choice of a value joining a categorical: itself when Optuna can store it
    beside the existing choices, else its readable token (made unique)."""
    raw_choices = all(c is v for c, v in zip(old.choices, old.values, strict=True))
    storable = isinstance(value, str | bool) or value is None or is_number(value, finite=True)
    keys = {_native_key(c) for c in old.choices}
    if raw_choices and storable and _native_key(value) not in keys:
        return value
    token = str(value_token(value))
    candidate, n = token, 2
    while _native_key(candidate) in keys:
        candidate, n = f"{token} #{n}", n + 1
    return candidate


def _numeric_union(old: ParamCodec, values: tuple[Any, ...]) -> ParamCodec:
    name, dist = old.name, old.distribution
    if not all(is_number(v, finite=True) for v in values):
        raise ValueError(
            f"Cannot inject {values[-1]!r} into the numeric parameter '{name}': its values are "
            "numbers in the study. Use a new parameter for other kinds of values."
        )
    is_int = isinstance(dist, IntDistribution)
    if is_int and not all(_is_int(v) for v in values):
        raise ValueError(
            f"Cannot inject {values[-1]!r} into the integer parameter '{name}': the study "
            "stores it as an IntDistribution. Inject an int, or use a float list from the start."
        )
    fresh = codec_for(name, list(values))
    same_kind = type(fresh.distribution) is type(dist) and fresh.distribution.log == dist.log
    if same_kind:
        return ParamCodec(name, fresh.kind, fresh.distribution, values)
    low, high = min(values), max(values)
    widened = (
        IntDistribution(low, high, log=dist.log)
        if is_int
        else FloatDistribution(float(low), float(high), log=dist.log)
    )
    return ParamCodec(name, "ordered", widened, values)


# ----------------------------------------------------------------- values in JSON documents


def encode_value(value: Any) -> Any:
    """A JSON form of a parameter value, kept in the study's search state."""
    if isinstance(value, bool | str) or value is None:
        return value
    if is_number(value, finite=True):
        return value
    return {"token": value_token(value)}


def decode_value(encoded: Any, known: Sequence[Any]) -> Any:
    """The value ``encode_value`` produced ``encoded`` from, found among ``known`` values.

    A token is never imported: it becomes an object only when one of ``known`` (the values the
    running SFD declares, and those the domain holds) has that token.

    Raises:
        ValueError: the token names no known value.
    """
    if not isinstance(encoded, dict):
        return encoded
    token = encoded.get("token")
    for value in known:
        if value_token(value) == token:
            return value
    raise ValueError(
        f"Cannot restore the parameter value {token!r}: it is not among the SFD's values."
    )


def encode_entries(state: Mapping[str, Any]) -> dict[str, Any]:
    """A domain state (``ParamDomain.get_state``) in JSON form."""
    return {
        key: entry if isinstance(entry, dict) else [encode_value(v) for v in entry]
        for key, entry in state.items()
    }
