"""Per-round warnings: capture what an SFD warns about, and report where convergence fails.

A round's prep and model run inside ``RoundWarnings.capture()``: the warnings they emit are
recorded instead of printed (one line per round would drown the progress bar). The loop keeps
them with the round as ``_warnings`` (JSON list of the unique messages) and
``_convergence_warning`` (True/False; None when the round failed), and at the end of a run
writes ``convergence_report.json``: the share of rounds that did not converge and the
parameter values most associated with them.
"""

from __future__ import annotations

import json
import logging
import math
import re
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pandas as pd

from limen.experiment.identity import value_key, value_token
from limen.experiment.records import (
    CONVERGENCE_REPORT_JSON,
    CONVERGENCE_WARNING,
    WARNINGS,
    write_json_atomic,
)

__all__ = [
    "RoundWarnings",
    "convergence_report",
    "is_convergence_warning",
    "write_convergence_report",
]

logger = logging.getLogger(__name__)

_CONVERGENCE_TEXT = re.compile(r"\b(?:failed to|not) converge", re.IGNORECASE)
_TOP_MESSAGES = 10


def is_convergence_warning(category: type[Warning], message: str) -> bool:
    """Whether a warning says an optimiser did not converge.

    By class name (scikit-learn's and statsmodels' ``ConvergenceWarning``, without importing
    either) or by text ("failed to converge", "did not converge").
    """
    names = {cls.__name__ for cls in category.__mro__}
    return "ConvergenceWarning" in names or bool(_CONVERGENCE_TEXT.search(message))


class RoundWarnings:
    """The warnings one round emitted, in order."""

    def __init__(self) -> None:
        self.caught: list[warnings.WarningMessage] = []

    @contextmanager
    def capture(self) -> Iterator[RoundWarnings]:
        """Record every warning raised inside the block instead of showing it.

        The active filters still apply: a warning the user ignores stays unrecorded and one
        the user turned into an error still raises.
        """
        with warnings.catch_warnings(record=True) as caught:
            try:
                yield self
            finally:
                self.caught.extend(caught)

    def messages(self) -> list[str]:
        """The unique messages, in the order first seen."""
        return list(dict.fromkeys(str(w.message) for w in self.caught))

    def converged(self) -> bool:
        """False when one of the warnings is a convergence warning."""
        return not any(is_convergence_warning(w.category, str(w.message)) for w in self.caught)

    def attrs(self, *, failed: bool) -> dict[str, Any]:
        """The round's ``_warnings`` and ``_convergence_warning`` (None for a failed round)."""
        return {
            WARNINGS: json.dumps(self.messages()),
            CONVERGENCE_WARNING: None if failed else not self.converged(),
        }


def convergence_report(
    results: pd.DataFrame, *, parameter_columns: Sequence[str]
) -> dict[str, Any]:
    """Rounds with convergence warnings, overall and per parameter value.

    Args:
        results: one row per round (``experiment_log`` or ``results.csv`` read back) with a
            ``_convergence_warning`` column (rows without it, or with null, are unavailable:
            failed rounds and rounds stored before warnings were recorded).
        parameter_columns: the parameters whose values are examined.

    Returns:
        ``rounds``, ``observed_rounds``, ``unavailable_rounds``,
        ``convergence_warning_rounds``, ``convergence_warning_pct`` (None when nothing was
        observed), ``warning_rounds`` (rounds with any warning), ``messages`` (the most frequent
        warning messages with their round counts), ``rounds_with_warnings`` (``id``,
        ``_round_index``, ``convergence_warning`` and ``warnings`` of each such round) and
        ``parameter_patterns``: for every parameter value seen with at least one convergence
        warning, its observed rounds, warned rounds and percentage, sorted by parameter then
        value. A parameter holding one value in every round is left out: it cannot tell
        warned rounds from the others.

    Raises:
        ValueError: a parameter column is missing, or ``_convergence_warning`` holds
            something other than booleans and nulls.
    """
    missing = [name for name in parameter_columns if name not in results.columns]
    if missing:
        raise ValueError(
            f"Convergence report requires declared parameter columns: {missing}. Pass the "
            "experiment's log (experiment_log or results.csv) and its parameter names."
        )
    evidence = _evidence(results)
    observed = evidence.notna()
    warned = evidence.eq(True) & observed
    patterns = []
    for name in parameter_columns:
        patterns.extend(_patterns(results[name], observed, warned, name))
    patterns.sort(key=lambda p: (p["parameter"], p["value"]))
    return {
        "rounds": len(results),
        "observed_rounds": int(observed.sum()),
        "unavailable_rounds": int((~observed).sum()),
        "convergence_warning_rounds": int(warned.sum()),
        "convergence_warning_pct": _pct(int(warned.sum()), int(observed.sum())),
        "warning_rounds": int(_has_warnings(results).sum()),
        "messages": _message_counts(results),
        "rounds_with_warnings": _warned_rounds(results, evidence),
        "parameter_patterns": patterns,
    }


