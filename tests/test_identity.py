"""Round ids, parameter-space hashes and value tokens."""

from __future__ import annotations

import datetime
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler

from limen.experiment.identity import (
    match_value,
    plain_value,
    round_id,
    space_hash,
    value_key,
    value_token,
)

# Ids computed before numpy and pandas scalars were normalised: existing studies keep them.
PINNED_IDS = [
    ({"a": 1, "b": "x"}, "ecf9e98ec0641e23113ff3ce8bdc78d0ddd249886517fd4a7f68cc83d4e65667"),
    (
        {"a": 1.0, "flag": True, "none": None},
        "05af138d76eb8f7d2d7ade9869cfff37b63c98dd732b7a324bcda4cff580b3a2",
    ),
    (
        {"lr": 0.001, "scaler": StandardScaler, "window": (5, 10)},
        "e8d15c74de8544d403b1425fac9004a686b115f793565bc44cb48b1fce1f7742",
    ),
    (
        {"x": math.nan, "y": [1, "a"], "z": {"k": 2}},
        "fd1d65bf4d98ee83eed68187cba1f40844851d318183b9177a9f6bb14896d056",
    ),
    (
        {"when": datetime.datetime(2024, 1, 2, 3, 4, 5), "max_iter": 1000, "_id": "ignored"},
        "edf597a0dad0571b307bd6be51e6b82e2a60cc14a8d277955befcedf6a7e3297",
    ),
]


def test_round_id_is_64_hex_and_ignores_key_order_and_metadata():
    a = round_id({"x": 1, "y": "l2", "_round_index": 3})
    b = round_id({"y": "l2", "x": 1})
    assert a == b
    assert len(a) == 64 and all(c in "0123456789abcdef" for c in a)


def test_round_id_tells_true_one_and_one_point_zero_apart():
    ids = {round_id({"x": v}) for v in (True, 1, 1.0)}
    assert len(ids) == 3


def test_classes_and_functions_get_their_import_path():
    assert value_token(StandardScaler) == "sklearn.preprocessing.StandardScaler"
    assert value_token(math.sqrt) == "math.sqrt"


def test_tuples_and_estimators_get_readable_literals():
    assert value_token((3, 4)) == "(3, 4)"
    assert value_token(("a",)) == "('a',)"
    assert value_token(LogisticRegression(C=0.5)) == "LogisticRegression(C=0.5)"


def test_objects_with_an_address_in_their_repr_get_a_stable_token():
    class Plain:
        pass

    token = value_token(Plain())
    assert "0x" not in token
    assert token == value_token(Plain())


def test_space_hash_changes_with_values_but_not_key_order():
    base = space_hash({"a": [1, 2], "b": ["x"]})
    assert base == space_hash({"b": ["x"], "a": [1, 2]})
    assert base != space_hash({"a": [1, 3], "b": ["x"]})
    assert base != space_hash({"a": [1, 2.0], "b": ["x"]})


def test_source_hash_is_the_sha256_of_the_defining_file(tmp_path):
    import hashlib

    import toy_sfd
    from limen.experiment.identity import source_hash

    expected = hashlib.sha256(Path(toy_sfd.__file__).read_bytes()).hexdigest()
    assert source_hash(toy_sfd) == expected
    assert source_hash(object()) is None


@pytest.mark.parametrize(("params", "expected"), PINNED_IDS)
def test_round_ids_of_python_values_never_change(params, expected):
    assert round_id(params) == expected


@pytest.mark.parametrize(
    ("scalar", "python"),
    [
        (np.int64(1), 1),
        (np.float64(0.5), 0.5),
        (np.bool_(True), True),
        (np.str_("x"), "x"),
        (pd.Timestamp("2024-01-02 03:04:05"), datetime.datetime(2024, 1, 2, 3, 4, 5)),
        (pd.Timedelta(seconds=3), datetime.timedelta(seconds=3)),
    ],
)
def test_numpy_and_pandas_scalars_key_and_hash_like_their_python_values(scalar, python):
    assert plain_value(scalar) == python and type(plain_value(scalar)) is type(python)
    assert value_token(scalar) == value_token(python)
    assert value_key(scalar) == value_key(python)
    assert round_id({"p": scalar}) == round_id({"p": python})


def test_numpy_scalars_inside_tuples_get_the_python_literal():
    assert value_token((np.int64(3), np.float64(0.5))) == "(3, 0.5)"


def test_value_key_keeps_true_one_and_one_point_zero_apart():
    assert len({value_key(v) for v in (True, 1, 1.0, np.int64(1), np.bool_(True))}) == 3


def test_match_value_finds_the_declared_value_a_log_or_csv_cell_stands_for():
    assert match_value([StandardScaler, None], "sklearn.preprocessing.StandardScaler") is (
        StandardScaler
    )
    assert match_value([1, "a"], "1") == 1
    assert match_value([1, 2], 2.0) == 2 and type(match_value([1, 2], 2.0)) is int
    assert match_value([None, 1], math.nan) is None
    assert match_value([True, 1], np.int64(1)) == 1 and match_value([True, 1], np.bool_(1)) is True
    assert match_value([1, 2], "os.system") == "os.system"
