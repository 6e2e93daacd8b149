"""Per-round write cost: Optuna's RDBStorage versus LimenStorage on SQLite, PostgreSQL, MariaDB.

One round is a finished trial with 15 parameters and 10 metrics (user attrs) and one objective
value. Written four ways:

- ``optuna ask/tell``: ``study.ask()``, 15 ``suggest_*``, 10 ``set_user_attr``, ``study.tell``
  (random sampler, so sampling costs next to nothing), on RDBStorage and on LimenStorage;
- ``optuna add_trial``: ``study.add_trial(create_trial(...))``, on both storages;
- ``limen round``: ``LimenStorage.create_running_trial`` then ``finish_trial``, the loop's path.

Both storages get the same SQLite settings (WAL, synchronous=NORMAL), so the ratio measures
the write path, not fsync. PostgreSQL and MariaDB come from ``LIMEN_TEST_POSTGRES_URL`` and
``LIMEN_TEST_MYSQL_URL`` (default: the local servers); each run works in a scratch database it
creates and drops, and a server that cannot be reached is skipped with a note.

Run: ``.venv/bin/python benchmarks/storage.py [--rounds N]``. Prints a table and writes
``benchmarks/results/storage.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import sqlite3
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import optuna
import sqlalchemy
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)
from optuna.storages import RDBStorage
from optuna.trial import TrialState

from limen.adapters.storage import LimenStorage, redact_url

# The tests' scratch databases: a private database on a shared server, dropped afterwards.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from databases import scratch_database

RESULTS = Path(__file__).parent / "results" / "storage.json"
SERVERS = {
    "postgresql": ("LIMEN_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"),
    "mariadb": ("LIMEN_TEST_MYSQL_URL", "mysql+pymysql://root@127.0.0.1:3306/test"),
}
N_PARAMS = 15
N_METRICS = 10
WARMUP = 5


def _distributions() -> dict[str, BaseDistribution]:
    """15 parameters of the kinds a research grid has: floats, log floats, ints, categories."""
    dists: dict[str, BaseDistribution] = {}
    for i in range(N_PARAMS):
        kind = i % 4
        if kind == 0:
            dists[f"p{i:02d}"] = FloatDistribution(0.0, 1.0)
        elif kind == 1:
            dists[f"p{i:02d}"] = FloatDistribution(1e-5, 1.0, log=True)
        elif kind == 2:
            dists[f"p{i:02d}"] = IntDistribution(1, 100)
        else:
            dists[f"p{i:02d}"] = CategoricalDistribution(("a", "b", "c", None))
    return dists


DISTRIBUTIONS = _distributions()


def _random_params(rng: random.Random) -> dict[str, Any]:
    params: dict[str, Any] = {}
    for name, dist in DISTRIBUTIONS.items():
        if isinstance(dist, FloatDistribution):
            params[name] = rng.uniform(dist.low, dist.high)
        elif isinstance(dist, IntDistribution):
            params[name] = rng.randint(dist.low, dist.high)
        else:
            assert isinstance(dist, CategoricalDistribution)
            params[name] = rng.choice(dist.choices)
    return params


def _metrics(rng: random.Random) -> dict[str, float]:
    return {f"metric_{i}": rng.random() for i in range(N_METRICS)}


def _suggest(trial: optuna.Trial, name: str, dist: BaseDistribution) -> None:
    if isinstance(dist, FloatDistribution):
        trial.suggest_float(name, dist.low, dist.high, log=dist.log)
    elif isinstance(dist, IntDistribution):
        trial.suggest_int(name, dist.low, dist.high)
    else:
        assert isinstance(dist, CategoricalDistribution)
        trial.suggest_categorical(name, dist.choices)


def _ask_tell(storage: RDBStorage, name: str) -> Callable[[random.Random], None]:
    study = optuna.create_study(
        study_name=name, storage=storage, sampler=optuna.samplers.RandomSampler(seed=0)
    )

    def round_(rng: random.Random) -> None:
        trial = study.ask()
        for param, dist in DISTRIBUTIONS.items():
            _suggest(trial, param, dist)
        for key, value in _metrics(rng).items():
            trial.set_user_attr(key, value)
        study.tell(trial, rng.random())

    return round_


def _add_trial(storage: RDBStorage, name: str) -> Callable[[random.Random], None]:
    study = optuna.create_study(study_name=name, storage=storage)

    def round_(rng: random.Random) -> None:
        study.add_trial(
            optuna.trial.create_trial(
                params=_random_params(rng),
                distributions=DISTRIBUTIONS,
                user_attrs=_metrics(rng),
                value=rng.random(),
            )
        )

    return round_


def _limen_round(storage: LimenStorage, name: str) -> Callable[[random.Random], None]:
    study_id = storage.create_new_study([optuna.study.StudyDirection.MINIMIZE], name)

    def round_(rng: random.Random) -> None:
        params = {k: DISTRIBUTIONS[k].to_internal_repr(v) for k, v in _random_params(rng).items()}
        trial_id, _ = storage.create_running_trial(study_id, params, DISTRIBUTIONS)
        storage.finish_trial(trial_id, TrialState.COMPLETE, [rng.random()], _metrics(rng))

    return round_


METHODS: list[tuple[str, type[RDBStorage], Callable[..., Callable[[random.Random], None]]]] = [
    ("optuna ask/tell, RDBStorage", RDBStorage, _ask_tell),
    ("optuna add_trial, RDBStorage", RDBStorage, _add_trial),
    ("optuna ask/tell, LimenStorage", LimenStorage, _ask_tell),
    ("optuna add_trial, LimenStorage", LimenStorage, _add_trial),
    ("limen round, LimenStorage", LimenStorage, _limen_round),
]
LIMEN_ROUND = METHODS[-1][0]


def _open(cls: type[RDBStorage], url: str) -> RDBStorage:
    storage = cls(url)
    if cls is RDBStorage and url.startswith("sqlite"):
        # The same SQLite settings LimenStorage uses, so only the write path differs.
        @sqlalchemy.event.listens_for(storage.engine, "connect")
        def _tune(dbapi_connection: Any, _record: Any) -> None:
            dbapi_connection.execute("PRAGMA journal_mode=WAL")
            dbapi_connection.execute("PRAGMA synchronous=NORMAL")

        storage.engine.dispose()
    return storage


def _measure(round_: Callable[[random.Random], None], rounds: int) -> dict[str, float]:
    rng = random.Random(0)
    for _ in range(WARMUP):
        round_(rng)
    costs = []
    for _ in range(rounds):
        started = time.perf_counter()
        round_(rng)
        costs.append((time.perf_counter() - started) * 1000)
    costs.sort()
    return {
        "median_ms": statistics.median(costs),
        "mean_ms": statistics.fmean(costs),
        "p90_ms": costs[int(0.9 * (len(costs) - 1))],
        "rounds": rounds,
    }


@contextmanager
def _sqlite_database() -> Iterator[str]:
    with tempfile.TemporaryDirectory() as directory:
        yield f"sqlite:///{Path(directory) / 'study.db'}"


def _server_version(url: str) -> str:
    engine = sqlalchemy.create_engine(url)
    try:
        with engine.connect() as conn:
            return str(conn.exec_driver_sql("SELECT version()").scalar())
    finally:
        engine.dispose()


def _bench_backend(url: str, rounds: int) -> dict[str, dict[str, float]]:
    results = {}
    for label, cls, make in METHODS:
        storage = _open(cls, url)
        try:
            results[label] = _measure(make(storage, f"bench-{uuid.uuid4().hex[:8]}"), rounds)
        finally:
            storage.engine.dispose()
        print(f"  {label:<32} {results[label]['median_ms']:8.2f} ms", file=sys.stderr)
    return results


def _databases() -> Iterator[tuple[str, Callable[[], Any], str | None]]:
    yield "sqlite", _sqlite_database, f"SQLite {sqlite3.sqlite_version}"
    for backend, (env, default) in SERVERS.items():
        server = os.environ.get(env) or default
        try:
            version = _server_version(server)
        except Exception as exc:
            print(
                f"note: skipping {backend}: {redact_url(server)} is unreachable "
                f"({type(exc).__name__}). Set {env} to a reachable server.",
                file=sys.stderr,
            )
            continue
        yield backend, lambda server=server: scratch_database(server, "limen_bench"), version


def _table(results: dict[str, Any]) -> str:
    lines = [
        f"{'database':<11} {'write path':<32} {'median ms':>10} {'mean ms':>9} "
        f"{'p90 ms':>8} {'x slower than limen round':>26}",
        "-" * 101,
    ]
    for backend, entry in results["databases"].items():
        limen = entry["methods"][LIMEN_ROUND]["median_ms"]
        for label, stats in entry["methods"].items():
            ratio = stats["median_ms"] / limen
            lines.append(
                f"{backend:<11} {label:<32} {stats['median_ms']:>10.2f} {stats['mean_ms']:>9.2f} "
                f"{stats['p90_ms']:>8.2f} {ratio:>26.1f}"
            )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=100, help="measured rounds per path")
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    optuna.logging.set_verbosity(optuna.logging.WARNING)

    results: dict[str, Any] = {
        "round": {"params": N_PARAMS, "metrics": N_METRICS, "objectives": 1},
        "rounds_per_path": args.rounds,
        "warmup_rounds": WARMUP,
        "environment": {
            "python": platform.python_version(),
            "optuna": optuna.__version__,
            "sqlalchemy": sqlalchemy.__version__,
            "cpus": os.cpu_count(),
            "machine": platform.machine(),
        },
        "databases": {},
    }
    for backend, database, version in _databases():
        print(f"{backend}: {version}", file=sys.stderr)
        with database() as url:
            methods = _bench_backend(url, args.rounds)
        limen = methods[LIMEN_ROUND]["median_ms"]
        results["databases"][backend] = {
            "server": version,
            "methods": methods,
            "speedup_vs_rdb_ask_tell": methods["optuna ask/tell, RDBStorage"]["median_ms"] / limen,
            "speedup_vs_rdb_add_trial": methods["optuna add_trial, RDBStorage"]["median_ms"]
            / limen,
        }
    print(_table(results))
    for backend, entry in results["databases"].items():
        print(
            f"{backend}: limen round is {entry['speedup_vs_rdb_ask_tell']:.1f}x faster than "
            f"RDBStorage ask/tell and {entry['speedup_vs_rdb_add_trial']:.1f}x faster than "
            "RDBStorage add_trial"
        )
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
