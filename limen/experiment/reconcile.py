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

from optuna.trial import FrozenTrial, TrialState

from limen.adapters import trials as trial_attrs
from limen.experiment.identity import value_token
from limen.experiment.records import (
    RESULTS_CSV,
    ROUND_DATA_JSONL,
    ResultsCsv,
    read_csv_rows,
    read_jsonl,
    rewrite_csv,
    rewrite_jsonl,
)

logger = logging.getLogger(__name__)


def reconcile_files(
    directory: Path,
    trials: Sequence[FrozenTrial],
    param_names: Sequence[str],
    context_params: Mapping[str, Any],
    audit: Callable[..., None],
) -> None:
    """Make results.csv and round_data.jsonl hold exactly the study's finished rounds.

    Lines of rounds the study does not hold as finished are dropped; finished rounds the files
    lack are rebuilt from the study. Files already in agreement are left untouched.
    """
    context = {k: value_token(v) for k, v in context_params.items()}
    finished = [t for t in trials if trial_attrs.is_finished_round(t)]
    header, rows, whole = read_csv_rows(directory / RESULTS_CSV)
    by_number = {r.get("_round_index"): r for r in rows}
    wanted = []
    for trial in finished:
        row = by_number.get(str(trial.number))
        same = row is not None and row.get("id") == trial.user_attrs.get(trial_attrs.ROUND_ID)
        ok = same and row.get("state") == trial.state.name
        wanted.append(row if ok else trial_attrs.csv_row(trial, context))
    if wanted != rows or not whole:
        if header is None:
            metrics = {m for t in finished for m in trial_attrs.metric_attrs(t)}
            csv = ResultsCsv(directory / RESULTS_CSV, [*param_names, *context])
            header = csv.make_header(sorted(metrics))
        rewrite_csv(directory / RESULTS_CSV, header, wanted)
        audit("reconcile", file=RESULTS_CSV, rows=len(wanted), before=len(rows))
    complete = [t for t in finished if t.state == TrialState.COMPLETE]
    records, whole = read_jsonl(directory / ROUND_DATA_JSONL)
    by_id = {(r.get("_round_index"), r.get("round_id")): r for r in records}
    kept = [
        by_id.get((t.number, t.user_attrs.get(trial_attrs.ROUND_ID)))
        or trial_attrs.jsonl_record(t, context)
        for t in complete
    ]
    if kept != records or not whole:
        rewrite_jsonl(directory / ROUND_DATA_JSONL, kept)
        rebuilt = sum(
            1 for t in complete if (t.number, t.user_attrs.get(trial_attrs.ROUND_ID)) not in by_id
        )
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
