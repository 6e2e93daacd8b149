"""Round ids, parameter-space hashes and value tokens."""

from __future__ import annotations

import math
from pathlib import Path

from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler

from limen.experiment.identity import round_id, space_hash, value_token


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
