"""ParamDomain, the mutable space of legal values per parameter, and Range, a numeric interval.

Reducers and interventions narrow a ParamDomain while a study runs; strategies propose from
it and every proposal is checked against it. This module is plain Python: how a domain maps
to Optuna distributions lives in ``limen.adapters.distributions``.
"""

from __future__ import annotations

import copy
import math
import numbers
from collections.abc import Callable, Mapping
from dataclasses import KW_ONLY, asdict, dataclass, replace
from decimal import Decimal
from fractions import Fraction
from typing import Any, Protocol

from limen.errors import InvalidParameterError
from limen.experiment.identity import value_token
from limen.utils.values import is_number

__all__ = ["DomainObserver", "ParamDomain", "Range", "UnknownParameterError", "same_value"]

_GRID_TOLERANCE = 1e-9
_RANGE_FIELDS = frozenset({"low", "high", "log", "step"})


class UnknownParameterError(InvalidParameterError, KeyError):
    """A domain operation named a parameter the domain does not have (also a ``KeyError``)."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


def _is_integral(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


@dataclass(frozen=True, repr=False)
class Range:
    """A numeric interval of legal values for one parameter.

    Both bounds are ints (not bools): an integer range. Otherwise a continuous interval of
    floats. Bounds are inclusive; numpy scalars are converted to Python numbers.

    Args:
        low: The smallest legal value.
        high: The largest legal value, >= low.
        log: Sample on a log scale; needs low > 0 and no step.
        step: Spacing of the legal values from low, > 0; an int for an integer range.
            ``None`` means every value (every integer for an integer range).
    """

    low: int | float
    high: int | float
    _: KW_ONLY
    log: bool = False
    step: int | float | None = None

    def __post_init__(self) -> None:
        _check_bound("low", self.low)
        _check_bound("high", self.high)
        if self.high < self.low:
            raise InvalidParameterError(
                f"The 'high' parameter of Range must be a number >= low ({self.low!r}). "
                f"Got {self.high!r} instead."
            )
        if not isinstance(self.log, bool):
            raise InvalidParameterError(
                f"The 'log' parameter of Range must be a bool. Got {self.log!r} instead."
            )
        if self.log and self.low <= 0:
            raise InvalidParameterError(
                "The 'low' parameter of Range must be a number > 0 when log=True. "
                f"Got {self.low!r} instead."
            )
        is_int = _is_integral(self.low) and _is_integral(self.high)
        if self.step is not None:
            _check_step(self.step, is_int)
            if self.log:
                raise InvalidParameterError(
                    "The 'step' parameter of Range must be None when log=True. "
                    f"Got {self.step!r} instead."
                )
        cast = int if is_int else float
        object.__setattr__(self, "low", cast(self.low))
        object.__setattr__(self, "high", cast(self.high))
        if self.step is not None:
            object.__setattr__(self, "step", cast(self.step))

    def __repr__(self) -> str:
        options = ", log=True" if self.log else ""
        if self.step is not None:
            options += f", step={self.step!r}"
        return f"Range({self.low!r}, {self.high!r}{options})"

    @property
    def is_int(self) -> bool:
        """True for an integer range (both bounds ints)."""
        return isinstance(self.low, int)

    @property
    def size(self) -> int | float:
        """How many legal values the range holds: ``math.inf`` for a continuous interval."""
        if self._is_grid:
            return self._last_index() + 1
        return 1 if self.low == self.high else math.inf

    def contains(self, value: Any) -> bool:
        """True when ``value`` is a legal value of the range.

        An integer range holds ints only (not ``3.0``, not ``True``); a float range holds any
        real number but bools. On a float grid (``step`` set) a value counts when it lies on the
        grid within a relative tolerance of 1e-9, so ``0.1 * 3`` is in ``Range(0.0, 1.0,
        step=0.1)``.
        """
        if self.is_int:
            if not _is_integral(value) or not self.low <= value <= self.high:
                return False
            return bool((value - self.low) % self._step == 0)
        if not is_number(value):
            return False
        if self.step is None:
            return self.low <= value <= self.high
        slack = _GRID_TOLERANCE * self.step
        if not self.low - slack <= value <= self.high + slack:
            return False
        return isinstance(self._offset(value), int)

    @property
    def _is_grid(self) -> bool:
        return self.is_int or self.step is not None

    @property
    def _step(self) -> int | float:
        return 1 if self.step is None else self.step

    def _offset(self, value: int | float) -> int | float | Fraction:
        """Where ``value`` lies on the grid, in steps from low.

        Exact (a Fraction) for integer ranges. On float grids an int when ``value`` is a grid
        point within the grid tolerance, else a float.
        """
        if self.is_int:
            return (Fraction(value) - self.low) / self._step
        offset = (value - self.low) / self._step
        nearest = round(offset)
        close = math.isclose(offset, nearest, rel_tol=_GRID_TOLERANCE, abs_tol=_GRID_TOLERANCE)
        return nearest if close else offset

    def _last_index(self) -> int:
        return math.floor(self._offset(self.high))

    def _value_at(self, index: int) -> int | float:
        if self.is_int:
            return self.low + index * self._step
        # Decimal arithmetic on the typed literals keeps 0.1-style grids free of float noise.
        return float(Decimal(repr(self.low)) + index * Decimal(repr(self.step)))

    def _narrowed(
        self,
        lower: float,
        upper: float,
        *,
        lower_open: bool = False,
        upper_open: bool = False,
    ) -> Range | None:
        """The part of the range between the bounds: ``None`` if empty, ``self`` if uncut."""
        if self._is_grid:
            return self._narrowed_grid(lower, upper, lower_open, upper_open)
        low, high = self.low, self.high
        if lower > low or (lower_open and lower == low):
            low = math.nextafter(lower, math.inf) if lower_open else float(lower)
        if upper < high or (upper_open and upper == high):
            high = math.nextafter(upper, -math.inf) if upper_open else float(upper)
        if low > high:
            return None
        if (low, high) == (self.low, self.high):
            return self
        return replace(self, low=low, high=high)

    def _narrowed_grid(
        self, lower: float, upper: float, lower_open: bool, upper_open: bool
    ) -> Range | None:
        if lower > self.high or upper < self.low:
            return None
        first, last = 0, self._last_index()
        if lower >= self.low:
            offset = self._offset(lower)
            first = math.floor(offset) + 1 if lower_open else math.ceil(offset)
        if upper <= self.high:
            offset = self._offset(upper)
            last = min(last, math.ceil(offset) - 1 if upper_open else math.floor(offset))
        if first > last:
            return None
        if (first, last) == (0, self._last_index()):
            return self
        return replace(self, low=self._value_at(first), high=self._value_at(last))


def _check_bound(name: str, value: Any) -> None:
    if not is_number(value):
        raise InvalidParameterError(
            f"The '{name}' parameter of Range must be a number (int or float, not bool). "
            f"Got {value!r} instead."
        )
    if not math.isfinite(value):
        raise InvalidParameterError(
            f"The '{name}' parameter of Range must be a finite number. Got {value!r} instead."
        )


def _check_step(step: Any, is_int: bool) -> None:
    if is_int and not _is_integral(step):
        raise InvalidParameterError(
            "The 'step' parameter of Range must be an int when low and high are ints. "
            f"Got {step!r} instead."
        )
    if not is_number(step):
        raise InvalidParameterError(
            f"The 'step' parameter of Range must be a number. Got {step!r} instead."
        )
    if not (math.isfinite(step) and step > 0):
        raise InvalidParameterError(
            f"The 'step' parameter of Range must be a finite number > 0. Got {step!r} instead."
        )


def _number_kind(value: Any) -> str | None:
    if isinstance(value, bool):
        return "bool"
    # numpy's bool is no numbers.Number; recognise it by name so numpy itself is not imported.
    if type(value).__module__ == "numpy" and type(value).__name__ in {"bool", "bool_"}:
        return "bool"
    if isinstance(value, numbers.Integral):
        return "int"
    if isinstance(value, numbers.Real):
        return "float"
    if isinstance(value, numbers.Complex):
        return "complex"
    return None


def same_value(a: Any, b: Any) -> bool:
    """True when ``a`` and ``b`` are the same parameter value.

    Stricter than ``==``: numbers match only within one kind (bool, int, float, complex), so
    ``True``, ``1`` and ``1.0`` are three different values while a numpy float matches the
    Python float it equals; NaN matches NaN. Tuples and lists match item by item under this
    rule. Other objects match by identity or ``==`` (functions and classes by identity).
    """
    if a is b:
        return True
    kind = _number_kind(a)
    if kind is not None or _number_kind(b) is not None:
        if kind != _number_kind(b):
            return False
        return bool(a == b) or (kind == "float" and math.isnan(a) and math.isnan(b))
    if isinstance(a, tuple | list) or isinstance(b, tuple | list):
        return type(a) is type(b) and len(a) == len(b) and all(map(same_value, a, b))
    try:
        return bool(a == b)
    except (TypeError, ValueError):
        return False


def _contains_value(values: list[Any], value: Any) -> bool:
    return any(same_value(v, value) for v in values)


def _checked_entry(key: Any, entry: Any) -> list[Any] | Range:
    """Validate one parameter of a domain and return the entry to store (lists copied)."""
    if not isinstance(key, str):
        raise InvalidParameterError(
            f"Parameter names must be str, got {key!r} ({type(key).__name__})."
        )
    if key.startswith("_"):
        raise InvalidParameterError(
            f"Parameter name {key!r} starts with '_', which is reserved for round metadata "
            "such as '_id': rename the parameter."
        )
    if isinstance(entry, Range):
        return entry
    if isinstance(entry, list) and entry:
        return list(entry)
    raise InvalidParameterError(
        f"Parameter '{key}' must be a non-empty list or a Range, got {entry!r}"
    )


def _entry_from_state(key: str, entry: Any) -> list[Any] | Range:
    if not isinstance(entry, Mapping):
        return _checked_entry(key, entry)
    fields = entry.get("range") if set(entry) == {"range"} else None
    if not isinstance(fields, Mapping) or not {"low", "high"} <= set(fields) <= _RANGE_FIELDS:
        raise InvalidParameterError(
            f"Parameter '{key}' must be a non-empty list or "
            f"{{'range': {{'low': ..., 'high': ..., 'log': ..., 'step': ...}}}}, got {entry!r}"
        )
    fields = dict(fields)
    return _checked_entry(key, Range(fields.pop("low"), fields.pop("high"), **fields))


class DomainObserver(Protocol):
    """Anything told about domain changes, such as a search strategy."""

    def on_domain_changed(self, domain: ParamDomain, changed_params: list[str]) -> None:
        """Called after each successful mutation, with the names of the changed parameters."""


class ParamDomain:
    """The mutable space of legal values per parameter.

    Each parameter holds a non-empty list of values (any Python objects: numbers, strings,
    bools, None, functions, classes, estimator instances) or a ``Range``. Mutations narrow or
    extend the space while a study runs. Values are compared with a stricter equality than
    ``==`` (``True``, ``1`` and ``1.0`` are different values; see ``same_value``).

    Every mutation that changes something increments ``version``, appends an entry to
    ``version_history`` and then calls ``on_domain_changed(domain, [param])`` on each observer.
    A mutation that changes nothing returns ``False``/``0`` and bumps, records and notifies
    nothing; one that fails raises and leaves the domain as it was.

    Lists are changed with ``remove_value``, ``remove_values_ge/le``, ``keep_values``,
    ``keep_between`` and ``inject_value``. A ``Range`` is narrowed with ``remove_values_ge/le``
    and ``keep_between`` only, which return 1 when they narrowed it and 0 when it already lay
    within the bounds. Removing values ``>= t`` from a continuous Range leaves ``high`` at the
    largest float below ``t`` (``<= t`` likewise), so ``t`` itself is no longer legal.

    Args:
        params: Parameter name -> non-empty list of values or ``Range``. Names are str and
            must not start with ``_`` (reserved for round metadata). Lists are copied.

    Raises:
        TypeError: ``params`` is not a mapping or a name is not a str.
        ValueError: an entry is neither a non-empty list nor a Range (tuples are rejected).
    """

    def __init__(self, params: Mapping[str, list[Any] | Range]) -> None:
        if not isinstance(params, Mapping):
            raise InvalidParameterError(
                "The 'params' parameter of ParamDomain must be a dict of parameter name -> "
                f"non-empty list or a Range. Got {params!r} instead."
            )
        self._params = {key: _checked_entry(key, entry) for key, entry in params.items()}
        self._version = 0
        self._observers: list[DomainObserver] = []
        self._history: list[dict[str, Any]] = []

    def __repr__(self) -> str:
        return f"ParamDomain({self._params!r}, version={self._version})"

    @property
    def params(self) -> dict[str, list[Any] | Range]:
        """A copy of the parameters; changing it does not change the domain."""
        return {key: _copy_entry(entry) for key, entry in self._params.items()}

    @property
    def version(self) -> int:
        """How many changes since construction or the last ``set_state``."""
        return self._version

    @property
    def version_history(self) -> list[dict[str, Any]]:
        """One entry per change, oldest first, for persistence and audit.

        Each entry is ``{"version": n, "op": <method name>, "param": <name>, "args": [...]}``,
        ``n`` being the version the change produced and ``args`` the call's value arguments
        as readable JSON-safe tokens (``limen.experiment.identity.value_token``: a function is
        its import path). ``set_state`` adds ``{"version": 0, "op": "set_state", "param":
        None, "args": []}`` rather than clearing the history. The list is a copy.
        """
        return copy.deepcopy(self._history)

    @property
    def keys(self) -> list[str]:
        """The parameter names, in insertion order."""
        return list(self._params)

    @property
    def total_combinations(self) -> int | float:
        """The number of distinct combinations: ``math.inf`` with a continuous Range."""
        return math.prod(_entry_size(entry) for entry in self._params.values())

    def values_for(self, param: str) -> list[Any] | Range:
        """The legal values of ``param``: a copy of its list, or its (immutable) Range."""
        return _copy_entry(self._entry(param))

    def add_observer(self, observer: DomainObserver) -> None:
        """Register ``observer`` for change notifications; registering twice has no effect."""
        if not callable(getattr(observer, "on_domain_changed", None)):
            raise InvalidParameterError(
                f"A domain observer needs an on_domain_changed(domain, changed_params) method, "
                f"got {observer!r}."
            )
        if not any(known is observer for known in self._observers):
            self._observers.append(observer)

    def remove_observer(self, observer: DomainObserver) -> None:
        """Stop notifying ``observer``; an observer that is not registered is ignored."""
        self._observers = [known for known in self._observers if known is not observer]

    def remove_value(self, param: str, value: Any) -> bool:
        """Remove ``value`` from ``param``'s list; False when it was not there.

        Raises:
            ValueError: ``value`` is the last value left.
        """
        values = self._list_entry(param, "remove_value")
        kept = [v for v in values if not same_value(v, value)]
        if len(kept) == len(values):
            return False
        if not kept:
            raise InvalidParameterError(
                f"Cannot remove '{value}' from '{param}': would leave domain empty."
            )
        self._commit(param, kept, "remove_value", [value_token(value)])
        return True

    def remove_values_ge(self, param: str, threshold: Any) -> int:
        """Remove every value ``>= threshold``; returns how many (for a Range, 0 or 1).

        Raises:
            TypeError: the values cannot be compared with ``threshold``.
            ValueError: no value would be left.
        """
        label = f"remove_ge({param}, {threshold})"
        entry = self._entry(param)
        if isinstance(entry, Range):
            _check_threshold(param, threshold)
            narrowed = entry._narrowed(-math.inf, threshold, upper_open=True)
            return self._commit_range(
                param, entry, narrowed, "remove_values_ge", [threshold], label
            )
        kept = _kept(param, entry, lambda v: v < threshold, threshold)
        return self._commit_list(param, entry, kept, "remove_values_ge", [threshold], label)

    def remove_values_le(self, param: str, threshold: Any) -> int:
        """Remove every value ``<= threshold``; returns how many (for a Range, 0 or 1).

        Raises:
            TypeError: the values cannot be compared with ``threshold``.
            ValueError: no value would be left.
        """
        label = f"remove_le({param}, {threshold})"
        entry = self._entry(param)
        if isinstance(entry, Range):
            _check_threshold(param, threshold)
            narrowed = entry._narrowed(threshold, math.inf, lower_open=True)
            return self._commit_range(
                param, entry, narrowed, "remove_values_le", [threshold], label
            )
        kept = _kept(param, entry, lambda v: v > threshold, threshold)
        return self._commit_list(param, entry, kept, "remove_values_le", [threshold], label)

    def keep_between(self, param: str, lower: Any, upper: Any) -> int:
        """Keep only values with ``lower <= value <= upper``; returns how many were removed.

        For a Range, returns 1 when it was narrowed and 0 when it already lay within.

        Raises:
            TypeError: the values cannot be compared with the bounds.
            ValueError: no value would be left.
        """
        label = f"keep_between({param}, {lower}, {upper})"
        entry = self._entry(param)
        if isinstance(entry, Range):
            _check_threshold(param, lower)
            _check_threshold(param, upper)
            narrowed = entry._narrowed(lower, upper)
            return self._commit_range(param, entry, narrowed, "keep_between", [lower, upper], label)
        kept = _kept(param, entry, lambda v: lower <= v <= upper, (lower, upper))
        return self._commit_list(param, entry, kept, "keep_between", [lower, upper], label)

    def keep_values(self, param: str, values: list[Any] | tuple[Any, ...] | set[Any]) -> int:
        """Keep only the values of ``param`` that are in ``values``; returns how many were removed.

        Raises:
            TypeError: ``values`` is not a list, tuple or set.
            ValueError: none of ``values`` is currently legal.
        """
        current = self._list_entry(param, "keep_values")
        if not isinstance(values, list | tuple | set | frozenset):
            raise InvalidParameterError(
                f"keep_values() takes a list of values to keep for '{param}', got {values!r}."
            )
        wanted = list(values)
        kept = [v for v in current if _contains_value(wanted, v)]
        if not kept:
            raise InvalidParameterError(
                f"keep_values({param}, {wanted}) would remove all values. "
                f"No overlap with current: {current}"
            )
        removed = len(current) - len(kept)
        if removed:
            self._commit(param, kept, "keep_values", [[value_token(v) for v in wanted]])
        return removed

    def inject_value(self, param: str, value: Any) -> bool:
        """Append ``value`` to ``param``'s list; False when it is already there."""
        values = self._list_entry(param, "inject_value")
        if _contains_value(values, value):
            return False
        self._commit(param, [*values, value], "inject_value", [value_token(value)])
        return True

    def is_valid_combination(self, combo: Mapping[str, Any]) -> bool:
        """True when ``combo`` gives every parameter, and only those, a currently legal value.

        Keys starting with ``_`` (round metadata such as ``_id``) are ignored.
        """
        names = {key for key in combo if not (isinstance(key, str) and key.startswith("_"))}
        if names != set(self._params):
            return False
        return all(_admits(self._params[name], combo[name]) for name in names)

    def is_legal(self, param: str, value: Any) -> bool:
        """True when ``value`` is currently a legal value of ``param`` (KeyError if unknown)."""
        return _admits(self._entry(param), value)

    def get_state(self) -> dict[str, Any]:
        """The domain as plain data: a list per parameter, ``{"range": {...}}`` per Range.

        Lists of plain values are JSON-serialisable; other values (classes, functions) stay
        the objects themselves, for the persistence layer's codec to encode.
        """
        return {
            key: {"range": asdict(entry)} if isinstance(entry, Range) else list(entry)
            for key, entry in self._params.items()
        }

    def set_state(self, state: Mapping[str, Any]) -> None:
        """Replace every parameter's values with ``state`` (the ``get_state`` form).

        Resets ``version`` to 0 and notifies observers with all parameter names. Ranges may
        be given as ``Range`` or as ``{"range": {"low", "high", "log", "step"}}``.

        Raises:
            ValueError: ``state`` names other parameters than the domain's, or an entry is
                invalid. The domain is then left unchanged.
        """
        params = self._parse_state(state)
        self._params = params
        self._version = 0
        self._history.append({"version": 0, "op": "set_state", "param": None, "args": []})
        self._notify(list(params))

    def _parse_state(self, state: Any) -> dict[str, list[Any] | Range]:
        if not isinstance(state, Mapping):
            raise InvalidParameterError(
                f"Domain state must be a dict of parameter -> values, got {state!r}."
            )
        missing = [key for key in self._params if key not in state]
        extra = [key for key in state if key not in self._params]
        if missing or extra:
            raise InvalidParameterError(
                "Domain state does not match the domain's parameters: "
                f"missing {missing}, extra {extra}."
            )
        try:
            return {key: _entry_from_state(key, state[key]) for key in self._params}
        except (TypeError, ValueError) as exc:
            raise InvalidParameterError(f"Invalid domain state: {exc}") from exc

    def _entry(self, param: str) -> list[Any] | Range:
        try:
            return self._params[param]
        except KeyError:
            raise UnknownParameterError(
                f"Unknown parameter {param!r}. Known parameters: {self.keys}."
            ) from None

    def _list_entry(self, param: str, op: str) -> list[Any]:
        entry = self._entry(param)
        if isinstance(entry, Range):
            raise InvalidParameterError(
                f"{op}() does not apply to '{param}', which is {entry!r}: narrow a Range with "
                "keep_between, remove_values_ge or remove_values_le."
            )
        return entry

    def _commit_list(
        self, param: str, values: list[Any], kept: list[Any], op: str, args: list[Any], label: str
    ) -> int:
        if not kept:
            raise InvalidParameterError(
                f"{label} would remove all {len(values)} values. Current values: {values}"
            )
        removed = len(values) - len(kept)
        if removed:
            self._commit(param, kept, op, [value_token(arg) for arg in args])
        return removed

    def _commit_range(
        self,
        param: str,
        entry: Range,
        narrowed: Range | None,
        op: str,
        args: list[Any],
        label: str,
    ) -> int:
        if narrowed is None:
            raise InvalidParameterError(f"{label} would remove every value of {entry!r}.")
        if narrowed is entry:
            return 0
        self._commit(param, narrowed, op, [value_token(arg) for arg in args])
        return 1

    def _commit(self, param: str, entry: list[Any] | Range, op: str, args: list[Any]) -> None:
        self._params[param] = entry
        self._version += 1
        self._history.append({"version": self._version, "op": op, "param": param, "args": args})
        self._notify([param])

    def _notify(self, changed: list[str]) -> None:
        for observer in list(self._observers):
            observer.on_domain_changed(self, list(changed))


def _copy_entry(entry: list[Any] | Range) -> list[Any] | Range:
    return entry if isinstance(entry, Range) else list(entry)


def _entry_size(entry: list[Any] | Range) -> int | float:
    return entry.size if isinstance(entry, Range) else len(entry)


def _admits(entry: list[Any] | Range, value: Any) -> bool:
    return entry.contains(value) if isinstance(entry, Range) else _contains_value(entry, value)


def _kept(param: str, values: list[Any], keep: Callable[[Any], Any], threshold: Any) -> list[Any]:
    try:
        return [v for v in values if keep(v)]
    except (TypeError, ValueError) as exc:
        raise InvalidParameterError(
            f"Cannot compare values of '{param}' with threshold {threshold!r}: {exc}"
        ) from exc


def _check_threshold(param: str, threshold: Any) -> None:
    if not is_number(threshold) or math.isnan(threshold):
        raise InvalidParameterError(
            f"Cannot compare values of '{param}' with threshold {threshold!r}: "
            "a Range holds numbers, so thresholds must be numbers (not bool or NaN)."
        )
