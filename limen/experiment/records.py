"""The files of an experiment directory: readable views of the study, safe after any crash.

JSON documents are replaced atomically (temp file then ``os.replace``); CSV and JSONL files
grow by whole lines, each flushed to the OS before the next round starts.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import math
import os
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from limen.experiment import study_keys as keys

__all__ = [
    "AUDIT_JSONL",
    "CONVERGENCE_REPORT_JSON",
    "CONVERGENCE_WARNING",
    "METADATA_JSON",
    "RESERVED_COLUMNS",
    "RESULTS_CSV",
    "ROUND_DATA_JSONL",
    "WARNINGS",
    "ResultsCsv",
    "append_jsonl",
    "csv_cell",
    "read_csv_rows",
    "read_json",
    "read_jsonl",
    "results_row",
    "rewrite_csv",
    "rewrite_jsonl",
    "round_record",
    "write_json_atomic",
]

try:
    import fcntl
except ImportError:  # Windows: one process per directory there.
    fcntl = None  # type: ignore[assignment]

logger = logging.getLogger(__name__)

RESULTS_CSV = "results.csv"
ROUND_DATA_JSONL = "round_data.jsonl"
METADATA_JSON = "metadata.json"
AUDIT_JSONL = "audit.jsonl"
CONVERGENCE_REPORT_JSON = "convergence_report.json"

# Per-round warning evidence: a column of results.csv and experiment_log, a trial user attr.
WARNINGS = keys.WARNINGS
CONVERGENCE_WARNING = keys.CONVERGENCE_WARNING


def write_json_atomic(path: Path, document: Any) -> None:
    """Write ``document`` as pretty JSON so readers only ever see a whole file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    _replace_text(path, json.dumps(document, indent=2, sort_keys=True, default=str) + "\n")


def read_json(path: Path) -> Any:
    """The JSON document at ``path``."""
    return json.loads(path.read_text(encoding="utf-8"))


def append_jsonl(path: Path, record: Mapping[str, Any]) -> None:
    """Append one JSON object as one whole line."""
    line = json.dumps(record, default=str, allow_nan=True) + "\n"
    with path.open("a", encoding="utf-8") as handle:
        handle.write(line)


def csv_cell(value: Any) -> Any:
    """A CSV cell for ``value``: empty for None, ``repr`` for non-finite floats."""
    if value is None:
        return ""
    if isinstance(value, float) and not math.isfinite(value):
        return repr(value)
    return value


# Columns results.csv and experiment_log hold for every round: no parameter may take these names.
RESERVED_COLUMNS = frozenset(
    {
        keys.ROUND_ID,
        keys.ROUND_INDEX,
        keys.STATE,
        keys.FOREIGN,
        keys.EXECUTION_TIME,
        keys.ERROR_TYPE,
        keys.ERROR_MESSAGE,
        keys.TRACEBACK,
    }
)


def results_row(
    *,
    round_id: str | None,
    number: int,
    state: str,
    execution_time: float | None,
    metrics: Mapping[str, Any],
    params: Mapping[str, Any],
    error_type: str | None = None,
    error_message: str | None = None,
    warnings: str | None = None,
    convergence_warning: bool | None = None,
) -> dict[str, Any]:
    """One ``results.csv`` row; the loop and the resume reconciliation both build rows here.

    ``warnings`` is the JSON list of the round's warning messages and ``convergence_warning``
    whether one was a convergence warning (None: unknown, as for a failed round).
    """
    row: dict[str, Any] = {
        keys.ROUND_ID: round_id,
        keys.ROUND_INDEX: number,
        keys.STATE: state,
        keys.EXECUTION_TIME: execution_time,
        **metrics,
        **params,
        WARNINGS: warnings,
        CONVERGENCE_WARNING: convergence_warning,
    }
    if error_type is not None:
        row.update({keys.ERROR_TYPE: error_type, keys.ERROR_MESSAGE: error_message})
    return row


def round_record(
    round_id: str | None, number: int, params: Mapping[str, Any], **extra: Any
) -> dict[str, Any]:
    """One ``round_data.jsonl`` record (predictions, alignment... go in ``extra``)."""
    return {"round_id": round_id, keys.ROUND_INDEX: number, "round_params": dict(params), **extra}


