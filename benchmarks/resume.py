"""Resume cost and per-round storage cost of the loop on the default SQLite storage.

Two measurements in one run:

1. **Resume**: a study of ``--rounds`` finished rounds (default 10,000) is built with the loop
   itself (trivial model); then a new process-like loop object resumes it, and the time from
   ``run(resume=True)`` to the start of the next round's model is measured (reopen the study,
   reap leases, reconcile the files, restore the state).
2. **Per-round cost**: the same trivial objective (5 parameters, 10 metrics) run ``--compare``
   rounds through raw Optuna on its default SQLite storage (``create_study(storage="sqlite:///
   ...")``, ask, 5 suggests, 10 ``set_user_attr``, tell) and through ``UniversalExperimentLoop``
   on its default SQLite storage; milliseconds per round and the ratio.

Run: ``.venv/bin/python benchmarks/resume.py [--rounds N] [--compare N]``. Prints a table and
writes ``benchmarks/results/resume.json``.
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from pathlib import Path
from typing import Any

import optuna

from limen.experiment import UniversalExperimentLoop

RESULTS = Path(__file__).parent / "results" / "resume.json"
N_METRICS = 10


class TrivialSfd:
    """Five parameters of ten values each (100,000 combinations) and ten constant metrics."""

    __name__ = "benchmarks.resume.TrivialSfd"
    first_model_call: float | None = None

    @staticmethod
    def params() -> dict[str, list[int]]:
        return {f"p{i}": list(range(10)) for i in range(5)}

    @staticmethod
    def prep(data: Any, round_params: dict[str, Any]) -> Any:
        return data

    @classmethod
    def model(cls, data: Any, round_params: dict[str, Any]) -> dict[str, float]:
        if cls.first_model_call is None:
            cls.first_model_call = time.perf_counter()
        return {f"m{i}": float(round_params["p0"] + i) for i in range(N_METRICS)}


def loop_for(directory: Path) -> UniversalExperimentLoop:
    return UniversalExperimentLoop(sfd=TrivialSfd, data=0, experiment_dir=directory, objective="m0")


def build(directory: Path, rounds: int) -> float:
    """Run ``rounds`` rounds through the loop; seconds per round."""
    started = time.perf_counter()
    loop_for(directory).run("bench", n_permutations=rounds, progress_bar=False)
    return (time.perf_counter() - started) / rounds


def time_resume(directory: Path, rounds: int) -> float:
    """Seconds from ``run(resume=True)`` to the next round's model call."""
    TrivialSfd.first_model_call = None
    loop = loop_for(directory)
    started = time.perf_counter()
    loop.run("bench", n_permutations=rounds + 1, resume=True, progress_bar=False)
    assert TrivialSfd.first_model_call is not None
    return TrivialSfd.first_model_call - started


def raw_optuna(directory: Path, rounds: int) -> float:
    """Seconds per round of the same objective through plain Optuna on default SQLite."""
    study = optuna.create_study(
        storage=f"sqlite:///{directory / 'raw.db'}",
        sampler=optuna.samplers.RandomSampler(seed=0),
        direction="maximize",
    )
    started = time.perf_counter()
    for _ in range(rounds):
        trial = study.ask()
        values = {f"p{i}": trial.suggest_int(f"p{i}", 0, 9) for i in range(5)}
        for i in range(N_METRICS):
            trial.set_user_attr(f"m{i}", float(values["p0"] + i))
        study.tell(trial, float(values["p0"]))
    return (time.perf_counter() - started) / rounds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=10_000, help="rounds in the resumed study")
    parser.add_argument("--compare", type=int, default=500, help="rounds per storage comparison")
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)

    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch)
        build_s = build(root / "big", args.rounds)
        resume_s = time_resume(root / "big", args.rounds)
        raw_s = raw_optuna(root, args.compare)
        limen_s = build(root / "compare", args.compare)

    results = {
        "rounds_in_study": args.rounds,
        "build_ms_per_round": build_s * 1000,
        "resume_to_next_round_s": resume_s,
        "compare_rounds": args.compare,
        "raw_optuna_sqlite_ms_per_round": raw_s * 1000,
        "limen_loop_sqlite_ms_per_round": limen_s * 1000,
        "limen_over_raw": limen_s / raw_s,
        "machine": platform.platform(),
        "optuna": optuna.__version__,
    }
    print(
        f"Resume: study of {args.rounds:,} finished rounds (built at "
        f"{results['build_ms_per_round']:.2f} ms/round)"
    )
    print(f"  reopen + reconcile + start the next round: {resume_s:.2f} s")
    print(f"\nPer round, trivial model, default SQLite, {args.compare} rounds each:")
    print(f"  {'raw Optuna (ask/suggest/set_user_attr/tell)':<46}{raw_s * 1000:8.2f} ms")
    print(f"  {'Limen UniversalExperimentLoop':<46}{limen_s * 1000:8.2f} ms")
    print(f"  {'ratio Limen / raw Optuna':<46}{limen_s / raw_s:8.2f}")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    print(f"\nwritten: {RESULTS}")


if __name__ == "__main__":
    main()
