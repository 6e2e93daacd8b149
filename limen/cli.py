"""The ``limen`` command: a thin layer over the library.

Exit codes: 0 ok; 2 the input was refused (a flag, a config file, an SFD, a directory or a
storage that cannot be used), with one line ``limen <command>: error: <message>`` on stderr;
1 the work started and failed for another reason (a round that does not reproduce, an
unexpected error). ``--debug`` adds the traceback.
"""

from __future__ import annotations

import argparse
import inspect
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import pandas as pd

from limen.errors import InvalidParameterError, LimenError
from limen.experiment.identity import value_token
from limen.experiment.study_record import StudyRecord

if TYPE_CHECKING:
    from limen.experiment.experiment_source import ExperimentSource

__all__ = [
    "BEST_SHOWN",
    "COMMANDS",
    "EXIT_CODES",
    "SENSOR_FORMATS",
    "UsageError",
    "add_product_commands",
    "build_parser",
    "command_accept",
    "command_dashboard",
    "command_export",
    "command_plot",
    "command_predict",
    "command_resume",
    "command_run",
    "command_status",
    "command_train",
    "command_worker",
    "main",
    "report",
    "run_config",
    "status_report",
]

EXIT_OK, EXIT_EXPERIMENT, EXIT_USAGE = 0, 1, 2
BEST_SHOWN = 5
EXIT_CODES = f"""exit codes:
  {EXIT_OK}  done
  {EXIT_USAGE}  the input was refused: a flag, config file, SFD, directory or storage that cannot
     be used; one line "limen COMMAND: error: MESSAGE" on stderr
  {EXIT_EXPERIMENT}  the work started and failed for another reason (a round that does not
     reproduce, an unexpected error); --debug shows the traceback"""


class UsageError(LimenError):
    """The command line names something that does not exist or cannot work."""


