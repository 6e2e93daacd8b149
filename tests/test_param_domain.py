"""ParamDomain and Range: the mutable space of legal values per parameter."""

import dataclasses
import json
import math
import re

import numpy as np
import pytest

from limen.experiment.param_domain import ParamDomain, Range


class Recorder:
    """An observer that records each notification with the version seen at that moment."""

    def __init__(self):
        self.calls = []

    def on_domain_changed(self, domain, changed_params):
        self.calls.append((domain, changed_params, domain.version))


class Scaler:
    """A class used as a parameter value."""


class OtherScaler:
    """Another class used as a parameter value."""


def relu(x):
    return max(x, 0)


def identity(x):
    return x


def domain_with_observer(params):
    domain = ParamDomain(params)
    recorder = Recorder()
    domain.add_observer(recorder)
    return domain, recorder


# Range: construction and validation


def test_range_of_floats_is_a_continuous_interval():
    r = Range(0.001, 1.0, log=True)
    assert (r.low, r.high, r.log, r.step) == (0.001, 1.0, True, None)
    assert not r.is_int
    assert r.size == math.inf


def test_range_of_two_ints_is_an_integer_range():
    r = Range(1, 10)
    assert r.is_int
    assert r.size == 10


def test_range_mixing_int_and_float_is_a_float_interval():
    r = Range(0, 1.5)
    assert not r.is_int
    assert isinstance(r.low, float)
    assert r == Range(0.0, 1.5)


def test_range_converts_numpy_scalars_to_python_numbers():
    r = Range(np.int64(1), np.int64(5), step=np.int64(2))
    assert r.is_int
    assert type(r.low) is int and type(r.high) is int and type(r.step) is int


def test_range_with_low_equal_to_high_holds_one_value():
    assert Range(2.0, 2.0).size == 1
    assert Range(3, 3).size == 1


def test_range_rejects_high_below_low_with_the_templated_message():
    with pytest.raises(ValueError) as excinfo:
        Range(1.0, 0.5)
    assert str(excinfo.value) == (
        "The 'high' parameter of Range must be a number >= low (1.0). Got 0.5 instead."
    )


@pytest.mark.parametrize("field, args", [("low", (True, 1)), ("high", (0, False))])
def test_range_rejects_bool_bounds(field, args):
    with pytest.raises(TypeError, match=f"The '{field}' parameter of Range must be a number"):
        Range(*args)


@pytest.mark.parametrize("args", [("0", 1), (0, None), (0, [1])])
def test_range_rejects_non_number_bounds(args):
    with pytest.raises(TypeError, match="parameter of Range must be a number"):
        Range(*args)


@pytest.mark.parametrize("args", [(0.0, math.inf), (-math.inf, 0.0), (math.nan, 1.0)])
def test_range_rejects_non_finite_bounds(args):
    with pytest.raises(ValueError, match="must be a finite number"):
        Range(*args)


def test_log_range_requires_a_positive_low():
    with pytest.raises(ValueError) as excinfo:
        Range(0.0, 1.0, log=True)
    assert str(excinfo.value) == (
        "The 'low' parameter of Range must be a number > 0 when log=True. Got 0.0 instead."
    )


def test_range_rejects_log_together_with_step():
    with pytest.raises(
        ValueError, match="The 'step' parameter of Range must be None when log=True"
    ):
        Range(1.0, 10.0, log=True, step=1.0)


def test_range_log_must_be_a_bool():
    with pytest.raises(
        TypeError, match=re.escape("The 'log' parameter of Range must be a bool. Got 1")
    ):
        Range(1.0, 10.0, log=1)


@pytest.mark.parametrize("step", [0, -1, 0.0, -0.5, math.inf])
def test_range_step_must_be_positive_and_finite(step):
    with pytest.raises(
        ValueError, match="The 'step' parameter of Range must be a finite number > 0"
    ):
        Range(0.0, 1.0, step=step)


@pytest.mark.parametrize("step", [0.5, 2.0, True])
def test_integer_range_step_must_be_an_int(step):
    with pytest.raises(TypeError, match="must be an int when low and high are ints"):
        Range(0, 10, step=step)


def test_range_step_must_be_a_number():
    with pytest.raises(TypeError, match="The 'step' parameter of Range must be a number"):
        Range(0.0, 1.0, step="0.1")


def test_range_log_and_step_are_keyword_only():
    with pytest.raises(TypeError):
        Range(1.0, 10.0, True)


