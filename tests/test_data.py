"""limen.data: the synthetic klines generator and the klines file reader."""

import re

import numpy as np
import pandas as pd
import pytest

from limen.data import KLINE_COLUMNS, read_klines, synthetic_klines
from limen.errors import InvalidParameterError


@pytest.fixture(scope="module")
def klines() -> pd.DataFrame:
    return synthetic_klines()


def _log_returns(frame: pd.DataFrame) -> pd.Series:
    return np.log(frame["close"]).diff().dropna()


# synthetic_klines


def test_same_seed_gives_identical_frames():
    pd.testing.assert_frame_equal(synthetic_klines(300, seed=7), synthetic_klines(300, seed=7))


def test_different_seeds_give_different_frames():
    first, second = synthetic_klines(300, seed=1), synthetic_klines(300, seed=2)
    assert not np.allclose(first["close"], second["close"])
    assert not np.allclose(first["volume"], second["volume"])


def test_has_the_documented_columns_and_dtypes(klines):
    assert tuple(klines.columns) == KLINE_COLUMNS
    assert klines["datetime"].dtype == "datetime64[us]"
    assert klines["no_of_trades"].dtype == np.int64
    floats = [c for c in KLINE_COLUMNS if c not in ("datetime", "no_of_trades")]
    assert all(klines[c].dtype == np.float64 for c in floats)
    assert klines.index.equals(pd.RangeIndex(len(klines)))
    assert not klines.isna().any().any()


@pytest.mark.parametrize("n_rows", [1, 2, 17, 5000])
def test_returns_exactly_n_rows(n_rows):
    assert len(synthetic_klines(n_rows)) == n_rows


@pytest.mark.parametrize("kline_size", [1, 60, 3600, 86400])
def test_datetimes_start_on_a_fixed_date_spaced_by_kline_size(kline_size):
    times = synthetic_klines(50, kline_size=kline_size)["datetime"]
    assert times.iloc[0] == pd.Timestamp("2020-01-01")
    assert times.dt.tz is None
    assert (times.diff().dropna() == pd.Timedelta(seconds=kline_size)).all()


def test_prices_are_positive_and_bars_are_consistent(klines):
    prices = klines[["open", "high", "low", "close"]]
    assert (prices > 0).all().all()
    assert (klines["high"] >= klines[["open", "close"]].max(axis=1)).all()
    assert (klines["low"] <= klines[["open", "close"]].min(axis=1)).all()
    assert np.array_equal(klines["open"].to_numpy()[1:], klines["close"].to_numpy()[:-1])


def test_trade_statistics_lie_inside_the_bar(klines):
    for column in ("mean", "median"):
        assert klines[column].between(klines["low"], klines["high"]).all()
    assert (klines["std"] >= 0).all()
    assert klines["iqr"].between(0, klines["high"] - klines["low"]).all()


def test_flow_columns_are_consistent(klines):
    assert (klines["volume"] > 0).all()
    assert klines["maker_ratio"].between(0, 1).all()
    assert (klines["no_of_trades"] >= 1).all()
    assert np.allclose(klines["maker_volume"], klines["volume"] * klines["maker_ratio"])
    assert np.allclose(klines["liquidity_sum"], klines["volume"] * klines["mean"])
    assert np.allclose(klines["maker_liquidity"], klines["liquidity_sum"] * klines["maker_ratio"])


def test_volatility_clusters(klines):
    squared = _log_returns(klines) ** 2
    shuffled = pd.Series(np.random.default_rng(0).permutation(squared.to_numpy()))
    clustered = np.mean([squared.autocorr(lag) for lag in range(1, 11)])
    baseline = np.mean([shuffled.autocorr(lag) for lag in range(1, 11)])
    assert clustered > 0.05
    assert clustered > baseline + 0.04


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_returns_have_fat_tails(seed):
    assert _log_returns(synthetic_klines(seed=seed)).kurt() > 1.0


