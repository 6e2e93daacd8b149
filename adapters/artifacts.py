"""What a Limen study shows in optuna-dashboard beyond trials: round artifacts and the study note.

Round artifacts (the predictions as CSV, a model card as JSON) go through Optuna's artifact API
into the experiment's ``artifacts/`` folder (an ``optuna.artifacts.FileSystemArtifactStore``), so
the dashboard lists them under each trial and serves them for download. The study note is
markdown kept by ``optuna_dashboard.save_note``: what ran (SFD, objective, strategy) and over which
space, rebuilt from the study's ``limen:*`` attributes so the study explains itself.
"""

from __future__ import annotations

import importlib
import json
import os
import sys
import tempfile
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import pandas as pd
from optuna.artifacts import FileSystemArtifactStore, upload_artifact
from optuna.storages import BaseStorage

from limen.experiment import study_keys as keys
from limen.experiment.identity import value_token
from limen.experiment.study_record import StudyRecord
from limen.utils.values import jsonable

__all__ = [
    "ARTIFACTS_DIR",
    "MODEL_CARD_JSON",
    "PREDICTIONS_CSV",
    "VALUES_SHOWN",
    "artifact_dir",
    "build_model_card",
    "save_study_note",
    "study_note",
    "upload_round_artifacts",
]

ARTIFACTS_DIR = "artifacts"
PREDICTIONS_CSV = "predictions.csv"
MODEL_CARD_JSON = "model_card.json"
VALUES_SHOWN = 12


def artifact_dir(experiment_dir: str | os.PathLike[str]) -> Path:
    """The folder of the experiment's artifact store: ``<experiment_dir>/artifacts``."""
    return Path(experiment_dir) / ARTIFACTS_DIR


def upload_round_artifacts(
    study_or_storage: optuna.Study | BaseStorage,
    trial_id: int,
    experiment_dir: str | os.PathLike[str],
    preds: Any,
    model_card: Mapping[str, Any],
) -> dict[str, str]:
    """Attach a round's predictions (CSV) and model card (JSON) to its trial.

    Call it while the trial is still RUNNING, before its outcome is stored: Optuna refuses
    attributes (and so artifacts) on a finished trial.

    Args:
        study_or_storage: the study, or the storage it lives in.
        trial_id: the storage's id of the round's trial (not its number).
        experiment_dir: the experiment directory; files land in its ``artifacts/``.
        preds: the round's predictions: an array, a list, a pandas Series or DataFrame, or a
            dict of equal-length columns; None uploads the model card alone.
        model_card: JSON-able facts about the round (see ``build_model_card``); other values
            are written as their readable tokens.

    Returns:
        The artifact id of each uploaded file, by file name.
    """
    storage = (
        study_or_storage._storage
        if isinstance(study_or_storage, optuna.Study)
        else study_or_storage
    )
    trial = storage.get_trial(trial_id)
    folder = artifact_dir(experiment_dir)
    folder.mkdir(parents=True, exist_ok=True)
    store = FileSystemArtifactStore(folder)
    uploaded: dict[str, str] = {}
    with tempfile.TemporaryDirectory(prefix="limen-artifacts-") as scratch:
        files: list[Path] = []
        if preds is not None:
            csv_path = Path(scratch) / PREDICTIONS_CSV
            _write_predictions(preds, csv_path)
            files.append(csv_path)
        card_path = Path(scratch) / MODEL_CARD_JSON
        card = json.dumps(jsonable(dict(model_card)), indent=2, allow_nan=False)
        card_path.write_text(card, encoding="utf-8")
        files.append(card_path)
        for path in files:
            uploaded[path.name] = upload_artifact(
                artifact_store=store, file_path=str(path), study_or_trial=trial, storage=storage
            )
    return uploaded


def build_model_card(
    *,
    round_id: str,
    round_index: int,
    sfd: str,
    round_params: Mapping[str, Any],
    metrics: Mapping[str, Any],
    model: Any = None,
) -> dict[str, Any]:
    """The model card of a round: where it came from, its parameters, metrics and model.

    Parameter values are readable tokens (``sklearn.preprocessing.StandardScaler``); the model is
    its class and, for scikit-learn style estimators, its ``get_params()``.
    """
    card: dict[str, Any] = {
        "round_id": round_id,
        "round_index": round_index,
        "sfd": sfd,
        "params": {k: value_token(v) for k, v in round_params.items() if not k.startswith("_")},
        "metrics": dict(metrics),
        "created_at": datetime.now(UTC).isoformat(),
        "versions": {"optuna": optuna.__version__},
    }
    if model is not None:
        card["model"] = {"class": value_token(type(model))}
        get_params = getattr(model, "get_params", None)
        if callable(get_params):
            params = get_params(deep=False)
            card["model"]["params"] = {k: value_token(v) for k, v in params.items()}
    return card