def test_range_is_frozen():
    r = Range(0.0, 1.0)
    with pytest.raises(dataclasses.FrozenInstanceError):
        r.high = 2.0


@pytest.mark.parametrize(
    "r, text",
    [
        (Range(0.001, 1.0, log=True), "Range(0.001, 1.0, log=True)"),
        (Range(0, 10, step=2), "Range(0, 10, step=2)"),
        (Range(0.0, 1.0, step=0.25), "Range(0.0, 1.0, step=0.25)"),
        (Range(0, 1.5), "Range(0.0, 1.5)"),
    ],
)
def test_range_repr_is_readable_and_stable(r, text):
    assert repr(r) == text


def test_ranges_with_the_same_fields_are_equal_and_hash_alike():
    assert Range(0.0, 1.0, step=0.5) == Range(0.0, 1.0, step=0.5)
    assert hash(Range(1, 5)) == hash(Range(1, 5))


# Range: size and contains


def test_integer_range_size_counts_its_steps():
    assert Range(0, 10, step=3).size == len(range(0, 11, 3))


def test_float_grid_size_counts_its_grid_points():
    assert Range(0.0, 1.0, step=0.1).size == 11
    assert Range(0.0, 1.0, step=0.3).size == 4


def test_continuous_range_contains_its_inclusive_bounds_and_what_lies_between():
    r = Range(0.5, 2.0)
    assert r.contains(0.5) and r.contains(2.0) and r.contains(1.234)
    assert not r.contains(0.49) and not r.contains(2.01)


def test_float_range_accepts_ints_inside_it():
    assert Range(0.0, 2.0).contains(1)


@pytest.mark.parametrize("value", [True, "1.0", None, math.nan, [1.0]])
def test_range_contains_no_bools_strings_or_nan(value):
    assert not Range(0.0, 2.0).contains(value)


def test_integer_range_contains_ints_only():
    r = Range(0, 10)
    assert r.contains(3) and r.contains(np.int64(3))
    assert not r.contains(3.0)
    assert not r.contains(True)


def test_integer_range_contains_only_values_on_its_step():
    r = Range(1, 10, step=3)
    assert [v for v in range(12) if r.contains(v)] == [1, 4, 7, 10]


def test_float_grid_contains_grid_points_within_a_small_tolerance():
    r = Range(0.0, 1.0, step=0.1)
    assert r.contains(0.1 * 3)
    assert r.contains(0.7)
    assert r.contains(1.0)
    assert not r.contains(0.35)


# ParamDomain: construction


def test_domain_copies_the_lists_it_is_given():
    values = [1, 2, 3]
    domain = ParamDomain({"a": values})
    values.append(4)
    assert domain.values_for("a") == [1, 2, 3]


def test_domain_accepts_range_entries():
    domain = ParamDomain({"lr": Range(0.001, 1.0, log=True), "depth": [2, 4]})
    assert domain.values_for("lr") == Range(0.001, 1.0, log=True)


@pytest.mark.parametrize("entry", [(1, 2), [], 3, "abc", {1, 2}, None])
def test_domain_rejects_entries_that_are_not_a_non_empty_list_or_a_range(entry):
    with pytest.raises(ValueError) as excinfo:
        ParamDomain({"a": entry})
    assert str(excinfo.value) == f"Parameter 'a' must be a non-empty list or a Range, got {entry!r}"


def test_domain_rejects_non_str_parameter_names():
    with pytest.raises(TypeError, match="Parameter names must be str, got 1"):
        ParamDomain({1: [1]})


def test_domain_rejects_parameter_names_reserved_for_round_metadata():
    with pytest.raises(ValueError, match="'_id' starts with '_'"):
        ParamDomain({"_id": [1]})


def test_domain_rejects_params_that_are_not_a_mapping():
    with pytest.raises(TypeError, match="The 'params' parameter of ParamDomain must be a dict"):
        ParamDomain([("a", [1])])


# ParamDomain: properties


def test_params_is_a_defensive_copy():
    domain = ParamDomain({"a": [1, 2]})
    domain.params["a"].append(3)
    domain.params["b"] = [1]
    assert domain.params == {"a": [1, 2]}


def test_version_starts_at_zero():
    assert ParamDomain({"a": [1]}).version == 0


def test_keys_keep_insertion_order():
    assert ParamDomain({"b": [1], "a": [2], "c": [3]}).keys == ["b", "a", "c"]


def test_total_combinations_is_the_product_of_list_lengths():
    assert ParamDomain({"a": [1, 2, 3], "b": ["x", "y"]}).total_combinations == 6