class _Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line, ``limen <command>: error: <message>``,
    like every other refusal of the command (argparse prints the usage too)."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: error: {' '.join(message.split())}\n")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``limen`` and its sub-commands."""
    parser = _Parser(
        prog="limen",
        description="Run a Single File Decoder (SFD) across many parameter permutations, "
        "keeping every round in an Optuna study.",
        epilog=EXIT_CODES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log at DEBUG level")
    parser.add_argument(
        "--debug", action="store_true", help="print the traceback of an error (for bug reports)"
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = sub.add_parser(
        "run",
        help="run an experiment",
        description="Run an SFD for N rounds; each round is stored as a trial in the study.",
    )
    run.add_argument(
        "config", nargs="?", help="an experiment config file (.toml, .yaml) instead of --sfd"
    )
    run.add_argument(
        "--sfd",
        help="a foundational SFD (logreg_binary, random_binary, gbm_regressor), a module path "
        "(mypackage.my_sfd) or a .py file",
    )
    run.add_argument("--strategy", help="search strategy: a name (tpe, random, ...) or a file")
    run.add_argument("--pruner", help="Optuna pruner name (median, hyperband, ...)")
    run.add_argument(
        "--set",
        action="append",
        default=[],
        dest="overrides",
        metavar="KEY=VALUE",
        help="override a config key, e.g. --set strategy.n_startup_trials=5 (repeatable)",
    )
    run.add_argument("--test-mode", action="store_true", help="use the manifest's test data")
    run.add_argument("-n", "--n-permutations", type=int, help="rounds (default 100)")
    run.add_argument(
        "--experiment-dir", help="results directory (default ./limen-runs/<experiment name>)"
    )
    run.add_argument("--name", help="experiment (study) name (default: the directory's name)")
    run.add_argument("--storage", help="SQLAlchemy URL (default sqlite in the experiment dir)")
    run.add_argument("--seed", type=int, help="seed of the random order (default: random)")
    run.add_argument("--index-order", action="store_true", help="enumerate the grid in index order")
    run.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    _add_worker_args(run)
    run.add_argument(
        "--resume",
        choices=("auto",),
        help="auto: continue the experiment when its study exists, else start it (the one "
        "command a scheduler reruns after a preemption)",
    )

    resume = sub.add_parser(
        "resume",
        help="continue an experiment",
        description="Continue an experiment until its study holds the target number of rounds.",
    )
    resume.add_argument("experiment_dir", help="the experiment's directory")
    resume.add_argument("-n", "--n-permutations", type=int, help="new target (default: stored)")
    resume.add_argument("--storage", help="SQLAlchemy URL, when the study is not in the directory")
    _add_sfd_args(resume)
    resume.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    worker = sub.add_parser(
        "worker",
        help="join an experiment as a worker",
        description="Attach to an existing study and run rounds until the study holds its "
        "target. Start one per machine (or many) against one PostgreSQL or MySQL/MariaDB study.",
    )
    worker.add_argument("experiment_dir", nargs="?", help="the experiment's directory")
    worker.add_argument("--storage", help="SQLAlchemy URL of the study")
    worker.add_argument("--study", help="the study's name (with --storage and no DIR)")
    worker.add_argument(
        "--experiment-dir",
        dest="worker_dir",
        help="this worker's results directory (default: DIR, else ./limen-runs/<study>)",
    )
    _add_sfd_args(worker)
    worker.add_argument(
        "--jobs", type=int, default=1, help="worker processes on this machine (default 1)"
    )
    worker.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    dashboard = sub.add_parser(
        "dashboard",
        help="open the study in optuna-dashboard",
        description="Serve optuna-dashboard on an experiment's study, with its round artifacts.",
    )
    dashboard.add_argument(
        "location", metavar="DIR|URL", help="an experiment directory or a storage URL"
    )
    dashboard.add_argument("--port", type=int, default=8080, help="port (default 8080; 0: any)")
    dashboard.add_argument("--host", default="127.0.0.1", help="address (default 127.0.0.1)")
    dashboard.add_argument("--study", help="the study to open (default: the experiment's)")
    dashboard.add_argument("--artifact-dir", help="artifact folder (default DIR/artifacts)")
    add_product_commands(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``limen`` command; returns the exit code."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:
        # --help, or a refused command line (already printed as one line).
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(levelname)s %(name)s: %(message)s",
    )
    logging.getLogger("optuna").setLevel(logging.WARNING)
    from limen.experiment.trainer.errors import ReconstructionError

    try:
        return COMMANDS[args.command](args)
    except ReconstructionError as exc:
        return _fail(args, exc, EXIT_EXPERIMENT)
    except LimenError as exc:
        return _fail(args, exc, EXIT_USAGE)
    except FileNotFoundError as exc:
        # A file or directory named on the command line that does not exist.
        return _fail(args, exc, EXIT_USAGE)
    except Exception as exc:
        return _fail(args, exc, EXIT_EXPERIMENT, unexpected=True)


def _fail(args: argparse.Namespace, exc: BaseException, code: int, unexpected: bool = False) -> int:
    """Print the error as ``limen <command>: error: <message>`` and return the exit code.

    A refused input is one line; the traceback is printed only with ``--debug``.
    """
    if args.debug:
        import traceback

        traceback.print_exception(exc, file=sys.stderr)
    message = " ".join(str(exc).split()) if code == EXIT_USAGE else str(exc).rstrip()
    if code == EXIT_EXPERIMENT:
        message = f"{type(exc).__name__}: {message}"
    if unexpected and not args.debug:
        message += " (run with --debug for the traceback)"
    print(f"limen {args.command}: error: {message or type(exc).__name__}", file=sys.stderr)
    return code


def command_run(args: argparse.Namespace) -> int:
    """``limen run``: build the loop from a config file and/or the arguments and run it."""
    from limen.experiment.experiment_core import UniversalExperimentLoop
    from limen.sfd.loader import load_sfd

    _check_flags(args, {"-n": ("n_permutations", 1), "--jobs": ("jobs", 0)})
    config = run_config(args)
    sfd = load_sfd(config.sfd)
    loop = UniversalExperimentLoop(
        sfd=sfd,
        test_mode=config.test_mode,
        experiment_dir=config.experiment_dir,
        storage=config.storage,
        objective=config.objective,
        direction=config.direction,
        search_strategy=config.strategy,
        pruner=config.pruner,
        pruning_strategies=config.reducers or None,
        feedback_interval=config.feedback_interval,
        checkpoint_interval=config.checkpoint_interval,
    )
    loop.run(
        config.experiment_name(),
        n_permutations=config.n_permutations,
        random_search=config.random_search,
        seed=config.seed,
        progress_bar=not args.no_progress,
        resume=args.resume or False,
        n_jobs=args.jobs,
        allow_sqlite_workers=args.force,
    )
    report(loop)
    return EXIT_OK


def _add_worker_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--jobs",
        type=int,
        default=1,
        help="worker processes on this machine (default 1; 0: create the study, run nothing)",
    )
    parser.add_argument(
        "--force",
        action="store_true",
        help="allow --jobs > 1 on SQLite (one writer at a time; PostgreSQL is the storage for "
        "many workers)",
    )


def command_worker(args: argparse.Namespace) -> int:
    """``limen worker DIR | --storage URL --study NAME``: one or more workers on a study."""
    from limen.adapters.storage import probe_study, redact_url
    from limen.experiment.experiment_core import UniversalExperimentLoop
    from limen.experiment.run_plan import check_workers

    _check_flags(args, {"--jobs": ("jobs", 1)})
    if args.experiment_dir is not None:
        directory = Path(args.experiment_dir)
        located = _resolve(directory, args.study, storage=args.storage, read_only=True)
        url, name = located.storage_url, located.study_name
    elif args.storage is None or args.study is None:
        raise UsageError("Give the experiment DIR, or --storage URL and --study NAME.")
    else:
        url, name, directory = args.storage, args.study, Path("limen-runs") / args.study
    out = Path(args.worker_dir) if args.worker_dir else directory
    try:
        check_workers(args.jobs, url, allow_sqlite=args.force)
    except InvalidParameterError as exc:
        raise UsageError(str(exc).replace("allow_sqlite_workers=True", "--force")) from exc
    if not probe_study(url, name).exists:
        raise UsageError(
            f"No study {name!r} in {redact_url(url)}: create it first with `limen run ... "
            "--jobs 0` (or check --study and --storage)."
        )
    attrs = _resolve(url, name, read_only=True).load_study().user_attrs
    loop = UniversalExperimentLoop(
        sfd=_user_sfd(args, attrs),
        test_mode=StudyRecord.from_attrs(attrs).test_mode,
        experiment_dir=out,
        storage=url,
    )
    loop.work(
        name,
        n_jobs=args.jobs,
        allow_sqlite_workers=args.force,
        progress_bar=not args.no_progress,
    )
    report(loop)
    return EXIT_OK


def run_config(args: argparse.Namespace) -> Any:
    """The experiment config of ``limen run``: the file, then the flags, then ``--set``."""
    from limen.experiment.config import load_config, read_config_file

    if (args.config is None) == (args.sfd is None):
        raise UsageError("Give an experiment config file or --sfd MODULE (one of the two).")
    document = read_config_file(args.config) if args.config else {"sfd": args.sfd}
    flags = {
        "sfd": args.sfd,
        "name": args.name,
        "experiment_dir": args.experiment_dir,
        "storage": args.storage,
        "seed": args.seed,
        "n_permutations": args.n_permutations,
        "pruner": args.pruner,
        "test_mode": args.test_mode or None,
        "random_search": False if args.index_order else None,
    }
    document.update({k: v for k, v in flags.items() if v is not None})
    if args.strategy:
        document["strategy"] = _strategy_flag(args.strategy)
    return load_config(document, args.overrides)


def _strategy_flag(value: str) -> Any:
    """``--strategy``: a registered name, or a file whose ``[strategy]`` table (or whole) counts."""
    from limen.experiment.config import CONFIG_SUFFIXES, read_config_file

    if not value.lower().endswith(CONFIG_SUFFIXES):
        return value
    document = read_config_file(value)
    return document.get("strategy", document)


def command_resume(args: argparse.Namespace) -> int:
    """``limen resume DIR``: reopen the experiment stored in DIR and continue it."""
    from limen.experiment.experiment_core import UniversalExperimentLoop

    _check_flags(args, {"-n": ("n_permutations", 1)})
    directory = Path(args.experiment_dir)
    # The look-up only reads; the loop opens the storage to write.
    located = _resolve(directory, storage=args.storage, read_only=True)
    if not located.metadata:
        raise UsageError(
            f"{directory} holds no Limen experiment (no metadata.json). If a start-up there was "
            "interrupted, run the same `limen run` command again: it continues the study."
        )
    attrs = located.load_study().user_attrs
    record = StudyRecord.from_attrs(attrs)
    target = args.n_permutations or record.n_permutations or located.metadata.get("n_permutations")
    if not isinstance(target, int) or isinstance(target, bool):
        raise UsageError(
            f"The study of {directory} records no target number of rounds: pass it with -n N."
        )
    loop = UniversalExperimentLoop(
        sfd=_user_sfd(args, attrs),
        test_mode=record.test_mode,
        experiment_dir=directory,
        storage=located.storage_url,
    )
    loop.run(
        located.study_name,
        n_permutations=target,
        resume="force" if args.force else True,
        progress_bar=not args.no_progress,
    )
    report(loop)
    return EXIT_OK


def _add_sfd_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--sfd",
        help="the SFD that ran the experiment: a foundational name, a module path or a .py file "
        "(default: the study's module, when it is a plain module name installed here)",
    )
    parser.add_argument(
        "--force",
        action="store_true",
        help="use the SFD even when its source differs from the one the study recorded",
    )


def _resolve(
    source: str | Path,
    study: str | None = None,
    *,
    storage: str | None = None,
    read_only: bool = False,
) -> ExperimentSource:
    """The experiment a command names (``resolve_experiment``); what cannot be found raises a
    ``LimenError`` naming the fix, which ``main`` prints as one line."""
    from limen.experiment.experiment_source import resolve_experiment

    return resolve_experiment(source, study, storage=storage, read_only=read_only)


def _user_sfd(args: argparse.Namespace, attrs: dict[str, Any]) -> Any:
    """The SFD of ``--sfd``, else the study's recorded module; checked against its source hash.

    Only code the user names, or a plain module name installed here, is imported: never a
    path taken from the database.
    """
    from limen.sfd.loader import check_source, load_sfd, recorded_sfd

    if args.sfd is None:
        return recorded_sfd(attrs, force=args.force)
    sfd = load_sfd(args.sfd)
    check_source(sfd, attrs, force=args.force)
    return sfd


def command_dashboard(args: argparse.Namespace) -> int:
    """``limen dashboard DIR|URL``: serve optuna-dashboard on the study until Ctrl-C."""
    from limen.adapters.dashboard import resolve_target, serve

    def announce(url: str) -> None:
        print(f"optuna-dashboard: {url}  (Ctrl-C to stop)", flush=True)

    target = resolve_target(args.location, study_name=args.study, artifact_dir=args.artifact_dir)
    serve(target, host=args.host, port=args.port, on_ready=announce)
    return EXIT_OK


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


# -------------------------------------------------- products: train, predict, status, export, plot

SENSOR_FORMATS = ("skops", "pickle")


def add_product_commands(sub: Any) -> None:
    """Add the commands that turn a study into products: train, predict, status, export, plot."""
    train = sub.add_parser(
        "train",
        help="rebuild the best rounds as Sensor files",
        description="Rebuild rounds, check they reproduce their stored metrics, refit them on "
        "all data and save each as a Sensor file in --out.",
    )
    _add_experiment_args(train)
    picks = train.add_mutually_exclusive_group(required=True)
    picks.add_argument("--best", type=int, metavar="N", help="the N best rounds")
    picks.add_argument("--id", nargs="+", dest="ids", metavar="ID", help="these round ids")
    _add_metric_args(train)
    train.add_argument("--out", required=True, help="folder for the Sensor files")
    train.add_argument(
        "--train-split-only",
        action="store_true",
        help="keep the model fitted on the run's train split (default: refit on all data)",
    )
    train.add_argument(
        "--format",
        choices=SENSOR_FORMATS,
        default="skops",
        help="skops (default: loading runs no code) or pickle (any model; needs --key-env)",
    )
    _add_sfd_args(train)
    _add_key_arg(train)

    predict = sub.add_parser(
        "predict",
        help="predict klines with a Sensor file",
        description="Load a Sensor file and predict every row of a klines CSV/Parquet file.",
    )
    predict.add_argument("sensor", help="a Sensor file written by `limen train`")
    predict.add_argument("data", help="klines file (.csv, .parquet)")
    predict.add_argument("--out", help="write the predictions here (.csv or .parquet)")
    predict.add_argument("--tail", type=int, metavar="N", help="only the last N rows")
    predict.add_argument(
        "--trust",
        action="append",
        default=[],
        metavar="TYPE",
        help="also trust this type named by the file, e.g. my_sfd.MyModel (repeatable); the "
        "refusal message lists the types the file needs",
    )
    _add_key_arg(predict)

    status = sub.add_parser(
        "status",
        help="rounds by state, best rounds, rate, ETA",
        description="Show how far an experiment is and its best rounds.",
    )
    _add_experiment_args(status)
    status.add_argument("--top", type=int, default=BEST_SHOWN, help="best rounds shown")
    _add_metric_args(status)

    export = sub.add_parser(
        "export",
        help="write the experiment log as CSV or Parquet",
        description="Write one row per finished round: metrics, state, time, parameters.",
    )
    _add_experiment_args(export)
    export.add_argument("--format", choices=("csv", "parquet"), default="csv")
    export.add_argument("--out", help="file to write (default DIR/experiment_log.<format>)")

    accept = sub.add_parser(
        "accept",
        help="walk-forward acceptance report: Deflated Sharpe and PBO of the winner",
        description="Compute each walk-forward round's Sharpe ratio from trial_returns.parquet, "
        "the Deflated Sharpe Ratio of the winner and the Probability of Backtest Overfitting; "
        "write acceptance_report.json and acceptance_report.md.",
    )
    accept.add_argument("experiment", metavar="DIR", help="the experiment directory")
    accept.add_argument("--blocks", type=int, default=16, help="CSCV blocks for PBO (default 16)")
    accept.add_argument(
        "--min-dsr", type=float, help="threshold: least Deflated Sharpe probability (0-1)"
    )
    accept.add_argument("--max-pbo", type=float, help="threshold: greatest PBO accepted (0-1)")

    plot = sub.add_parser(
        "plot",
        help="write the study's plots as PNG files",
        description="Optimisation history, parameter importance, parallel coordinate, slice.",
    )
    _add_experiment_args(plot)
    plot.add_argument("--out", required=True, help="folder for the PNG files")
    _add_metric_args(plot)


def _add_experiment_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("experiment", metavar="DIR|URL", help="experiment directory or storage URL")
    parser.add_argument("--storage", help="SQLAlchemy URL, when the study is not in the directory")
    parser.add_argument("--study", help="study name (default: the experiment's)")


def _add_metric_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--metric", help="rank by this metric (default: the objective)")
    parser.add_argument("--direction", choices=("maximize", "minimize"), help="for --metric")


def _add_key_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--key-env",
        metavar="VAR",
        help="sign/verify Sensor files with the secret in environment variable VAR",
    )


def _experiment(args: argparse.Namespace, *, read_only: bool = False) -> ExperimentSource:
    """The experiment named by ``DIR|URL``, ``--storage`` and ``--study``; a URL given with
    ``--storage`` gives way to it."""
    if args.storage is not None and "://" in args.experiment:
        return _resolve(args.storage, args.study, read_only=read_only)
    return _resolve(args.experiment, args.study, storage=args.storage, read_only=read_only)


def _key(args: argparse.Namespace) -> str | None:
    if args.key_env is None:
        return None
    key = os.environ.get(args.key_env)
    if not key:
        raise UsageError(f"--key-env {args.key_env}: that environment variable is empty or unset.")
    return key


def command_train(args: argparse.Namespace) -> int:
    """``limen train DIR --best N --out PATH``: rebuild, check, refit and save Sensors."""
    from limen.experiment.trainer import Trainer

    _check_flags(args, {"--best": ("best", 1)})
    key = _key(args)
    if args.format == "pickle" and key is None:
        raise UsageError(
            "--format pickle needs --key-env VAR: a pickle Sensor runs code when loaded, so it "
            "is only written signed with a secret key."
        )
    source = _experiment(args, read_only=True)
    sfd = _user_sfd(args, source.load_study().user_attrs)
    trainer = Trainer(source, sfd=sfd, force=args.force)
    ids = args.ids or trainer.best(args.best, args.metric, args.direction)
    for skipped in trainer.skipped:
        print(f"Skipped {skipped.describe()}")
    sensors = trainer.train(ids, refit=not args.train_split_only)
    out = Path(args.out)
    objective = trainer.record.objective
    metric = args.metric or (objective[0][0] if objective else None)
    rows = []
    for rank, sensor in enumerate(sensors, start=1):
        name = f"sensor-{rank}-{sensor.round_id[:12]}.sensor"
        path = sensor.save(out / name, key=key, format=args.format)
        rows.append(
            {
                "rank": rank,
                "round id": sensor.round_id[:12],
                "trial": sensor.provenance["trial_number"],
                **({metric: sensor.metrics.get(metric)} if metric else {}),
                "file": str(path),
            }
        )
    print(f"{len(sensors)} Sensor(s) rebuilt, reproduced and saved:")
    print(pd.DataFrame(rows).to_string(index=False))
    return EXIT_OK


def command_predict(args: argparse.Namespace) -> int:
    """``limen predict SENSOR DATA``: predictions as CSV on stdout, or into --out."""
    from limen.data import read_klines
    from limen.experiment.trainer import Sensor

    _check_flags(args, {"--tail": ("tail", 1)})
    sensor = Sensor.load(args.sensor, key=_key(args), trusted=args.trust)
    predictions = sensor.predict(read_klines(args.data))
    if args.tail is not None:
        predictions = predictions.tail(args.tail)
    if args.out is None:
        predictions.to_csv(sys.stdout, index=False)
        return EXIT_OK
    out = Path(args.out)
    if out.suffix.lower() in (".parquet", ".pq"):
        predictions.to_parquet(out, index=False)
    else:
        predictions.to_csv(out, index=False)
    predicted = int(predictions["reason"].isna().sum())
    print(f"{len(predictions)} rows ({predicted} predicted) written to {out}")
    return EXIT_OK


def command_status(args: argparse.Namespace) -> int:
    """``limen status DIR``: rounds by state, rate, ETA and the best rounds."""
    from limen.log import Log

    _check_flags(args, {"--top": ("top", 0)})
    log = Log(_experiment(args, read_only=True))
    print(status_report(log, args.top, args.metric, args.direction))
    return EXIT_OK


def status_report(
    log: Any, top: int = BEST_SHOWN, metric: str | None = None, direction: str | None = None
) -> str:
    """The text of ``limen status``: states, progress, rate, ETA and the best rounds."""
    study, record = log.study, log.record
    progress = log.progress()
    objective = ", ".join(f"{m} ({d})" for m, d in record.objective) or "none"
    lines = [
        f"Study {study.study_name!r}  SFD {record.sfd_module}  objective {objective}",
        "",
        "Rounds by state:",
    ]
    lines += [f"  {state:<12}{count:>8}" for state, count in progress.states.items()]
    if progress.interrupted:
        lines.append(f"  {'interrupted':<12}{progress.interrupted:>8}  (run again on resume)")
    lines += _worker_lines(log)
    target = f" of {progress.target}" if progress.target else ""
    share = f" ({progress.finished / progress.target:.0%})" if progress.target else ""
    lines.append(f"  {'finished':<12}{progress.finished:>8}{target}{share}")
    rate = f"{progress.rounds_per_minute:.1f} rounds/min" if progress.rounds_per_minute else "n/a"
    mean = progress.mean_execution_time
    lines += [
        "",
        f"Rate: {rate}; mean round time: {f'{mean:.3g} s' if mean is not None else 'n/a'}; "
        f"ETA: {_duration(progress.eta_seconds)}",
    ]
    if top and progress.states["COMPLETE"]:
        lines += ["", *_best_table(log, top, metric, direction)]
    return "\n".join(lines)


def _worker_lines(log: Any) -> list[str]:
    """Rounds per worker process, when more than one process ran the study."""
    workers = log.workers()
    if len(workers) < 2:
        return []
    lines = [
        "",
        "Workers:",
        f"  {'host':<20}{'pid':>8}{'finished':>10}{'running':>9}{'rounds/min':>12}"
        f"  {'last heartbeat':<21}last seen",
    ]
    for w in workers:
        rate = f"{w.rounds_per_minute:.1f}" if w.rounds_per_minute else "n/a"
        beat = _moment(w.last_heartbeat)
        lines.append(
            f"  {w.host[:20]:<20}{w.pid if w.pid is not None else '?':>8}{w.finished:>10}"
            f"{w.running:>9}{rate:>12}  {beat:<21}{_moment(w.last_seen)}"
        )
    return lines


def _moment(moment: Any) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S") if moment is not None else "n/a"


def _best_table(log: Any, top: int, metric: str | None, direction: str | None) -> list[str]:
    try:
        metric, direction = log.reader.metric(metric, direction, "limen status")
        best = log.best(top, metric, direction)
    except ValueError as exc:
        return [f"Best rounds: {exc}"]
    params = [c for c in log.param_names if c in best.columns]
    table = best[["id", "_round_index", metric, *params]].copy()
    # A trial Limen did not write, off the parameter space, has no round id.
    table["id"] = table["id"].map(lambda v: v[:12] if isinstance(v, str) else "(none)")
    table = table.rename(columns={"id": "round id", "_round_index": "trial"})
    table[params] = table[params].map(_readable)
    with pd.option_context("display.width", 200, "display.max_columns", 20):
        return [f"Best {len(best)} rounds by {metric} ({direction}):", table.to_string(index=False)]


def _readable(value: Any) -> Any:
    """A short cell: a function or class by its name (``StandardScaler``), else its token."""
    if inspect.isclass(value) or inspect.isroutine(value):
        return value.__name__
    if value is None or (isinstance(value, float) and pd.isna(value)):
        return "None"
    return value_token(value)


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "unknown"
    if seconds == 0:
        return "done"
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    if hours:
        return f"{hours}h {minutes:02d}m"
    return f"{minutes}m {secs:02d}s" if minutes else f"{secs}s"


def command_export(args: argparse.Namespace) -> int:
    """``limen export DIR --format csv|parquet``: the experiment log as a file."""
    from limen.log import Log

    log = Log(_experiment(args, read_only=True))
    default = (log.directory or Path.cwd()) / f"experiment_log.{args.format}"
    path = log.export(args.out or default, args.format)
    print(f"{len(log.experiment_log)} rounds written to {path}")
    return EXIT_OK


def command_accept(args: argparse.Namespace) -> int:
    """``limen accept DIR``: the walk-forward acceptance report, printed as Markdown."""
    from limen.experiment.acceptance import ACCEPTANCE_MD, acceptance_report

    directory = Path(args.experiment)
    if not directory.is_dir():
        raise UsageError(f"Experiment directory {str(directory)!r} does not exist.")
    thresholds = {
        key: value
        for key, value in (
            ("min_deflated_sharpe_probability", args.min_dsr),
            ("max_pbo", args.max_pbo),
        )
        if value is not None
    }
    report = acceptance_report(directory, acceptance=thresholds or None, n_blocks=args.blocks)
    if report is None:
        raise UsageError(
            f"{directory} has no trial_returns.parquet: only walk-forward runs "
            "(Manifest.set_split_walk_forward) have an acceptance report."
        )
    print((directory / ACCEPTANCE_MD).read_text(encoding="utf-8"), end="")
    return EXIT_OK


def command_plot(args: argparse.Namespace) -> int:
    """``limen plot DIR --out DIR``: the study's plots as PNG files."""
    import matplotlib

    from limen.log import Log

    matplotlib.use("Agg")
    written = Log(_experiment(args, read_only=True)).plot_all(args.out, args.metric, args.direction)
    for kind, path in written.items():
        print(f"{kind}: {path}")
    return EXIT_OK


def _check_flags(args: argparse.Namespace, flags: dict[str, tuple[str, int]]) -> None:
    """Check integer flags against their least value: ``{"--jobs": ("jobs", 0)}``; an absent
    (None) flag is not checked."""
    from limen.utils.validation import Interval, validate_params

    values = {flag: getattr(args, dest) for flag, (dest, _) in flags.items()}
    given = {flag: value for flag, value in values.items() if value is not None}
    constraints = {flag: [Interval(int, least, None)] for flag, (_, least) in flags.items()}
    validate_params(constraints, given, f"limen {args.command}")


COMMANDS = {
    "run": command_run,
    "resume": command_resume,
    "worker": command_worker,
    "dashboard": command_dashboard,
    "train": command_train,
    "predict": command_predict,
    "status": command_status,
    "export": command_export,
    "plot": command_plot,
    "accept": command_accept,
}


if __name__ == "__main__":
    sys.exit(main())
