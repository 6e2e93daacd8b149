"""Sensor files load without running code: trusted types only, pickle only when signed."""

from __future__ import annotations

import hashlib
import hmac
import io
import json
import pickle
import sys
import zipfile
from pathlib import Path

import pandas as pd
import pytest

from limen.data import synthetic_klines
from limen.experiment import Sensor
from limen.experiment.identity import round_id
from limen.experiment.trainer import SensorIntegrityError, SensorTrustError
from limen.sfd.foundational_sfd import gbm_regressor, logreg_binary, random_binary

FRESH = synthetic_klines(n_rows=300, seed=7)


class _Marker:
    """A pickle payload that writes a file when unpickled."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self):
        return (Path.write_text, (self.path, "ran"))


def _sensor(sfd) -> Sensor:
    """A Sensor of the SFD's first value of every parameter, fitted on its test data."""
    params = {name: values[0] for name, values in sfd.params().items()}
    manifest = sfd.manifest()
    data = manifest.prepare_data(manifest.fetch_test_data(), params)
    results = manifest.run_model(data, params)
    return Sensor(
        manifest=manifest,
        model=results["_model"],
        fitted_params=data["_fitted_params"],
        round_params=params,
        round_id=round_id(params),
        metrics={},
        provenance={"sfd_module": sfd.__name__},
    )


@pytest.fixture(scope="module")
def logreg():
    return _sensor(logreg_binary)


def _parts(path: Path) -> tuple[bytes, bytes, bytes, bytes]:
    """magic, digest line, header line, payload of a Sensor file."""
    raw = path.read_bytes()
    magic, digest, header, payload = raw.split(b"\n", 3)
    return magic, digest, header, payload


def _rewrite(path: Path, header: bytes, payload: bytes, *, redigest: bool, key=None) -> None:
    magic, digest, _, _ = _parts(path)
    body = header + b"\n" + payload
    if redigest:
        if key is None:
            digest = b"sha256 " + hashlib.sha256(body).hexdigest().encode()
        else:
            digest = b"hmac-sha256 " + hmac.new(key, body, hashlib.sha256).hexdigest().encode()
    path.write_bytes(magic + b"\n" + digest + b"\n" + body)


def _with_type(payload: bytes, module: str, name: str) -> bytes:
    """The skops archive with its first function reference pointed at ``module.name``."""
    source = zipfile.ZipFile(io.BytesIO(payload))
    schema = json.loads(source.read("schema.json"))

    def point(node):
        if isinstance(node, dict):
            if node.get("__loader__") == "FunctionNode":
                node["__module__"], node["__class__"] = module, name
                node["content"] = {"module_path": module, "function": name}
                return True
            return any(point(v) for v in node.values())
        if isinstance(node, list):
            return any(point(v) for v in node)
        return False

    assert point(schema)
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as target:
        for item in source.namelist():
            data = json.dumps(schema) if item == "schema.json" else source.read(item)
            target.writestr(item, data)
    return out.getvalue()


@pytest.mark.parametrize("sfd", [logreg_binary, gbm_regressor], ids=lambda s: s.__name__)
def test_a_default_sensor_round_trips_with_identical_predictions(sfd, tmp_path):
    sensor = _sensor(sfd)
    path = sensor.save(tmp_path / "s.sensor")
    assert json.loads(_parts(path)[2])["format"] == "skops"
    loaded = Sensor.load(path)
    pd.testing.assert_frame_equal(loaded.predict(FRESH), sensor.predict(FRESH), check_exact=True)
    assert loaded.round_params == sensor.round_params


def test_the_random_baseline_round_trips_its_state_and_prediction_rows(tmp_path):
    # Its scores are fresh random draws on every call, so only their shape can match.
    sensor = _sensor(random_binary)
    loaded = Sensor.load(sensor.save(tmp_path / "random.sensor"))
    assert loaded.model.positive_rate == sensor.model.positive_rate
    assert loaded.round_params == sensor.round_params
    before, after = sensor.predict(FRESH), loaded.predict(FRESH)
    pd.testing.assert_series_equal(after["reason"], before["reason"])
    assert after["prediction"].isna().equals(before["prediction"].isna())


