"""limen.utils.validation: constraints, their phrases and the one refusal message."""

from __future__ import annotations

import math
from numbers import Integral, Real
from pathlib import Path

import pytest

from limen.errors import InvalidParameterError
from limen.utils.validation import (
    Interval,
    Predicate,
    StrOptions,
    check_keywords,
    describe,
    validate_params,
)


def test_the_message_names_parameter_owner_accepted_values_and_value():
    with pytest.raises(InvalidParameterError) as info:
        validate_params({"n": [Interval(Integral, 1, None), None]}, {"n": "ten"}, "Loop.run")
    assert str(info.value) == (
        "The 'n' parameter of Loop.run must be an int in the range [1, inf) or None. "
        "Got 'ten' instead."
    )


@pytest.mark.parametrize(
    ("interval", "phrase"),
    [
        (Interval(Integral, 0, None), "an int in the range [0, inf)"),
        (Interval(Real, 0, 1, closed="right"), "a float in the range (0, 1]"),
        (Interval(Real, None, 5, closed="neither"), "a float in the range (-inf, 5)"),
        (Interval(int, None, None), "an int"),
    ],
)
def test_an_interval_says_its_kind_and_bounds(interval, phrase):
    assert str(interval) == phrase


@pytest.mark.parametrize("value", [True, 1.5, "1", None, 0])
def test_an_int_interval_refuses_bools_floats_text_and_values_outside(value):
    assert not Interval(int, 1, None).is_satisfied_by(value)


@pytest.mark.parametrize("value", [math.nan, math.inf, False, 2.0])
def test_a_real_interval_refuses_nan_infinity_bools_and_values_outside(value):
    assert not Interval(float, 0, 1).is_satisfied_by(value)


def test_none_comes_last_in_the_accepted_values():
    assert describe([None, "boolean", StrOptions(["a"])]) == "a bool, one of 'a' or None"


@pytest.mark.parametrize("value", ["", "  ", 3, None])
def test_a_path_is_a_non_empty_str_or_a_path_object(value):
    validate_params({"p": ["path"]}, {"p": Path("x")}, "f")
    with pytest.raises(InvalidParameterError, match="a path"):
        validate_params({"p": ["path"]}, {"p": value}, "f")


def test_a_predicate_that_raises_refuses_the_value():
    broken = Predicate(lambda v: v > 0, "a positive number")
    with pytest.raises(InvalidParameterError, match=r"a positive number\. Got 'x'"):
        validate_params({"v": [broken]}, {"v": "x"}, "f")


def test_unknown_and_refused_keywords_list_the_accepted_ones():
    accepted = {"seed": [int, None]}
    with pytest.raises(InvalidParameterError, match=r"Unknown parameter 'sed'.*\['seed'\]"):
        check_keywords("TPE", {"sed": 1}, accepted)
    with pytest.raises(InvalidParameterError, match="not accepted: gone"):
        check_keywords("TPE", {"old": 1}, accepted, {"old": "gone"})
    assert check_keywords("TPE", {"seed": None}, accepted) == {"seed": None}


def test_an_invalid_parameter_is_still_a_value_error_and_a_type_error():
    for kind in (ValueError, TypeError):
        with pytest.raises(kind):
            validate_params({"x": ["boolean"]}, {"x": 1}, "f")