class ResultsCsv:
    """``results.csv``: one row per finished round, appended as each round finishes.

    The header is fixed by the first row written: the leading framework columns, the metrics
    of the first successful round, the parameters, the warning columns, then the error
    columns. A failed round that arrives before any
    successful one waits in memory until the header is known (or until ``close``), so the file
    never holds a row without a header. Metrics a later round adds are left out of the file
    (they stay in the study) with one warning per name.
    """

    LEAD = (keys.ROUND_ID, keys.ROUND_INDEX, keys.STATE, keys.EXECUTION_TIME)
    TAIL = (WARNINGS, CONVERGENCE_WARNING, keys.ERROR_TYPE, keys.ERROR_MESSAGE)

    def __init__(self, path: Path, param_names: Sequence[str]) -> None:
        self.path = path
        self.param_names = list(param_names)
        self.header: list[str] | None = self._existing_header()
        self._pending: list[dict[str, Any]] = []
        self._warned: set[str] = set()

    def _existing_header(self) -> list[str] | None:
        if not self.path.exists() or self.path.stat().st_size == 0:
            return None
        with self.path.open(newline="", encoding="utf-8") as handle:
            return next(csv.reader(handle), None)

    def append(self, row: Mapping[str, Any], metric_names: Iterable[str] | None) -> None:
        """Add one round's row; ``metric_names`` is None for a failed round."""
        if self.header is None:
            if metric_names is None:
                self._pending.append(dict(row))
                return
            self._settle_header(self.make_header(metric_names))
        rows = [*self._pending, dict(row)]
        self._pending.clear()
        self._write_lines([self._ordered(r) for r in rows])

    def close(self) -> None:
        """Flush rows still waiting for a header (a run in which no round succeeded)."""
        if self._pending:
            if self.header is None:
                self._settle_header(self.make_header([]))
            self._write_lines([self._ordered(r) for r in self._pending])
            self._pending.clear()

    def _settle_header(self, header: list[str]) -> None:
        """Write ``header`` unless another process sharing the directory wrote one first (then
        take that one): under an exclusive lock of the file, so a file gets one header."""
        with self.path.open("a+", newline="", encoding="utf-8") as handle:
            if fcntl is not None:
                fcntl.flock(handle, fcntl.LOCK_EX)
            handle.seek(0)
            existing = next(csv.reader(handle), None)
            if existing:
                self.header = existing
                return
            buffer = io.StringIO()
            csv.writer(buffer, lineterminator="\n").writerow(header)
            handle.write(buffer.getvalue())
            self.header = header

    def make_header(self, metric_names: Iterable[str]) -> list[str]:
        """The header: framework columns, ``metric_names``, parameters, warning and error
        columns."""
        taken = set(self.LEAD) | set(self.TAIL) | set(self.param_names)
        metrics = [m for m in metric_names if m not in taken]
        return [*self.LEAD, *metrics, *self.param_names, *self.TAIL]

    def _ordered(self, row: Mapping[str, Any]) -> list[Any]:
        assert self.header is not None
        for key in row:
            if key not in self.header and key not in self._warned:
                self._warned.add(key)
                logger.warning(
                    "Column %r first appeared after results.csv's header was written; "
                    "it is kept in the study's trial user attrs but not in results.csv.",
                    key,
                )
        return [csv_cell(row.get(name)) for name in self.header]

    def _write_lines(self, rows: Sequence[Sequence[Any]]) -> None:
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerows(rows)
        with self.path.open("a", newline="", encoding="utf-8") as handle:
            handle.write(buffer.getvalue())


def read_jsonl(path: Path) -> tuple[list[dict[str, Any]], bool]:
    """The whole JSON objects of a JSONL file, and whether every line was one.

    A line torn by a crash is skipped; the flag tells the caller the file needs rewriting.
    """
    if not path.exists():
        return [], True
    text = path.read_text(encoding="utf-8")
    records = []
    for line in text.splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(record, dict):
            records.append(record)
    clean = len(records) == len(text.splitlines()) and (not text or text.endswith("\n"))
    return records, clean


def read_csv_rows(path: Path) -> tuple[list[str] | None, list[dict[str, str]], bool]:
    """Header, rows, and whether the file is whole (no row torn by a crash, which is skipped)."""
    if not path.exists() or path.stat().st_size == 0:
        return None, [], True
    text = path.read_text(encoding="utf-8")
    parsed = list(csv.reader(io.StringIO(text, newline="")))
    if not parsed or not parsed[0]:
        return None, [], False
    header, cells = parsed[0], parsed[1:]
    rows = [dict(zip(header, row, strict=True)) for row in cells if len(row) == len(header)]
    return header, rows, len(rows) == len(cells) and text.endswith("\n")


def rewrite_csv(path: Path, header: Sequence[str], rows: Iterable[Mapping[str, Any]]) -> None:
    """Replace a CSV file atomically with ``header`` and ``rows``."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    writer.writerows([csv_cell(row.get(name)) for name in header] for row in rows)
    _replace_text(path, buffer.getvalue())


def rewrite_jsonl(path: Path, records: Iterable[Mapping[str, Any]]) -> None:
    """Replace a JSONL file atomically with ``records``."""
    text = "".join(json.dumps(r, default=str, allow_nan=True) + "\n" for r in records)
    _replace_text(path, text)


def _replace_text(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
