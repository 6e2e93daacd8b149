"""Per-round trading outcomes of binary decoders on klines: confusion metrics and a backtest.

Each successful round's test predictions and alignment are in ``round_data.jsonl``. The
alignment recovers the round's test bars from the raw klines (the bars from the first to the
last test datetime, less the ones the round dropped), so predictions line up with prices
without re-running the model. The actual labels come from replaying the round's data
preparation with the SFD's manifest, which needs the SFD and its decoded parameters.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from limen.experiment.backtest import DEFAULT_COST_BPS, backtest, forward_returns
from limen.experiment.records import ROUND_DATA_JSONL, read_jsonl
from limen.experiment.walk_forward import FOLDS_KEY

if TYPE_CHECKING:
    from limen.log.log import Log

__all__ = [
    "ID_COLUMNS",
    "OUTLIER_MODES",
    "confusion_metrics",
    "experiment_backtest_results",
    "experiment_confusion_metrics",
    "prediction_frame",
    "trading_outcomes",
]

logger = logging.getLogger(__name__)

OUTLIER_MODES = ("filter", "winsor")
ID_COLUMNS = ("id", "_round_index")


def trading_outcomes(log: Log) -> tuple[pd.DataFrame | None, pd.DataFrame | None]:
    """Confusion metrics against ``price_change`` and backtest results, or None for each that
    does not apply (with a warning saying why)."""
    outcomes: list[pd.DataFrame | None] = []
    for build in (
        lambda: experiment_confusion_metrics(log, "price_change"),
        lambda: experiment_backtest_results(log, None),
    ):
        try:
            outcomes.append(build())
        except (ValueError, KeyError) as exc:
            logger.warning("Trading outcomes not computed: %s", exc)
            outcomes.append(None)
    return outcomes[0], outcomes[1]


def experiment_backtest_results(log: Log, cost_bps: float | None) -> pd.DataFrame:
    """One backtest row per successful round (``limen.experiment.backtest`` for the rules)."""
    cost = _cost(log) if cost_bps is None else cost_bps
    rows = []
    for record in _records(log):
        frame = prediction_frame(log, record["_round_index"], actuals=False)
        summary = backtest(frame["predictions"], frame["next_return"], cost).summary
        rows.append({**_ids(record), **summary, "cost_round_trip_bps": cost})
    return pd.DataFrame(rows)


def experiment_confusion_metrics(log: Log, x: str, **options: Any) -> pd.DataFrame:
    """One row of ``confusion_metrics`` per successful round."""
    rows = []
    for record in _records(log):
        frame = prediction_frame(log, record["_round_index"])
        rows.append(confusion_metrics(frame, x, id_values=_ids(record), **options))
    return pd.concat(rows, ignore_index=True) if rows else pd.DataFrame()


def prediction_frame(log: Log, round_index: int, *, actuals: bool = True) -> pd.DataFrame:
    """A round's test bars with its predictions (and, when ``actuals``, its true labels)."""
    record = _record(log, round_index)
    raw = _raw_data(log)
    alignment = record.get("alignment") or {}
    if not alignment.get("first_test_datetime"):
        raise ValueError(f"Round {round_index} has no test alignment in {ROUND_DATA_JSONL}.")
    times = pd.to_datetime(raw["datetime"])
    missing = pd.to_datetime(pd.Series(alignment.get("missing_datetimes") or [], dtype=object))
    mask = (
        (times >= pd.Timestamp(alignment["first_test_datetime"]))
        & (times <= pd.Timestamp(alignment["last_test_datetime"]))
        & ~times.isin(missing)
    )
    bars = raw.loc[mask.to_numpy()]
    preds = np.asarray(record.get("preds") or [], dtype=float)
    if len(preds) != len(bars):
        raise ValueError(
            f"Round {round_index} has {len(preds)} predictions for {len(bars)} test bars: pass "
            "the data the experiment ran on as Log(..., data=...)."
        )
    frame = pd.DataFrame(
        {
            "datetime": bars["datetime"].to_numpy(),
            "open": bars["open"].to_numpy(dtype=float),
            "close": bars["close"].to_numpy(dtype=float),
        }
    )
    frame["price_change"] = frame["close"] - frame["open"]
    frame["next_return"] = forward_returns(raw).reindex(bars["datetime"]).to_numpy()
    frame["predictions"] = preds
    if actuals:
        frame["actuals"] = _actuals(log, round_index, len(frame))
    return frame


