"""Walk-forward evaluation: fold geometry, the round's fold summary, and its output files.

A walk-forward round fits and tests the model once per fold. Fold geometry comes from
scikit-learn's ``TimeSeriesSplit``: the last ``n_folds * test_bars`` bars form consecutive test
windows; each fold's pool is every bar before its test window minus ``purge_bars`` (the split's
``gap``), or, when not anchored, only the most recent bars, as many as the first fold's pool
(``max_train_size``), so every fold trains on the same length. What ``TimeSeriesSplit`` lacks is
written here: the pool is split into fit and validation by the manifest's train:val share with
``purge_bars`` between them, and an embargo (Lopez de Prado, *Advances in Financial Machine
Learning*, 2018, §7.4.2): the ``embargo_bars`` bars right after each earlier test window are
left out of a later fold's fit and validation rows, because their features overlap that test.

Files (only for walk-forward rounds, written by ``write_round_outputs``):
``fold_results.csv`` (``id, fold, <metrics>``: one row per fold) and ``trial_returns.parquet``
(``trial: str, bar: int64, net_return: float64``: one row group per round, the round's test
windows concatenated), plus ``walk_forward.json`` (the declaration, the round-trip cost and the
acceptance thresholds, which ``limen accept`` reads).
"""

from __future__ import annotations

import contextlib
import csv
import fcntl
import math
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from limen.experiment import study_keys as keys
from limen.experiment.records import write_json_atomic
from limen.utils.values import is_number

__all__ = [
    "DECLARATION_KEY",
    "FOLDS_ATTR",
    "FOLDS_KEY",
    "FOLD_RESULTS_CSV",
    "RETURNS_KEY",
    "TRIAL_RETURNS_PARQUET",
    "WALK_FORWARD_JSON",
    "Fold",
    "WalkForward",
    "combine_folds",
    "fold_geometry",
    "read_trial_returns",
    "trial_attrs",
    "write_round_outputs",
]

FOLD_RESULTS_CSV = "fold_results.csv"
TRIAL_RETURNS_PARQUET = "trial_returns.parquet"
FOLDS_KEY = "_folds"
RETURNS_KEY = "_returns"
DECLARATION_KEY = "_walk_forward"
WALK_FORWARD_JSON = "walk_forward.json"
FOLDS_ATTR = keys.FOLDS


@dataclass(frozen=True)
class WalkForward:
    """A validated walk-forward declaration (see ``Manifest.set_split_walk_forward``)."""

    n_folds: int
    test_bars: int
    purge_bars: int = 0
    embargo_bars: int = 0
    anchored: bool = True

    def __post_init__(self) -> None:
        for name, minimum in (("n_folds", 2), ("test_bars", 1), ("purge_bars", 0)):
            _check_int(name, getattr(self, name), minimum)
        _check_int("embargo_bars", self.embargo_bars, 0)
        if not isinstance(self.anchored, bool):
            raise ValueError(
                "The 'anchored' field of split_walk_forward must be a literal bool. "
                f"Got {self.anchored!r} instead."
            )

    def as_dict(self) -> dict[str, Any]:
        """The declaration as plain values (for metadata and messages)."""
        return asdict(self)


@dataclass(frozen=True)
class Fold:
    """Row positions of one fold: fit, validation and test as ``[start, stop)`` ranges, plus
    the positions inside fit/validation left out by the embargo."""

    fit: tuple[int, int]
    val: tuple[int, int]
    test: tuple[int, int]
    embargoed: tuple[int, ...]


def fold_geometry(n_rows: int, config: WalkForward, train: float, val: float) -> list[Fold]:
    """The folds of ``n_rows`` bars; ``train:val`` shares the pool between fit and validation.

    Raises:
        ValueError: the data is too short for the declared folds, or a fold has no fit rows.
    """
    needed = config.n_folds * config.test_bars + config.purge_bars + 1
    if n_rows < needed:
        raise ValueError(
            f"split_walk_forward needs more than n_folds * test_bars + purge_bars = "
            f"{needed - 1} bars; the data has {n_rows}. Use more data or fewer/shorter folds."
        )
    first_pool = n_rows - config.n_folds * config.test_bars - config.purge_bars
    # Imported here: scikit-learn takes seconds to import, and readers of results (limen status,
    # Log) import this module for its keys without ever splitting data.
    from sklearn.model_selection import TimeSeriesSplit

    splitter = TimeSeriesSplit(
        n_splits=config.n_folds,
        test_size=config.test_bars,
        gap=config.purge_bars,
        max_train_size=None if config.anchored else first_pool,
    )
    folds = []
    test_stops: list[int] = []
    for pool, test in splitter.split(np.empty((n_rows, 1))):
        start, stop = int(pool[0]), int(pool[-1]) + 1
        val_start = start + (stop - start) * train // (train + val) if val else stop
        val_start = int(val_start)
        fit_stop = val_start - config.purge_bars if val_start < stop else stop
        if fit_stop <= start:
            raise ValueError(
                f"split_walk_forward fold {len(folds)} has no fit rows (pool of "
                f"{stop - start} bars, purge_bars={config.purge_bars}). Use more data, a "
                "larger train share in set_split_config, or a smaller purge."
            )
        embargoed = tuple(
            position
            for end in test_stops
            for position in range(end, end + config.embargo_bars)
            if start <= position < stop
        )
        folds.append(
            Fold((start, fit_stop), (val_start, stop), (int(test[0]), int(test[-1]) + 1), embargoed)
        )
        test_stops.append(int(test[-1]) + 1)
    return folds