def test_total_combinations_counts_the_values_of_discrete_ranges():
    domain = ParamDomain({"a": [1, 2], "n": Range(0, 10, step=2), "f": Range(0.0, 1.0, step=0.5)})
    assert domain.total_combinations == 2 * 6 * 3


def test_total_combinations_is_infinite_with_a_continuous_range():
    assert ParamDomain({"a": [1, 2], "lr": Range(0.0, 1.0)}).total_combinations == math.inf


def test_values_for_returns_a_copy():
    domain = ParamDomain({"a": [1, 2]})
    domain.values_for("a").append(3)
    assert domain.values_for("a") == [1, 2]


def test_repr_shows_entries_and_version():
    domain = ParamDomain({"a": [1], "lr": Range(0.1, 1.0)})
    assert repr(domain) == "ParamDomain({'a': [1], 'lr': Range(0.1, 1.0)}, version=0)"


MUTATIONS_WITH_ONE_ARGUMENT = [
    ("values_for", ()),
    ("remove_value", (1,)),
    ("remove_values_ge", (1,)),
    ("remove_values_le", (1,)),
    ("keep_values", ([1],)),
    ("keep_between", (0, 1)),
    ("inject_value", (1,)),
]


@pytest.mark.parametrize("method, args", MUTATIONS_WITH_ONE_ARGUMENT)
def test_unknown_parameter_raises_key_error_naming_it_and_the_known_ones(method, args):
    domain = ParamDomain({"a": [1, 2], "b": [3]})
    with pytest.raises(KeyError) as excinfo:
        getattr(domain, method)("nope", *args)
    assert excinfo.value.args[0] == "Unknown parameter 'nope'. Known parameters: ['a', 'b']."


# Value identity: True, 1 and 1.0 are different values


def test_removing_true_keeps_one_and_one_point_zero():
    domain = ParamDomain({"a": [True, 1, 1.0]})
    assert domain.remove_value("a", True)
    assert domain.values_for("a") == [1, 1.0]
    assert [type(v) for v in domain.values_for("a")] == [int, float]


def test_removing_one_keeps_true_and_one_point_zero():
    domain = ParamDomain({"a": [True, 1, 1.0]})
    assert domain.remove_value("a", 1)
    assert [type(v) for v in domain.values_for("a")] == [bool, float]


def test_removing_one_point_zero_keeps_one():
    domain = ParamDomain({"a": [1, 1.0]})
    assert domain.remove_value("a", 1.0)
    assert [type(v) for v in domain.values_for("a")] == [int]


def test_removing_a_value_of_another_number_kind_is_a_no_op():
    domain = ParamDomain({"a": [1, 2]})
    assert not domain.remove_value("a", True)
    assert not domain.remove_value("a", 1.0)
    assert domain.values_for("a") == [1, 2]


def test_is_valid_combination_tells_true_from_one():
    domain = ParamDomain({"a": [1, 2]})
    assert domain.is_valid_combination({"a": 1})
    assert not domain.is_valid_combination({"a": True})
    assert not domain.is_valid_combination({"a": 1.0})


def test_inject_value_adds_true_beside_one():
    domain = ParamDomain({"a": [1]})
    assert domain.inject_value("a", True)
    assert domain.values_for("a") == [1, True]


def test_keep_values_keeps_only_the_same_kind_of_number():
    domain = ParamDomain({"a": [True, 1, 1.0, 2]})
    assert domain.keep_values("a", [1]) == 3
    assert [type(v) for v in domain.values_for("a")] == [int]


def test_numpy_scalars_match_the_python_numbers_they_equal():
    domain = ParamDomain({"a": [0.5, 1, True]})
    assert domain.is_valid_combination({"a": np.float64(0.5)})
    assert domain.is_valid_combination({"a": np.int64(1)})
    assert domain.is_valid_combination({"a": np.True_})
    assert not ParamDomain({"a": [1]}).is_valid_combination({"a": np.True_})


def test_tuples_are_compared_item_by_item_with_the_same_rule():
    domain = ParamDomain({"a": [(1, 2), (True, 2)]})
    assert domain.remove_value("a", (True, 2))
    assert domain.values_for("a") == [(1, 2)]
    assert not domain.is_valid_combination({"a": [1, 2]})


def test_nan_matches_nan():
    domain = ParamDomain({"a": [math.nan, 1.0]})
    assert domain.remove_value("a", float("nan"))
    assert domain.values_for("a") == [1.0]