def test_a_foundational_sensor_needs_no_extra_trust(logreg, tmp_path):
    path = logreg.save(tmp_path / "s.sensor")
    assert Sensor.untrusted_types(path) == []
    assert json.loads(_parts(path)[2])["types"]


@pytest.mark.parametrize("redigest", [False, True], ids=["old digest", "recomputed digest"])
def test_a_file_naming_a_forbidden_type_is_refused_before_anything_runs(
    logreg, tmp_path, monkeypatch, redigest
):
    marker = tmp_path / "marker"
    (tmp_path / "evil_types.py").write_text(
        f"from pathlib import Path\nPath({str(marker)!r}).write_text('ran')\ndef f(x): return x\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    path = logreg.save(tmp_path / "s.sensor")
    _, _, header, payload = _parts(path)
    _rewrite(path, header, _with_type(payload, "evil_types", "f"), redigest=redigest)
    error = SensorTrustError if redigest else SensorIntegrityError
    with pytest.raises(error) as refused:
        Sensor.load(path)
    if redigest:
        assert refused.value.types == ["evil_types.f"]
        assert "trusted=[...]" in str(refused.value)
    assert not marker.exists() and "evil_types" not in sys.modules


def test_a_builtin_function_is_refused_too(logreg, tmp_path):
    path = logreg.save(tmp_path / "s.sensor")
    _, _, header, payload = _parts(path)
    _rewrite(path, header, _with_type(payload, "os", "system"), redigest=True)
    with pytest.raises(SensorTrustError, match=r"\['os.system'\]"):
        Sensor.load(path)
    assert Sensor.untrusted_types(path) == ["os.system"]


@pytest.mark.parametrize("redigest", [False, True], ids=["old digest", "recomputed digest"])
@pytest.mark.parametrize("claimed", ["skops", "pickle"])
def test_a_pickle_payload_is_refused_before_it_runs(logreg, tmp_path, redigest, claimed):
    marker = tmp_path / "marker"
    path = logreg.save(tmp_path / "s.sensor")
    _, _, header, _ = _parts(path)
    info = {**json.loads(header), "format": claimed}
    evil = pickle.dumps(_Marker(marker))
    _rewrite(path, json.dumps(info).encode(), evil, redigest=redigest)
    with pytest.raises(SensorIntegrityError):
        Sensor.load(path)
    assert not marker.exists()


def test_a_version_1_pickle_file_without_a_signature_is_refused(tmp_path):
    marker = tmp_path / "marker"
    body = b'{"round_id": "x"}\n' + pickle.dumps(_Marker(marker))
    path = tmp_path / "old.sensor"
    digest = hashlib.sha256(body).hexdigest().encode()
    path.write_bytes(b"LIMEN-SENSOR 1\nsha256 " + digest + b"\n" + body)
    with pytest.raises(SensorTrustError, match=r"pickle.*not signed"):
        Sensor.load(path)
    assert not marker.exists()


def test_a_pickle_sensor_is_written_only_with_a_key(logreg, tmp_path):
    with pytest.raises(ValueError, match=r"'key' parameter of Sensor\.save"):
        logreg.save(tmp_path / "p.sensor", format="pickle")
    with pytest.raises(ValueError, match=r"'format' parameter of Sensor\.save"):
        logreg.save(tmp_path / "p.sensor", format="joblib")


def test_a_signed_pickle_round_trips_with_its_key_and_is_refused_without(logreg, tmp_path):
    path = logreg.save(tmp_path / "p.sensor", key="s3cret", format="pickle")
    loaded = Sensor.load(path, key="s3cret")
    pd.testing.assert_frame_equal(loaded.predict(FRESH), logreg.predict(FRESH))
    with pytest.raises(SensorIntegrityError, match="is signed"):
        Sensor.load(path)


def test_a_signed_file_whose_body_is_not_a_pickle_is_an_integrity_error(logreg, tmp_path):
    path = logreg.save(tmp_path / "p.sensor", key="s3cret", format="pickle")
    _, _, header, _ = _parts(path)
    _rewrite(path, header, b"not a pickle at all", redigest=True, key=b"s3cret")
    with pytest.raises(SensorIntegrityError, match="damaged"):
        Sensor.load(path, key="s3cret")


@pytest.mark.parametrize(
    "damage",
    [
        lambda raw: raw[: len(raw) // 2],
        lambda raw: raw[:20],
        lambda raw: b"LIMEN-SENSOR 2\n",
        lambda raw: raw.replace(b"\n", b" ", 2),
        lambda raw: b"\x80\x05garbage",
    ],
    ids=["half", "header only", "magic only", "no lines", "foreign"],
)
def test_a_damaged_or_foreign_file_is_an_integrity_error(logreg, tmp_path, damage):
    path = logreg.save(tmp_path / "s.sensor")
    path.write_bytes(damage(path.read_bytes()))
    with pytest.raises(SensorIntegrityError):
        Sensor.load(path)


def test_a_damaged_body_with_a_recomputed_digest_is_an_integrity_error(logreg, tmp_path):
    path = logreg.save(tmp_path / "s.sensor")
    _, _, header, payload = _parts(path)
    _rewrite(path, header, payload[: len(payload) // 2], redigest=True)
    with pytest.raises(SensorIntegrityError, match="damaged"):
        Sensor.load(path)


def test_a_type_of_your_own_loads_once_you_trust_it(logreg, tmp_path, monkeypatch):
    (tmp_path / "own_models.py").write_text(
        "class Wrapped:\n"
        "    def __init__(self, inner): self.inner = inner\n"
        "    def predict(self, x): return self.inner.predict(x)\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    import own_models

    state = logreg._state()
    state["model"] = own_models.Wrapped(logreg.model)
    path = Sensor(**state).save(tmp_path / "own.sensor")
    assert Sensor.untrusted_types(path) == ["own_models.Wrapped"]
    with pytest.raises(SensorTrustError, match=r"own_models\.Wrapped"):
        Sensor.load(path)
    loaded = Sensor.load(path, trusted=["own_models.Wrapped"])
    assert (loaded.predict(FRESH)["prediction"] == logreg.predict(FRESH)["prediction"]).all()
    assert Sensor.load(path, trusted=[own_models.Wrapped]).round_id == logreg.round_id


def test_trusted_must_be_a_list_of_names_or_types(logreg, tmp_path):
    path = logreg.save(tmp_path / "s.sensor")
    with pytest.raises(TypeError, match=r"'trusted' parameter of Sensor\.load"):
        Sensor.load(path, trusted="os.system")


def test_predict_refuses_an_untrusted_file_in_one_line_and_accepts_trust(
    logreg, tmp_path, monkeypatch, capsys
):
    from limen.cli import EXIT_OK, EXIT_USAGE, main

    path = logreg.save(tmp_path / "s.sensor")
    _, _, header, payload = _parts(path)
    _rewrite(path, header, _with_type(payload, "limen.sfd.indicators", "np"), redigest=True)
    data = tmp_path / "fresh.csv"
    FRESH.head(50).to_csv(data, index=False)
    assert main(["predict", str(path), str(data)]) == EXIT_USAGE
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "not trusted" in err and "--trust" in err
    good = logreg.save(tmp_path / "good.sensor")
    assert main(["predict", str(good), str(data), "--trust", "x.Y"]) == EXIT_OK


def test_train_writes_a_pickle_only_with_a_key(tmp_path, capsys):
    from limen.cli import EXIT_USAGE, main

    args = ["train", str(tmp_path), "--best", "1", "--out", str(tmp_path), "--format", "pickle"]
    assert main(args) == EXIT_USAGE
    assert "--key-env" in capsys.readouterr().err