def test_volume_grows_with_absolute_returns(klines):
    absolute_returns = _log_returns(klines).abs()
    assert np.corrcoef(klines["volume"].iloc[1:], absolute_returns)[0, 1] > 0.3


def test_volatility_scales_with_kline_size():
    hourly = _log_returns(synthetic_klines(kline_size=3600)).std()
    daily = _log_returns(synthetic_klines(kline_size=86400)).std()
    assert daily / hourly == pytest.approx(np.sqrt(24), rel=0.05)


def test_rejects_a_row_count_below_one():
    message = (
        "The 'n_rows' parameter of synthetic_klines must be an int in the range [1, inf). "
        "Got 0 instead."
    )
    with pytest.raises(InvalidParameterError, match=re.escape(message)):
        synthetic_klines(0)


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"n_rows": -3}, ValueError, "must be an int in the range [1, inf). Got -3 instead"),
        ({"n_rows": 10.0}, TypeError, "'n_rows' parameter of synthetic_klines must be an int"),
        ({"n_rows": True}, TypeError, "Got True instead"),
        ({"kline_size": 0}, ValueError, "The 'kline_size' parameter of synthetic_klines"),
        ({"kline_size": "1h"}, TypeError, "Got '1h' instead"),
        ({"seed": -1}, ValueError, "synthetic_klines must be an int in the range [0, inf). Got -1"),
        ({"seed": None}, TypeError, "Got None instead"),
    ],
)
def test_rejects_bad_arguments_naming_parameter_and_value(kwargs, error, message):
    with pytest.raises(error, match=re.escape(message)):
        synthetic_klines(**kwargs)


def test_rejects_bars_beyond_the_datetime_range():
    with pytest.raises(ValueError, match=r"cannot represent 2 bars of 10000000000000 seconds"):
        synthetic_klines(2, kline_size=10**13)


def test_accepts_numpy_integers():
    assert len(synthetic_klines(np.int64(3), np.int32(60), np.uint8(4))) == 3


# read_klines


@pytest.mark.parametrize("suffix", [".csv", ".parquet", ".pq"])
def test_round_trips_synthetic_klines(tmp_path, suffix):
    frame = synthetic_klines(200, seed=3)
    path = tmp_path / f"klines{suffix}"
    if suffix == ".csv":
        frame.to_csv(path, index=False)
    else:
        frame.to_parquet(path, index=False)
    pd.testing.assert_frame_equal(read_klines(path), frame, check_exact=False, rtol=1e-12)


def test_accepts_a_string_path(tmp_path):
    synthetic_klines(5).to_csv(tmp_path / "k.csv", index=False)
    assert len(read_klines(str(tmp_path / "k.csv"))) == 5


