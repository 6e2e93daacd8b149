"""Cost of the walk-forward acceptance report on a large sweep.

A ``trial_returns.parquet`` of ``--rounds`` rounds x ``--bars`` bars (default 1,000 x 2,000:
noise, with one round of genuine edge) is written through ``write_round_outputs`` in one go,
then ``acceptance_report`` is timed end to end: read and validate the file, per-round Sharpe
ratios, the winner's Deflated Sharpe Ratio, and PBO by CSCV over 16 blocks (12,870 splits).
Target: under 5 s.

Run: ``.venv/bin/python benchmarks/acceptance.py [--rounds N] [--bars N] [--blocks N]``. Prints
the time and writes ``benchmarks/results/acceptance.json``.
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from limen.experiment.acceptance import acceptance_report
from limen.experiment.walk_forward import TRIAL_RETURNS_PARQUET

RESULTS = Path(__file__).parent / "results" / "acceptance.json"
TARGET_S = 5.0


def write_returns(path: Path, n_rounds: int, n_bars: int) -> None:
    """One row group per round, as the loop writes them, in a single pass."""
    tracks = np.random.default_rng(0).normal(0.0, 0.01, (n_rounds, n_bars))
    tracks[n_rounds // 2] += 0.002
    schema = pa.schema([("trial", pa.string()), ("bar", pa.int64()), ("net_return", pa.float64())])
    bars = pa.array(np.arange(n_bars, dtype=np.int64))
    with pq.ParquetWriter(path, schema) as writer:
        for number, track in enumerate(tracks):
            table = pa.table(
                {
                    "trial": pa.array([f"round-{number:05d}"] * n_bars),
                    "bar": bars,
                    "net_return": pa.array(track),
                },
                schema=schema,
            )
            writer.write_table(table)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=1000)
    parser.add_argument("--bars", type=int, default=2000)
    parser.add_argument("--blocks", type=int, default=16)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        write_returns(directory / TRIAL_RETURNS_PARQUET, args.rounds, args.bars)
        started = time.perf_counter()
        report = acceptance_report(directory, n_blocks=args.blocks)
        elapsed = time.perf_counter() - started
    results = {
        "rounds": args.rounds,
        "bars": args.bars,
        "blocks": args.blocks,
        "acceptance_report_s": elapsed,
        "target_s": TARGET_S,
        "winner_trial": report["winner_trial"],
        "deflated_sharpe_probability": report["deflated_sharpe_probability"],
        "pbo": report["pbo"],
        "machine": platform.platform(),
    }
    print(
        f"acceptance report, {args.rounds} rounds x {args.bars} bars, {args.blocks} blocks: "
        f"{elapsed:.2f} s (target < {TARGET_S:.0f} s); winner {report['winner_trial']}, "
        f"DSR {report['deflated_sharpe_probability']:.3f}, PBO {report['pbo']:.3f}"
    )
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
