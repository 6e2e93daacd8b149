"""Acceptance report: is the best walk-forward round better than luck after trying many?

From ``trial_returns.parquet`` (one net-return track per round) the report computes each
round's per-bar Sharpe ratio, picks the winner, and tests it two ways:

* the Deflated Sharpe Ratio (Bailey and Lopez de Prado, 2014), the probability that the
  winner's true Sharpe ratio is above the best one expected from ``N`` rounds of no skill;
* the Probability of Backtest Overfitting (Bailey, Borwein, Lopez de Prado and Zhu, 2017), by
  combinatorially symmetric cross-validation (CSCV): how often the round that is best in one
  half of the bars ranks below the median in the other half.

Thresholds from ``Manifest.set_acceptance`` turn both into verdicts. A statistic that cannot be
computed is None, with the reason in ``errors``.
"""

from __future__ import annotations

import itertools
import json
import logging
import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
from scipy import stats

from limen.experiment import study_keys as keys
from limen.experiment.records import write_json_atomic
from limen.experiment.walk_forward import (
    TRIAL_RETURNS_PARQUET,
    WALK_FORWARD_JSON,
    read_trial_returns,
)

__all__ = [
    "ACCEPTANCE_ATTR",
    "ACCEPTANCE_JSON",
    "ACCEPTANCE_MD",
    "DEFAULT_BLOCKS",
    "EULER_GAMMA",
    "THRESHOLDS",
    "acceptance_report",
    "build_report",
    "deflated_sharpe_ratio",
    "expected_max_sharpe",
    "markdown_summary",
    "probability_of_backtest_overfitting",
    "sharpe_ratios",
]

logger = logging.getLogger(__name__)

ACCEPTANCE_JSON = "acceptance_report.json"
ACCEPTANCE_MD = "acceptance_report.md"
ACCEPTANCE_ATTR = keys.ACCEPTANCE
DEFAULT_BLOCKS = 16
THRESHOLDS = ("min_deflated_sharpe_probability", "max_pbo")
EULER_GAMMA = 0.5772156649015329
_CHUNK = 512


def expected_max_sharpe(n_trials: int, sharpe_variance: float) -> float:
    """The Sharpe ratio the best of ``n_trials`` no-skill rounds is expected to reach.

    ``SR0 = sqrt(V) * ((1 - g) * Z(1 - 1/N) + g * Z(1 - 1/(N e)))``, with ``V`` the variance
    of the rounds' Sharpe ratios, ``g`` the Euler-Mascheroni constant and ``Z`` the standard
    normal quantile (Bailey and Lopez de Prado, 2014, eq. 5 / the False Strategy theorem).
    """
    if n_trials < 2:
        raise ValueError(f"expected_max_sharpe needs n_trials >= 2. Got {n_trials!r}.")
    if not sharpe_variance > 0:
        raise ValueError(f"expected_max_sharpe needs sharpe_variance > 0. Got {sharpe_variance!r}.")
    first = stats.norm.ppf(1.0 - 1.0 / n_trials)
    second = stats.norm.ppf(1.0 - 1.0 / (n_trials * math.e))
    return math.sqrt(sharpe_variance) * ((1 - EULER_GAMMA) * first + EULER_GAMMA * second)


def deflated_sharpe_ratio(
    sharpe: float,
    n_trials: int,
    sharpe_variance: float,
    n_obs: int,
    skew: float = 0.0,
    kurtosis: float = 3.0,
) -> float:
    """The Deflated Sharpe Ratio: P(true Sharpe > SR0) given ``n_trials`` were tried.

    ``DSR = Phi((SR - SR0) * sqrt(T - 1) / sqrt(1 - skew * SR + (kurtosis - 1) / 4 * SR^2))``
    (Bailey and Lopez de Prado, 2014, "The Deflated Sharpe Ratio", eq. 2 with ``SR0`` from
    ``expected_max_sharpe``). Sharpe ratios and their variance are per observation (per bar);
    ``kurtosis`` is the plain (not excess) kurtosis of the returns, 3 for a normal.
    """
    if n_obs < 2:
        raise ValueError(f"deflated_sharpe_ratio needs n_obs >= 2. Got {n_obs!r}.")
    threshold = expected_max_sharpe(n_trials, sharpe_variance)
    spread = 1.0 - skew * sharpe + (kurtosis - 1.0) / 4.0 * sharpe**2
    if not spread > 0:
        raise ValueError(
            f"deflated_sharpe_ratio: 1 - skew*SR + (kurtosis-1)/4*SR^2 = {spread} is not > 0 "
            "(inconsistent skew and kurtosis)."
        )
    z = (sharpe - threshold) * math.sqrt(n_obs - 1) / math.sqrt(spread)
    return float(stats.norm.cdf(z))