def test_none_and_strings_are_values_like_any_other():
    domain = ParamDomain({"a": [None, "none", 0]})
    assert domain.remove_value("a", None)
    assert domain.values_for("a") == ["none", 0]


# Functions, classes and objects as values


def test_classes_are_values_compared_by_identity():
    domain = ParamDomain({"scaler": [Scaler, OtherScaler]})
    assert domain.is_valid_combination({"scaler": Scaler})
    assert domain.remove_value("scaler", Scaler)
    assert domain.values_for("scaler") == [OtherScaler]


def test_functions_are_values_compared_by_identity():
    domain = ParamDomain({"activation": [relu, identity]})
    assert not domain.inject_value("activation", relu)
    assert not domain.is_valid_combination({"activation": lambda x: max(x, 0)})
    assert domain.keep_values("activation", [identity]) == 1
    assert domain.values_for("activation") == [identity]


def test_object_instances_are_values_compared_by_equality_or_identity():
    scaler = Scaler()
    domain = ParamDomain({"scaler": [scaler]})
    assert domain.is_valid_combination({"scaler": scaler})
    assert not domain.is_valid_combination({"scaler": Scaler()})


def test_objects_whose_equality_is_not_a_bool_are_compared_safely():
    array = np.array([1, 2])
    domain = ParamDomain({"a": [array]})
    assert domain.is_valid_combination({"a": array})
    assert not domain.is_valid_combination({"a": np.array([1, 2])})


# remove_value


def test_remove_value_removes_it_and_returns_true():
    domain = ParamDomain({"a": [1, 2, 3]})
    assert domain.remove_value("a", 2) is True
    assert domain.values_for("a") == [1, 3]


def test_remove_value_of_an_absent_value_returns_false():
    domain = ParamDomain({"a": [1, 2]})
    assert domain.remove_value("a", 9) is False
    assert domain.version == 0


def test_remove_value_refuses_to_empty_the_parameter():
    domain = ParamDomain({"a": ["x"]})
    with pytest.raises(ValueError) as excinfo:
        domain.remove_value("a", "x")
    assert str(excinfo.value) == "Cannot remove 'x' from 'a': would leave domain empty."
    assert domain.values_for("a") == ["x"]


# remove_values_ge / remove_values_le


def test_remove_values_ge_removes_values_at_or_above_the_threshold():
    domain = ParamDomain({"a": [1, 2, 3, 4]})
    assert domain.remove_values_ge("a", 3) == 2
    assert domain.values_for("a") == [1, 2]


def test_remove_values_le_removes_values_at_or_below_the_threshold():
    domain = ParamDomain({"a": [1, 2, 3, 4]})
    assert domain.remove_values_le("a", 2) == 2
    assert domain.values_for("a") == [3, 4]


def test_remove_values_ge_below_no_value_is_a_no_op():
    domain = ParamDomain({"a": [1, 2]})
    assert domain.remove_values_ge("a", 10) == 0
    assert domain.version == 0


def test_remove_values_ge_refuses_to_empty_the_parameter():
    domain = ParamDomain({"a": [1, 2]})
    with pytest.raises(ValueError) as excinfo:
        domain.remove_values_ge("a", 0)
    assert str(excinfo.value) == "remove_ge(a, 0) would remove all 2 values. Current values: [1, 2]"


def test_remove_values_le_refuses_to_empty_the_parameter():
    domain = ParamDomain({"a": [1, 2]})
    with pytest.raises(ValueError, match=re.escape("remove_le(a, 5) would remove all 2 values.")):
        domain.remove_values_le("a", 5)


@pytest.mark.parametrize("method", ["remove_values_ge", "remove_values_le"])
def test_threshold_removal_on_incomparable_values_raises_type_error(method):
    domain = ParamDomain({"a": [1, "x"]})
    with pytest.raises(TypeError, match="Cannot compare values of 'a' with threshold 0:"):
        getattr(domain, method)("a", 0)
    assert domain.values_for("a") == [1, "x"]


# keep_values


def test_keep_values_keeps_the_listed_values_and_returns_how_many_were_removed():
    domain = ParamDomain({"a": ["x", "y", "z"]})
    assert domain.keep_values("a", ["z", "x", "w"]) == 1
    assert domain.values_for("a") == ["x", "z"]


def test_keep_values_keeping_everything_is_a_no_op():
    domain = ParamDomain({"a": ["x", "y"]})
    assert domain.keep_values("a", ("x", "y")) == 0
    assert domain.version == 0