def test_parses_epoch_milliseconds(tmp_path):
    frame = synthetic_klines(5)
    millis = frame.assign(datetime=frame["datetime"].astype("int64") // 1000)
    millis.to_csv(tmp_path / "k.csv", index=False)
    pd.testing.assert_series_equal(read_klines(tmp_path / "k.csv")["datetime"], frame["datetime"])


def test_converts_iso_offsets_to_naive_utc(tmp_path):
    times = ["2024-03-01T01:00:00+01:00", "2024-03-01T01:00:00Z", "2024-03-01 02:00:00"]
    _write_csv(tmp_path / "k.csv", times)
    parsed = read_klines(tmp_path / "k.csv")["datetime"]
    expected = pd.to_datetime(["2024-03-01 00:00", "2024-03-01 01:00", "2024-03-01 02:00"])
    assert parsed.dtype == "datetime64[us]"
    assert list(parsed) == list(expected)


def test_converts_tz_aware_parquet_datetimes_to_naive_utc(tmp_path):
    frame = synthetic_klines(5)
    paris = frame["datetime"].dt.tz_localize("UTC").dt.tz_convert("Europe/Paris")
    frame.assign(datetime=paris).to_parquet(tmp_path / "k.parquet")
    pd.testing.assert_series_equal(
        read_klines(tmp_path / "k.parquet")["datetime"], frame["datetime"]
    )


def test_keeps_extra_columns(tmp_path):
    frame = synthetic_klines(5)[["datetime", "open", "high", "low", "close", "volume"]]
    frame.assign(funding=0.01).to_parquet(tmp_path / "k.parquet")
    assert read_klines(tmp_path / "k.parquet")["funding"].tolist() == [0.01] * 5


def test_missing_columns_are_listed(tmp_path):
    synthetic_klines(5).drop(columns=["low", "volume"]).to_csv(tmp_path / "k.csv", index=False)
    with pytest.raises(ValueError, match=r"k\.csv: missing required klines columns \['low', 'vol"):
        read_klines(tmp_path / "k.csv")


def test_unparseable_datetime_names_row_and_value(tmp_path):
    _write_csv(tmp_path / "k.csv", ["2024-03-01 00:00", "yesterday", "2024-03-01 02:00"])
    with pytest.raises(
        ValueError, match=r"k\.csv: cannot parse 'datetime' value 'yesterday' at row 1"
    ):
        read_klines(tmp_path / "k.csv")


def test_empty_datetime_names_row(tmp_path):
    _write_csv(tmp_path / "k.csv", ["2024-03-01 00:00", "2024-03-01 01:00", ""])
    with pytest.raises(ValueError, match=r"k\.csv: 'datetime' is empty at row 2"):
        read_klines(tmp_path / "k.csv")


def test_unsorted_datetimes_name_the_first_offending_row(tmp_path):
    hours = [0, 1, 3, 2, 5, 4]
    _write_csv(tmp_path / "k.csv", [f"2024-03-01 0{h}:00" for h in hours])
    with pytest.raises(ValueError, match=r"k\.csv: datetimes are not sorted: row 3 \(0-based"):
        read_klines(tmp_path / "k.csv")


def test_duplicate_datetimes_are_named(tmp_path):
    _write_csv(tmp_path / "k.csv", ["2024-03-01 00:00", "2024-03-01 01:00", "2024-03-01 01:00"])
    with pytest.raises(
        ValueError, match=r"k\.csv: duplicate datetime 2024-03-01 01:00:00 at rows 1"
    ):
        read_klines(tmp_path / "k.csv")


def test_non_numeric_price_column_is_named(tmp_path):
    synthetic_klines(3).assign(close="high").to_csv(tmp_path / "k.csv", index=False)
    with pytest.raises(ValueError, match=r"k\.csv: these klines columns must be numeric: 'close'"):
        read_klines(tmp_path / "k.csv")


def test_file_without_rows_is_rejected(tmp_path):
    synthetic_klines(3).iloc[:0].to_csv(tmp_path / "k.csv", index=False)
    with pytest.raises(ValueError, match=r"k\.csv: the file holds no klines rows"):
        read_klines(tmp_path / "k.csv")


def test_unreadable_file_names_the_file(tmp_path):
    (tmp_path / "k.parquet").write_text("not parquet")
    with pytest.raises(ValueError, match=r"k\.parquet: cannot be read as parquet"):
        read_klines(tmp_path / "k.parquet")


def test_unsupported_suffix_is_rejected(tmp_path):
    (tmp_path / "k.json").write_text("{}")
    with pytest.raises(ValueError, match=r"k\.json: unsupported klines file suffix '\.json'"):
        read_klines(tmp_path / "k.json")


def test_missing_file_raises_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"nowhere\.csv"):
        read_klines(tmp_path / "nowhere.csv")


def _write_csv(path, datetimes):
    n = len(datetimes)
    pd.DataFrame(
        {
            "datetime": datetimes,
            "open": [1.0] * n,
            "high": [2.0] * n,
            "low": [0.5] * n,
            "close": [1.5] * n,
            "volume": [10.0] * n,
        }
    ).to_csv(path, index=False)
