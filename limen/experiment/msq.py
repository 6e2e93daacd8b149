"""MSQ, the mutable search queue and round pipeline: queued combinations, then the strategy.

Every round, whatever chose it, passes ``MSQ.next_proposal``: queued combinations first (the
study's WAITING trials, or an in-memory queue), then the strategy's proposals. Each candidate is
checked against the live domain, the filters and the rounds that already ran or run, and is
claimed in the store (one transaction in the study) only when it passes. Interventions (domain
mutations, filters, injections, trims) are logged with the number of rounds yielded so far.
This module never imports Optuna.
"""

from __future__ import annotations

import hashlib
import math
import warnings
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from limen.errors import InvalidParameterError, LimenError
from limen.experiment.identity import plain_value, round_id, value_token
from limen.experiment.param_domain import ParamDomain, Range, same_value
from limen.experiment.search_strategy import SearchStrategy
from limen.utils.validation import Interval, validate_params
from limen.utils.values import jsonable

__all__ = [
    "FILTER_BUILDERS",
    "MSQ",
    "Filter",
    "FilterExhaustedError",
    "MemoryRounds",
    "Proposal",
    "Queued",
    "RoundStore",
    "combo_bucket",
    "sample_filter",
]

Filter = Callable[[Mapping[str, Any]], bool]


class FilterExhaustedError(LimenError, RuntimeError):
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


@dataclass
class Proposal:
    """A round the pipeline accepted: its combination, id, and the store's handle on it.

    Attributes:
        combo: parameter name -> real value (legal in the domain when it was claimed).
        round_id: the 64-hex id of ``combo`` (``limen.experiment.identity.round_id``).
        ticket: the store's handle (for the study: the trial id and number).
        injected: it came from the MSQ queue, not from the strategy.
    """

    combo: dict[str, Any]
    round_id: str
    ticket: Any = None
    injected: bool = False


@dataclass
class Queued:
    """A queued combination as the store holds it.

    Attributes:
        handle: the store's reference to it (for the study: the WAITING trial).
        combo: its real values, or None when the stored values cannot be read.
        problem: why the stored values cannot be read (None when ``combo`` is set).
    """

    handle: Any
    combo: dict[str, Any] | None
    problem: str | None = None


class RoundStore(Protocol):
    """Where rounds are claimed and queued combinations wait (the study, or memory).

    The store keeps the ids of every round it knows as running, finished or queued, so the
    pipeline answers most duplicates without asking it twice.
    """

    def push(self, combo: Mapping[str, Any], *, prioritize: bool) -> bool:
        """Queue ``combo``; False when that round already ran, runs or waits."""
        ...

    def queued(self) -> Iterable[Queued]:
        """The queued combinations, in the order they should run."""
        ...

    def start(self, queued: Queued, rid: str) -> Proposal | str | None:
        """Take a queued combination as a round: the Proposal, a reason to refuse it (a
        duplicate), or None when someone else took it first."""
        ...

    def refuse(self, queued: Queued, reason: str) -> None:
        """Drop a queued combination that will not run, keeping ``reason``."""
        ...

    def is_known(self, rid: str) -> bool:
        """Whether round ``rid`` is known to have run, to run, or to wait in the queue."""
        ...

    def claim(self, combo: Mapping[str, Any], rid: str) -> Proposal | None:
        """Claim a new round atomically; None when it turns out to be a duplicate."""
        ...

    def outcome(self, rid: str) -> tuple[str, list[float] | None] | None:
        """The state and values of finished round ``rid``, when known."""
        ...

    def __len__(self) -> int: ...

    def items(self) -> list[dict[str, Any]]: ...


class MemoryRounds:
    """A round store in memory, for the MSQ used without a study.

    Prioritised combinations go to the front of the queue.
    """

    def __init__(self) -> None:
        self._queue: deque[dict[str, Any]] = deque()
        self._ids: set[str] = set()
        self._outcomes: dict[str, tuple[str, list[float] | None]] = {}

    def push(self, combo: Mapping[str, Any], *, prioritize: bool) -> bool:
        """Queue ``combo`` at the front (``prioritize``) or at the back."""
        if prioritize:
            self._queue.appendleft(dict(combo))
        else:
            self._queue.append(dict(combo))
        return True

    def queued(self) -> Iterable[Queued]:
        """Pop queued combinations one by one (each is yielded once)."""
        while self._queue:
            yield Queued(None, self._queue.popleft())

    def start(self, queued: Queued, rid: str) -> Proposal | str | None:
        """The queued combination as a round, unless that round already ran."""
        if rid in self._ids:
            return "a duplicate of a round that already ran"
        self._ids.add(rid)
        return Proposal(dict(queued.combo), rid, injected=True)

    def refuse(self, queued: Queued, reason: str) -> None:
        """Nothing to keep: the combination is already out of the queue."""

    def is_known(self, rid: str) -> bool:
        """Whether ``rid`` was claimed before."""
        return rid in self._ids

    def claim(self, combo: Mapping[str, Any], rid: str) -> Proposal | None:
        """Claim ``rid`` unless it was claimed before."""
        if rid in self._ids:
            return None
        self._ids.add(rid)
        return Proposal(dict(combo), rid)

    def finished(self, rid: str, state: str, values: list[float] | None) -> None:
        """Remember a round's outcome (to answer later duplicates of it)."""
        self._outcomes[rid] = (state, values)

    def outcome(self, rid: str) -> tuple[str, list[float] | None] | None:
        """The outcome ``finished`` recorded for ``rid``."""
        return self._outcomes.get(rid)

    def __len__(self) -> int:
        return len(self._queue)

    def items(self) -> list[dict[str, Any]]:
        """The queued combinations in the order they will run."""
        return [dict(c) for c in self._queue]