def test_keep_values_without_overlap_raises_value_error():
    domain = ParamDomain({"a": ["x", "y"]})
    with pytest.raises(ValueError) as excinfo:
        domain.keep_values("a", ["w"])
    assert str(excinfo.value) == (
        "keep_values(a, ['w']) would remove all values. No overlap with current: ['x', 'y']"
    )


@pytest.mark.parametrize("values", ["x", 3, None])
def test_keep_values_requires_a_collection_of_values(values):
    domain = ParamDomain({"a": ["x", "y"]})
    with pytest.raises(TypeError, match="keep_values\\(\\) takes a list of values to keep"):
        domain.keep_values("a", values)


# keep_between


def test_keep_between_keeps_values_within_inclusive_bounds():
    domain = ParamDomain({"a": [1, 2, 3, 4, 5]})
    assert domain.keep_between("a", 2, 4) == 2
    assert domain.values_for("a") == [2, 3, 4]


def test_keep_between_around_every_value_is_a_no_op():
    domain = ParamDomain({"a": [1, 2]})
    assert domain.keep_between("a", 1, 2) == 0
    assert domain.version == 0


def test_keep_between_refuses_to_empty_the_parameter():
    domain = ParamDomain({"a": [1, 2]})
    with pytest.raises(ValueError, match=re.escape("keep_between(a, 3, 4) would remove all 2")):
        domain.keep_between("a", 3, 4)


def test_keep_between_on_incomparable_values_raises_type_error():
    domain = ParamDomain({"a": [1, None]})
    with pytest.raises(TypeError, match="Cannot compare values of 'a'"):
        domain.keep_between("a", 0, 2)


# inject_value


def test_inject_value_appends_a_new_value():
    domain = ParamDomain({"a": [1, 2]})
    assert domain.inject_value("a", 3) is True
    assert domain.values_for("a") == [1, 2, 3]


def test_inject_value_of_a_present_value_returns_false():
    domain = ParamDomain({"a": [1, 2]})
    assert domain.inject_value("a", 2) is False
    assert domain.version == 0


# is_valid_combination


def test_a_combination_of_legal_values_is_valid():
    domain = ParamDomain({"a": [1, 2], "b": ["x"]})
    assert domain.is_valid_combination({"a": 2, "b": "x"})


def test_a_combination_with_an_illegal_value_is_invalid():
    domain = ParamDomain({"a": [1, 2], "b": ["x"]})
    assert not domain.is_valid_combination({"a": 3, "b": "x"})


def test_a_combination_with_a_removed_value_is_invalid():
    domain = ParamDomain({"a": [1, 2], "b": ["x"]})
    domain.remove_value("a", 2)
    assert not domain.is_valid_combination({"a": 2, "b": "x"})


def test_a_combination_missing_a_parameter_is_invalid():
    assert not ParamDomain({"a": [1], "b": ["x"]}).is_valid_combination({"a": 1})


def test_a_combination_with_an_unknown_parameter_is_invalid():
    assert not ParamDomain({"a": [1]}).is_valid_combination({"a": 1, "z": 0})


def test_is_valid_combination_ignores_round_metadata_keys():
    domain = ParamDomain({"a": [1]})
    assert domain.is_valid_combination({"a": 1, "_id": "ab12", "_round_index": 0})


def test_is_valid_combination_checks_ranges_with_contains():
    domain = ParamDomain({"lr": Range(0.001, 1.0, log=True), "n": Range(1, 9, step=2)})
    assert domain.is_valid_combination({"lr": 0.01, "n": 3})
    assert not domain.is_valid_combination({"lr": 2.0, "n": 3})
    assert not domain.is_valid_combination({"lr": 0.01, "n": 4})


# Observers and version


def test_a_successful_mutation_bumps_the_version_then_notifies_observers():
    domain, recorder = domain_with_observer({"a": [1, 2], "b": [3]})
    domain.remove_value("a", 1)
    assert domain.version == 1
    assert recorder.calls == [(domain, ["a"], 1)]


@pytest.mark.parametrize(
    "method, args",
    [
        ("remove_value", (1,)),
        ("remove_values_ge", (3,)),
        ("remove_values_le", (1,)),
        ("keep_values", ([1],)),
        ("keep_between", (2, 3)),
        ("inject_value", (4,)),
    ],
)
def test_every_list_mutation_bumps_the_version_and_notifies(method, args):
    domain, recorder = domain_with_observer({"a": [1, 2, 3]})
    getattr(domain, method)("a", *args)
    assert domain.version == 1
    assert recorder.calls == [(domain, ["a"], 1)]


