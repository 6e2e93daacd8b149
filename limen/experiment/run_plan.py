"""The plan of one ``run()``: its arguments validated and resolved before anything is written.

``plan_run`` checks every argument of ``UniversalExperimentLoop.run`` (and the loop's own
settings that depend on them), resolves the parameter space, prep and model, the objective, the
storage URL and the search strategy, and returns a ``RunPlan``. Nothing touches the disk or the
database before it returns, so a bad argument leaves nothing behind.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from limen.adapters.storage import default_storage_url, is_sqlite
from limen.errors import InvalidParameterError
from limen.experiment.experiment_source import directory_storage, read_metadata
from limen.experiment.param_domain import ParamDomain, Range, same_value
from limen.experiment.records import METADATA_JSON, RESERVED_COLUMNS
from limen.experiment.search_strategy import SearchStrategy, make_strategy
from limen.sfd.loader import SFDLoadError
from limen.utils.validation import (
    InstanceOf,
    Interval,
    Options,
    Predicate,
    invalid,
    validate_params,
)

__all__ = [
    "INIT_CONSTRAINTS",
    "RUN_CONSTRAINTS",
    "RunPlan",
    "check_workers",
    "make_run_strategy",
    "parse_objective",
    "plan_run",
]

DIRECTIONS = ("maximize", "minimize")
OWNER = "UniversalExperimentLoop"


def _plain_name(value: Any) -> bool:
    return isinstance(value, str) and bool(value.strip()) and not {"/", "\\"} & set(value)


def _metric_names(value: Any) -> bool:
    if isinstance(value, str):
        return bool(value)
    if isinstance(value, Mapping) or not isinstance(value, Sequence):
        return False
    return bool(value) and all(isinstance(m, str) and m for m in value)


def _directions(value: Any) -> bool:
    if isinstance(value, str):
        return value in DIRECTIONS
    return isinstance(value, Sequence) and bool(value) and all(d in DIRECTIONS for d in value)


#: What each parameter of ``UniversalExperimentLoop()`` accepts (the SFD is checked by
#: ``check_sfd``, the strategy and pruner by their registries).
INIT_CONSTRAINTS: dict[str, list[Any]] = {
    "test_mode": ["boolean"],
    "save_artifacts": ["boolean"],
    "experiment_dir": ["path", None],
    "storage": [InstanceOf(str, "an SQLAlchemy URL (a str)"), None],
    "objective": [
        Predicate(_metric_names, "a metric name or a non-empty list of metric names"),
        None,
    ],
    "direction": [
        Predicate(_directions, "'maximize', 'minimize' or a list of them (one per metric)"),
        None,
    ],
    "intra_callback": ["callable", None],
    "feedback_interval": [Interval(int, 1, None)],
    "checkpoint_interval": [Interval(int, 1, None)],
    "pruning_strategies": [
        Predicate(lambda v: isinstance(v, Sequence) and not isinstance(v, str), "a list"),
        None,
    ],
}

#: What each parameter of ``UniversalExperimentLoop.run`` accepts.
RUN_CONSTRAINTS: dict[str, list[Any]] = {
    "experiment_name": [Predicate(_plain_name, "a non-empty name without path separators")],
    "n_permutations": [Interval(int, 1, None)],
    "prep_each_round": ["boolean", None],
    "random_search": ["boolean"],
    "maintain_details": ["boolean"],
    "context_params": [Predicate(lambda v: isinstance(v, Mapping), "a dict"), None],
    "params": ["callable", Predicate(lambda v: isinstance(v, Mapping), "a dict"), None],
    "prep": ["callable", None],
    "model": ["callable", None],
    "resume": [Options((bool, str), [True, False, "force", "auto"])],
    "seed": [int, None],
    "timeout": [Interval(float, 0, None, closed="neither"), None],
    "progress_bar": ["boolean"],
    "post_processing": ["boolean"],
    "n_jobs": [Interval(int, 0, None)],
    "allow_sqlite_workers": ["boolean"],
}
RUN_FIXES = {
    "experiment_name": "Choose the directory with experiment_dir=...",
    "n_jobs": "0 creates the study and runs nothing.",
}


@dataclass
class RunPlan:
    """Everything ``run`` decided before touching the disk or the database."""

    experiment_name: str
    n_permutations: int
    params: dict[str, list[Any]]
    prep: Callable[..., Any]
    model: Callable[..., Any]
    prep_each_round: bool
    random_search: bool
    seed: int
    maintain_details: bool
    context_params: dict[str, Any]
    resume: bool | str
    timeout: float | None
    progress_bar: bool
    experiment_dir: Path
    storage_url: str
    objective: list[tuple[str, str]] | None
    strategy: SearchStrategy
    n_jobs: int = 1
    shared: bool = False
    follow_target: bool = False
    fleet: bool = False


def plan_run(loop: Any, **kw: Any) -> RunPlan:
    """Validate ``run()``'s arguments and resolve them, before touching the disk or database.

    Raises:
        limen.InvalidParameterError: an argument ``RUN_CONSTRAINTS`` refuses, or arguments
            that do not fit the SFD (repeated values, reserved names...).
    """
    validate_params(RUN_CONSTRAINTS, kw, f"{OWNER}.{kw.get('owner', 'run')}", RUN_FIXES)
    name = kw["experiment_name"]
    n = kw["n_permutations"]
    n_jobs = kw.get("n_jobs", 1)
    prep_each_round = _resolve_prep_each_round(loop, kw["prep_each_round"], kw)
    params = _resolve_params(loop, kw["params"])
    prep = kw["prep"] or loop.prep
    model = kw["model"] or loop.model
    if not callable(prep) or not callable(model):
        raise InvalidParameterError(
            f"SFD {loop.sfd_name!r} has no prep() and model(): define them in the SFD, give "
            "it a manifest(), or pass prep=... and model=... to run()."
        )
    seed = kw["seed"]
    timeout = kw["timeout"]
    context = dict(kw["context_params"] or {})
    clash = sorted(set(context) & set(params))
    if clash:
        raise InvalidParameterError(
            f"The 'context_params' of UniversalExperimentLoop.run repeat the searched "
            f"parameters {clash}: a context parameter is constant, so remove it from one side."
        )
    experiment_dir = loop.experiment_dir or Path("limen-runs") / name
    objective = loop._objective or getattr(loop.manifest, "objective", None)
    storage_url = (
        loop.storage_url
        or _recorded_storage(experiment_dir, kw["resume"])
        or default_storage_url(experiment_dir)
    )
    check_workers(n_jobs, storage_url, allow_sqlite=kw.get("allow_sqlite_workers", False))
    if seed is None:
        seed = int(np.random.SeedSequence().entropy % 2**31)
    return RunPlan(
        experiment_name=name,
        n_permutations=n,
        params=params,
        prep=prep,
        model=model,
        prep_each_round=prep_each_round,
        random_search=kw["random_search"],
        seed=seed,
        maintain_details=kw["maintain_details"],
        context_params=context,
        resume=kw["resume"],
        timeout=timeout,
        progress_bar=kw["progress_bar"],
        experiment_dir=experiment_dir,
        storage_url=storage_url,
        objective=objective,
        strategy=make_run_strategy(
            loop, loop._strategy_config, params, objective, seed=seed, shuffle=kw["random_search"]
        ),
        n_jobs=n_jobs,
        # Workers on one study stop on the study's count, which a shared run reads inside each
        # claim; a single process on SQLite counts its own rounds and skips that read.
        shared=bool(kw.get("worker")) or n_jobs > 1 or not is_sqlite(storage_url),
        follow_target=bool(kw.get("worker")),
        # Started as one of several workers (``work``, or forked by ``n_jobs > 1``).
        fleet=bool(kw.get("worker")) or n_jobs > 1,
    )


def _recorded_storage(experiment_dir: Path, resume: bool | str) -> str | None:
    """On resume, the storage the experiment directory records (its own ``study.db`` when it
    was moved or copied); None when the directory records no experiment."""
    if not resume or not (experiment_dir / METADATA_JSON).is_file():
        return None
    return directory_storage(experiment_dir, read_metadata(experiment_dir))


def check_workers(n_jobs: int, storage_url: str, *, allow_sqlite: bool) -> None:
    """Refuse several worker processes on SQLite unless forced.

    SQLite serialises every write behind one file lock: workers queue for it instead of
    running side by side, and a network file system can corrupt the file. PostgreSQL and
    MySQL/MariaDB are the storages for many workers.
    """
    if n_jobs > 1 and is_sqlite(storage_url) and not allow_sqlite:
        raise InvalidParameterError(
            f"The 'n_jobs' parameter of UniversalExperimentLoop.run is {n_jobs}, but the study "
            "is in SQLite, which serialises every write and is for one process. Use a "
            "PostgreSQL (or MySQL/MariaDB) storage, e.g. storage='postgresql+psycopg://user@host"
            "/db', or pass allow_sqlite_workers=True (CLI: --force) to run them anyway."
        )


def _resolve_prep_each_round(loop: Any, value: bool | None, kw: Mapping[str, Any]) -> bool:
    if loop.manifest is None:
        return bool(value)
    if kw["prep"] is not None or kw["model"] is not None:
        raise InvalidParameterError(
            f"SFD {loop.sfd_name!r} is manifest-driven: its prep and model come from the "
            "manifest, so run() cannot override them. Drop prep=/model= or use a custom SFD."
        )
    if value is False:
        raise InvalidParameterError(
            "The 'prep_each_round' parameter must be True (or None) for the manifest-driven "
            f"SFD {loop.sfd_name!r}: its data preparation depends on each round's parameters."
        )
    return True


def _proposes_ranges(loop: Any) -> bool:
    config = loop._strategy_config
    return config is not None and not (isinstance(config, dict) and config["name"] == "grid")


def make_run_strategy(
    loop: Any,
    config: Any,
    params: dict[str, Any],
    objective: list[tuple[str, str]] | None,
    *,
    seed: int,
    shuffle: bool = True,
) -> SearchStrategy:
    """Build the run's strategy (the grid when ``config`` is None) and check it fits the
    objective, before any round."""
    if config is None:
        config = {"name": "grid", "seed": seed, "shuffle": shuffle}
    domain = config.domain if isinstance(config, SearchStrategy) else ParamDomain(params)
    if set(domain.keys) != set(params):
        raise InvalidParameterError(
            f"The search strategy's domain has the parameters {sorted(domain.keys)}, but "
            f"SFD {loop.sfd_name!r} has {sorted(params)}: build the strategy over the SFD's "
            "params()."
        )
    strategy = make_strategy(config, domain, seed=seed)
    if strategy.model_based and objective is None:
        raise InvalidParameterError(
            f"The {strategy.name!r} strategy learns from the objective, and none is set: pass "
            "objective=... (and direction=...) to UniversalExperimentLoop or call "
            "Manifest.set_objective(...). Strategies that need none: grid, random, qmc, "
            "bruteforce."
        )
    if objective is not None and len(objective) > 1:
        if strategy.name == "cmaes":
            raise InvalidParameterError(
                "The 'cmaes' strategy optimises one objective; use 'tpe', 'gp', 'nsga2' or "
                f"'nsga3' for the {len(objective)} objectives {[m for m, _ in objective]}."
            )
        if loop._pruner is not None:
            raise InvalidParameterError(PRUNER_MULTI)
    return strategy


def _resolve_params(loop: Any, override: Any) -> dict[str, list[Any]]:
    source = override if override is not None else loop.sfd.params
    try:
        raw = source() if callable(source) else source
    except Exception as exc:
        raise SFDLoadError(
            f"params() of SFD {loop.sfd_name!r} raised {type(exc).__name__}: {exc}. Fix the "
            "SFD's params() and run again.",
            name=loop.sfd_name,
        ) from exc
    if not isinstance(raw, Mapping) or not raw:
        raise InvalidParameterError(
            f"params() of SFD {loop.sfd_name!r} must return a non-empty dict of parameter "
            f"name -> list of values. Got {raw!r} instead."
        )
    ParamDomain(dict(raw))
    clash = sorted(str(k) for k in raw if str(k) in RESERVED_COLUMNS)
    if clash:
        raise InvalidParameterError(
            f"params() of SFD {loop.sfd_name!r} names the parameters {clash}, which are columns "
            f"every round already has ({sorted(RESERVED_COLUMNS)}): rename them."
        )
    for key, values in raw.items():
        repeated = _repeated(values)
        if repeated is not None:
            raise InvalidParameterError(
                f"Parameter '{key}' of SFD {loop.sfd_name!r} lists the value {repeated!r} more "
                "than once: list each value once (the grid would run its rounds twice)."
            )
        if isinstance(values, Range) and not _proposes_ranges(loop):
            raise InvalidParameterError(
                f"Parameter '{key}' is a Range, which the grid cannot enumerate: list its "
                "values instead."
            )
    return {str(k): v if isinstance(v, Range) else list(v) for k, v in raw.items()}


def _repeated(values: Any) -> Any:
    """A value listed twice (by ``same_value``: ``1.0`` twice, not ``1`` and ``1.0``), or None."""
    if isinstance(values, Range):
        return None
    seen: list[Any] = []
    for value in values:
        if any(same_value(value, other) for other in seen):
            return value
        seen.append(value)
    return None


PRUNER_MULTI = (
    "The 'pruner' parameter of UniversalExperimentLoop needs a single objective: Optuna's "
    "pruners compare one intermediate value. Drop pruner=... or optimise one metric."
)


def parse_objective(
    objective: str | Sequence[str] | None, direction: str | Sequence[str] | None
) -> list[tuple[str, str]] | None:
    """The objective as ``[(metric, direction), ...]`` (None: the manifest's).

    Raises:
        limen.InvalidParameterError: a metric or direction of the wrong type or value, a
            direction without an objective, or not one direction per metric.
    """
    validate_params(
        {k: INIT_CONSTRAINTS[k] for k in ("objective", "direction")},
        {"objective": objective, "direction": direction},
        OWNER,
    )
    if objective is None:
        if direction is not None:
            raise InvalidParameterError(
                "The 'direction' parameter of UniversalExperimentLoop needs an objective: pass "
                "objective='metric' too."
            )
        return None
    metrics = [objective] if isinstance(objective, str) else list(objective)
    if direction is None:
        directions = ["maximize"] * len(metrics)
    else:
        directions = [direction] if isinstance(direction, str) else list(direction)
    if len(directions) != len(metrics):
        raise invalid(
            "direction",
            OWNER,
            f"one direction per objective metric ({len(metrics)})",
            direction,
        )
    return list(zip(metrics, directions, strict=True))
