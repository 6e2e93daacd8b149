"""optuna-dashboard on Limen studies, in-process: the dashboard's WSGI app, no socket.

The module's experiment is a real five-round ``logreg_binary`` run with ``save_artifacts=True``:
each round's predictions and model card are uploaded while its trial is still RUNNING.
"""

from __future__ import annotations

import io
import json
import socket
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from wsgiref.util import setup_testing_defaults

import numpy as np
import optuna
import pandas as pd
import pytest
from optuna.exceptions import UpdateFinishedTrialError
from optuna.trial import TrialState

from children import start_script
from limen.adapters.artifacts import (
    MODEL_CARD_JSON,
    PREDICTIONS_CSV,
    build_model_card,
    study_note,
    upload_round_artifacts,
)
from limen.adapters.dashboard import DashboardError, create_app, resolve_target, serve
from limen.adapters.storage import default_storage_url
from limen.cli import main
from limen.experiment.experiment_core import UniversalExperimentLoop
from limen.sfd.foundational_sfd import logreg_binary

pytest.importorskip("optuna_dashboard", reason="optuna-dashboard is not installed")

ROUNDS = 5
SCALER_TOKENS = {
    "sklearn.preprocessing.StandardScaler",
    "sklearn.preprocessing.RobustScaler",
    "sklearn.preprocessing.MinMaxScaler",
}


def get(app: Callable[..., Any], path: str) -> tuple[int, bytes]:
    """GET ``path`` from a WSGI app in-process; returns the status code and the body."""
    environ: dict[str, Any] = {}
    setup_testing_defaults(environ)
    environ.update(PATH_INFO=path, REQUEST_METHOD="GET", QUERY_STRING="")
    response: dict[str, str] = {}

    def start_response(status: str, headers: list, exc_info: Any = None) -> None:
        response["status"] = status

    body = b"".join(app(environ, start_response))
    return int(response["status"].split()[0]), body


def get_json(app: Callable[..., Any], path: str) -> Any:
    status, body = get(app, path)
    assert status == 200, body[:500]
    return json.loads(body)


@pytest.fixture(scope="module")
def experiment(tmp_path_factory) -> Path:
    """A finished five-round logreg_binary experiment with round artifacts and a study note."""
    directory = tmp_path_factory.mktemp("dashboard") / "demo"
    loop = UniversalExperimentLoop(
        sfd=logreg_binary, test_mode=True, experiment_dir=directory, save_artifacts=True
    )
    loop.run("demo", n_permutations=ROUNDS, seed=7, progress_bar=False)
    return directory


@pytest.fixture(scope="module")
def dashboard(experiment) -> tuple[Callable[..., Any], int]:
    app, study_id = create_app(resolve_target(experiment))
    assert study_id is not None
    return app, study_id


def test_the_study_list_names_the_study_and_its_metric(dashboard):
    app, _ = dashboard
    summaries = get_json(app, "/api/studies")["study_summaries"]
    assert [s["study_name"] for s in summaries] == ["demo"]
    assert summaries[0]["directions"] == ["maximize"]


def test_trial_parameters_are_readable_values_not_codec_indices(dashboard):
    app, study_id = dashboard
    study = get_json(app, f"/api/studies/{study_id}")
    assert len(study["trials"]) == ROUNDS
    for trial in study["trials"]:
        params = {p["name"]: p["param_external_value"] for p in trial["params"]}
        assert params["scaler"] in SCALER_TOKENS
        assert params["vol_estimator"].startswith("limen.sfd.indicators.")
        assert params["class_weight"] in {"None", "balanced"}


def test_the_objective_is_named_and_every_metric_is_a_trial_attribute(dashboard):
    app, study_id = dashboard
    study = get_json(app, f"/api/studies/{study_id}")
    assert study["objective_names"] == ["auc"]
    columns = {attr["key"] for attr in study["union_user_attrs"]}
    assert {"id", "auc", "accuracy", "precision", "recall", "execution_time"} <= columns
    for trial in study["trials"]:
        attrs = {a["key"]: a["value"] for a in trial["user_attrs"]}
        assert float(attrs["auc"]) == pytest.approx(trial["values"][0])
        assert len(attrs["id"]) == 64