@pytest.mark.parametrize(
    "method, args",
    [
        ("remove_value", (9,)),
        ("remove_values_ge", (9,)),
        ("remove_values_le", (0,)),
        ("keep_values", ([1, 2, 3],)),
        ("keep_between", (0, 9)),
        ("inject_value", (2,)),
    ],
)
def test_a_no_op_mutation_neither_bumps_nor_notifies(method, args):
    domain, recorder = domain_with_observer({"a": [1, 2, 3]})
    getattr(domain, method)("a", *args)
    assert domain.version == 0
    assert recorder.calls == []
    assert domain.version_history == []


def test_a_failed_mutation_neither_bumps_nor_notifies():
    domain, recorder = domain_with_observer({"a": [1]})
    with pytest.raises(ValueError):
        domain.remove_value("a", 1)
    assert domain.version == 0
    assert recorder.calls == []


def test_versions_count_successive_changes():
    domain = ParamDomain({"a": [1, 2, 3]})
    domain.remove_value("a", 1)
    domain.inject_value("a", 4)
    domain.keep_values("a", [4])
    assert domain.version == 3


def test_adding_an_observer_twice_notifies_it_once():
    domain, recorder = domain_with_observer({"a": [1, 2]})
    domain.add_observer(recorder)
    domain.remove_value("a", 1)
    assert len(recorder.calls) == 1


def test_every_observer_is_notified():
    domain, first = domain_with_observer({"a": [1, 2]})
    second = Recorder()
    domain.add_observer(second)
    domain.remove_value("a", 1)
    assert first.calls == second.calls == [(domain, ["a"], 1)]


def test_a_removed_observer_is_no_longer_notified():
    domain, recorder = domain_with_observer({"a": [1, 2]})
    domain.remove_observer(recorder)
    domain.remove_value("a", 1)
    assert recorder.calls == []


def test_removing_an_unregistered_observer_is_ignored():
    ParamDomain({"a": [1]}).remove_observer(Recorder())


def test_an_observer_needs_on_domain_changed():
    with pytest.raises(TypeError, match="needs an on_domain_changed"):
        ParamDomain({"a": [1]}).add_observer(object())


# version_history


def test_version_history_records_each_change_with_readable_arguments():
    domain = ParamDomain({"a": [1, 2, 3], "f": [relu]})
    domain.remove_value("a", 1)
    domain.keep_between("a", 2, 2)
    domain.inject_value("f", identity)
    domain.keep_values("f", [identity, True])
    assert domain.version_history == [
        {"version": 1, "op": "remove_value", "param": "a", "args": [1]},
        {"version": 2, "op": "keep_between", "param": "a", "args": [2, 2]},
        {
            "version": 3,
            "op": "inject_value",
            "param": "f",
            "args": [f"{__name__}.identity"],
        },
        {
            "version": 4,
            "op": "keep_values",
            "param": "f",
            "args": [[f"{__name__}.identity", True]],
        },
    ]


def test_version_history_is_json_serialisable():
    domain = ParamDomain({"s": [Scaler, OtherScaler], "lr": Range(0.1, 1.0)})
    domain.remove_value("s", Scaler)
    domain.remove_values_ge("lr", 0.5)
    assert json.loads(json.dumps(domain.version_history)) == domain.version_history


def test_version_history_is_a_copy():
    domain = ParamDomain({"a": [1, 2]})
    domain.remove_value("a", 1)
    domain.version_history[0]["op"] = "changed"
    assert domain.version_history[0]["op"] == "remove_value"


def test_set_state_is_recorded_in_version_history():
    domain = ParamDomain({"a": [1, 2]})
    domain.remove_value("a", 1)
    domain.set_state({"a": [1, 2]})
    domain.remove_value("a", 2)
    assert [(e["version"], e["op"]) for e in domain.version_history] == [
        (1, "remove_value"),
        (0, "set_state"),
        (1, "remove_value"),
    ]


# get_state / set_state


def test_get_state_holds_a_copy_of_each_list():
    domain = ParamDomain({"a": [1, 2]})
    state = domain.get_state()
    state["a"].append(3)
    assert domain.values_for("a") == [1, 2]


def test_get_state_writes_ranges_as_plain_dicts():
    domain = ParamDomain({"lr": Range(0.001, 1.0, log=True), "n": Range(0, 10, step=2)})
    assert domain.get_state() == {
        "lr": {"range": {"low": 0.001, "high": 1.0, "log": True, "step": None}},
        "n": {"range": {"low": 0, "high": 10, "log": False, "step": 2}},
    }


