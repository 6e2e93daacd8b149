"""MSQ, the mutable search queue: queued combinations first, then filtered strategy proposals.

The MSQ sits between the loop and the search strategy. Each round it yields, in this order:

1. nothing, once a ``trim`` budget or ``n_permutations`` is spent;
2. the next queued combination (prioritised ones first, the latest prioritised first), as is:
   filters do not apply to what a user queued on purpose;
3. otherwise a strategy proposal that is legal in the domain and passes every filter (the
   strategy is asked again after a refusal; ``FilterExhaustedError`` after
   ``max_filter_retries`` refusals in a row).

Interventions (domain mutations, filters, injections, trims) are logged with the number of
rounds yielded so far. The queue itself is pluggable: the loop keeps it in the study as
waiting trials, so queued combinations survive a crash; ``MemoryQueue`` serves plain-Python use.
This module never imports Optuna.
"""

from __future__ import annotations

import hashlib
import math
import warnings
from collections import deque
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from limen.experiment.identity import plain_value, value_token
from limen.experiment.param_domain import ParamDomain, Range, same_value
from limen.experiment.search_strategy import Proposal, SearchStrategy

Filter = Callable[[Mapping[str, Any]], bool]


class FilterExhaustedError(RuntimeError):
    """Filters (or duplicates) refused every proposal of the allowed number of attempts."""


def _keep_between(param: str, lower: Any, upper: Any) -> Filter:
    return lambda combo: not lower <= combo[param] <= upper


def _keep_values(param: str, values: list[Any]) -> Filter:
    return lambda combo: not any(same_value(combo[param], v) for v in values)


def _remove_values(param: str, values: list[Any]) -> Filter:
    return lambda combo: any(same_value(combo[param], v) for v in values)


def _remove_ge(param: str, threshold: Any) -> Filter:
    return lambda combo: combo[param] >= threshold


def _remove_le(param: str, threshold: Any) -> Filter:
    return lambda combo: combo[param] <= threshold


_SAMPLE_BUCKETS = 10_000


def combo_bucket(combo: Mapping[str, Any]) -> int:
    """A stable bucket in ``[0, 10000)`` for ``combo`` (its parameters, not ``_`` metadata)."""
    items = sorted((str(k), value_token(v)) for k, v in combo.items() if not str(k).startswith("_"))
    digest = hashlib.sha256(repr(items).encode("utf-8")).hexdigest()
    return int(digest[:12], 16) % _SAMPLE_BUCKETS


def sample_filter(param: str, value: Any, fraction: float) -> Filter:
    """Remove combinations with ``param == value`` except a stable ``fraction`` of them.

    A saturated value keeps being visited, rarely (the saturation reducer's filter).
    """
    token = value_token(value)
    kept_buckets = round(fraction * _SAMPLE_BUCKETS)

    def remove(combo: Mapping[str, Any]) -> bool:
        if param not in combo or value_token(combo[param]) != token:
            return False
        return combo_bucket(combo) >= kept_buckets

    return remove


# filter_type -> builder(filter_params) -> filter; a filter returns True to remove a combination.
FILTER_BUILDERS: dict[str, Callable[[Mapping[str, Any]], Filter]] = {
    "keep_between": lambda p: _keep_between(p["param"], p["lower"], p["upper"]),
    "keep_values": lambda p: _keep_values(p["param"], list(p["values"])),
    "remove_values": lambda p: _remove_values(p["param"], list(p["values"])),
    "remove_ge": lambda p: _remove_ge(p["param"], p["threshold"]),
    "remove_le": lambda p: _remove_le(p["param"], p["threshold"]),
    "sample": lambda p: sample_filter(p["param"], p["value"], float(p["fraction"])),
}


class QueueStore(Protocol):
    """Where queued combinations wait (the study, or memory)."""

    def push(self, combo: Mapping[str, Any], *, prioritize: bool) -> None: ...

    def pop(self) -> Proposal | None: ...

    def __len__(self) -> int: ...

    def items(self) -> list[dict[str, Any]]: ...


class MemoryQueue:
    """An in-process queue: prioritised combinations go to the front."""

    def __init__(self) -> None:
        self._queue: deque[dict[str, Any]] = deque()

    def push(self, combo: Mapping[str, Any], *, prioritize: bool) -> None:
        """Queue ``combo`` at the front (``prioritize``) or at the back."""
        if prioritize:
            self._queue.appendleft(dict(combo))
        else:
            self._queue.append(dict(combo))

    def pop(self) -> Proposal | None:
        """The next queued combination, or None."""
        return Proposal(self._queue.popleft(), injected=True) if self._queue else None

    def __len__(self) -> int:
        return len(self._queue)

    def items(self) -> list[dict[str, Any]]:
        """The queued combinations in the order they will run."""
        return [dict(c) for c in self._queue]


