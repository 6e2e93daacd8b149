"""Sensor: predictions on new klines, provenance, and a single integrity-checked file."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from limen.data import synthetic_klines
from limen.experiment import Sensor, Trainer
from limen.experiment.trainer import SensorIntegrityError
from product_experiments import logreg_experiment

FRESH_ROWS = 300


@pytest.fixture(scope="module")
def sensors(tmp_path_factory):
    experiment = logreg_experiment(tmp_path_factory)
    trainer = Trainer(experiment.directory)
    return trainer.train(trainer.best(2))


@pytest.fixture(scope="module")
def fresh():
    return synthetic_klines(n_rows=FRESH_ROWS, seed=7)


def test_sensors_predict_every_row_of_fresh_klines(sensors, fresh):
    for sensor in sensors:
        result = sensor.predict(fresh)
        assert list(result.columns) == ["datetime", "prediction", "probability", "reason"]
        assert result.index.equals(fresh.index)
        predicted = result[result["reason"].isna()]
        assert len(predicted) > 0.8 * FRESH_ROWS
        assert set(predicted["prediction"]) <= {0, 1}
        assert predicted["probability"].between(0, 1).all()


def test_predictions_agree_with_the_probability_of_the_positive_class(sensors, fresh):
    result = sensors[0].predict(fresh).dropna(subset=["prediction"])
    assert ((result["probability"] > 0.5) == (result["prediction"] == 1)).all()


def test_rows_without_enough_history_are_null_with_a_warm_up_reason(sensors, fresh):
    result = sensors[0].predict(fresh)
    first = result["reason"].isna().to_numpy().argmax()
    assert first > 0
    warm_up = result.iloc[:first]
    assert (warm_up["reason"] == "warm-up").all()
    assert warm_up["prediction"].isna().all() and warm_up["probability"].isna().all()


def test_too_few_rows_give_only_warm_up_rows_not_an_exception(sensors, fresh):
    result = sensors[0].predict(fresh.head(5))
    assert list(result["reason"]) == ["warm-up"] * 5


def test_rows_with_missing_inputs_are_null_features(sensors, fresh):
    gappy = fresh.copy()
    gappy.loc[200, ["open", "high", "low", "close"]] = np.nan
    result = sensors[0].predict(gappy)
    assert result.loc[200, "reason"] == "null-features"
    assert pd.isna(result.loc[200, "prediction"])
    assert result.loc[FRESH_ROWS - 1, "reason"] is None


def test_provenance_names_sfd_study_trial_versions_and_data(sensors):
    provenance = sensors[0].provenance
    assert provenance["sfd_module"] == "limen.sfd.foundational_sfd.logreg_binary"
    assert provenance["sfd_source_hash"] == provenance["sfd_source_hash_at_run"]
    assert len(provenance["sfd_source_hash"]) == 64
    assert provenance["study_name"] == "logreg"
    assert provenance["storage"].startswith("sqlite:///")
    assert isinstance(provenance["trial_number"], int)
    assert set(provenance["versions"]) == {"limen", "optuna", "scikit-learn", "numpy", "pandas"}
    assert len(provenance["data_fingerprint"]) == 64
    assert provenance["created_at"]


def test_a_saved_sensor_predicts_identically_in_a_new_process(sensors, fresh, tmp_path):
    path = sensors[0].save(tmp_path / "best.sensor")
    out = tmp_path / "predictions.pkl"
    script = (
        "import sys\n"
        "from limen.data import synthetic_klines\n"
        "from limen.experiment import Sensor\n"
        "sensor = Sensor.load(sys.argv[1])\n"
        f"sensor.predict(synthetic_klines(n_rows={FRESH_ROWS}, seed=7)).to_pickle(sys.argv[2])\n"
    )
    subprocess.run([sys.executable, "-c", script, str(path), str(out)], check=True)
    pd.testing.assert_frame_equal(pd.read_pickle(out), sensors[0].predict(fresh), check_exact=True)


def test_a_loaded_sensor_keeps_round_params_metrics_and_provenance(sensors, tmp_path):
    loaded = Sensor.load(sensors[1].save(tmp_path / "second.sensor"))
    assert loaded.round_params == sensors[1].round_params
    assert loaded.metrics == sensors[1].metrics
    assert loaded.provenance == sensors[1].provenance


def test_a_tampered_sensor_file_is_refused(sensors, tmp_path):
    path = sensors[0].save(tmp_path / "best.sensor")
    data = bytearray(path.read_bytes())
    data[-100] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(SensorIntegrityError, match="changed after it was saved"):
        Sensor.load(path)


def test_an_edited_header_is_refused_too(sensors, tmp_path):
    path = sensors[0].save(tmp_path / "best.sensor")
    text = path.read_bytes().replace(b'"auc": 0.', b'"auc": 1.', 1)
    path.write_bytes(text)
    with pytest.raises(SensorIntegrityError, match="changed after it was saved"):
        Sensor.load(path)


def test_a_file_that_is_not_a_sensor_is_refused(tmp_path):
    path = tmp_path / "model.pkl"
    path.write_bytes(b"\x80\x05not a sensor")
    with pytest.raises(SensorIntegrityError, match="is not a Limen Sensor file"):
        Sensor.load(path)


def test_a_signed_sensor_loads_only_with_its_key(sensors, tmp_path):
    path = sensors[0].save(tmp_path / "signed.sensor", key="s3cret")
    assert Sensor.load(path, key="s3cret").round_id == sensors[0].round_id
    with pytest.raises(SensorIntegrityError, match="signature does not match"):
        Sensor.load(path, key="other")
    with pytest.raises(SensorIntegrityError, match="is signed"):
        Sensor.load(path)


def test_an_unsigned_sensor_is_refused_when_a_key_is_required(sensors, tmp_path):
    path = sensors[0].save(tmp_path / "plain.sensor")
    with pytest.raises(SensorIntegrityError, match="is not signed"):
        Sensor.load(path, key="s3cret")