def test_each_round_lists_its_predictions_and_model_card(dashboard, experiment):
    app, study_id = dashboard
    study = get_json(app, f"/api/studies/{study_id}")
    lines = (experiment / "round_data.jsonl").read_text().splitlines()
    round_preds = {r["_round_index"]: r["preds"] for r in map(json.loads, lines)}
    for trial in study["trials"]:
        files = {a["filename"]: a for a in trial["artifacts"]}
        assert set(files) == {PREDICTIONS_CSV, MODEL_CARD_JSON}
        assert files[PREDICTIONS_CSV]["mimetype"] == "text/csv"
        base = f"/artifacts/{study_id}/{trial['trial_id']}/"

        status, body = get(app, base + files[PREDICTIONS_CSV]["artifact_id"])
        assert status == 200
        preds = pd.read_csv(io.BytesIO(body))
        assert list(preds.columns) == ["prediction"]
        assert preds["prediction"].tolist() == round_preds[trial["number"]]

        status, body = get(app, base + files[MODEL_CARD_JSON]["artifact_id"])
        assert status == 200
        card = json.loads(body)
        attrs = {a["key"]: a["value"] for a in trial["user_attrs"]}
        assert card["round_id"] == attrs["id"]
        assert card["round_index"] == trial["number"]
        assert card["params"]["scaler"] in SCALER_TOKENS
        assert card["metrics"]["auc"] == pytest.approx(trial["values"][0])


def test_the_study_note_summarises_sfd_objective_strategy_and_space(dashboard):
    app, study_id = dashboard
    note = get_json(app, f"/api/studies/{study_id}")["note"]["body"]
    assert "`limen.sfd.foundational_sfd.logreg_binary`" in note
    assert "maximize `auc`" in note
    assert '"name": "grid"' in note
    assert "| `scaler` | categorical | `sklearn.preprocessing.StandardScaler`" in note
    assert "### Domain mutations" in note


def test_the_note_lists_domain_mutations(experiment):
    study = optuna.load_study(study_name="demo", storage=default_storage_url(experiment))
    note = study_note(study, [{"op": "remove_value", "param": "C", "value": 0.01}, "kept q<=0.5"])
    assert "- op: `remove_value`, param: `C`, value: `0.01`" in note
    assert "- kept q<=0.5" in note


def test_the_dashboard_reader_holds_no_lock_that_blocks_a_writer(experiment, dashboard):
    app, study_id = dashboard
    stop = threading.Event()
    reads: list[int] = []

    def read_repeatedly() -> None:
        while not stop.is_set():
            get(app, f"/api/studies/{study_id}")
            get(app, "/api/studies")
            reads.append(1)

    reader = threading.Thread(target=read_repeatedly)
    reader.start()
    try:
        writer = sqlite3.connect(experiment / "study.db", timeout=0, isolation_level=None)
        try:
            for _ in range(20):
                # timeout=0: any lock held by the reader would fail this at once.
                writer.execute("BEGIN IMMEDIATE")
                writer.execute("UPDATE studies SET study_name = study_name")
                writer.execute("COMMIT")
                time.sleep(0.01)
        finally:
            writer.close()
    finally:
        stop.set()
        reader.join()
    assert reads


