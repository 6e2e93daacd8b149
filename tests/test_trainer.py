"""Trainer: rebuild rounds from the study, prove they reproduce, refit them as Sensors."""

from __future__ import annotations

import json
import math
import os
import sys
from pathlib import Path

import optuna
import pytest

from limen.adapters.storage import default_storage_url
from limen.data import synthetic_klines
from limen.experiment import ReconstructionError, Trainer, UniversalExperimentLoop
from limen.experiment.identity import data_fingerprint
from limen.experiment.trainer.trainer import compare_metrics
from limen.sfd.foundational_sfd import logreg_binary, random_binary
from limen.sfd.loader import SFDSourceMismatchError, load_sfd
from product_experiments import (
    copy_experiment,
    logreg_experiment,
    set_study_user_attr,
    set_trial_user_attr,
)


@pytest.fixture(scope="module")
def experiment(tmp_path_factory):
    return logreg_experiment(tmp_path_factory)


@pytest.fixture(scope="module")
def trained(experiment):
    trainer = Trainer(experiment.directory)
    ids = trainer.best(2)
    return trainer, ids, trainer.train(ids)


def test_best_ranks_completed_rounds_by_the_study_objective(experiment, trained):
    _, ids, _ = trained
    log = experiment.loop.experiment_log
    expected = log[log["state"] == "COMPLETE"].sort_values("auc", ascending=False)["id"]
    assert ids == list(expected[:2])


def test_best_ranks_by_another_metric_in_the_given_direction(experiment, trained):
    trainer, _, _ = trained
    log = experiment.loop.experiment_log
    lowest_fpr = log.sort_values("fpr", kind="mergesort")["id"].iloc[0]
    assert trainer.best(1, "fpr", "minimize") == [lowest_fpr]


def test_best_asks_for_a_direction_for_a_metric_that_is_not_the_objective(trained):
    trainer, _, _ = trained
    with pytest.raises(ValueError, match=r"'direction'.*'fpr'"):
        trainer.best(1, "fpr")


def test_the_best_two_logreg_rounds_reproduce_and_become_sensors(experiment, trained):
    _, ids, sensors = trained
    assert [s.round_id for s in sensors] == ids
    study = experiment.loop.study
    stored = {t.user_attrs["id"]: t.user_attrs for t in study.trials}
    for sensor in sensors:
        assert sensor.metrics["auc"] == stored[sensor.round_id]["auc"]
        assert sensor.round_params["scaler"] in logreg_binary.params()["scaler"]


def test_pass_two_refits_on_all_the_data(trained):
    _, _, sensors = trained
    provenance = sensors[0].provenance
    assert provenance["trained_on"] == "all data, split (1, 0, 0)"
    # Split (8, 1, 2) trains on 8/11 of the rows; the refit on all but the warm-up/target rows.
    assert provenance["training_rows"] > 0.95 * provenance["data_rows"]


def test_a_test_mode_study_is_rebuilt_on_the_test_data_source(trained):
    trainer, _, _ = trained
    assert len(trainer.data) == 2000


def test_without_refit_the_sensor_keeps_the_model_of_the_run(trained):
    trainer, ids, _ = trained
    [sensor] = trainer.train(ids[:1], refit=False)
    assert sensor.provenance["trained_on"] == "the run's train split"


def test_a_stochastic_model_does_not_reproduce(tmp_path):
    loop = UniversalExperimentLoop(
        sfd=random_binary, test_mode=True, experiment_dir=tmp_path / "random"
    )
    loop.run("random", n_permutations=3, seed=1, progress_bar=False)
    trainer = Trainer(tmp_path / "random")
    # Declared stochastic, compared within 1%: fresh random scores still move its metrics
    # by several percent, so every round is refused.
    with pytest.raises(ReconstructionError, match="declared stochastic") as error:
        trainer.train(list(loop.experiment_log["id"]))
    assert error.value.round_id in set(loop.experiment_log["id"])
    assert error.value.mismatches


def test_a_tampered_stored_metric_is_named_in_the_error(experiment, trained, tmp_path):
    _, ids, _ = trained
    copy = copy_experiment(experiment, tmp_path / "copy")
    trainer = Trainer(copy)
    trial = next(t for t in trainer.study.trials if t.user_attrs["id"] == ids[0])
    set_trial_user_attr(copy, trial.number, "auc", 0.99)

    with pytest.raises(ReconstructionError) as error:
        Trainer(copy).train([ids[0]])
    [mismatch] = error.value.mismatches
    assert mismatch.metric == "auc" and mismatch.stored == 0.99
    assert mismatch.rebuilt == trial.user_attrs["auc"]
    assert f"Round {ids[0]} (trial {trial.number})" in str(error.value)
    assert "auc: stored=0.99, rebuilt=" in str(error.value)


def test_other_data_are_detected_by_the_fingerprint_the_study_recorded(
    experiment, trained, tmp_path
):
    trainer, ids, _ = trained
    copy = copy_experiment(experiment, tmp_path / "copy")
    set_study_user_attr(copy, "limen:data_fingerprint", data_fingerprint(trainer.data))
    other = synthetic_klines(n_rows=2000, seed=5)
    with pytest.raises(ReconstructionError) as error:
        Trainer(copy, data=other).train(ids[:1])
    assert error.value.causes[0].startswith("detected: the data differ from the run's")


