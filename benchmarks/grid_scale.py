"""Grid scale: 1,000,000 draws from a 15-parameter space of about 6.9e12 combinations.

Measures Limen's lazy grid (``limen.adapters.grid``) drawing positions -> flat indices -> values,
then Optuna's ``GridSampler`` (in-memory study, ask/tell) on the largest prefix of the same
parameters it can build within ``GRID_SAMPLER_BUILD_BUDGET_S``. Prints a table and writes
``benchmarks/results/grid_scale.json``.

Run: ``.venv/bin/python benchmarks/grid_scale.py [--draws N]``
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import platform
import resource
import sys
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from limen.adapters.grid import DEFAULT_BATCH_SIZE, GridCursor, GridSpace

RESULTS_PATH = Path(__file__).parent / "results" / "grid_scale.json"
INDEX_BATCH = 65536
SCALAR_DRAWS = 100_000
REPEATS = 3
GRID_SAMPLER_BUILD_BUDGET_S = 10.0
GRID_SAMPLER_DRAW_BUDGET_S = 10.0
GRID_SAMPLER_MAX_DRAWS = 2000
# Never attempt a GridSampler build predicted to need more memory than this (shared machines).
GRID_SAMPLER_MEMORY_CAP_MB = 4096
MB = 2**20


def scale_space() -> dict[str, list[Any]]:
    """The 15-parameter space (about 6.9e12 combinations) of a logistic-regression sweep."""
    return {
        "shift": list(range(-1, -11, -1)),
        "q": [round(0.1 * i, 1) for i in range(1, 10)],
        "roc_period": [1, 2, 4, 8, 12, 16, 24, 48, 72, 96, 144, 288],
        "penalty": ["l1", "l2", "elasticnet", "none"],
        "bar_type": ["time", "volume", "dollar", "trade", "imbalance", "run", "liquidity"],
        "time_freq": ["1m", "5m", "15m", "30m", "1h", "2h", "4h", "6h", "12h", "1d"],
        "volume_threshold": [100, 500, 1000, 5000, 10000, 50000],
        "liquidity_threshold": [1000, 5000, 10000, 50000, 100000],
        "class_weight": [0.45, 0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8],
        "C": [1e-4, 1e-3, 1e-2, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0, 100.0],
        "max_iter": [30, 60, 90, 120, 180, 240, 360, 500, 1000],
        "solver": ["lbfgs", "liblinear", "newton-cg", "newton-cholesky", "sag", "saga"],
        "tol": [1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 0.03, 0.1],
        "feature_selection": ["none", "variance", "kbest", "l1", "rfe"],
        "scaler": ["none", "standard", "minmax", "robust", "maxabs"],
    }


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far (Linux reports KiB, macOS bytes)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / MB if sys.platform == "darwin" else peak / 1024


def current_rss_mb() -> float:
    """Resident memory now (Linux), else the peak as an upper bound."""
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
    except OSError:
        return peak_rss_mb()
    return pages * resource.getpagesize() / MB


def timed(run: Callable[[], object]) -> float:
    start = time.perf_counter()
    run()
    return time.perf_counter() - start


def traced_peak_mb(run: Callable[[], object]) -> float:
    """Peak of memory allocated while ``run`` runs (numpy buffers included), in MB."""
    gc.collect()
    tracemalloc.start()
    try:
        run()
        return tracemalloc.get_traced_memory()[1] / MB
    finally:
        tracemalloc.stop()


def draw_indices(space: GridSpace, draws: int) -> None:
    """Positions -> flat indices -> value indices, in numpy batches."""
    for start in range(0, draws, INDEX_BATCH):
        space.decode_many(space.positions(start, min(INDEX_BATCH, draws - start)))


def draw_values(space: GridSpace, params: dict[str, list[Any]], draws: int) -> None:
    """Positions -> flat indices -> one tuple of real values per draw (no dict)."""
    for _ in GridCursor(space, 0, draws, values=list(params.values())):
        pass


def draw_dicts(space: GridSpace, params: dict[str, list[Any]], draws: int) -> None:
    """Positions -> flat indices -> one dict of real values per draw, as a loop consumes them."""
    keys = list(params)
    for row in GridCursor(space, 0, draws, values=list(params.values())):
        dict(zip(keys, row, strict=False))


def draw_scalar(space: GridSpace, draws: int) -> None:
    """One position at a time with Python ints, as a loop handed single positions does."""
    for position in range(draws):
        space.decode(space.index_at(position))


def measure_limen(params: dict[str, list[Any]], draws: int) -> dict[str, Any]:
    space = GridSpace([len(values) for values in params.values()], seed=0)
    scalar_draws = min(draws, SCALAR_DRAWS)
    phases = {
        "index_only": (draws, lambda: draw_indices(space, draws)),
        "index_and_values": (draws, lambda: draw_values(space, params, draws)),
        "index_and_dict": (draws, lambda: draw_dicts(space, params, draws)),
        "scalar_index_and_decode": (scalar_draws, lambda: draw_scalar(space, scalar_draws)),
    }
    rss_before = peak_rss_mb()
    # Best of a few runs: the machine may be shared, and noise only ever adds time.
    seconds = {name: min(timed(run) for _ in range(REPEATS)) for name, (_, run) in phases.items()}
    results: dict[str, Any] = {
        "peak_rss_mb": peak_rss_mb(),
        "peak_rss_growth_mb": peak_rss_mb() - rss_before,
        "batch_size": DEFAULT_BATCH_SIZE,
        "repeats": REPEATS,
    }
    for name, (count, run) in phases.items():
        results[name] = {
            "draws": count,
            "seconds": seconds[name],
            "us_per_draw": seconds[name] / count * 1e6,
            "traced_peak_mb": traced_peak_mb(run),
        }
    flat = np.concatenate(
        [space.positions(s, min(INDEX_BATCH, draws - s)) for s in range(0, draws, INDEX_BATCH)]
    )
    results["distinct_draws"] = int(np.unique(flat).size)
    return results


def largest_grid_sampler(params: dict[str, list[Any]]) -> tuple[Any, dict[str, Any]]:
    """The GridSampler on the longest prefix of ``params`` built within the budget.

    Prefixes grow one parameter at a time; a build predicted (linearly from the previous one)
    to exceed the time budget or the memory cap is not attempted, and one that took longer
    than the budget is dropped. Every attempt is listed under ``attempts``.
    """
    from optuna.samplers import GridSampler

    names = list(params)
    best: tuple[Any, dict[str, Any]] | None = None
    attempts: list[dict[str, Any]] = []
    for n_params in range(1, len(names) + 1):
        prefix = {name: params[name] for name in names[:n_params]}
        size = math.prod(len(values) for values in prefix.values())
        if best is not None:
            growth = size / best[1]["combinations"]
            too_slow = best[1]["build_seconds"] * growth > GRID_SAMPLER_BUILD_BUDGET_S
            too_big = best[1]["build_rss_mb"] * growth > GRID_SAMPLER_MEMORY_CAP_MB
            if too_slow or too_big:
                break
        gc.collect()
        rss_before = current_rss_mb()
        start = time.perf_counter()
        sampler = GridSampler(prefix, seed=0)
        info = {
            "n_params": n_params,
            "params": list(prefix),
            "combinations": size,
            "build_seconds": time.perf_counter() - start,
            "build_rss_mb": max(current_rss_mb() - rss_before, 0.0),
        }
        attempts.append({k: info[k] for k in ("n_params", "combinations", "build_seconds")})
        if info["build_seconds"] > GRID_SAMPLER_BUILD_BUDGET_S and best is not None:
            break
        best = (sampler, info)
    assert best is not None
    return best[0], {**best[1], "attempts": attempts}


def measure_grid_sampler(params: dict[str, list[Any]]) -> dict[str, Any]:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    sampler, info = largest_grid_sampler(params)
    prefix = {name: params[name] for name in info["params"]}
    study = optuna.create_study(sampler=sampler)
    rss_before = current_rss_mb()
    draws = 0
    start = time.perf_counter()
    while draws < GRID_SAMPLER_MAX_DRAWS:
        trial = study.ask()
        for name, values in prefix.items():
            trial.suggest_categorical(name, values)
        study.tell(trial, 0.0)
        draws += 1
        if time.perf_counter() - start > GRID_SAMPLER_DRAW_BUDGET_S:
            break
    seconds = time.perf_counter() - start
    return {
        **info,
        "draws": draws,
        "seconds": seconds,
        "us_per_draw": seconds / draws * 1e6,
        "draw_rss_growth_mb": current_rss_mb() - rss_before,
        "optuna_version": optuna.__version__,
    }


def print_report(total: int, draws: int, ours: dict[str, Any], theirs: dict[str, Any]) -> None:
    rows = [
        ("limen grid: index only (numpy batches)", ours["index_only"]),
        ("limen grid: index + tuple of values", ours["index_and_values"]),
        ("limen grid: index + dict of values", ours["index_and_dict"]),
        ("limen grid: one position at a time", ours["scalar_index_and_decode"]),
    ]
    print(f"Grid scale: {draws:,} draws from 15 parameters, {total:,} combinations")
    method = f"method (best of {ours['repeats']} runs)"
    print(f"{method:<44}{'draws':>10}{'total s':>10}{'us/draw':>10}{'traced MB':>11}")
    for label, row in rows:
        print(
            f"{label:<44}{row['draws']:>10,}{row['seconds']:>10.2f}{row['us_per_draw']:>10.2f}"
            f"{row['traced_peak_mb']:>11.1f}"
        )
    print(
        f"distinct flat indices: {ours['distinct_draws']:,} / {draws:,}; peak RSS "
        f"{ours['peak_rss_mb']:.0f} MB (+{ours['peak_rss_growth_mb']:.0f} MB while drawing)"
    )
    print()
    print(
        f"optuna {theirs['optuna_version']} GridSampler, largest prefix built within "
        f"{GRID_SAMPLER_BUILD_BUDGET_S:.0f} s: {theirs['n_params']} params, "
        f"{theirs['combinations']:,} combinations"
    )
    print(
        f"  build {theirs['build_seconds']:.2f} s, +{theirs['build_rss_mb']:.0f} MB RSS; "
        f"{theirs['draws']:,} ask/tell draws in {theirs['seconds']:.2f} s = "
        f"{theirs['us_per_draw']:,.0f} us/draw, +{theirs['draw_rss_growth_mb']:.0f} MB RSS"
    )
    over = [a for a in theirs["attempts"] if a["build_seconds"] > GRID_SAMPLER_BUILD_BUDGET_S]
    for attempt in over:
        print(
            f"  ({attempt['n_params']} params, {attempt['combinations']:,} combinations: "
            f"build took {attempt['build_seconds']:.2f} s, over the budget)"
        )
    ratio = theirs["us_per_draw"] / ours["index_and_dict"]["us_per_draw"]
    print(
        f"  per draw, GridSampler / limen grid (index + dict): {ratio:,.0f}x slower, on a "
        f"space {total / theirs['combinations']:,.0f}x smaller"
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--draws", type=int, default=1_000_000)
    args = parser.parse_args(argv)
    params = scale_space()
    total = math.prod(len(values) for values in params.values())
    ours = measure_limen(params, args.draws)
    theirs = measure_grid_sampler(params)
    print_report(total, args.draws, ours, theirs)
    RESULTS_PATH.parent.mkdir(parents=True, exist_ok=True)
    report = {
        "space": {"sizes": {k: len(v) for k, v in params.items()}, "combinations": total},
        "draws": args.draws,
        "limen_grid": ours,
        "optuna_grid_sampler": theirs,
        "grid_sampler_over_limen_per_draw": theirs["us_per_draw"]
        / ours["index_and_dict"]["us_per_draw"],
        "environment": {
            "python": platform.python_version(),
            "numpy": np.__version__,
            "platform": platform.platform(),
        },
    }
    RESULTS_PATH.write_text(json.dumps(report, indent=2) + "\n")
    print(f"\nwrote {RESULTS_PATH}")


if __name__ == "__main__":
    main()
