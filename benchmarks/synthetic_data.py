"""Cost of the embedded synthetic klines: ``synthetic_klines(5000)`` against a plain random walk.

Every test-mode round and the ``make run`` demo start from ``synthetic_klines``, so it must stay
cheap beside the model it feeds. The baseline, measured in the same run, is the least a kline
generator can cost: a Gaussian random walk of closes put into a DataFrame of the same columns.
The GARCH recursion of the real generator is the difference.

Run: ``.venv/bin/python benchmarks/synthetic_data.py [--rows N]``. Prints a table and writes
``benchmarks/results/synthetic_data.json``.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np
import pandas as pd

from limen.data import KLINE_COLUMNS, synthetic_klines

RESULTS = Path(__file__).parent / "results" / "synthetic_data.json"
REPEATS = 7


def random_walk(n_rows: int) -> pd.DataFrame:
    """The baseline: Gaussian log returns, cumulated into closes, one column per kline field."""
    rng = np.random.default_rng(0)
    close = 100.0 * np.exp(np.cumsum(rng.normal(0.0, 0.006, n_rows)))
    columns = {name: close for name in KLINE_COLUMNS if name != "datetime"}
    datetimes = pd.date_range("2020-01-01", periods=n_rows, freq="h")
    return pd.DataFrame({"datetime": datetimes, **columns})[list(KLINE_COLUMNS)]


def best_of(make, n_rows: int) -> float:
    """The fastest of ``REPEATS`` calls, in milliseconds (after one warm-up call)."""
    make(n_rows)
    timings = []
    for _ in range(REPEATS):
        start = time.perf_counter()
        make(n_rows)
        timings.append(time.perf_counter() - start)
    return min(timings) * 1000.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=5000, help="bars per call (default 5000)")
    rows = parser.parse_args().rows

    limen_ms = best_of(synthetic_klines, rows)
    baseline_ms = best_of(random_walk, rows)
    result = {
        "rows": rows,
        "synthetic_klines_ms": round(limen_ms, 2),
        "random_walk_ms": round(baseline_ms, 2),
        "ratio": round(limen_ms / baseline_ms, 2),
        "machine": platform.platform(),
    }
    print(f"{'generator':<20}{'ms per call':>12}")
    print(f"{'synthetic_klines':<20}{limen_ms:>12.2f}")
    print(f"{'random walk':<20}{baseline_ms:>12.2f}")
    print(f"ratio {result['ratio']:.2f} for {rows} rows")
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