def write_convergence_report(
    directory: Path, log: pd.DataFrame | None, parameter_columns: Sequence[str]
) -> dict[str, Any] | None:
    """Write ``convergence_report.json`` and log one summary line; None when there is no log.

    Called once at the end of a run, so warnings reach the terminal as one line, not one per
    round. A report that cannot be built or written is logged, never raised: the rounds are
    already safe in the study.
    """
    if log is None or log.empty:
        return None
    path = directory / CONVERGENCE_REPORT_JSON
    try:
        report = convergence_report(log, parameter_columns=parameter_columns)
        write_json_atomic(path, report)
    except (OSError, ValueError) as exc:
        logger.warning("No convergence report was written to %s: %s", path, exc)
        return None
    if report["warning_rounds"]:
        logger.warning(
            "%d of %d rounds emitted warnings (%d convergence warnings); see %s.",
            report["warning_rounds"],
            report["rounds"],
            report["convergence_warning_rounds"],
            path,
        )
    else:
        logger.info("No round emitted a warning (%d rounds); see %s.", report["rounds"], path)
    return report


def _evidence(results: pd.DataFrame) -> pd.Series:
    """``_convergence_warning`` as True/False/None (text "True"/"False" from a CSV file too)."""
    if CONVERGENCE_WARNING not in results.columns:
        return pd.Series([None] * len(results), index=results.index, dtype=object)
    parsed = results[CONVERGENCE_WARNING].astype(object).map(_flag)
    if parsed.map(lambda v: v is _INVALID).any():
        raise ValueError(
            "_convergence_warning must contain Boolean or null evidence; got "
            f"{sorted({str(v) for v in results[CONVERGENCE_WARNING].dropna().unique()})}."
        )
    return parsed


_INVALID = object()


def _flag(value: Any) -> Any:
    if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA:
        return None
    if isinstance(value, str):
        return {"True": True, "False": False, "": None}.get(value, _INVALID)
    if type(value).__name__ in {"bool", "bool_"}:
        return bool(value)
    return _INVALID


def _patterns(
    values: pd.Series, observed: pd.Series, warned: pd.Series, name: str
) -> list[dict[str, Any]]:
    keys = values.astype(object).map(value_key)
    if keys.nunique() < 2:
        return []
    patterns = []
    for key in dict.fromkeys(keys):
        rows = keys == key
        n_warned = int((warned & rows).sum())
        if not n_warned:
            continue
        n_observed = int((observed & rows).sum())
        patterns.append(
            {
                "parameter": name,
                "value": str(value_token(values[rows].iloc[0])),
                "observed_rounds": n_observed,
                "convergence_warning_rounds": n_warned,
                "convergence_warning_pct": _pct(n_warned, n_observed),
            }
        )
    return patterns


def _has_warnings(results: pd.DataFrame) -> pd.Series:
    if WARNINGS not in results.columns:
        return pd.Series(False, index=results.index)
    return results[WARNINGS].map(lambda v: isinstance(v, str) and v not in ("", "[]"))


def _warned_rounds(results: pd.DataFrame, evidence: pd.Series) -> list[dict[str, Any]]:
    rows = results[_has_warnings(results) | evidence.eq(True)]
    return [
        {
            "id": row.get("id"),
            "_round_index": _plain_int(row.get("_round_index")),
            "convergence_warning": None if evidence[index] is None else bool(evidence[index]),
            "warnings": _messages(row.get(WARNINGS)),
        }
        for index, row in rows.iterrows()
    ]


def _plain_int(value: Any) -> int | None:
    return None if value is None or pd.isna(value) else int(value)


def _message_counts(results: pd.DataFrame) -> list[dict[str, Any]]:
    counts: dict[str, int] = {}
    if WARNINGS in results.columns:
        for cell in results[WARNINGS]:
            for message in _messages(cell):
                counts[message] = counts.get(message, 0) + 1
    ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))[:_TOP_MESSAGES]
    return [{"message": message, "rounds": n} for message, n in ranked]


def _messages(cell: Any) -> list[str]:
    if not isinstance(cell, str) or not cell:
        return []
    try:
        messages = json.loads(cell)
    except json.JSONDecodeError:
        return [cell]
    return [str(m) for m in messages] if isinstance(messages, list) else [str(messages)]


def _pct(part: int, whole: int) -> float | None:
    return None if whole == 0 else round(100.0 * part / whole, 2)