def test_get_state_keeps_non_json_values_as_the_objects_themselves():
    assert ParamDomain({"s": [Scaler, relu]}).get_state() == {"s": [Scaler, relu]}


def test_state_round_trips_through_json():
    params = {"a": [1, True, 1.0, None, "x"], "lr": Range(0.001, 1.0, log=True)}
    domain = ParamDomain(params)
    domain.remove_value("a", "x")
    domain.remove_values_ge("lr", 0.5)
    restored = ParamDomain(params)
    restored.set_state(json.loads(json.dumps(domain.get_state())))
    assert restored.params == domain.params
    assert [type(v) for v in restored.values_for("a")] == [int, bool, float, type(None)]


def test_set_state_accepts_range_instances():
    domain = ParamDomain({"lr": Range(0.1, 1.0)})
    domain.set_state({"lr": Range(0.2, 0.5)})
    assert domain.values_for("lr") == Range(0.2, 0.5)


def test_set_state_may_turn_a_list_into_a_range():
    domain = ParamDomain({"n": [1, 2, 3]})
    domain.set_state({"n": {"range": {"low": 1, "high": 3}}})
    assert domain.values_for("n") == Range(1, 3)


def test_set_state_copies_the_lists_it_is_given():
    domain = ParamDomain({"a": [1, 2]})
    values = [1]
    domain.set_state({"a": values})
    values.append(5)
    assert domain.values_for("a") == [1]


def test_set_state_resets_the_version_and_notifies_all_keys():
    domain, recorder = domain_with_observer({"a": [1, 2], "b": ["x", "y"]})
    domain.remove_value("a", 1)
    domain.set_state({"a": [2], "b": ["x"]})
    assert domain.version == 0
    assert recorder.calls[-1] == (domain, ["a", "b"], 0)


def test_set_state_keeps_the_domains_key_order():
    domain = ParamDomain({"a": [1], "b": [2]})
    domain.set_state({"b": [3], "a": [4]})
    assert domain.keys == ["a", "b"]


@pytest.mark.parametrize(
    "bad_entry",
    [
        [],
        (1, 2),
        "x",
        {"range": {"low": 1.0, "high": 0.5}},
        {"range": {"low": "a", "high": 1.0}},
        {"range": {"low": 0.0}},
        {"range": {"low": 0.0, "high": 1.0, "scale": "log"}},
        {"low": 0.0, "high": 1.0},
    ],
)
def test_set_state_rejects_invalid_entries_and_leaves_the_domain_unchanged(bad_entry):
    domain, recorder = domain_with_observer({"a": [1, 2], "b": ["x"]})
    domain.remove_value("a", 1)
    with pytest.raises(ValueError, match="Invalid domain state"):
        domain.set_state({"a": bad_entry, "b": ["y"]})
    assert domain.params == {"a": [2], "b": ["x"]}
    assert domain.version == 1
    assert len(recorder.calls) == 1


def test_set_state_names_missing_and_extra_keys():
    domain = ParamDomain({"a": [1], "b": [2]})
    with pytest.raises(ValueError) as excinfo:
        domain.set_state({"a": [1], "c": [3]})
    assert str(excinfo.value) == (
        "Domain state does not match the domain's parameters: missing ['b'], extra ['c']."
    )
    assert domain.params == {"a": [1], "b": [2]}


def test_set_state_requires_a_mapping():
    with pytest.raises(ValueError, match="Domain state must be a dict"):
        ParamDomain({"a": [1]}).set_state([["a", [1]]])


# Range entries: narrowing


def test_remove_values_ge_lowers_a_continuous_range_below_the_threshold():
    domain = ParamDomain({"lr": Range(0.001, 1.0, log=True)})
    assert domain.remove_values_ge("lr", 0.5) == 1
    narrowed = domain.values_for("lr")
    assert narrowed.log and narrowed.low == 0.001
    assert narrowed.high == math.nextafter(0.5, 0.0)
    assert not narrowed.contains(0.5)


def test_remove_values_le_raises_a_continuous_range_above_the_threshold():
    domain = ParamDomain({"x": Range(0.0, 1.0)})
    assert domain.remove_values_le("x", 0.25) == 1
    assert domain.values_for("x").low == math.nextafter(0.25, 1.0)
    assert domain.values_for("x").high == 1.0


def test_keep_between_narrows_a_continuous_range_to_inclusive_bounds():
    domain = ParamDomain({"x": Range(0.0, 1.0)})
    assert domain.keep_between("x", 0.2, 0.6) == 1
    assert domain.values_for("x") == Range(0.2, 0.6)


