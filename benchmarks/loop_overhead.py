"""Loop overhead: Limen's round pipeline against raw Optuna and against its own grid path.

Three figures from one run, each with a baseline measured in the same run:

1. **TPE vs raw Optuna.** The same pinned TPE sampler (seeded) over a 378-combination space
   (21 x 6 x 3 values) for 300 rounds: a raw Optuna ask/tell loop on SQLite (what an Optuna user
   writes) against ``UniversalExperimentLoop(search_strategy="tpe")`` on its default SQLite
   storage, with everything a real run does (MSQ, dedup, results.csv, round_data.jsonl).
2. **Random strategy vs grid path.** Both through the same loop over the same space and rounds.
3. **Growth.** 5,000 random-strategy rounds over a 37,800-combination space (21 x 6 x 3 x 100):
   the mean time between rounds in the last 10% against the first 10%.

Prints the table and the ratios; records them in ``benchmarks/results/loop_overhead.json``.

Run: ``.venv/bin/python benchmarks/loop_overhead.py [--rounds 300] [--long-rounds 5000]``
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
from limen.adapters.sampler_specs import build_sampler
from limen.experiment import UniversalExperimentLoop

RESULTS_PATH = Path(__file__).parent / "results" / "loop_overhead.json"
SPACE = {
    "x": list(range(21)),
    "lr": [0.0001, 0.001, 0.01, 0.1, 1.0, 10.0],
    "mode": ["a", "b", "c"],
}
LONG_SPACE = {**SPACE, "k": list(range(100))}


def model(data: Any, round_params: dict[str, Any]) -> dict[str, float]:
    """A trivial objective, so the figures are the loop's own cost."""
    bonus = {"a": 0.0, "b": 0.5, "c": 0.2}[round_params["mode"]]
    score = -((round_params["x"] - 13) ** 2) / 10 - abs(np.log10(round_params["lr"]) + 2) + bonus
    return {"score": float(score)}


def prep(data: Any, round_params: dict[str, Any]) -> dict[str, Any]:
    return {}


def run_optuna(directory: Path, rounds: int, seed: int) -> float:
    """Seconds for ``rounds`` ask/tell trials of raw Optuna's TPE on SQLite."""
    distributions = DomainCodec(SPACE).distributions
    study = optuna.create_study(
        storage=f"sqlite:///{directory / 'optuna.db'}",
        study_name="raw",
        direction="maximize",
        sampler=build_sampler("tpe", {"seed": seed}),
    )
    started = time.perf_counter()
    for _ in range(rounds):
        trial = study.ask(distributions)
        study.tell(trial, model(None, trial.params)["score"])
    return time.perf_counter() - started


def run_limen(
    directory: Path, name: str, strategy: Any, rounds: int, space: dict[str, list[Any]]
) -> tuple[float, list[float]]:
    """Seconds for ``rounds`` rounds of the loop, and the moments each round's model ran."""
    sfd = type("TrivialSfd", (), {"params": staticmethod(lambda: space)})
    moments: list[float] = []

    def timed(data: Any, round_params: dict[str, Any]) -> dict[str, float]:
        moments.append(time.perf_counter())
        return model(data, round_params)

    loop = UniversalExperimentLoop(
        sfd=sfd,
        data=pd.DataFrame({"x": [0.0]}),
        experiment_dir=directory / name,
        objective="score",
        search_strategy=strategy,
    )
    started = time.perf_counter()
    loop.run(name, n_permutations=rounds, seed=0, prep=prep, model=timed, progress_bar=False)
    elapsed = time.perf_counter() - started
    assert len(loop.experiment_log) == rounds == len(loop.study.trials)
    return elapsed, moments


def growth(moments: list[float]) -> tuple[float, float]:
    """Mean ms between rounds over the first and the last 10% of a run."""
    gaps = np.diff(moments) * 1000
    tenth = max(len(gaps) // 10, 1)
    return float(gaps[:tenth].mean()), float(gaps[-tenth:].mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=300)
    parser.add_argument("--long-rounds", type=int, default=5000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    logging.getLogger("limen").setLevel(logging.ERROR)
    n = args.rounds
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        raw_tpe = run_optuna(directory, n, args.seed) / n * 1000
        tpe = run_limen(directory, "tpe", {"name": "tpe", "seed": args.seed}, n, SPACE)[0]
        random = run_limen(directory, "random", {"name": "random"}, n, SPACE)[0]
        grid = run_limen(directory, "grid", None, n, SPACE)[0]
        _, moments = run_limen(directory, "long", "random", args.long_rounds, LONG_SPACE)
    tpe_ms, random_ms, grid_ms = (1000 * s / n for s in (tpe, random, grid))
    first_ms, last_ms = growth(moments)
    result = {
        "rounds": n,
        "long_rounds": args.long_rounds,
        "storage": "sqlite (temporary directory)",
        "optuna_tpe_ms_per_round": round(raw_tpe, 3),
        "limen_tpe_ms_per_round": round(tpe_ms, 3),
        "ratio_tpe_limen_over_optuna": round(tpe_ms / raw_tpe, 3),
        "limen_random_ms_per_round": round(random_ms, 3),
        "limen_grid_ms_per_round": round(grid_ms, 3),
        "ratio_random_over_grid": round(random_ms / grid_ms, 3),
        "random_first_10pct_ms": round(first_ms, 3),
        "random_last_10pct_ms": round(last_ms, 3),
        "ratio_last_over_first": round(last_ms / first_ms, 3),
        "optuna_version": optuna.__version__,
        "numpy_version": np.__version__,
        "python": platform.python_version(),
        "machine": platform.machine(),
    }
    print(f"{'path':<44}{'rounds':>8}{'ms/round':>12}")
    print(f"{'raw optuna TPE ask/tell (SQLite)':<44}{n:>8}{raw_tpe:>12.2f}")
    print(f"{'limen TPE (SQLite)':<44}{n:>8}{tpe_ms:>12.2f}")
    print(f"{'limen random strategy (SQLite)':<44}{n:>8}{random_ms:>12.2f}")
    print(f"{'limen grid path (SQLite)':<44}{n:>8}{grid_ms:>12.2f}")
    print(f"{'limen random, first 10% of the long run':<44}{args.long_rounds:>8}{first_ms:>12.2f}")
    print(f"{'limen random, last 10% of the long run':<44}{args.long_rounds:>8}{last_ms:>12.2f}")
    print(f"ratio TPE limen / optuna: {tpe_ms / raw_tpe:.2f}")
    print(f"ratio random / grid:      {random_ms / grid_ms:.2f}")
    print(f"ratio last / first 10%:   {last_ms / first_ms:.2f}")
    RESULTS_PATH.parent.mkdir(parents=True, exist_ok=True)
    RESULTS_PATH.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