def study_note(study: optuna.Study, mutations: Sequence[str | Mapping[str, Any]] = ()) -> str:
    """The study note (markdown): SFD, objective, strategy, parameter space and its mutations.

    Built from the study's ``limen:*`` user attributes, so it can be rebuilt from the study
    alone; ``mutations`` lists the domain changes made so far (text, or dicts of their fields).
    """
    attrs = study.user_attrs
    record = StudyRecord.from_attrs(attrs)
    lines = [f"## Limen experiment `{study.study_name}`", ""]
    lines += _overview(record)
    lines += ["", "### Parameter space", ""]
    lines += _space_table(record.codec or {})
    context = record.contexts
    if context:
        lines += ["", "### Context parameters (constant)", ""]
        lines += [f"- `{name}` = `{_cell(value)}`" for name, value in context.items()]
    lines += ["", "### Domain mutations", ""]
    lines += [f"- {_mutation(m)}" for m in mutations] or ["None: the space is as declared."]
    acceptance = attrs.get(keys.ACCEPTANCE)
    if acceptance:
        lines += ["", "### Acceptance (walk-forward)", "", *_acceptance(acceptance)]
    return "\n".join(lines) + "\n"


def save_study_note(study: optuna.Study, mutations: Sequence[str | Mapping[str, Any]] = ()) -> str:
    """Write ``study_note(study, mutations)`` as the study's note in optuna-dashboard.

    Each call stores a new version of the note (the dashboard keeps the latest); call it when
    the study is created and again after each domain mutation. Returns the markdown written.
    """
    body = study_note(study, mutations)
    _dashboard().save_note(study, body)
    return body


def _dashboard() -> Any:
    """``optuna_dashboard``, imported on first use (its web stack takes seconds to import) and on
    a thread of its own: the dashboard's probes for optional packages keep the traceback of each
    failed import for the life of the process, and with it every frame of the importing stack.
    Imported from a run, those frames would keep the run, its storage and its data alive; a
    short-lived thread's stack holds nothing of the caller."""
    module = sys.modules.get("optuna_dashboard")
    if module is None:
        with ThreadPoolExecutor(max_workers=1) as pool:
            module = pool.submit(importlib.import_module, "optuna_dashboard").result()
    return module


def _acceptance(summary: Mapping[str, Any]) -> list[str]:
    verdict = {True: "accepted", False: "rejected"}.get(summary.get("accepted"), "no verdict")
    return [
        f"- **Verdict**: {verdict} ({summary.get('n_trials')} rounds tried)",
        f"- **Winner**: `{summary.get('winner_trial')}`",
        f"- **Deflated Sharpe**: {summary.get('deflated_sharpe_probability')}",
        f"- **PBO**: {summary.get('pbo')}",
        f"- **Thresholds**: `{json.dumps(summary.get('thresholds') or {}, sort_keys=True)}`",
    ]


def _overview(record: StudyRecord) -> list[str]:
    lines = [f"- **SFD**: `{record.sfd_module or 'unknown'}`"]
    if record.objective:
        goals = ", ".join(f"{direction} `{metric}`" for metric, direction in record.objective)
        lines.append(f"- **Objective**: {goals}")
    else:
        lines.append("- **Objective**: the first numeric metric (none was set)")
    if record.strategy:
        lines.append(f"- **Strategy**: `{json.dumps(record.strategy, sort_keys=True)}`")
    if record.n_permutations is not None:
        lines.append(f"- **Target**: {record.n_permutations} rounds")
    if record.limen_version is not None:
        test_mode = " (test mode)" if record.test_mode else ""
        lines.append(f"- **Limen**: {record.limen_version}{test_mode}")
    return lines


def _space_table(codec: Mapping[str, Mapping[str, Any]]) -> list[str]:
    if not codec:
        return ["Not recorded in the study."]
    rows = ["| Parameter | Encoding | Values |", "| --- | --- | --- |"]
    for name, entry in codec.items():
        tokens = entry.get("tokens")
        if tokens is None:
            shown = "continuous range"
        else:
            shown = ", ".join(f"`{_cell(t)}`" for t in tokens[:VALUES_SHOWN])
            if len(tokens) > VALUES_SHOWN:
                shown += f" … ({len(tokens)} values)"
        rows.append(f"| `{_cell(name)}` | {entry.get('kind', '?')} | {shown} |")
    return rows


def _mutation(mutation: str | Mapping[str, Any]) -> str:
    if isinstance(mutation, Mapping):
        return ", ".join(f"{key}: `{_cell(value_token(v))}`" for key, v in mutation.items())
    return str(mutation)


def _cell(value: Any) -> str:
    """``value`` as text that cannot break a markdown table or code span."""
    return str(value).replace("|", "\\|").replace("`", "'")


def _write_predictions(preds: Any, path: Path) -> None:
    if isinstance(preds, pd.Series):
        preds = preds.to_frame(name=preds.name if preds.name is not None else "prediction")
    elif isinstance(preds, Mapping):
        preds = pd.DataFrame({str(k): np.asarray(v).ravel() for k, v in preds.items()})
    elif not isinstance(preds, pd.DataFrame):
        array = np.asarray(preds)
        if array.ndim > 2:
            raise ValueError(
                "The 'preds' of upload_round_artifacts must be 1-D or 2-D (one row per "
                f"prediction). Got an array of shape {array.shape} instead."
            )
        if array.ndim < 2:
            array = array.reshape(-1, 1)
        width = array.shape[1]
        names = ["prediction"] if width == 1 else [f"prediction_{i}" for i in range(width)]
        preds = pd.DataFrame(array, columns=names)
    # A meaningful index (timestamps, ids) is part of the predictions; a plain 0..n-1 is not.
    keep_index = not isinstance(preds.index, pd.RangeIndex)
    preds.to_csv(path, index=keep_index)
