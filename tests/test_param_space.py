"""The legacy ParamSpace API, drawing distinct combinations from a lazy grid."""

from __future__ import annotations

import random
import tracemalloc

import numpy as np
import pytest

from limen.utils.param_space import ParamSpace


def draw_all(space: ParamSpace, random_search: bool = True) -> list[dict]:
    rows = []
    while (row := space.generate(random_search)) is not None:
        rows.append(row)
    return rows


def test_attributes_describe_the_space():
    space = ParamSpace({"b": [1, 2, 3], "a": ["x", "y"]}, 100)
    assert space.keys == ["b", "a"]
    assert space.param_sizes == [3, 2]
    assert space.total_space == 6
    assert space.n_permutations == 6


def test_index_order_varies_the_first_key_fastest():
    space = ParamSpace({"a": [0, 1], "b": [10, 20]}, 10)
    assert draw_all(space, random_search=False) == [
        {"a": 0, "b": 10},
        {"a": 1, "b": 10},
        {"a": 0, "b": 20},
        {"a": 1, "b": 20},
    ]


def test_index_order_with_a_budget_returns_the_first_combinations():
    space = ParamSpace({"a": [0, 1, 2], "b": [10, 20]}, 2)
    assert draw_all(space, random_search=False) == [{"a": 0, "b": 10}, {"a": 1, "b": 10}]


def test_random_search_returns_every_combination_once_then_none():
    params = {"a": [0, 1, 2], "b": ["x", "y"], "c": [True, False]}
    space = ParamSpace(params, 1000, seed=3)
    rows = draw_all(space)
    assert len(rows) == 12
    assert len({tuple(row.items()) for row in rows}) == 12
    assert space.generate() is None


def test_random_search_is_not_index_order():
    params = {"a": list(range(10)), "b": list(range(10))}
    rows = draw_all(ParamSpace(params, 1000, seed=3))
    assert rows != draw_all(ParamSpace(params, 1000, seed=3), random_search=False)


def test_n_permutations_caps_the_number_of_draws():
    space = ParamSpace({"a": list(range(10)), "b": list(range(10))}, 7, seed=1)
    rows = draw_all(space)
    assert len(rows) == 7
    assert len({(row["a"], row["b"]) for row in rows}) == 7


def test_n_permutations_is_capped_at_the_size_of_the_space():
    assert ParamSpace({"a": [1, 2], "b": [3, 4, 5]}, 10**9).n_permutations == 6


def test_random_order_is_reproducible_under_random_seed():
    params = {"a": list(range(20)), "b": list(range(30))}
    random.seed(1234)
    first = draw_all(ParamSpace(params, 50))
    random.seed(1234)
    second = draw_all(ParamSpace(params, 50))
    random.seed(4321)
    third = draw_all(ParamSpace(params, 50))
    assert first == second
    assert first != third


def test_explicit_seed_fixes_the_order():
    params = {"a": list(range(20)), "b": list(range(30))}
    assert draw_all(ParamSpace(params, 50, seed=5)) == draw_all(ParamSpace(params, 50, seed=5))
    assert draw_all(ParamSpace(params, 50, seed=5)) != draw_all(ParamSpace(params, 50, seed=6))


def test_values_are_returned_as_the_objects_given():
    values = [len, dict, (1, 2), [3, 4], None]
    rows = draw_all(ParamSpace({"v": values}, 10), random_search=False)
    assert [row["v"] for row in rows] == values
    assert rows[0]["v"] is len


def test_switching_order_mid_sequence_raises():
    space = ParamSpace({"a": [1, 2, 3]}, 3)
    space.generate(random_search=True)
    with pytest.raises(ValueError, match="first called with random_search=True"):
        space.generate(random_search=False)


def test_a_space_of_ten_to_the_thirty_is_not_materialised():
    params = {f"p{i}": list(range(10)) for i in range(30)}
    tracemalloc.start()
    try:
        space = ParamSpace(params, 10**6, seed=2)
        rows = [space.generate() for _ in range(100)]
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert space.total_space == 10**30
    assert len({tuple(row.values()) for row in rows}) == 100
    assert peak < 8 * 2**20


@pytest.mark.slow
def test_a_million_distinct_draws_from_a_space_of_ten_to_the_fifteen():
    # Value d of parameter i is d * 10**i, so a combination's values sum to its flat index.
    # (Speed is measured in benchmarks/grid_scale.py, not asserted here.)
    params = {f"p{i}": [d * 10**i for d in range(10)] for i in range(15)}
    space = ParamSpace(params, 1_000_000, seed=0)
    rows = iter(space.generate, None)
    flat = np.fromiter((sum(row.values()) for row in rows), dtype=np.int64, count=1_000_000)
    assert space.generate() is None
    assert np.unique(flat).size == 1_000_000


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"x": 3}, "Parameter 'x' must be a non-empty list, got 3"),
        ({"x": []}, r"Parameter 'x' must be a non-empty list, got \[\]"),
        ({"x": (1, 2)}, r"Parameter 'x' must be a non-empty list, got \(1, 2\)"),
        ({}, "'params' parameter of ParamSpace must be a non-empty dict"),
        ([("x", [1])], "'params' parameter of ParamSpace must be a non-empty dict"),
    ],
)
def test_invalid_params_raise_value_error(params, message):
    with pytest.raises(ValueError, match=message):
        ParamSpace(params, 10)


@pytest.mark.parametrize("n_permutations", [0, -1, 1.5, True, "10", None])
def test_invalid_n_permutations_raise_value_error(n_permutations):
    with pytest.raises(ValueError, match="'n_permutations' parameter of ParamSpace must be an int"):
        ParamSpace({"x": [1, 2]}, n_permutations)


def test_invalid_seed_raises_type_error():
    with pytest.raises(TypeError, match="'seed' parameter of ParamSpace must be an int or None"):
        ParamSpace({"x": [1, 2]}, 2, seed="7")
