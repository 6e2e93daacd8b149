"""The ``limen`` command: a thin layer over the library.

Exit codes: 0 ok, 1 the experiment failed, 2 the command line was wrong.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from limen.experiment.identity import value_token

EXIT_OK, EXIT_EXPERIMENT, EXIT_USAGE = 0, 1, 2
BEST_SHOWN = 5


class UsageError(Exception):
    """The command line names something that does not exist or cannot work."""


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``limen`` and its sub-commands."""
    parser = argparse.ArgumentParser(
        prog="limen",
        description="Run a Single File Decoder (SFD) across many parameter permutations, "
        "keeping every round in an Optuna study.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log at DEBUG level")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = sub.add_parser(
        "run",
        help="run an experiment",
        description="Run an SFD for N rounds; each round is stored as a trial in the study.",
    )
    run.add_argument(
        "--sfd",
        required=True,
        help="a foundational SFD (logreg_binary, random_binary, gbm_regressor), a module path "
        "(mypackage.my_sfd) or a .py file",
    )
    run.add_argument("--test-mode", action="store_true", help="use the manifest's test data")
    run.add_argument("-n", "--n-permutations", type=int, default=100, help="rounds (default 100)")
    run.add_argument(
        "--experiment-dir", help="results directory (default ./limen-runs/<experiment name>)"
    )
    run.add_argument("--name", help="experiment (study) name (default: the directory's name)")
    run.add_argument("--storage", help="SQLAlchemy URL (default sqlite in the experiment dir)")
    run.add_argument("--seed", type=int, help="seed of the random order (default: random)")
    run.add_argument("--index-order", action="store_true", help="enumerate the grid in index order")
    run.add_argument("--no-progress", action="store_true", help="hide the progress bar")

    resume = sub.add_parser(
        "resume",
        help="continue an experiment",
        description="Continue an experiment until its study holds the target number of rounds.",
    )
    resume.add_argument("experiment_dir", help="the experiment's directory")
    resume.add_argument("-n", "--n-permutations", type=int, help="new target (default: stored)")
    resume.add_argument("--storage", help="SQLAlchemy URL, when the study is not in the directory")
    resume.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``limen`` command; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(levelname)s %(name)s: %(message)s",
    )
    logging.getLogger("optuna").setLevel(logging.WARNING)
    try:
        if args.command == "run":
            return command_run(args)
        return command_resume(args)
    except UsageError as exc:
        print(f"limen: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except (FileExistsError, ValueError, TypeError, KeyError, RuntimeError) as exc:
        print(f"limen: {type(exc).__name__}: {exc}", file=sys.stderr)
        return EXIT_EXPERIMENT


def command_run(args: argparse.Namespace) -> int:
    """``limen run``: build the loop from the arguments and run it."""
    from limen.experiment.experiment_core import UniversalExperimentLoop
    from limen.sfd.loader import load_sfd

    try:
        sfd = load_sfd(args.sfd)
    except ValueError as exc:
        raise UsageError(str(exc)) from exc
    if args.n_permutations <= 0:
        raise UsageError(f"-n must be >= 1. Got {args.n_permutations} instead.")
    name = args.name or (Path(args.experiment_dir).name if args.experiment_dir else args.sfd)
    name = Path(name).stem if name.endswith(".py") else name.rsplit(".", 1)[-1]
    loop = UniversalExperimentLoop(
        sfd=sfd,
        test_mode=args.test_mode,
        experiment_dir=args.experiment_dir,
        storage=args.storage,
    )
    loop.run(
        name,
        n_permutations=args.n_permutations,
        random_search=not args.index_order,
        seed=args.seed,
        progress_bar=not args.no_progress,
    )
    report(loop)
    return EXIT_OK


def command_resume(args: argparse.Namespace) -> int:
    """``limen resume DIR``: reopen the experiment stored in DIR and continue it."""
    from limen.experiment.experiment_core import UniversalExperimentLoop
    from limen.sfd.loader import load_sfd

    directory = Path(args.experiment_dir)
    metadata = read_metadata(directory)
    sfd = load_sfd(metadata["sfd_module"].removeprefix("limen.sfd.foundational_sfd."))
    loop = UniversalExperimentLoop(
        sfd=sfd,
        test_mode=bool(metadata.get("test_mode", False)),
        experiment_dir=directory,
        storage=args.storage or _stored_storage(metadata),
    )
    loop.run(
        metadata["experiment_name"],
        n_permutations=args.n_permutations or int(metadata["n_permutations"]),
        resume=True,
        progress_bar=not args.no_progress,
    )
    report(loop)
    return EXIT_OK


def read_metadata(directory: Path) -> dict[str, Any]:
    """The experiment's ``metadata.json``, with a usage error when it is missing or broken."""
    path = directory / "metadata.json"
    if not path.is_file():
        raise UsageError(f"{directory} holds no Limen experiment (no metadata.json).")
    try:
        metadata = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise UsageError(f"{path} is not valid JSON ({exc}); it cannot be resumed.") from exc
    missing = [k for k in ("sfd_module", "experiment_name", "n_permutations") if k not in metadata]
    if missing:
        raise UsageError(f"{path} lacks {missing}; it cannot be resumed.")
    return metadata


def _stored_storage(metadata: dict[str, Any]) -> str | None:
    url = metadata.get("storage")
    if url and "***" in url:
        raise UsageError(
            "The study's storage URL has a password, which Limen never writes to disk: pass it "
            "again with --storage URL."
        )
    return url


def report(loop: Any) -> None:
    """Print where the results are and the best rounds."""
    log: pd.DataFrame | None = loop.experiment_log
    directory = loop.results_dir
    print(f"\nResults: {directory.resolve()}")
    print(
        f"  study: {loop.study.study_name} ({len(log) if log is not None else 0} finished rounds)"
    )
    print("  files: results.csv, round_data.jsonl, metadata.json" + _db_note(directory))
    if log is None or log.empty or loop.best_round is None:
        return
    metric = next(iter(loop.best_round["values"]))
    ascending = loop.study.directions[0].name == "MINIMIZE"
    complete = log[log["state"] == "COMPLETE"]
    best = complete.sort_values(metric, ascending=ascending).head(BEST_SHOWN)
    columns = ["_round_index", metric, *[c for c in loop.best_round["params"] if c in best]]
    table = best[columns].map(lambda v: "None" if v is None else value_token(v))
    print(f"\nBest rounds by {metric}:")
    with pd.option_context("display.width", 160, "display.max_columns", 12):
        print(table.to_string(index=False))


def _db_note(directory: Path) -> str:
    return ", study.db" if (directory / "study.db").exists() else ""


if __name__ == "__main__":
    sys.exit(main())