class MSQ:
    """The round pipeline: queued combinations, then strategy proposals, each checked once.

    Every round, whatever chose it, comes through ``next_proposal``, in this order:

    1. nothing, once a ``trim`` budget or ``n_permutations`` is spent;
    2. the next queued combination (prioritised ones first), when the live domain and every
       filter admit it and it is no duplicate of a round that ran or runs; a refused one is
       dropped from the queue with its reason (``on_refused``);
    3. otherwise the strategy's next proposal, checked the same way. A refused proposal is
       asked again (``FilterExhaustedError`` after ``max_filter_retries`` refusals in a row).
       A duplicate never becomes a round: a model-based strategy is told the earlier outcome.
       After ``max_duplicates`` duplicates or refusals in a row, one round comes from
       ``fallback`` (the lazy grid over the remaining space) instead. The run ends when both
       are exhausted.

    Args:
        strategy: proposes combinations; its domain must be ``domain``.
        domain: the mutable space; domain interventions go through it.
        n_permutations: stop after yielding this many rounds (None: no cap).
        max_filter_retries: consecutive refused proposals before ``FilterExhaustedError``.
        queue: the round store (the study's, or in memory by default).
        fallback: where novel combinations come from when the strategy repeats itself.
        max_duplicates: duplicate or refused proposals in a row before one round comes from
            ``fallback``.
    """

    def __init__(
        self,
        strategy: SearchStrategy,
        domain: ParamDomain,
        *,
        n_permutations: int | None = None,
        max_filter_retries: int = 1000,
        queue: RoundStore | None = None,
        fallback: SearchStrategy | None = None,
        max_duplicates: int = 3,
    ) -> None:
        if strategy.domain is not domain:
            raise InvalidParameterError(
                "MSQ strategy.domain and domain must reference the same ParamDomain."
            )
        if fallback is not None and fallback.domain is not domain:
            raise InvalidParameterError(
                "MSQ fallback.domain and domain must reference the same ParamDomain."
            )
        _check_count("n_permutations", n_permutations, allow_none=True)
        _check_count("max_filter_retries", max_filter_retries, allow_none=False)
        _check_count("max_duplicates", max_duplicates, allow_none=False)
        self.strategy = strategy
        self.domain = domain
        self.n_permutations = n_permutations
        self.max_filter_retries = max_filter_retries
        self.max_duplicates = max_duplicates
        self.queue: RoundStore = queue if queue is not None else MemoryRounds()
        self.fallback = fallback
        self.on_refused: Callable[[Mapping[str, Any] | None, str], None] | None = None
        self.restorable: Callable[[str, Any], bool] | None = None
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
        proposal = self._from_queue() or self._from_strategy()
        if proposal is None:
            self.stop_reason = "the parameter space is exhausted"
            return None
        self._yielded += 1
        return proposal

    def refusal(self, combo: Mapping[str, Any]) -> str | None:
        """Why ``combo`` may not run now (naming the parameter and value), or None."""
        keys = self.domain.keys
        missing = [k for k in keys if k not in combo]
        if missing:
            return f"it misses the parameters {missing}"
        extra = [k for k in combo if k not in keys and not str(k).startswith("_")]
        if extra:
            return f"it has the unknown parameters {extra}"
        for key in keys:
            if not self.domain.is_legal(key, combo[key]):
                return f"{key}={value_token(combo[key])!r} is not in the domain"
        for key, condition in self._named.items():
            if condition(combo):
                return f"the MSQ filter {key!r} removes it"
        if any(condition(combo) for condition in self._custom):
            return "a custom MSQ filter removes it"
        return None

    def admits(self, combo: Mapping[str, Any]) -> bool:
        """Whether ``combo`` is legal in the domain and no filter removes it."""
        return self.refusal(combo) is None

    def _from_queue(self) -> Proposal | None:
        for queued in self.queue.queued():
            reason = queued.problem or self.refusal(queued.combo)
            if reason is None:
                started = self.queue.start(queued, round_id(queued.combo))
                if isinstance(started, Proposal):
                    return started
                if started is None:
                    continue
                reason = started
            self.queue.refuse(queued, reason)
            if self.on_refused is not None:
                self.on_refused(queued.combo, reason)
        return None

    def _from_strategy(self) -> Proposal | None:
        source, refused, misses = self.strategy, 0, 0
        while True:
            try:
                combo = dict(next(source))
            except StopIteration:
                if source is self.fallback or self.fallback is None or source.exhaustive:
                    return None
                source = self.fallback
                continue
            if self.refusal(combo) is not None:
                refused += 1
                if refused >= self.max_filter_retries:
                    raise FilterExhaustedError(
                        f"Filters or the domain refused {refused} consecutive proposals. "
                        "Relax or clear the MSQ filters, or widen the domain."
                    )
            else:
                refused = 0
                rid = round_id(combo)
                if not self.queue.is_known(rid):
                    proposal = self.queue.claim(combo, rid)
                    if proposal is not None:
                        return proposal
                if source is self.fallback:
                    continue
                outcome = self.queue.outcome(rid)
                if outcome is not None and source.model_based:
                    # A model-based strategy learns that this point is known, and what it gave.
                    source.tell(combo, *outcome)
            if source is self.fallback or source.exhaustive:
                continue
            misses += 1
            if misses < self.max_duplicates:
                continue
            if self.fallback is None:
                if refused == 0:
                    raise FilterExhaustedError(
                        f"The strategy proposed {misses} rounds in a row that already ran or "
                        "may not run. Widen the domain, or give the MSQ a fallback."
                    )
                continue
            source, misses = self.fallback, 0

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
        """Add ``value`` to ``param``'s legal values.

        Raises:
            ValueError: the MSQ keeps its state in a study and could not restore ``value``
                on resume (``restorable`` refuses it).
        """
        if self.restorable is not None and not self.restorable(param, value):
            raise InvalidParameterError(
                f"MSQ cannot inject {param}={value!r}: a resume could not restore it. Inject a "
                "number, a string, a bool, None, or one of the values the SFD's params() lists."
            )
        self._record("inject_value", param=param, value=value)
        return self.domain.inject_value(param, value)

    def inject(self, combo: Mapping[str, Any], *, prioritize: bool = False) -> None:
        """Queue ``combo`` to run before strategy proposals (``prioritize``: run it next).

        Raises:
            ValueError: ``combo`` misses or adds parameters.
        """
        if not isinstance(combo, Mapping):
            raise InvalidParameterError(
                "The 'combo' parameter of MSQ.inject must be a dict of parameter -> value. "
                f"Got {combo!r} instead."
            )
        self._record("inject", combo=dict(combo), prioritize=prioritize)
        keys = set(self.domain.keys)
        missing, extra = keys - set(combo), set(combo) - keys
        if missing:
            raise InvalidParameterError(f"MSQ Injected combo missing parameters: {sorted(missing)}")
        if extra:
            raise InvalidParameterError(f"MSQ Injected combo has extra keys: {sorted(extra)}")
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
            raise InvalidParameterError(
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
                raise InvalidParameterError(f"Invalid MSQ state: missing required key '{key}'.")
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

    def set_shared_state(self, state: Mapping[str, Any]) -> None:
        """Take another worker's named filters and trim target from ``get_state``'s result.

        Workers sharing a study share these; each keeps its own counts, intervention log,
        strategy state and callable filters (which cannot be stored).
        """
        self._trim_target = state.get("trim_target", self._trim_target)
        self._named, self._descriptors = {}, {}
        self._restore_named(state)

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
        entry.update({key: jsonable(value) for key, value in details.items()})
        self._log.append(entry)


def _build_filter(filter_type: str, filter_params: Any) -> Filter:
    if filter_type not in FILTER_BUILDERS:
        raise InvalidParameterError(
            f"MSQ Unknown filter_type {filter_type!r}. Supported types: {sorted(FILTER_BUILDERS)}."
        )
    if not isinstance(filter_params, Mapping):
        raise InvalidParameterError(
            f"MSQ filter_params must be a dict. Got {filter_params!r} instead."
        )
    try:
        return FILTER_BUILDERS[filter_type](filter_params)
    except KeyError as exc:
        raise InvalidParameterError(
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
        raise InvalidParameterError(
            f"MSQ A filter must be callable(combo) -> bool. Got {condition!r} instead."
        )


def _check_count(name: str, value: Any, *, allow_none: bool, minimum: int = 1) -> None:
    if value is None and allow_none:
        return
    validate_params({name: [Interval(int, minimum, None)]}, {name: value}, "MSQ")
