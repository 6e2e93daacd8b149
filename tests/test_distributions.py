"""The mapping from parameter values to Optuna distributions, and the value codec."""

from __future__ import annotations

import math

import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from sklearn.preprocessing import MinMaxScaler, StandardScaler

from limen.adapters.distributions import DomainCodec, codec_for
from limen.experiment.param_domain import Range


def test_evenly_spaced_ints_map_to_an_int_distribution_with_step():
    codec = codec_for("shift", [-1, -2, -3, -4])
    assert codec.distribution == IntDistribution(-4, -1, step=1)
    assert codec.decode(-3) == -3


def test_evenly_spaced_floats_map_to_a_float_distribution_with_step():
    values = [round(0.1 * i, 1) for i in range(1, 10)]
    codec = codec_for("q", values)
    assert isinstance(codec.distribution, FloatDistribution)
    assert codec.distribution.step == pytest.approx(0.1)
    assert codec.distribution.high == pytest.approx(0.9)
    assert all(codec.decode(codec.to_stored(v)) == v for v in values)


def test_log_spaced_values_keep_their_order_on_a_log_scale():
    codec = codec_for("lr", [1e-5, 1e-4, 1e-3, 1e-2])
    assert codec.distribution == FloatDistribution(1e-5, 1e-2, log=True)
    assert codec.to_stored(1e-4) == 1e-4
    assert codec.decode(2.5e-4) == 1e-4  # a sampler's proposal snaps in log space


def test_uneven_int_grid_is_ordered_not_categorical():
    codec = codec_for("roc_period", [1, 2, 4, 8, 12, 16, 24, 48, 72, 96, 144, 288])
    assert codec.distribution == IntDistribution(1, 288, log=True)
    assert codec.decode(100) == 96


def test_classes_are_stored_as_readable_tokens_and_decoded_to_the_class():
    codec = codec_for("scaler", [StandardScaler, MinMaxScaler, None])
    assert isinstance(codec.distribution, CategoricalDistribution)
    assert codec.choices[0] == "sklearn.preprocessing.StandardScaler"
    assert codec.decode(codec.to_stored(MinMaxScaler)) is MinMaxScaler
    assert codec.decode("None") is None


def test_true_beside_one_is_kept_apart():
    codec = codec_for("flag", [True, 1, "x"])
    stored = [codec.to_stored(v) for v in (True, 1, "x")]
    assert len(set(stored)) == 3
    assert codec.decode(codec.to_stored(1)) == 1
    assert codec.decode(codec.to_stored(True)) is True


def test_plain_scalars_are_stored_natively():
    codec = codec_for("penalty", ["l1", "l2", None])
    assert codec.distribution == CategoricalDistribution(("l1", "l2", None))


def test_tuples_become_tokens():
    codec = codec_for("window", [(3, 4), (5, 6)])
    assert codec.choices == ("(3, 4)", "(5, 6)")
    assert codec.decode("(5, 6)") == (5, 6)


def test_ranges_map_to_their_distribution():
    assert codec_for("c", Range(1e-3, 10.0, log=True)).distribution == FloatDistribution(
        1e-3, 10.0, log=True
    )
    assert codec_for("k", Range(1, 9, step=2)).distribution == IntDistribution(1, 9, step=2)


def test_illegal_value_names_the_parameter_and_legal_values():
    codec = codec_for("penalty", ["l1", "l2"])
    with pytest.raises(ValueError, match="'penalty'"):
        codec.to_stored("l3")


def test_domain_codec_round_trips_a_combination():
    params = {"scaler": [StandardScaler, MinMaxScaler], "C": [0.1, 1.0, 10.0], "k": [1, 2]}
    codec = DomainCodec(params)
    combo = {"scaler": MinMaxScaler, "C": 10.0, "k": 2}
    internal = codec.to_internal(combo)
    stored = {n: codec.distributions[n].to_external_repr(v) for n, v in internal.items()}
    assert codec.decode(stored) == combo
    assert all(isinstance(v, int | float) and math.isfinite(v) for v in internal.values())