def confusion_metrics(
    frame: pd.DataFrame,
    x: str,
    *,
    pred_col: str = "predictions",
    actual_col: str = "actuals",
    threshold: float = 0.5,
    outlier_quantiles: tuple[float, float] = (0.01, 0.99),
    outlier_mode: str = "filter",
    id_values: dict[str, Any] | None = None,
) -> pd.DataFrame:
    """A one-row frame: how the positive predictions' ``x`` (e.g. price change) compares
    between true and false positives, with the usual rates in percent.

    Columns: the ids, ``pred_pos_rate_pct, actual_pos_rate_pct, precision_pct, recall_pct,
    tp_x_mean, fp_x_mean, tp_x_median, fp_x_median, pred_pos_count, pred_pos_x_mean,
    pred_pos_x_median, tp_count, fp_count, tp_fp_cohen_d, tp_fp_ks, x_name, n_kept``.
    Outliers of ``x`` beyond ``outlier_quantiles`` are dropped (``filter``) or clipped
    (``winsor``) first.
    """
    for column in (x, pred_col, actual_col):
        if column not in frame.columns:
            raise ValueError(f'column "{column}" not found; columns: {list(frame.columns)}')
    if outlier_mode not in OUTLIER_MODES:
        raise ValueError('outlier_mode must be "filter" or "winsor"')
    values = frame[x].astype(float)
    low, high = values.quantile(list(outlier_quantiles)).to_numpy()
    if outlier_mode == "filter":
        kept = frame.loc[(values >= low) & (values <= high)]
        values = kept[x].astype(float)
    else:
        kept = frame
        values = values.clip(low, high)
    if kept.empty:
        raise ValueError("no rows remain after outlier handling")
    predicted = kept[pred_col].to_numpy(dtype=float) > threshold
    actual = kept[actual_col].to_numpy(dtype=float) > 0.5
    x_values = values.to_numpy()
    tp, fp = x_values[predicted & actual], x_values[predicted & ~actual]
    row = {
        **(id_values or {}),
        "pred_pos_rate_pct": _pct(predicted.mean()),
        "actual_pos_rate_pct": _pct(actual.mean()),
        "precision_pct": _pct(len(tp) / predicted.sum()) if predicted.any() else None,
        "recall_pct": _pct(len(tp) / actual.sum()) if actual.any() else None,
        "tp_x_mean": _stat(np.mean, tp),
        "fp_x_mean": _stat(np.mean, fp),
        "tp_x_median": _stat(np.median, tp),
        "fp_x_median": _stat(np.median, fp),
        "pred_pos_count": int(predicted.sum()),
        "pred_pos_x_mean": _stat(np.mean, x_values[predicted]),
        "pred_pos_x_median": _stat(np.median, x_values[predicted]),
        "tp_count": len(tp),
        "fp_count": len(fp),
        "tp_fp_cohen_d": _cohen_d(tp, fp),
        "tp_fp_ks": _ks_statistic(tp, fp),
        "x_name": x,
        "n_kept": len(kept),
    }
    return pd.DataFrame([row])


def _ks_statistic(a: np.ndarray, b: np.ndarray) -> float | None:
    """The two-sample Kolmogorov-Smirnov statistic, or None when a side is empty."""
    if not (len(a) and len(b)):
        return None
    # scipy.stats takes about a second to import: only the confusion metrics need it.
    from scipy import stats

    return float(stats.ks_2samp(a, b).statistic)


def _cohen_d(first: np.ndarray, second: np.ndarray) -> float | None:
    if len(first) < 2 or len(second) < 2:
        return None
    pooled = (
        (len(first) - 1) * np.var(first, ddof=1) + (len(second) - 1) * np.var(second, ddof=1)
    ) / (len(first) + len(second) - 2)
    return None if pooled <= 0 else float((np.mean(first) - np.mean(second)) / np.sqrt(pooled))


def _stat(func: Any, values: np.ndarray) -> float | None:
    return float(func(values)) if len(values) else None


def _pct(share: float) -> float:
    return round(100.0 * float(share), 1)


def _ids(record: dict[str, Any]) -> dict[str, Any]:
    return {"id": record.get("round_id"), "_round_index": record.get("_round_index")}


def _records(log: Log) -> list[dict[str, Any]]:
    if log._round_records is None:
        if log.directory is None or not (log.directory / ROUND_DATA_JSONL).exists():
            raise ValueError(
                f"Trading outcomes need the experiment directory's {ROUND_DATA_JSONL}: build the "
                "Log from the experiment directory."
            )
        records, _ = read_jsonl(log.directory / ROUND_DATA_JSONL)
        log._round_records = sorted(
            (r for r in records if "preds" in r), key=lambda r: r["_round_index"]
        )
    return log._round_records


def _record(log: Log, round_index: int) -> dict[str, Any]:
    for record in _records(log):
        if record["_round_index"] == round_index:
            return record
    raise KeyError(f"No successful round with _round_index {round_index} in {ROUND_DATA_JSONL}.")


def _manifest(log: Log) -> Any:
    factory = getattr(log.sfd, "manifest", None)
    return factory() if callable(factory) else None


def _cost(log: Log) -> float:
    manifest = _manifest(log)
    return DEFAULT_COST_BPS if manifest is None else manifest.backtest_cost_bps


def _raw_data(log: Log) -> pd.DataFrame:
    if log._data is None:
        manifest = _manifest(log)
        if manifest is None:
            raise ValueError(
                "Trading outcomes need the raw klines: pass them as Log(..., data=...) (or the "
                "manifest SFD as sfd=...)."
            )
        if log.record.test_mode and manifest.test_data_source_config is not None:
            log._data = manifest.fetch_test_data()
        else:
            log._data = manifest.fetch_data()
    data = log._data
    missing = [c for c in ("datetime", "open", "close") if c not in data.columns]
    if missing:
        raise ValueError(f"Trading outcomes need klines with {missing} columns.")
    return data


def _actuals(log: Log, round_index: int, n_rows: int) -> np.ndarray:
    """The round's true test labels, from replaying its preparation with the manifest."""
    manifest = _manifest(log)
    if manifest is None or not log.decoded:
        raise ValueError(
            "Confusion metrics need each round's true labels, replayed with the SFD's manifest: "
            "pass the SFD as Log(..., sfd=...)."
        )
    row = log.experiment_log.loc[log.experiment_log["_round_index"] == round_index].iloc[0]
    params = {name: row[name] for name in _param_columns(log, row.index)}
    prepared = manifest.prepare_data(_raw_data(log), params)
    parts = prepared.get(FOLDS_KEY) or [prepared]
    labels = np.concatenate([np.asarray(part["y_test"], dtype=float) for part in parts])
    if len(labels) != n_rows:
        raise ValueError(
            f"Replaying round {round_index} gave {len(labels)} test labels for {n_rows} "
            "predictions: the data or the SFD differs from the run's."
        )
    return labels


def _param_columns(log: Log, columns: Sequence[str]) -> list[str]:
    context = log.record.contexts
    return [name for name in [*log.param_names, *context] if name in columns]