def test_an_experiment_directory_opens_the_storage_its_metadata_names(
    storage_url, unique_study_name, tmp_path
):
    directory = tmp_path / "exp"
    loop = UniversalExperimentLoop(
        sfd=logreg_binary, test_mode=True, experiment_dir=directory, storage=storage_url
    )
    loop.run(unique_study_name, n_permutations=2, seed=5, progress_bar=False)
    target = resolve_target(directory)
    assert (target.study_name, target.artifact_dir) == (unique_study_name, directory / "artifacts")
    app, study_id = create_app(target)
    study = get_json(app, f"/api/studies/{study_id}")
    assert study["name"] == unique_study_name
    for trial in study["trials"]:
        params = {p["name"]: p["param_external_value"] for p in trial["params"]}
        assert params["scaler"] in SCALER_TOKENS


LIVE_EXPERIMENT = """
import sys
from limen.experiment.experiment_core import UniversalExperimentLoop
from limen.sfd.foundational_sfd import logreg_binary

loop = UniversalExperimentLoop(sfd=logreg_binary, test_mode=True, experiment_dir=sys.argv[1])
loop.run("live", n_permutations=int(sys.argv[2]), seed=3, progress_bar=False)
"""


@pytest.mark.slow
def test_a_dashboard_beside_a_running_experiment_does_not_disturb_it(tmp_path):
    directory, rounds = tmp_path / "live", 30
    experiment = start_script(LIVE_EXPERIMENT, str(directory), str(rounds), cwd=tmp_path)
    seen: list[int] = []
    try:
        app = study_id = None
        while experiment.poll() is None:
            if app is None:
                try:
                    app, study_id = create_app(resolve_target(directory))
                except DashboardError:
                    time.sleep(0.05)
                continue
            seen.append(len(get_json(app, f"/api/studies/{study_id}")["trials"]))
            get_json(app, "/api/studies")
        experiment.wait(timeout=120)
    finally:
        if experiment.poll() is None:
            experiment.kill()
    stderr = experiment.stderr
    assert experiment.returncode == 0, stderr
    assert "locked" not in stderr
    # The dashboard read the study while rounds were being written, and saw them arrive.
    assert any(0 < n < rounds for n in seen) and seen == sorted(seen), seen
    study = optuna.load_study(study_name="live", storage=default_storage_url(directory))
    assert [t.state for t in study.trials] == [TrialState.COMPLETE] * rounds
    results = pd.read_csv(directory / "results.csv")
    assert len(results) == rounds


# ----------------------------------------------------------------- artifacts, unit level


@pytest.fixture
def running_trial(tmp_path) -> tuple[optuna.Study, int]:
    study = optuna.create_study(storage=f"sqlite:///{tmp_path / 'study.db'}", study_name="s")
    return study, study.ask()._trial_id


def read_artifact(directory: Path, study: optuna.Study, trial_id: int, name: str) -> bytes:
    trial = next(t for t in study.get_trials() if t._trial_id == trial_id)
    artifact_ids = [
        json.loads(meta)["artifact_id"]
        for key, meta in trial.system_attrs.items()
        if key.startswith("artifacts:") and json.loads(meta)["filename"] == name
    ]
    assert len(artifact_ids) == 1
    return (directory / "artifacts" / artifact_ids[0]).read_bytes()


def test_predictions_keep_a_meaningful_index(tmp_path, running_trial):
    study, trial_id = running_trial
    index = pd.date_range("2024-01-01", periods=3, freq="h", name="datetime")
    preds = pd.Series([0.1, 0.7, 0.4], index=index, name="proba")
    upload_round_artifacts(study, trial_id, tmp_path, preds, {"round_id": "x"})
    frame = pd.read_csv(io.BytesIO(read_artifact(tmp_path, study, trial_id, PREDICTIONS_CSV)))
    assert list(frame.columns) == ["datetime", "proba"]
    assert frame["proba"].tolist() == [0.1, 0.7, 0.4]


def test_two_dimensional_predictions_become_one_column_each(tmp_path, running_trial):
    study, trial_id = running_trial
    upload_round_artifacts(study, trial_id, tmp_path, np.eye(2), {})
    frame = pd.read_csv(io.BytesIO(read_artifact(tmp_path, study, trial_id, PREDICTIONS_CSV)))
    assert list(frame.columns) == ["prediction_0", "prediction_1"]


