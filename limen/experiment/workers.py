"""Local worker processes of ``run(n_jobs=N)``: N processes on one study, then one result.

The calling process creates (or reopens) the study and writes ``metadata.json``; it then forks
N workers, each a resume of the study that stops on the study's count (the claim of a round
counts the study's finished and running rounds under the study lock), and waits for them. A
fork keeps the SFD, the data and any callable the loop holds without pickling them; the parent's
database connections are closed first, so no connection is shared across processes.
"""

from __future__ import annotations

import dataclasses
import logging
import multiprocessing
from typing import Any

from limen.experiment.round_runner import RoundRunner
from limen.experiment.round_warnings import write_convergence_report
from limen.experiment.run_plan import RunPlan

__all__ = ["run_workers"]

logger = logging.getLogger(__name__)


def run_workers(loop: Any, runner: Any, plan: RunPlan) -> None:
    """Run ``plan.n_jobs`` forked workers on the study ``runner`` opened; publish the outcome.

    Raises:
        RuntimeError: a worker exited with an error (the others still finished their rounds).
    """
    worker_plan = dataclasses.replace(
        plan,
        resume="force" if plan.resume == "force" else True,
        n_jobs=1,
        shared=True,
        progress_bar=False,
    )
    runner.release_connections()
    context = multiprocessing.get_context("fork")
    processes = [
        context.Process(target=_work, args=(loop, worker_plan), name=f"limen-worker-{index}")
        for index in range(plan.n_jobs)
    ]
    for process in processes:
        process.start()
    logger.info("Started %d workers on %s.", len(processes), plan.experiment_name)
    interrupted = False
    try:
        for process in processes:
            process.join()
    except KeyboardInterrupt:
        # The terminal's Ctrl-C reached the workers too: each ends its round, then stops.
        interrupted = True
        for process in processes:
            process.join()
    try:
        runner.publish()
        write_convergence_report(plan.experiment_dir, loop.experiment_log, list(plan.params))
    finally:
        runner.release_connections()
    loop.interrupted = loop.interrupted or interrupted
    failed = [p.exitcode for p in processes if p.exitcode]
    if failed:
        raise RuntimeError(
            f"{len(failed)} of {len(processes)} workers of {plan.experiment_name!r} failed "
            f"(exit codes {failed}); the others finished. See their log lines above, then "
            "continue with run(..., resume=True) or `limen worker`."
        )


def _work(loop: Any, plan: RunPlan) -> None:
    RoundRunner(loop, dataclasses.replace(plan)).execute()