def test_an_edited_sfd_is_detected_by_its_source_hash(tmp_path, monkeypatch):
    directory = tmp_path / "edited"
    directory.mkdir()
    source = Path(logreg_binary.__file__).read_text(encoding="utf-8")
    sfd_file = directory / "edited_sfd.py"
    sfd_file.write_text(source, encoding="utf-8")
    sfd = load_sfd(str(sfd_file))
    loop = UniversalExperimentLoop(sfd=sfd, test_mode=True, experiment_dir=directory)
    loop.run("edited", n_permutations=1, seed=3, progress_bar=False)

    edited = source.replace(".set_split_config(8, 1, 2)", ".set_split_config(6, 1, 2)")
    assert edited != source
    sfd_file.write_text(edited, encoding="utf-8")
    monkeypatch.delitem(sys.modules, "edited_sfd")
    edited_sfd = load_sfd(str(sfd_file))

    with pytest.raises(SFDSourceMismatchError, match=r"recorded .*\(--force, or force=True\)"):
        Trainer(directory, sfd=edited_sfd)
    with pytest.raises(ReconstructionError) as error:
        Trainer(directory, sfd=edited_sfd, force=True).train(list(loop.experiment_log["id"]))
    assert error.value.causes[0].startswith("detected: the SFD was edited since the run")
    assert str(sfd_file) in str(error.value)


def test_an_sfd_edited_within_the_second_runs_its_new_code(tmp_path, monkeypatch):
    # Python reuses cached bytecode while a file keeps its size and modification second: an SFD
    # file is always compiled from its current source, so the code that runs is the one hashed.
    monkeypatch.setattr(sys, "dont_write_bytecode", False)
    sfd = (
        "def params():\n    return {'x': [1, 2]}\n\n"
        "def prep(data, round_params):\n    return {}\n\n"
        "def model(data, round_params):\n    return {'score': SPLIT}\n\n"
        "SPLIT = 8\n"
    )
    sfd_file = tmp_path / "quick_edit_sfd.py"
    sfd_file.write_text(sfd, encoding="utf-8")
    stamp = sfd_file.stat().st_mtime_ns
    assert load_sfd(str(sfd_file)).SPLIT == 8
    sfd_file.write_text(sfd.replace("SPLIT = 8", "SPLIT = 6"), encoding="utf-8")
    os.utime(sfd_file, ns=(stamp, stamp))
    monkeypatch.delitem(sys.modules, "quick_edit_sfd")
    assert load_sfd(str(sfd_file)).SPLIT == 6
    assert not (tmp_path / "__pycache__").exists()


def test_an_unknown_round_id_is_a_clear_error(trained):
    trainer, _, _ = trained
    with pytest.raises(ValueError, match=r"Round id '0{64}' is not a round of study 'logreg'"):
        trainer.train(["0" * 64])


def test_a_unique_id_prefix_selects_its_round(trained):
    trainer, ids, _ = trained
    [sensor] = trainer.train([ids[0][:12]], refit=False)
    assert sensor.round_id == ids[0]


def test_a_round_that_failed_cannot_be_trained(tmp_path):
    loop = UniversalExperimentLoop(
        sfd=logreg_binary, data=synthetic_klines(n_rows=40), experiment_dir=tmp_path / "short"
    )
    loop.run("short", n_permutations=1, seed=0, progress_bar=False)
    failed = loop.experiment_log["id"].iloc[0]
    trainer = Trainer(tmp_path / "short", data=synthetic_klines(n_rows=40))
    with pytest.raises(
        ValueError, match=r"\(trial 0\) ended FAIL: \w+Error: .*Only completed rounds"
    ):
        trainer.train([failed])


def _limen_study(tmp_path: Path, sfd_module: str) -> str:
    url = default_storage_url(tmp_path)
    study = optuna.create_study(storage=url, study_name="empty")
    study.set_user_attr("limen:sfd_module", sfd_module)
    study.set_user_attr("limen:objective", [["auc", "maximize"]])
    return url


def test_a_study_without_rounds_has_no_best_round(tmp_path):
    url = _limen_study(tmp_path, logreg_binary.__name__)
    with pytest.raises(ValueError, match=r"no completed round with a numeric 'auc'.*run the"):
        Trainer(url, "empty").best(1)


def test_an_sfd_module_that_cannot_be_imported_is_a_clear_error(tmp_path):
    url = _limen_study(tmp_path, "no_such_package.my_sfd")
    with pytest.raises(ImportError, match=r"'no_such_package.my_sfd'.*PYTHONPATH.*sfd="):
        Trainer(url, "empty")


def test_a_storage_with_a_password_must_be_passed_as_a_url(tmp_path):
    metadata = {"study_name": "x", "storage": "postgresql+psycopg://me:***@db.example/limen"}
    (tmp_path / "metadata.json").write_text(json.dumps(metadata), encoding="utf-8")
    with pytest.raises(ValueError, match=r"password.*Pass the storage URL itself"):
        Trainer(tmp_path)


def test_deterministic_metrics_match_within_one_millionth():
    stored = {"auc": 0.5, "accuracy": 0.6}
    assert compare_metrics(stored, {"auc": 0.5000009, "accuracy": 0.6}) == []
    [mismatch] = compare_metrics(stored, {"auc": 0.501, "accuracy": 0.6})
    assert (mismatch.metric, mismatch.stored, mismatch.rebuilt) == ("auc", 0.5, 0.501)


def test_stochastic_metrics_match_within_one_percent_relative():
    assert (
        compare_metrics({"auc": 0.5, "pnl": 200.0}, {"auc": 0.509, "pnl": 201.9}, stochastic=True)
        == []
    )
    mismatches = compare_metrics(
        {"auc": 0.5, "pnl": 200.0}, {"auc": 0.52, "pnl": 203.0}, stochastic=True
    )
    assert [m.metric for m in mismatches] == ["auc", "pnl"]


def test_nan_matches_nan_and_a_missing_metric_is_a_mismatch():
    assert compare_metrics({"fpr": math.nan, "note": "text"}, {"fpr": math.nan}) == []
    [mismatch] = compare_metrics({"auc": 0.5}, {})
    assert mismatch.rebuilt is None