class MSQ:
    """Queued combinations, filters and a trim budget in front of a search strategy.

    Args:
        strategy: proposes combinations; its domain must be ``domain``.
        domain: the mutable space; domain interventions go through it.
        n_permutations: stop after yielding this many rounds (None: no cap).
        max_filter_retries: consecutive refused proposals before ``FilterExhaustedError``.
        queue: where queued combinations wait (default: in memory).
    """

    def __init__(
        self,
        strategy: SearchStrategy,
        domain: ParamDomain,
        *,
        n_permutations: int | None = None,
        max_filter_retries: int = 1000,
        queue: QueueStore | None = None,
    ) -> None:
        if strategy.domain is not domain:
            raise ValueError("MSQ strategy.domain and domain must reference the same ParamDomain.")
        _check_count("n_permutations", n_permutations, allow_none=True)
        _check_count("max_filter_retries", max_filter_retries, allow_none=False)
        self.strategy = strategy
        self.domain = domain
        self.n_permutations = n_permutations
        self.max_filter_retries = max_filter_retries
        self.queue: QueueStore = queue if queue is not None else MemoryQueue()
        self._custom: list[Filter] = []
        self._named: dict[str, Filter] = {}
        self._descriptors: dict[str, tuple[str, dict[str, Any]]] = {}
        self._trim_target: int | None = None
        self._yielded = 0
        self._log: list[dict[str, Any]] = []
        self.stop_reason: str | None = None

    # ------------------------------------------------------------------ yielding

    def __iter__(self) -> MSQ:
        return self

    def __next__(self) -> Proposal:
        proposal = self.next_proposal()
        if proposal is None:
            raise StopIteration
        return proposal

    def next_proposal(self) -> Proposal | None:
        """The next round to run, or None (``stop_reason`` says why).

        Raises:
            FilterExhaustedError: ``max_filter_retries`` proposals in a row were refused.
        """
        if self._trim_target is not None and self._yielded >= self._trim_target:
            self.stop_reason = f"trimmed to {self._trim_target} rounds"
            return None
        if self.n_permutations is not None and self._yielded >= self.n_permutations:
            self.stop_reason = f"n_permutations={self.n_permutations} reached"
            return None
        proposal = self.queue.pop()
        if proposal is None:
            proposal = self.strategy.ask(self.admits, self.max_filter_retries)
        if proposal is None:
            self.stop_reason = "the parameter space is exhausted"
            return None
        self._yielded += 1
        return proposal

    def admits(self, combo: Mapping[str, Any]) -> bool:
        """Whether ``combo`` is legal in the domain and no filter removes it."""
        if not self.domain.is_valid_combination(combo):
            return False
        return not any(f(combo) for f in (*self._custom, *self._named.values()))

    # ------------------------------------------------------------ interventions

    def remove_is(self, param: str, value: Any) -> bool:
        """Remove one value of ``param`` from the domain."""
        self._record("remove_is", param=param, value=value)
        return self.domain.remove_value(param, value)

    def remove_ge(self, param: str, threshold: Any) -> int:
        """Remove every value ``>= threshold`` of ``param`` from the domain."""
        self._record("remove_ge", param=param, threshold=threshold)
        return self.domain.remove_values_ge(param, threshold)

    def remove_le(self, param: str, threshold: Any) -> int:
        """Remove every value ``<= threshold`` of ``param`` from the domain."""
        self._record("remove_le", param=param, threshold=threshold)
        return self.domain.remove_values_le(param, threshold)

    def keep_is(self, param: str, value: Any) -> int:
        """Keep only ``value`` for ``param``."""
        self._record("keep_is", param=param, value=value)
        return self.domain.keep_values(param, [value])

    def keep_between(self, param: str, lower: Any, upper: Any) -> int:
        """Keep only values of ``param`` within ``[lower, upper]``."""
        self._record("keep_between", param=param, lower=lower, upper=upper)
        return self.domain.keep_between(param, lower, upper)

    def inject_value(self, param: str, value: Any) -> bool:
        """Add ``value`` to ``param``'s legal values."""
        self._record("inject_value", param=param, value=value)
        return self.domain.inject_value(param, value)

    def inject(self, combo: Mapping[str, Any], *, prioritize: bool = False) -> None:
        """Queue ``combo`` to run before strategy proposals (``prioritize``: run it next).

        Raises:
            ValueError: ``combo`` misses or adds parameters.
        """
        self._record("inject", combo=dict(combo), prioritize=prioritize)
        keys = set(self.domain.keys)
        missing, extra = keys - set(combo), set(combo) - keys
        if missing:
            raise ValueError(f"MSQ Injected combo missing parameters: {sorted(missing)}")
        if extra:
            raise ValueError(f"MSQ Injected combo has extra keys: {sorted(extra)}")
        self.queue.push({k: combo[k] for k in self.domain.keys}, prioritize=prioritize)

    def remove_custom(self, condition: Filter) -> None:
        """Add a permanent filter: ``condition(combo)`` True removes the combination."""
        _check_callable(condition)
        self._record("remove_custom", condition=repr(condition))
        self._custom.append(condition)

    def set_filter(
        self,
        key: str,
        condition: Filter | None = None,
        *,
        filter_type: str | None = None,
        filter_params: Mapping[str, Any] | None = None,
    ) -> None:
        """Add or replace the named filter ``key``.

        Either a callable ``condition`` (lost on resume) or a declarative ``filter_type`` from
        ``FILTER_BUILDERS`` with its ``filter_params`` (restored on resume).
        """
        if (filter_type is None) != (filter_params is None):
            raise ValueError(
                "MSQ filter_type and filter_params must both be provided or both omitted."
            )
        if filter_type is not None:
            condition = _build_filter(filter_type, filter_params)
            self._descriptors[key] = (filter_type, _plain_params(filter_params))
        else:
            _check_callable(condition)
            self._descriptors.pop(key, None)
        self._record("set_filter", key=key, filter_type=filter_type, filter_params=filter_params)
        self._named[key] = condition

    def clear_filter(self, key: str) -> None:
        """Drop the named filter ``key`` (nothing happens when there is none)."""
        if key not in self._named:
            return
        self._record("clear_filter", key=key)
        del self._named[key]
        self._descriptors.pop(key, None)

    def trim(self, target_count: int) -> None:
        """Stop once ``target_count`` rounds in total have been yielded."""
        _check_count("target_count", target_count, allow_none=False, minimum=0)
        self._record("trim", target_count=target_count)
        self._trim_target = target_count

    # --------------------------------------------------------------- reporting

    @property
    def yielded_count(self) -> int:
        """Rounds yielded so far (across resumes)."""
        return self._yielded

    @yielded_count.setter
    def yielded_count(self, value: int) -> None:
        self._yielded = value

    @property
    def priority_queue_size(self) -> int:
        """How many combinations wait in the queue."""
        return len(self.queue)

    @property
    def intervention_log(self) -> list[dict[str, Any]]:
        """Every intervention, oldest first (a copy)."""
        return [dict(entry) for entry in self._log]

    @property
    def domain_keys(self) -> list[str]:
        """The domain's parameter names."""
        return self.domain.keys

    @property
    def trim_budget(self) -> int | None:
        """Rounds left before the trim target (None without a trim)."""
        if self._trim_target is None:
            return None
        return max(self._trim_target - self._yielded, 0)

    def remaining_count(self) -> int | None:
        """Rounds still to come: the trim budget, else the cap, else the finite space; or None."""
        queued = len(self.queue)
        if self._trim_target is not None:
            return self.trim_budget
        if self.n_permutations is not None:
            return max(self.n_permutations - self._yielded, 0) + queued
        total = self.domain.total_combinations
        if math.isfinite(total):
            return max(int(total) - self._yielded, 0) + queued
        return None

    def distribution(self, param: str | None = None) -> dict[Any, Any]:
        """Expected remaining rounds per value, spread evenly over each parameter's values.

        Returns ``{value: count}`` for one ``param``, else ``{param: {value: count}}``;
        parameters given as a continuous ``Range`` are left out.
        """
        remaining = self.remaining_count()
        if remaining is None:
            return {}
        spread = max(remaining - len(self.queue), 0)
        if param is not None:
            return self._spread(param, spread)
        return {
            key: self._spread(key, spread)
            for key in self.domain.keys
            if not isinstance(self.domain.values_for(key), Range)
        }

    def _spread(self, param: str, count: int) -> dict[Any, int]:
        values = self.domain.values_for(param)
        if isinstance(values, Range):
            return {}
        share = count // len(values)
        return {value_token(v): share for v in values}

    # ------------------------------------------------------------------- state

    def get_state(self) -> dict[str, Any]:
        """JSON-safe state: counts, trim target, filter descriptors, log, strategy state."""
        return {
            "yielded_count": self._yielded,
            "n_permutations": self.n_permutations,
            "trim_target": self._trim_target,
            "custom_filters_count": len(self._custom),
            "custom_filter_names": [str(value_token(f)) for f in self._custom],
            "named_filter_keys": sorted(self._named),
            "named_filter_descriptors": {
                key: [kind, params] for key, (kind, params) in self._descriptors.items()
            },
            "intervention_log": self.intervention_log,
            "strategy_state": self.strategy.get_state(),
        }

    def set_state(self, state: Mapping[str, Any]) -> list[str]:
        """Restore ``get_state``'s result; returns the filters that could not be restored.

        The cap ``n_permutations`` comes back with the counts (a state without it keeps this
        MSQ's). Callable filters cannot be stored: they are named in one ``UserWarning``
        ("non-restorable") and must be re-registered after a resume.
        """
        for key in ("yielded_count", "trim_target", "intervention_log", "strategy_state"):
            if key not in state:
                raise ValueError(f"Invalid MSQ state: missing required key '{key}'.")
        n_permutations = state.get("n_permutations", self.n_permutations)
        _check_count("n_permutations", n_permutations, allow_none=True)
        self.n_permutations = n_permutations
        self._yielded = int(state["yielded_count"])
        self._trim_target = state["trim_target"]
        self._log = [dict(entry) for entry in state["intervention_log"]]
        self.strategy.set_state(state["strategy_state"])
        self._custom, self._named, self._descriptors = [], {}, {}
        lost = self._restore_named(state)
        lost += _custom_names(state)
        if lost:
            warnings.warn(_non_restorable_message(lost), UserWarning, stacklevel=2)
        return lost

    def _restore_named(self, state: Mapping[str, Any]) -> list[str]:
        """Rebuild the declarative named filters; the names of those that cannot be."""
        for key, (kind, params) in state.get("named_filter_descriptors", {}).items():
            try:
                self._named[key] = _build_filter(kind, params)
            except ValueError:
                continue
            self._descriptors[key] = (kind, dict(params))
        return [
            f"named filter {key!r}"
            for key in state.get("named_filter_keys", [])
            if key not in self._named
        ]

    def _record(self, operation: str, **details: Any) -> None:
        entry = {"operation": operation, "at_yielded_count": self._yielded}
        entry.update({key: _jsonable(value) for key, value in details.items()})
        self._log.append(entry)


