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
from limen.experiment.experiment_source import directory_storage, read_metadata
from limen.experiment.param_domain import ParamDomain, Range, same_value
from limen.experiment.records import METADATA_JSON, RESERVED_COLUMNS
from limen.experiment.search_strategy import SearchStrategy, make_strategy

DIRECTIONS = ("maximize", "minimize")


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
    """Validate ``run()``'s arguments and resolve them, before touching the disk or database."""
    name = kw["experiment_name"]
    if not isinstance(name, str) or not name.strip() or "/" in name or "\\" in name:
        raise ValueError(
            "The 'experiment_name' parameter of UniversalExperimentLoop.run must be a "
            f"non-empty name without path separators. Got {name!r} instead; choose the "
            "directory with experiment_dir=..."
        )
    n = kw["n_permutations"]
    if not isinstance(n, int) or isinstance(n, bool) or n <= 0:
        raise ValueError(
            "The 'n_permutations' parameter of UniversalExperimentLoop.run must be an int "
            f">= 1. Got {n!r} instead."
        )
    for flag in ("random_search", "maintain_details", "progress_bar"):
        check_bool(flag, kw[flag])
    if kw["resume"] not in (True, False, "force", "auto"):
        raise ValueError(
            "The 'resume' parameter of UniversalExperimentLoop.run must be True, False, "
            f"'force' or 'auto'. Got {kw['resume']!r} instead."
        )
    n_jobs = kw.get("n_jobs", 1)
    if not isinstance(n_jobs, int) or isinstance(n_jobs, bool) or n_jobs < 0:
        raise ValueError(
            "The 'n_jobs' parameter of UniversalExperimentLoop.run must be an int >= 0 (0: "
            f"create the study and run nothing). Got {n_jobs!r} instead."
        )
    prep_each_round = _resolve_prep_each_round(loop, kw["prep_each_round"], kw)
    params = _resolve_params(loop, kw["params"])
    prep = kw["prep"] or loop.prep
    model = kw["model"] or loop.model
    if not callable(prep) or not callable(model):
        raise ValueError(
            f"SFD {loop.sfd_name!r} has no prep() and model(): define them in the SFD, give "
            "it a manifest(), or pass prep=... and model=... to run()."
        )
    seed = kw["seed"]
    if seed is not None and (not isinstance(seed, int) or isinstance(seed, bool)):
        raise TypeError(
            "The 'seed' parameter of UniversalExperimentLoop.run must be an int or None. "
            f"Got {seed!r} instead."
        )
    timeout = kw["timeout"]
    if timeout is not None and (
        not isinstance(timeout, int | float) or isinstance(timeout, bool) or timeout <= 0
    ):
        raise ValueError(
            "The 'timeout' parameter of UniversalExperimentLoop.run must be a number of "
            f"seconds > 0 or None. Got {timeout!r} instead."
        )
    context = dict(kw["context_params"] or {})
    clash = sorted(set(context) & set(params))
    if clash:
        raise ValueError(
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
        raise ValueError(
            f"The 'n_jobs' parameter of UniversalExperimentLoop.run is {n_jobs}, but the study "
            "is in SQLite, which serialises every write and is for one process. Use a "
            "PostgreSQL (or MySQL/MariaDB) storage, e.g. storage='postgresql+psycopg://user@host"
            "/db', or pass allow_sqlite_workers=True (CLI: --force) to run them anyway."
        )


def _resolve_prep_each_round(loop: Any, value: bool | None, kw: Mapping[str, Any]) -> bool:
    if value is not None and not isinstance(value, bool):
        raise TypeError(
            "The 'prep_each_round' parameter of UniversalExperimentLoop.run must be a bool "
            f"or None. Got {value!r} instead."
        )
    if loop.manifest is None:
        return bool(value)
    if kw["prep"] is not None or kw["model"] is not None:
        raise ValueError(
            f"SFD {loop.sfd_name!r} is manifest-driven: its prep and model come from the "
            "manifest, so run() cannot override them. Drop prep=/model= or use a custom SFD."
        )
    if value is False:
        raise ValueError(
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
        raise ValueError(
            f"The search strategy's domain has the parameters {sorted(domain.keys)}, but "
            f"SFD {loop.sfd_name!r} has {sorted(params)}: build the strategy over the SFD's "
            "params()."
        )
    strategy = make_strategy(config, domain, seed=seed)
    if strategy.model_based and objective is None:
        raise ValueError(
            f"The {strategy.name!r} strategy learns from the objective, and none is set: pass "
            "objective=... (and direction=...) to UniversalExperimentLoop or call "
            "Manifest.set_objective(...). Strategies that need none: grid, random, qmc, "
            "bruteforce."
        )
    if objective is not None and len(objective) > 1:
        if strategy.name == "cmaes":
            raise ValueError(
                "The 'cmaes' strategy optimises one objective; use 'tpe', 'gp', 'nsga2' or "
                f"'nsga3' for the {len(objective)} objectives {[m for m, _ in objective]}."
            )
        if loop._pruner is not None:
            raise ValueError(PRUNER_MULTI)
    return strategy


def _resolve_params(loop: Any, override: Any) -> dict[str, list[Any]]:
    source = override if override is not None else loop.sfd.params
    raw = source() if callable(source) else source
    if not isinstance(raw, Mapping) or not raw:
        raise ValueError(
            f"params() of SFD {loop.sfd_name!r} must return a non-empty dict of parameter "
            f"name -> list of values. Got {raw!r} instead."
        )
    ParamDomain(dict(raw))
    clash = sorted(str(k) for k in raw if str(k) in RESERVED_COLUMNS)
    if clash:
        raise ValueError(
            f"params() of SFD {loop.sfd_name!r} names the parameters {clash}, which are columns "
            f"every round already has ({sorted(RESERVED_COLUMNS)}): rename them."
        )
    for key, values in raw.items():
        repeated = _repeated(values)
        if repeated is not None:
            raise ValueError(
                f"Parameter '{key}' of SFD {loop.sfd_name!r} lists the value {repeated!r} more "
                "than once: list each value once (the grid would run its rounds twice)."
            )
        if isinstance(values, Range) and not _proposes_ranges(loop):
            raise ValueError(
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


def check_interval(name: str, value: Any) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ValueError(
            f"The '{name}' parameter of UniversalExperimentLoop must be an int in [1, inf). "
            f"Got {value!r} instead."
        )
    return value


def check_bool(name: str, value: Any) -> None:
    if not isinstance(value, bool):
        raise TypeError(
            f"The '{name}' parameter of UniversalExperimentLoop must be a bool. "
            f"Got {value!r} instead."
        )


def parse_objective(
    objective: str | Sequence[str] | None, direction: str | Sequence[str] | None
) -> list[tuple[str, str]] | None:
    if objective is None:
        if direction is not None:
            raise ValueError(
                "The 'direction' parameter of UniversalExperimentLoop needs an objective: pass "
                "objective='metric' too."
            )
        return None
    metrics = [objective] if isinstance(objective, str) else list(objective)
    if not metrics or not all(isinstance(m, str) and m for m in metrics):
        raise ValueError(
            "The 'objective' parameter of UniversalExperimentLoop must be a metric name or a "
            f"non-empty list of metric names. Got {objective!r} instead."
        )
    if direction is None:
        directions = ["maximize"] * len(metrics)
    else:
        directions = [direction] if isinstance(direction, str) else list(direction)
    if len(directions) != len(metrics):
        raise ValueError(
            f"The 'direction' parameter of UniversalExperimentLoop must give one direction per "
            f"objective metric ({len(metrics)}). Got {direction!r} instead."
        )
    bad = [d for d in directions if d not in DIRECTIONS]
    if bad:
        raise ValueError(
            "The 'direction' parameter of UniversalExperimentLoop must be 'maximize' or "
            f"'minimize'. Got {bad[0]!r} instead."
        )
    return list(zip(metrics, directions, strict=True))