def test_narrowing_an_integer_range_keeps_whole_values():
    domain = ParamDomain({"n": Range(0, 10)})
    domain.remove_values_ge("n", 8)
    domain.keep_between("n", 2.5, 100)
    assert domain.values_for("n") == Range(3, 7)


def test_narrowing_a_stepped_integer_range_stays_on_its_steps():
    domain = ParamDomain({"n": Range(0, 10, step=2)})
    assert domain.keep_between("n", 1, 9) == 1
    assert domain.values_for("n") == Range(2, 8, step=2)


def test_narrowing_a_float_grid_stays_on_the_grid():
    domain = ParamDomain({"x": Range(0.0, 1.0, step=0.1)})
    domain.keep_between("x", 0.3, 0.75)
    assert domain.values_for("x") == Range(0.3, 0.7, step=0.1)
    domain.remove_values_ge("x", 0.5)
    assert domain.values_for("x") == Range(0.3, 0.4, step=0.1)


@pytest.mark.parametrize(
    "method, args",
    [
        ("remove_values_ge", (2.0,)),
        ("remove_values_le", (-1.0,)),
        ("keep_between", (0.0, 1.0)),
        ("keep_between", (-math.inf, math.inf)),
    ],
)
def test_narrowing_a_range_by_bounds_it_already_meets_is_a_no_op(method, args):
    domain, recorder = domain_with_observer({"x": Range(0.0, 1.0)})
    assert getattr(domain, method)("x", *args) == 0
    assert domain.version == 0
    assert recorder.calls == []


def test_bounds_between_two_steps_of_a_range_cut_nothing():
    domain = ParamDomain({"n": Range(0, 10, step=5)})
    assert domain.keep_between("n", 0, 12) == 0
    assert domain.remove_values_ge("n", 11) == 0


def test_narrowing_a_range_notifies_observers_and_records_history():
    domain, recorder = domain_with_observer({"x": Range(0.0, 1.0)})
    domain.keep_between("x", 0.25, 0.5)
    assert recorder.calls == [(domain, ["x"], 1)]
    assert domain.version_history == [
        {"version": 1, "op": "keep_between", "param": "x", "args": [0.25, 0.5]}
    ]


@pytest.mark.parametrize(
    "method, args, message",
    [
        ("remove_values_ge", (0.0,), "remove_ge(x, 0.0) would remove every value of"),
        ("remove_values_le", (1.0,), "remove_le(x, 1.0) would remove every value of"),
        ("keep_between", (2.0, 3.0), "keep_between(x, 2.0, 3.0) would remove every value of"),
    ],
)
def test_narrowing_a_range_to_nothing_raises_and_leaves_it(method, args, message):
    domain = ParamDomain({"x": Range(0.0, 1.0)})
    with pytest.raises(ValueError, match=re.escape(f"{message} Range(0.0, 1.0).")):
        getattr(domain, method)("x", *args)
    assert domain.values_for("x") == Range(0.0, 1.0)
    assert domain.version == 0


def test_narrowing_a_stepped_range_between_two_steps_raises():
    domain = ParamDomain({"n": Range(0, 10, step=5)})
    with pytest.raises(ValueError, match="would remove every value"):
        domain.keep_between("n", 1, 4)


@pytest.mark.parametrize("threshold", ["0.5", None, True, math.nan])
def test_narrowing_a_range_needs_a_numeric_threshold(threshold):
    domain = ParamDomain({"x": Range(0.0, 1.0)})
    with pytest.raises(TypeError, match="Cannot compare values of 'x' with threshold"):
        domain.remove_values_ge("x", threshold)


@pytest.mark.parametrize(
    "method, args",
    [("remove_value", (0.5,)), ("inject_value", (0.5,)), ("keep_values", ([0.5],))],
)
def test_value_operations_on_a_range_raise_type_error_naming_the_narrowing_ones(method, args):
    domain = ParamDomain({"x": Range(0.0, 1.0)})
    with pytest.raises(TypeError) as excinfo:
        getattr(domain, method)("x", *args)
    assert str(excinfo.value) == (
        f"{method}() does not apply to 'x', which is Range(0.0, 1.0): narrow a Range with "
        "keep_between, remove_values_ge or remove_values_le."
    )


def test_narrowing_a_fine_grid_with_huge_bounds_cuts_nothing():
    domain = ParamDomain({"x": Range(0.0, 1.0, step=1e-10)})
    assert domain.keep_between("x", -1e308, 1e308) == 0
