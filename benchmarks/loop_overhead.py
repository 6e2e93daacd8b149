"""Loop overhead: the same trivial objective through raw Optuna ask/tell and through Limen.

Both sides use the same sampler (random, seeded), the same parameter space (five numeric
parameters, as Limen lists them) and SQLite storage in a temporary directory: Optuna's
``RDBStorage`` through ``optuna.create_study(storage="sqlite:///...")`` (what an Optuna user
writes) against ``UniversalExperimentLoop(search_strategy="random")`` with its default storage.
The Limen side does everything a real run does: the MSQ, dedup, results.csv, round_data.jsonl.
Prints per-round milliseconds for both and the ratio; records them per strategy in
``benchmarks/results/loop_overhead.json``.

Run: ``.venv/bin/python benchmarks/loop_overhead.py [--rounds 600] [--strategy random]``
"""

from __future__ import annotations

import argparse
import json
import logging
import platform
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import pandas as pd

from limen.adapters.distributions import DomainCodec
from limen.adapters.samplers import build_sampler
from limen.experiment import UniversalExperimentLoop

RESULTS_PATH = Path(__file__).parent / "results" / "loop_overhead.json"


def params() -> dict[str, list[Any]]:
    """Five parameters of 50 values each: about 3e8 combinations, so duplicates are rare."""
    return {f"p{i}": [round(0.02 * k, 2) for k in range(50)] for i in range(5)}


def prep(data: Any, round_params: dict[str, Any]) -> dict[str, Any]:
    return {}


def model(data: Any, round_params: dict[str, Any]) -> dict[str, float]:
    return {"score": float(sum(v * v for v in round_params.values() if isinstance(v, float)))}


def run_optuna(directory: Path, rounds: int, strategy: str, seed: int) -> float:
    """Seconds for ``rounds`` ask/tell trials of plain Optuna on SQLite."""
    distributions = DomainCodec(params()).distributions
    study = optuna.create_study(
        storage=f"sqlite:///{directory / 'optuna.db'}",
        study_name="raw",
        direction="maximize",
        sampler=build_sampler(strategy, {"seed": seed}),
    )
    started = time.perf_counter()
    for _ in range(rounds):
        trial = study.ask(distributions)
        study.tell(trial, model(None, trial.params)["score"])
    return time.perf_counter() - started


def run_limen(directory: Path, rounds: int, strategy: str, seed: int) -> float:
    """Seconds for ``rounds`` rounds of UniversalExperimentLoop on its default SQLite storage."""
    sfd = type("TrivialSfd", (), {"params": staticmethod(params)})
    loop = UniversalExperimentLoop(
        sfd=sfd,
        data=pd.DataFrame({"x": [0.0]}),
        experiment_dir=directory / "limen",
        objective="score",
        search_strategy={"name": strategy, "seed": seed},
    )
    started = time.perf_counter()
    loop.run("limen", n_permutations=rounds, prep=prep, model=model, progress_bar=False)
    elapsed = time.perf_counter() - started
    assert len(loop.experiment_log) == rounds
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=600)
    parser.add_argument("--strategy", default="random")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    logging.getLogger("limen").setLevel(logging.ERROR)
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        raw = run_optuna(directory, args.rounds, args.strategy, args.seed)
        limen = run_limen(directory, args.rounds, args.strategy, args.seed)
    raw_ms, limen_ms = 1000 * raw / args.rounds, 1000 * limen / args.rounds
    result = {
        "rounds": args.rounds,
        "strategy": args.strategy,
        "storage": "sqlite (temporary directory)",
        "optuna_ms_per_round": round(raw_ms, 3),
        "limen_ms_per_round": round(limen_ms, 3),
        "ratio_limen_over_optuna": round(limen_ms / raw_ms, 3),
        "optuna_version": optuna.__version__,
        "numpy_version": np.__version__,
        "python": platform.python_version(),
        "machine": platform.machine(),
    }
    print(f"{'path':<28}{'rounds':>8}{'ms/round':>12}")
    print(f"{'optuna ask/tell (SQLite)':<28}{args.rounds:>8}{raw_ms:>12.2f}")
    print(f"{'limen loop (SQLite)':<28}{args.rounds:>8}{limen_ms:>12.2f}")
    print(f"ratio limen / optuna: {limen_ms / raw_ms:.2f}")
    RESULTS_PATH.parent.mkdir(parents=True, exist_ok=True)
    recorded = json.loads(RESULTS_PATH.read_text()) if RESULTS_PATH.exists() else {}
    recorded[args.strategy] = result
    RESULTS_PATH.write_text(json.dumps(recorded, indent=2) + "\n")


if __name__ == "__main__":
    main()