def test_model_card_values_json_cannot_hold_are_readable_tokens(tmp_path, running_trial):
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    study, trial_id = running_trial
    card = build_model_card(
        round_id="abc",
        round_index=0,
        sfd="my_sfd",
        round_params={"scaler": StandardScaler, "C": 1.0, "_experiment_details": {}},
        metrics={"auc": np.float64(0.75), "precision": float("nan")},
        model=LogisticRegression(C=1.0),
    )
    uploaded = upload_round_artifacts(study, trial_id, tmp_path, None, card)
    assert list(uploaded) == [MODEL_CARD_JSON]
    stored = json.loads(read_artifact(tmp_path, study, trial_id, MODEL_CARD_JSON))
    assert stored["params"] == {"scaler": "sklearn.preprocessing.StandardScaler", "C": 1.0}
    assert stored["metrics"] == {"auc": 0.75, "precision": "nan"}
    assert stored["model"]["class"] == "sklearn.linear_model.LogisticRegression"
    assert stored["model"]["params"]["C"] == 1.0


def test_uploading_after_the_outcome_is_stored_fails_loudly(tmp_path, running_trial):
    study, trial_id = running_trial
    study.tell(study.trials[0].number, 1.0)
    with pytest.raises(UpdateFinishedTrialError):
        upload_round_artifacts(study, trial_id, tmp_path, [1, 2], {})


def test_predictions_of_more_than_two_dimensions_are_refused(tmp_path, running_trial):
    study, trial_id = running_trial
    with pytest.raises(ValueError, match="1-D or 2-D"):
        upload_round_artifacts(study, trial_id, tmp_path, np.zeros((2, 2, 2)), {})


# ------------------------------------------------------------------------- bad input


def test_a_directory_without_a_study_is_a_clear_error(tmp_path):
    with pytest.raises(DashboardError, match="holds no Limen study"):
        resolve_target(tmp_path)


def test_a_missing_directory_is_a_clear_error(tmp_path):
    with pytest.raises(DashboardError, match="does not exist"):
        resolve_target(tmp_path / "nowhere")


def test_a_url_to_a_missing_sqlite_file_is_refused_without_creating_it(tmp_path):
    target = resolve_target(f"sqlite:///{tmp_path / 'none.db'}")
    with pytest.raises(DashboardError, match="No study database"):
        create_app(target)
    assert not (tmp_path / "none.db").exists()


def test_a_url_of_an_unsupported_database_is_refused():
    with pytest.raises(DashboardError, match="SQLite, PostgreSQL or MySQL"):
        resolve_target("redis://localhost:6379")


def test_a_storage_with_no_study_is_a_clear_error(tmp_path, sqlite_url):
    with pytest.raises(DashboardError, match="holds no study"):
        create_app(resolve_target(sqlite_url))


def test_an_unknown_study_name_lists_the_studies_there(experiment):
    with pytest.raises(DashboardError, match=r"No study named 'other'.*Its studies: demo"):
        create_app(resolve_target(experiment, study_name="other"))


def test_a_busy_port_is_a_clear_error(experiment):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(DashboardError, match=f"Port {port} on 127.0.0.1 is already in use"):
            serve(resolve_target(experiment), port=port)


def test_the_command_exits_2_on_a_directory_without_a_study(tmp_path, capsys):
    assert main(["dashboard", str(tmp_path)]) == 2
    assert "holds no Limen study" in capsys.readouterr().err


def test_the_command_exits_2_on_a_busy_port(experiment, capsys):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        assert main(["dashboard", str(experiment), "--port", str(port)]) == 2
    assert "already in use" in capsys.readouterr().err


@pytest.mark.parametrize("argv", [["dashboard"], ["dashboard", ".", "--port", "http"]])
def test_the_command_exits_2_on_a_malformed_command_line(argv, capsys):
    assert main(argv) == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1
