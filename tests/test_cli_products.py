"""`limen train | predict | status | export | plot`, called in-process."""

from __future__ import annotations

import pandas as pd
import pytest
from PIL import Image

from limen.cli import EXIT_EXPERIMENT, EXIT_OK, EXIT_USAGE, main
from limen.data import synthetic_klines
from limen.experiment import Sensor
from product_experiments import copy_experiment, logreg_experiment, set_trial_user_attr


@pytest.fixture(scope="module")
def experiment(tmp_path_factory):
    return logreg_experiment(tmp_path_factory)


@pytest.fixture(scope="module")
def klines_csv(tmp_path_factory):
    path = tmp_path_factory.mktemp("klines") / "fresh.csv"
    synthetic_klines(n_rows=120, seed=7).to_csv(path, index=False)
    return path


@pytest.fixture(scope="module")
def sensor_file(experiment, tmp_path_factory):
    out = tmp_path_factory.mktemp("sensors")
    assert main(["train", str(experiment.directory), "--best", "1", "--out", str(out)]) == 0
    [path] = out.glob("*.sensor")
    return path


def test_status_prints_states_progress_and_the_best_rounds(experiment, capsys):
    assert main(["status", str(experiment.directory)]) == EXIT_OK
    out = capsys.readouterr().out
    assert "Rounds by state:" in out
    assert "COMPLETE" in out and "20 of 20 (100%)" in out
    assert "ETA: done" in out
    assert "Best 5 rounds by auc (maximize):" in out
    best = experiment.loop.experiment_log.sort_values("auc", ascending=False)["id"].iloc[0]
    assert best[:12] in out


def test_train_saves_one_sensor_file_per_best_round(experiment, sensor_file):
    sensor = Sensor.load(sensor_file)
    log = experiment.loop.experiment_log
    assert sensor.round_id == log.sort_values("auc", ascending=False)["id"].iloc[0]
    assert sensor_file.name == f"sensor-1-{sensor.round_id[:12]}.sensor"


def test_predict_prints_one_csv_row_per_kline(sensor_file, klines_csv, capsys):
    assert main(["predict", str(sensor_file), str(klines_csv)]) == EXIT_OK
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0] == "datetime,prediction,probability,reason"
    assert len(lines) == 1 + 120


def test_predict_writes_the_last_rows_to_a_file(sensor_file, klines_csv, tmp_path):
    out = tmp_path / "predictions.csv"
    assert (
        main(["predict", str(sensor_file), str(klines_csv), "--tail", "3", "--out", str(out)]) == 0
    )
    frame = pd.read_csv(out)
    assert len(frame) == 3 and frame["prediction"].notna().all()


def test_train_refuses_a_round_that_does_not_reproduce(experiment, tmp_path, capsys):
    copy = copy_experiment(experiment, tmp_path / "copy")
    best = experiment.loop.experiment_log.sort_values("auc", ascending=False).iloc[0]
    set_trial_user_attr(copy, int(best["_round_index"]), "accuracy", 0.01)
    code = main(["train", str(copy), "--id", best["id"], "--out", str(tmp_path / "out")])
    assert code == EXIT_EXPERIMENT
    err = capsys.readouterr().err
    assert "ReconstructionError" in err and "accuracy: stored=0.01" in err
    assert not (tmp_path / "out").exists()


def test_predict_refuses_a_tampered_sensor_file(sensor_file, klines_csv, tmp_path, capsys):
    tampered = tmp_path / "tampered.sensor"
    data = bytearray(sensor_file.read_bytes())
    data[-50] ^= 0xFF
    tampered.write_bytes(bytes(data))
    assert main(["predict", str(tampered), str(klines_csv)]) == EXIT_USAGE
    assert "changed after it was saved" in capsys.readouterr().err


def test_signed_sensor_files_use_a_key_from_the_environment(
    experiment, klines_csv, tmp_path, monkeypatch
):
    monkeypatch.setenv("SENSOR_KEY", "s3cret")
    out = tmp_path / "signed"
    args = ["train", str(experiment.directory), "--best", "1", "--out", str(out)]
    assert main([*args, "--train-split-only", "--key-env", "SENSOR_KEY"]) == EXIT_OK
    [path] = out.glob("*.sensor")
    assert main(["predict", str(path), str(klines_csv), "--key-env", "SENSOR_KEY"]) == EXIT_OK
    assert main(["predict", str(path), str(klines_csv)]) == EXIT_USAGE


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_export_writes_the_log_in_the_chosen_format(experiment, tmp_path, fmt):
    out = tmp_path / f"log.{fmt}"
    code = main(["export", str(experiment.directory), "--format", fmt, "--out", str(out)])
    assert code == EXIT_OK
    frame = pd.read_csv(out) if fmt == "csv" else pd.read_parquet(out)
    assert len(frame) == 20


def test_plot_writes_png_files(experiment, tmp_path, capsys):
    assert main(["plot", str(experiment.directory), "--out", str(tmp_path)]) == EXIT_OK
    pngs = sorted(path.stem for path in tmp_path.glob("*.png"))
    assert pngs == ["optimization_history", "parallel_coordinate", "param_importances", "slice"]
    for path in tmp_path.glob("*.png"):
        with Image.open(path) as image:
            assert image.format == "PNG"


def test_a_missing_experiment_directory_is_a_usage_error(tmp_path, capsys):
    assert main(["status", str(tmp_path / "nowhere")]) == EXIT_USAGE
    assert "does not exist" in capsys.readouterr().err


def test_train_without_a_selection_is_a_usage_error(experiment, tmp_path, capsys):
    assert main(["train", str(experiment.directory), "--out", str(tmp_path)]) == EXIT_USAGE
    assert capsys.readouterr().err.startswith("limen train: error: one of the arguments")