def combine_folds(fold_metrics: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The round's metrics: the mean of the finite fold values of each numeric metric.

    A metric with no finite value across folds is NaN; a non-numeric metric is kept when every
    fold agrees and is None otherwise.
    """
    combined: dict[str, Any] = {}
    names = list(dict.fromkeys(name for metrics in fold_metrics for name in metrics))
    for name in names:
        values = [metrics.get(name) for metrics in fold_metrics]
        if all(is_number(value) or value is None for value in values) and any(
            is_number(value) for value in values
        ):
            finite = [float(v) for v in values if is_number(v, finite=True)]
            combined[name] = float(np.mean(finite)) if finite else float("nan")
        else:
            combined[name] = values[0] if all(v == values[0] for v in values) else None
    return combined


def trial_attrs(results: Mapping[str, Any]) -> dict[str, Any]:
    """The trial user attrs of a walk-forward round (its per-fold metrics); empty otherwise."""
    folds = results.get(FOLDS_KEY)
    return {} if folds is None else {FOLDS_ATTR: [_json_row(row) for row in folds]}


def write_round_outputs(
    experiment_dir: str | os.PathLike[str],
    round_id: str,
    trial_number: int,
    results: Mapping[str, Any],
) -> None:
    """Append a walk-forward round's folds to ``fold_results.csv`` and its net-return track to
    ``trial_returns.parquet``; a round without folds writes nothing.

    Both files are replaced atomically under a lock, so a crash leaves them readable and
    workers sharing the directory do not lose each other's rounds.
    """
    folds = results.get(FOLDS_KEY)
    if folds is None:
        return
    directory = Path(experiment_dir)
    with _locked(directory / ".walk_forward.lock"):
        declaration = directory / WALK_FORWARD_JSON
        if DECLARATION_KEY in results and not declaration.exists():
            write_json_atomic(declaration, results[DECLARATION_KEY])
        _append_folds(directory / FOLD_RESULTS_CSV, round_id, trial_number, folds)
        track = results.get(RETURNS_KEY)
        if track is not None:
            _append_track(directory / TRIAL_RETURNS_PARQUET, round_id, np.asarray(track, float))


def read_trial_returns(path: str | os.PathLike[str]) -> dict[str, np.ndarray]:
    """The net-return track of each round in ``trial_returns.parquet`` (``trial -> array``).

    Raises:
        ValueError: the schema is not ``trial: str, bar: int64, net_return: float64``, or a
            track's bars are not ``0 .. n-1`` in order.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pq.read_table(path)
    expected = pa.schema(
        [("trial", pa.string()), ("bar", pa.int64()), ("net_return", pa.float64())]
    )
    if not table.schema.remove_metadata().equals(expected):
        raise ValueError(
            f"{path} must have the schema trial: string, bar: int64, net_return: float64. "
            f"Got {table.schema.remove_metadata()} instead."
        )
    trials = table.column("trial").to_numpy(zero_copy_only=False)
    bars = table.column("bar").to_numpy()
    values = table.column("net_return").to_numpy()
    tracks: dict[str, np.ndarray] = {}
    if len(trials) == 0:
        return tracks
    change = np.flatnonzero(trials[1:] != trials[:-1]) + 1
    for start, stop in zip(np.r_[0, change], np.r_[change, len(trials)], strict=True):
        trial = str(trials[start])
        if trial in tracks or not np.array_equal(bars[start:stop], np.arange(stop - start)):
            raise ValueError(
                f"{path}: the track of trial {trial!r} must be one run of bars 0..n-1 in order."
            )
        tracks[trial] = values[start:stop]
    return tracks


def _append_folds(path: Path, round_id: str, number: int, folds: Sequence[Mapping]) -> None:
    rows = [{"id": round_id, "_round_index": number, **_json_row(row)} for row in folds]
    header: list[str] = []
    existing: list[dict[str, str]] = []
    if path.exists():
        with path.open(newline="") as handle:
            reader = csv.DictReader(handle)
            header = list(reader.fieldnames or [])
            existing = list(reader)
    names = list(dict.fromkeys([*header, *(key for row in rows for key in row)]))
    if header and names == header:
        with path.open("a", newline="") as handle:
            csv.DictWriter(handle, names).writerows(rows)
            handle.flush()
            os.fsync(handle.fileno())
        return
    tmp = path.with_suffix(".csv.tmp")
    with tmp.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, names)
        writer.writeheader()
        writer.writerows([*existing, *rows])
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


def _append_track(path: Path, round_id: str, track: np.ndarray) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = pa.schema([("trial", pa.string()), ("bar", pa.int64()), ("net_return", pa.float64())])
    table = pa.table(
        {
            "trial": pa.array([round_id] * len(track), pa.string()),
            "bar": pa.array(np.arange(len(track), dtype=np.int64)),
            "net_return": pa.array(track, pa.float64()),
        },
        schema=schema,
    )
    tmp = path.with_suffix(".parquet.tmp")
    with pq.ParquetWriter(tmp, schema) as writer:
        if path.exists():
            previous = pq.ParquetFile(path)
            for group in range(previous.num_row_groups):
                writer.write_table(previous.read_row_group(group), row_group_size=2**30)
        writer.write_table(table, row_group_size=2**30)
    os.replace(tmp, path)


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _json_row(row: Mapping[str, Any]) -> dict[str, Any]:
    clean: dict[str, Any] = {}
    for key, value in row.items():
        if isinstance(value, np.generic):
            value = value.item()
        if isinstance(value, float) and not math.isfinite(value):
            value = None
        clean[str(key)] = value
    return clean


def _check_int(name: str, value: Any, minimum: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise ValueError(
            f"The {name!r} field of split_walk_forward must be a literal int >= {minimum}. "
            f"Got {value!r} instead."
        )
