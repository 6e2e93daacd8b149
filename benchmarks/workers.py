"""Many workers on one PostgreSQL study: rounds per second with 1, 2 and 4 worker processes.

Two objectives: one that sleeps 200 ms per round (a model waiting on I/O or a remote service,
where workers scale with their number) and one CPU-bound (a numpy loop of about 200 ms on one
core, which scales only up to the machine's cores). Each configuration runs ``run(n_jobs=N)``
into a fresh study with the random strategy and checks the outcome against the study: finished
rounds must equal the target (``lost`` counts the missing ones) and no round id may finish twice
(``duplicates``).

PostgreSQL comes from ``LIMEN_TEST_POSTGRES_URL`` (default the local server); the run works in a
scratch database it creates and drops.

Run: ``.venv/bin/python benchmarks/workers.py [--rounds N]``. Prints a table and writes
``benchmarks/results/workers.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import pandas as pd

from limen.adapters.trials import ROUND_ID, is_finished_round
from limen.experiment import UniversalExperimentLoop

# The tests' scratch databases: a private database on a shared server, dropped afterwards.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from databases import scratch_database

RESULTS = Path(__file__).parent / "results" / "workers.json"
POSTGRES = ("LIMEN_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
WORKERS = (1, 2, 4)
ROUND_S = 0.2


class SleepSFD:
    """Each round waits 200 ms."""

    @staticmethod
    def params() -> dict[str, list]:
        return {"x": list(range(100)), "y": list(range(100))}

    @staticmethod
    def prep(data: Any, round_params: dict) -> dict:
        return {}

    @staticmethod
    def model(data: dict, round_params: dict) -> dict:
        time.sleep(ROUND_S)
        return {"score": float(round_params["x"] - round_params["y"])}


class CpuSFD(SleepSFD):
    """Each round computes for about 200 ms on one core."""

    @staticmethod
    def model(data: dict, round_params: dict) -> dict:
        end = time.process_time() + ROUND_S
        total = 0.0
        while time.process_time() < end:
            total += float(np.sum(np.sqrt(np.arange(2000.0))))
        return {"score": float(round_params["x"]) + total * 0}


def measure(sfd: Any, storage: str, workers: int, rounds: int) -> dict[str, Any]:
    """One run of ``rounds`` rounds with ``workers`` processes; its rate and its exactness."""
    name = f"{type(sfd).__name__}-{workers}"
    with tempfile.TemporaryDirectory() as directory:
        loop = UniversalExperimentLoop(
            sfd=sfd,
            data=pd.DataFrame(),
            experiment_dir=directory,
            storage=storage,
            search_strategy="random",
            objective="score",
        )
        started = time.perf_counter()
        loop.run(name, n_permutations=rounds, n_jobs=workers, progress_bar=False)
        elapsed = time.perf_counter() - started
    trials = optuna.load_study(study_name=name, storage=storage).get_trials(deepcopy=False)
    ids = Counter(t.user_attrs.get(ROUND_ID) for t in trials if is_finished_round(t))
    return {
        "workers": workers,
        "rounds": rounds,
        "seconds": round(elapsed, 3),
        "rounds_per_second": round(rounds / elapsed, 3),
        "finished": sum(ids.values()),
        "duplicates": sum(n - 1 for n in ids.values()),
        "lost": max(rounds - len(ids), 0),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=60, help="rounds per configuration")
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    server = os.environ.get(*POSTGRES)
    results: dict[str, Any] = {
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count()},
        "rounds": args.rounds,
        "objectives": {},
    }
    with scratch_database(server, "limen_bench") as storage:
        for label, sfd in (("sleep 200 ms", SleepSFD()), ("CPU-bound 200 ms", CpuSFD())):
            rows = [measure(sfd, storage, n, args.rounds) for n in WORKERS]
            base = rows[0]["rounds_per_second"]
            for row in rows:
                row["speedup"] = round(row["rounds_per_second"] / base, 2)
            results["objectives"][label] = rows
    print_table(results)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")


def print_table(results: dict[str, Any]) -> None:
    print(f"{results['rounds']} rounds per run, {results['machine']['cpus']} CPUs, PostgreSQL")
    print("| objective | workers | rounds/s | speedup | duplicates | lost |")
    print("|---|---:|---:|---:|---:|---:|")
    for label, rows in results["objectives"].items():
        for row in rows:
            print(
                f"| {label} | {row['workers']} | {row['rounds_per_second']:.2f} | "
                f"{row['speedup']:.2f}x | {row['duplicates']} | {row['lost']} |"
            )


if __name__ == "__main__":
    main()
