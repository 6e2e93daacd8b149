"""Make the experiment directory's files agree with the study, on resume.

``results.csv`` and ``round_data.jsonl`` are views of the study. A crash can leave a line the
study does not hold as a finished round (the file was written, the outcome was not), a torn last
line, or a finished round the files lack. ``reconcile_files`` rewrites a file only when it
disagrees, and reports each rewrite through ``audit``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from optuna.trial import TrialState

from limen.adapters import trials as trial_attrs
from limen.experiment import study_keys as keys
from limen.experiment.identity import value_token
from limen.experiment.records import (
    RESULTS_CSV,
    ROUND_DATA_JSONL,
    ResultsCsv,
    read_csv_rows,
    read_jsonl,
    results_row,
    rewrite_csv,
    rewrite_jsonl,
    round_record,
)
from limen.experiment.study_reader import StoredRound

__all__ = ["reconcile_files"]

logger = logging.getLogger(__name__)


def reconcile_files(
    directory: Path,
    finished: Sequence[StoredRound],
    param_names: Sequence[str],
    context_params: Mapping[str, Any],
    audit: Callable[..., None],
) -> None:
    """Make results.csv and round_data.jsonl hold exactly the study's finished rounds.

    ``finished`` is the study's finished rounds as the study reader reads them (``read_rounds``).
    Lines of rounds the study does not hold as finished are dropped; finished rounds the files
    lack are rebuilt from the study. Files already in agreement are left untouched.
    """
    context = {k: value_token(v) for k, v in context_params.items()}
    header, rows, whole = read_csv_rows(directory / RESULTS_CSV)
    by_number = {r.get("_round_index"): r for r in rows}
    wanted = []
    for stored in finished:
        row = by_number.get(str(stored.number))
        same = row is not None and row.get("id") == (stored.round_id or "")
        ok = same and row.get("state") == stored.trial.state.name
        wanted.append(row if ok else _csv_row(stored, context))
    if wanted != rows or not whole:
        if header is None:
            metrics = {m for stored in finished for m in stored.metrics}
            csv = ResultsCsv(directory / RESULTS_CSV, [*param_names, *context])
            header = csv.make_header(sorted(metrics))
        rewrite_csv(directory / RESULTS_CSV, header, wanted)
        audit("reconcile", file=RESULTS_CSV, rows=len(wanted), before=len(rows))
    complete = [r for r in finished if r.trial.state == TrialState.COMPLETE]
    records, whole = read_jsonl(directory / ROUND_DATA_JSONL)
    by_id = {(r.get("_round_index"), r.get("round_id")): r for r in records}
    kept = [by_id.get((r.number, r.round_id)) or _jsonl_record(r, context) for r in complete]
    if kept != records or not whole:
        rewrite_jsonl(directory / ROUND_DATA_JSONL, kept)
        rebuilt = sum(1 for r in complete if (r.number, r.round_id) not in by_id)
        if rebuilt:
            logger.warning(
                'Rebuilt %d round_data.jsonl line(s) from the study, marked "rebuilt": '
                "true; their predictions were not stored and are null.",
                rebuilt,
            )
        audit(
            "reconcile",
            file=ROUND_DATA_JSONL,
            rows=len(kept),
            before=len(records),
            rebuilt=rebuilt,
        )


def _csv_row(stored: StoredRound, context: Mapping[str, Any]) -> dict[str, Any]:
    """The ``results.csv`` row of a finished round, rebuilt from the study."""
    trial = stored.trial
    failed = trial.state == TrialState.FAIL
    return results_row(
        round_id=stored.round_id,
        number=trial.number,
        state=trial.state.name,
        execution_time=trial.user_attrs.get(trial_attrs.EXECUTION_TIME),
        metrics=stored.metrics,
        params={**trial.params, **context},
        error_type=trial.user_attrs.get(trial_attrs.ERROR_TYPE) if failed else None,
        error_message=trial.user_attrs.get(trial_attrs.ERROR_MESSAGE) if failed else None,
        warnings=trial.user_attrs.get(keys.WARNINGS),
        convergence_warning=trial.user_attrs.get(keys.CONVERGENCE_WARNING),
    )


def _jsonl_record(stored: StoredRound, context: Mapping[str, Any]) -> dict[str, Any]:
    """A ``round_data.jsonl`` record rebuilt from the study, marked ``"rebuilt": true``.

    The study does not hold predictions, so ``preds`` is null; the mark tells a reader that
    the line is not the one the round wrote.
    """
    params = {**stored.trial.params, **context}
    return round_record(stored.round_id, stored.number, params, preds=None, rebuilt=True)