def _build_filter(filter_type: str, filter_params: Any) -> Filter:
    if filter_type not in FILTER_BUILDERS:
        raise ValueError(
            f"MSQ Unknown filter_type {filter_type!r}. Supported types: {sorted(FILTER_BUILDERS)}."
        )
    if not isinstance(filter_params, Mapping):
        raise ValueError(f"MSQ filter_params must be a dict. Got {filter_params!r} instead.")
    try:
        return FILTER_BUILDERS[filter_type](filter_params)
    except KeyError as exc:
        raise ValueError(
            f"MSQ filter_params for {filter_type!r} missing required key: {exc.args[0]}"
        ) from None


def _custom_names(state: Mapping[str, Any]) -> list[str]:
    """One name per stored custom filter (states from before names were kept: unnamed)."""
    count = int(state.get("custom_filters_count", 0))
    names = [str(n) for n in state.get("custom_filter_names", [])][:count]
    names += ["<unnamed>"] * (count - len(names))
    return [f"custom filter {name}" for name in names]


def _non_restorable_message(lost: list[str]) -> str:
    return (
        f"MSQ state had {len(lost)} non-restorable filter(s), dropped on restore: "
        f"{', '.join(lost)}. Filters given as callables are not stored; re-register them "
        "(msq.set_filter / msq.remove_custom) after the resume, or declare them with "
        "filter_type and filter_params so they are restored."
    )


def _plain_params(params: Mapping[str, Any]) -> dict[str, Any]:
    """Filter params with numpy/pandas scalars as the Python values they stand for.

    A reducer may build params from a log; stored plain, they stay JSON-safe in the state.
    """
    return {
        str(k): [plain_value(x) for x in v] if isinstance(v, list | tuple) else plain_value(v)
        for k, v in params.items()
    }


def _check_callable(condition: Any) -> None:
    if not callable(condition):
        raise TypeError(f"MSQ A filter must be callable(combo) -> bool. Got {condition!r} instead.")


def _check_count(name: str, value: Any, *, allow_none: bool, minimum: int = 1) -> None:
    if value is None and allow_none:
        return
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise ValueError(
            f"The '{name}' parameter of MSQ must be an int >= {minimum}. Got {value!r} instead."
        )


def _jsonable(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    return value_token(value)