def sharpe_ratios(returns: np.ndarray) -> np.ndarray:
    """Per-bar Sharpe ratio (mean / std, ddof 1) of each column of a bars x rounds matrix;
    NaN for a flat column."""
    spread = returns.std(axis=0, ddof=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(spread > 0, returns.mean(axis=0) / spread, np.nan)


def probability_of_backtest_overfitting(
    returns: np.ndarray, n_blocks: int = DEFAULT_BLOCKS
) -> float:
    """PBO by combinatorially symmetric cross-validation (CSCV).

    The bars x rounds matrix is cut into ``n_blocks`` contiguous blocks. For each of the
    ``C(S, S/2)`` ways to pick half the blocks as in-sample (the rest out-of-sample), the round
    with the best in-sample Sharpe ratio is found and its out-of-sample relative rank
    ``w = rank / (N + 1)`` turned into the logit ``log(w / (1 - w))``; PBO is the share of
    splits whose logit is <= 0, i.e. the in-sample winner is at or below the out-of-sample
    median (Bailey, Borwein, Lopez de Prado and Zhu, 2017, "The Probability of Backtest
    Overfitting", §2-3). Sharpe ratios come from per-block sums, so each split costs O(N).
    """
    n_bars, n_trials = returns.shape
    if n_trials < 2:
        raise ValueError(f"PBO needs at least 2 rounds to compare; got {n_trials}.")
    if not isinstance(n_blocks, int) or n_blocks < 2 or n_blocks % 2:
        raise ValueError(f"The 'n_blocks' parameter must be an even int >= 2. Got {n_blocks!r}.")
    if n_bars < 2 * n_blocks:
        raise ValueError(
            f"PBO with {n_blocks} blocks needs at least {2 * n_blocks} bars; got {n_bars}."
        )
    blocks = np.array_split(np.arange(n_bars), n_blocks)
    sums = np.stack([returns[b].sum(axis=0) for b in blocks])
    squares = np.stack([(returns[b] ** 2).sum(axis=0) for b in blocks])
    counts = np.array([len(b) for b in blocks], dtype=float)
    combos = np.array(
        [
            np.isin(np.arange(n_blocks), chosen)
            for chosen in itertools.combinations(range(n_blocks), n_blocks // 2)
        ],
        dtype=float,
    )
    overfit = 0
    for start in range(0, len(combos), _CHUNK):
        chosen = combos[start : start + _CHUNK]
        in_sample = _sharpe_from_sums(chosen @ sums, chosen @ squares, chosen @ counts)
        rest = 1.0 - chosen
        out_sample = _sharpe_from_sums(rest @ sums, rest @ squares, rest @ counts)
        best = np.argmax(in_sample, axis=1)
        picked = out_sample[np.arange(len(best)), best][:, None]
        below = (out_sample < picked).sum(axis=1)
        ties = (out_sample == picked).sum(axis=1) - 1
        rank = 1.0 + below + 0.5 * ties
        omega = rank / (n_trials + 1.0)
        overfit += int(np.sum(np.log(omega / (1.0 - omega)) <= 0))
    return overfit / len(combos)


def _sharpe_from_sums(total: np.ndarray, squares: np.ndarray, count: np.ndarray) -> np.ndarray:
    n = count[:, None]
    mean = total / n
    variance = (squares - n * mean**2) / (n - 1.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = mean / np.sqrt(variance)
    return np.where(variance > 1e-300, ratio, -np.inf)


def acceptance_report(
    directory: str | os.PathLike[str],
    *,
    acceptance: Mapping[str, float] | None = None,
    n_blocks: int = DEFAULT_BLOCKS,
    write: bool = True,
) -> dict[str, Any] | None:
    """Build (and by default write) the acceptance report of a walk-forward experiment.

    Args:
        directory: the experiment directory holding ``trial_returns.parquet``.
        acceptance: thresholds ``{"min_deflated_sharpe_probability": p, "max_pbo": p}``;
            default those of ``Manifest.set_acceptance`` recorded with the run.
        n_blocks: CSCV blocks for the PBO (even, default 16).
        write: write ``acceptance_report.json``, ``acceptance_report.md`` and the study attr
            ``limen:acceptance`` (shown in the optuna-dashboard study note).

    Returns:
        The report (keys ``n_trials, n_bars, n_blocks, winner_trial, winner_sharpe,
        trial_sharpe_variance, deflated_sharpe_probability, pbo, thresholds, verdicts,
        accepted, errors, rounds``), or None when the directory has no walk-forward returns.
    """
    directory = Path(directory)
    path = directory / TRIAL_RETURNS_PARQUET
    if not path.exists():
        return None
    thresholds = _thresholds(directory, acceptance)
    tracks = read_trial_returns(path)
    report = build_report(tracks, thresholds, n_blocks)
    if write:
        write_json_atomic(directory / ACCEPTANCE_JSON, report)
        (directory / ACCEPTANCE_MD).write_text(markdown_summary(report), encoding="utf-8")
        _record_on_study(directory, report)
    return report


def build_report(
    tracks: Mapping[str, np.ndarray], thresholds: Mapping[str, float], n_blocks: int
) -> dict[str, Any]:
    """The acceptance report of the net-return ``tracks`` (round -> per-bar returns)."""
    errors: dict[str, str] = {}
    trials = list(tracks)
    lengths = {len(track) for track in tracks.values()}
    report: dict[str, Any] = {
        "n_trials": len(trials),
        "n_bars": lengths.pop() if len(lengths) == 1 else None,
        "n_blocks": n_blocks,
        "winner_trial": None,
        "winner_sharpe": None,
        "trial_sharpe_variance": None,
        "deflated_sharpe_probability": None,
        "pbo": None,
        "thresholds": dict(thresholds),
        "verdicts": {},
        "accepted": None,
        "errors": errors,
        "rounds": {},
    }
    if not trials:
        errors["returns"] = "trial_returns.parquet holds no round."
    elif report["n_bars"] is None or lengths:
        errors["returns"] = (
            "the rounds' return tracks differ in length, so they cannot be compared."
        )
    else:
        matrix = np.column_stack([tracks[t] for t in trials])
        if not np.isfinite(matrix).all():
            errors["returns"] = "a return track holds NaN or infinite values."
        else:
            _fill_statistics(report, trials, matrix, n_blocks, errors)
    report["verdicts"], report["accepted"] = _verdicts(report, thresholds)
    return report


def _fill_statistics(
    report: dict[str, Any],
    trials: list[str],
    matrix: np.ndarray,
    n_blocks: int,
    errors: dict[str, str],
) -> None:
    n_bars, n_trials = matrix.shape
    sharpes = sharpe_ratios(matrix) if n_bars >= 2 else np.full(n_trials, np.nan)
    finite = np.isfinite(sharpes)
    if not finite.any():
        errors["winner"] = "every round's return track is flat (or too short) for a Sharpe ratio."
        return
    winner = int(np.argmax(np.where(finite, sharpes, -np.inf)))
    report["winner_trial"] = trials[winner]
    report["winner_sharpe"] = float(sharpes[winner])
    variance = float(np.var(sharpes[finite], ddof=1)) if finite.sum() >= 2 else float("nan")
    report["trial_sharpe_variance"] = variance if math.isfinite(variance) else None
    skews = stats.skew(matrix, axis=0, bias=False) if n_bars >= 4 else np.full(n_trials, np.nan)
    kurts = (
        stats.kurtosis(matrix, axis=0, fisher=False, bias=False)
        if n_bars >= 4
        else np.full(n_trials, np.nan)
    )
    dsr = np.full(n_trials, np.nan)
    if n_trials < 2:
        errors["deflated_sharpe_probability"] = "needs at least 2 rounds (the number tried)."
    elif n_bars < 4:
        errors["deflated_sharpe_probability"] = f"needs at least 4 bars; got {n_bars}."
    elif not variance > 0:
        errors["deflated_sharpe_probability"] = "the rounds' Sharpe ratios have no variance."
    else:
        for i in np.flatnonzero(finite):
            try:
                dsr[i] = deflated_sharpe_ratio(
                    sharpes[i], n_trials, variance, n_bars, skews[i], kurts[i]
                )
            except ValueError as exc:
                if i == winner:
                    errors["deflated_sharpe_probability"] = str(exc)
        if math.isfinite(dsr[winner]):
            report["deflated_sharpe_probability"] = float(dsr[winner])
    try:
        report["pbo"] = probability_of_backtest_overfitting(matrix, n_blocks)
    except ValueError as exc:
        errors["pbo"] = str(exc)
    report["rounds"] = {
        trial: {
            "sharpe": _finite_or_none(sharpes[i]),
            "deflated_sharpe_probability": _finite_or_none(dsr[i]),
        }
        for i, trial in enumerate(trials)
    }


def _verdicts(
    report: Mapping[str, Any], thresholds: Mapping[str, float]
) -> tuple[dict[str, bool | None], bool | None]:
    verdicts: dict[str, bool | None] = {}
    if "min_deflated_sharpe_probability" in thresholds:
        value = report["deflated_sharpe_probability"]
        limit = thresholds["min_deflated_sharpe_probability"]
        verdicts["deflated_sharpe_probability"] = None if value is None else value >= limit
    if "max_pbo" in thresholds:
        value = report["pbo"]
        verdicts["pbo"] = None if value is None else value <= thresholds["max_pbo"]
    if not verdicts:
        return verdicts, None
    if any(v is False for v in verdicts.values()):
        return verdicts, False
    return verdicts, None if any(v is None for v in verdicts.values()) else True


def markdown_summary(report: Mapping[str, Any]) -> str:
    """The report as a short Markdown page (``acceptance_report.md``)."""
    accepted = {True: "**accepted**", False: "**rejected**", None: "no verdict"}[report["accepted"]]
    lines = [
        "# Walk-forward acceptance report",
        "",
        f"Verdict: {accepted}",
        "",
        "| Statistic | Value | Threshold | Verdict |",
        "| --- | --- | --- | --- |",
        f"| Rounds tried | {report['n_trials']} | | |",
        f"| Bars per round | {report['n_bars']} | | |",
        f"| Winner | `{report['winner_trial']}` | | |",
        f"| Winner Sharpe (per bar) | {_cell(report['winner_sharpe'])} | | |",
        f"| Variance of round Sharpes | {_cell(report['trial_sharpe_variance'])} | | |",
        _row(report, "Deflated Sharpe", "deflated_sharpe_probability", ">=", "min_deflated_sharpe"),
        _row(report, f"PBO ({report['n_blocks']} blocks)", "pbo", "<=", "max_pbo"),
    ]
    if report["errors"]:
        lines += ["", "Not computed:", ""]
        lines += [f"- {name}: {reason}" for name, reason in report["errors"].items()]
    return "\n".join(lines) + "\n"


def _row(report: Mapping[str, Any], label: str, key: str, sign: str, prefix: str) -> str:
    limit = next((v for k, v in report["thresholds"].items() if k.startswith(prefix)), None)
    verdict = report["verdicts"].get(key)
    shown = {True: "pass", False: "fail", None: ""}[verdict]
    bound = "" if limit is None else f"{sign} {limit}"
    return f"| {label} | {_cell(report[key])} | {bound} | {shown} |"


def _cell(value: Any) -> str:
    return "n/a" if value is None else f"{value:.4g}"


def _finite_or_none(value: float) -> float | None:
    return float(value) if math.isfinite(value) else None


def _thresholds(directory: Path, acceptance: Mapping[str, float] | None) -> dict[str, float]:
    if acceptance is None:
        recorded = directory / WALK_FORWARD_JSON
        if not recorded.exists():
            return {}
        acceptance = json.loads(recorded.read_text(encoding="utf-8")).get("acceptance") or {}
    if not isinstance(acceptance, Mapping):
        raise TypeError(
            "The 'acceptance' parameter of acceptance_report must be a dict of thresholds "
            f"{list(THRESHOLDS)}. Got {acceptance!r} instead."
        )
    unknown = sorted(set(acceptance) - set(THRESHOLDS))
    if unknown:
        raise ValueError(
            f"The 'acceptance' parameter of acceptance_report has unknown keys {unknown}; "
            f"accepted keys: {list(THRESHOLDS)}."
        )
    for key, value in acceptance.items():
        if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
            raise ValueError(
                f"The acceptance threshold {key!r} must be a probability in [0, 1]. "
                f"Got {value!r} instead."
            )
    return {key: float(value) for key, value in acceptance.items()}


def _record_on_study(directory: Path, report: Mapping[str, Any]) -> None:
    """Store the verdict as the study attr ``limen:acceptance`` and refresh the study note."""
    from limen.experiment.experiment_source import resolve_experiment

    if not (directory / "metadata.json").is_file():
        return
    try:
        source = resolve_experiment(directory)
        study = source.load_study()
    except (FileNotFoundError, ValueError, KeyError) as exc:
        logger.info("Acceptance report not recorded on a study (%s).", exc)
        return
    summary = {
        key: report[key]
        for key in (
            "winner_trial",
            "winner_sharpe",
            "deflated_sharpe_probability",
            "pbo",
            "thresholds",
            "verdicts",
            "accepted",
            "n_trials",
        )
    }
    study.set_user_attr(ACCEPTANCE_ATTR, summary)
    from limen.adapters.artifacts import save_study_note

    save_study_note(study)
