"""The lazy grid: a seeded bijection from positions to combinations, never materialised."""

from __future__ import annotations

import itertools
import json
import math
import os
import random
import subprocess
import sys
import tracemalloc

import numpy as np
import pytest

from limen.adapters.grid import GridCursor, GridSpace

# Values per parameter of the 15-parameter benchmark space (about 6.9e12 combinations).
SCALE_SIZES = [10, 9, 12, 4, 7, 10, 6, 5, 8, 10, 9, 6, 7, 5, 5]

SMALL_SIZES = [[1], [2], [3], [7], [16], [1, 1, 1], [2, 2, 2, 2], [5, 3, 2], [13, 17], [97, 89]]


@pytest.mark.parametrize("sizes", SMALL_SIZES, ids=str)
def test_every_index_is_visited_exactly_once(sizes):
    space = GridSpace(sizes, seed=11)
    visited = [space.index_at(position) for position in range(space.total)]
    assert sorted(visited) == list(range(space.total))


@pytest.mark.parametrize("sizes", SMALL_SIZES, ids=str)
def test_vectorised_positions_equal_index_at(sizes):
    space = GridSpace(sizes, seed=11)
    expected = [space.index_at(position) for position in range(space.total)]
    assert space.positions(0, space.total).tolist() == expected


def test_vectorised_positions_equal_index_at_on_a_large_space():
    space = GridSpace(SCALE_SIZES, seed=5)
    start = 123_456_789
    flat = space.positions(start, 5000)
    assert flat.dtype == np.uint64
    assert flat.tolist() == [space.index_at(start + i) for i in range(5000)]


@pytest.mark.parametrize("sizes", [[7], [16], [13, 17], SCALE_SIZES, [10] * 30], ids=str)
def test_position_of_inverts_index_at(sizes):
    space = GridSpace(sizes, seed=2)
    rng = random.Random(0)
    positions = [rng.randrange(space.total) for _ in range(200)]
    assert [space.position_of(space.index_at(p)) for p in positions] == positions


def test_same_seed_gives_the_same_order():
    first = GridSpace([10, 20, 30], seed=42).positions(0, 6000)
    second = GridSpace([10, 20, 30], seed=42).positions(0, 6000)
    assert np.array_equal(first, second)


def test_another_seed_gives_another_order():
    first = GridSpace([10, 20, 30], seed=42).positions(0, 6000)
    second = GridSpace([10, 20, 30], seed=43).positions(0, 6000)
    assert np.mean(first == second) < 0.01


def test_order_is_pinned_across_versions():
    # A resumed study maps its stored positions through this order: it must never change.
    space = GridSpace(SCALE_SIZES, seed=0)
    assert [space.index_at(p) for p in range(5)] == [
        2809455534856,
        5037492587948,
        982233443449,
        5637396139307,
        4928202851103,
    ]


def test_order_is_the_same_in_another_process():
    code = (
        "import json; from limen.adapters.grid import GridSpace; "
        f"print(json.dumps(GridSpace({SCALE_SIZES}, seed=9).positions(0, 50).tolist()))"
    )
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True
    )
    assert json.loads(result.stdout) == GridSpace(SCALE_SIZES, seed=9).positions(0, 50).tolist()


def test_unshuffled_order_is_index_order():
    space = GridSpace([4, 5, 6], shuffle=False)
    assert [space.index_at(p) for p in range(space.total)] == list(range(space.total))
    assert space.positions(10, 20).tolist() == list(range(10, 30))


def test_shuffled_order_shows_no_linear_structure():
    space = GridSpace([10007], seed=1)
    flat = space.positions(0, space.total).astype(np.float64)
    correlation = np.corrcoef(np.arange(space.total), flat)[0, 1]
    steps = np.diff(flat) % space.total
    assert abs(correlation) < 0.05
    # An affine map i -> a*i + b (mod n) has a single step size; a random order has thousands.
    assert np.unique(steps).size > space.total // 2
    assert 0.4 < np.mean(np.diff(flat) > 0) < 0.6


def test_seed_none_is_drawn_from_the_global_random_module():
    random.seed(7)
    first = GridSpace([100, 100], seed=None)
    random.seed(7)
    second = GridSpace([100, 100], seed=None)
    assert first.seed == second.seed
    assert np.array_equal(first.positions(0, 100), second.positions(0, 100))


def test_first_parameter_varies_fastest():
    space = GridSpace([2, 3])
    assert [space.decode(i) for i in range(6)] == [
        (0, 0),
        (1, 0),
        (0, 1),
        (1, 1),
        (0, 2),
        (1, 2),
    ]


@pytest.mark.parametrize("sizes", [[3, 1, 4], SCALE_SIZES, [10] * 30], ids=str)
def test_encode_inverts_decode(sizes):
    space = GridSpace(sizes)
    rng = random.Random(3)
    for index in [0, space.total - 1, *(rng.randrange(space.total) for _ in range(200))]:
        assert space.encode(space.decode(index)) == index


def test_decode_many_matches_decode():
    space = GridSpace(SCALE_SIZES, seed=4)
    flat = space.positions(1000, 3000)
    decoded = space.decode_many(flat)
    assert decoded.shape == (3000, len(SCALE_SIZES))
    assert [tuple(row) for row in decoded.tolist()] == [space.decode(int(i)) for i in flat]


def test_decode_many_on_a_space_beyond_64_bits():
    space = GridSpace([10] * 30, seed=4)
    flat = space.positions(0, 50)
    assert [tuple(row) for row in space.decode_many(flat).tolist()] == [
        space.decode(i) for i in flat
    ]


def test_total_is_exact_beyond_64_bits():
    assert GridSpace([10] * 30).total == 10**30
    assert GridSpace([2**40] * 5).total == 2**200


@pytest.mark.parametrize(
    "sizes", [[10] * 15, [10] * 30, [2**40] * 5], ids=["1e15", "1e30", "2^200"]
)
def test_huge_spaces_map_positions_inside_the_space(sizes):
    space = GridSpace(sizes, seed=8)
    positions = [0, 1, 2, space.total // 2, space.total - 2, space.total - 1]
    indices = [space.index_at(p) for p in positions]
    assert all(0 <= i < space.total for i in indices)
    assert len(set(indices)) == len(positions)
    assert [space.position_of(i) for i in indices] == positions


def test_spaces_beyond_two_to_the_63_return_python_ints():
    space = GridSpace([10] * 30, seed=8)
    flat = space.positions(10, 100)
    assert isinstance(flat, list)
    assert all(isinstance(i, int) and 0 <= i < space.total for i in flat)
    assert len(set(flat)) == 100


def test_a_million_distinct_draws_from_a_15_parameter_space_in_little_memory():
    space = GridSpace(SCALE_SIZES, seed=0)
    assert space.total == math.prod(SCALE_SIZES) > 6 * 10**12
    tracemalloc.start()
    try:
        flat = space.positions(0, 1_000_000)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert np.unique(flat).size == 1_000_000
    assert int(flat.max()) < space.total
    assert peak < 32 * 2**20


def test_index_at_outside_the_space_raises_index_error():
    space = GridSpace([3, 4])
    with pytest.raises(IndexError, match=r"Position 12 is outside \[0, 12\)"):
        space.index_at(12)
    with pytest.raises(IndexError, match=r"Position -1 is outside \[0, 12\)"):
        space.index_at(-1)


def test_positions_outside_the_space_raise_index_error():
    with pytest.raises(IndexError, match=r"Positions 10\.\.12 are outside \[0, 12\)"):
        GridSpace([3, 4]).positions(10, 3)


def test_decode_outside_the_space_raises_index_error():
    with pytest.raises(IndexError, match=r"Flat index 12 is outside \[0, 12\)"):
        GridSpace([3, 4]).decode(12)
    with pytest.raises(IndexError, match=r"outside \[0, 12\)"):
        GridSpace([3, 4]).decode_many(np.array([0, -1]))


def test_encode_rejects_out_of_range_value_indices():
    with pytest.raises(IndexError, match=r"Value index 4 of parameter 1 is outside \[0, 4\)"):
        GridSpace([3, 4]).encode((0, 4))
    with pytest.raises(ValueError, match="one index per parameter"):
        GridSpace([3, 4]).encode((0,))


@pytest.mark.parametrize("sizes", [[], [0], [3, -1], ["a"], [True], "abc", 5, None], ids=repr)
def test_invalid_sizes_raise_value_error(sizes):
    with pytest.raises(ValueError) as error:
        GridSpace(sizes)
    assert str(error.value) == (
        "The 'sizes' parameter of GridSpace must be a non-empty sequence of ints >= 1. "
        f"Got {sizes!r} instead."
    )


@pytest.mark.parametrize("seed", ["1", 1.5, True])
def test_invalid_seed_raises_type_error(seed):
    with pytest.raises(TypeError, match="'seed' parameter of GridSpace"):
        GridSpace([3], seed=seed)


def test_non_integer_position_raises_type_error():
    with pytest.raises(TypeError, match=r"'position' parameter of GridSpace\.index_at"):
        GridSpace([3]).index_at(1.0)


def test_cursor_yields_the_combinations_of_successive_positions():
    space = GridSpace([3, 5, 7], seed=1)
    expected = [space.decode(space.index_at(p)) for p in range(space.total)]
    assert list(GridCursor(space, batch_size=8)) == expected


def test_cursor_agrees_with_positions_over_many_batches():
    space = GridSpace(SCALE_SIZES, seed=6)
    rows = list(GridCursor(space, 5, 150_005, batch_size=999))
    expected = space.decode_many(space.positions(5, 150_000))
    assert rows == [tuple(row) for row in expected.tolist()]


def test_cursor_starts_and_stops_at_the_given_positions():
    space = GridSpace([3, 5, 7], seed=1)
    cursor = GridCursor(space, 40, 60, batch_size=6)
    rows = list(cursor)
    assert rows == [space.decode(space.index_at(p)) for p in range(40, 60)]
    assert cursor.position == 60


def test_cursor_position_counts_the_combinations_taken():
    cursor = GridCursor(GridSpace([100], seed=1), 10, batch_size=4)
    rows = iter(cursor)
    for _ in range(9):
        next(rows)
    assert cursor.position == 19


def test_cursor_iterated_again_continues_where_it_stopped():
    space = GridSpace([50], seed=1)
    cursor = GridCursor(space, batch_size=4)
    first = list(itertools.islice(cursor, 10))
    rest = list(cursor)
    assert first + rest == [space.decode(space.index_at(p)) for p in range(50)]


def test_cursor_maps_value_indices_to_values():
    values = [["l1", "l2"], [(1, 2), None, len]]
    space = GridSpace([2, 3], shuffle=False)
    rows = list(GridCursor(space, values=values))
    assert rows == [
        ("l1", (1, 2)),
        ("l2", (1, 2)),
        ("l1", None),
        ("l2", None),
        ("l1", len),
        ("l2", len),
    ]


def test_cursor_walks_spaces_beyond_64_bits():
    space = GridSpace([10] * 30, seed=3)
    rows = list(GridCursor(space, 5, 25, batch_size=8))
    assert rows == [space.decode(space.index_at(p)) for p in range(5, 25)]


def test_cursor_rejects_values_that_do_not_match_the_sizes():
    with pytest.raises(ValueError, match=r"must hold 3 values for parameter 1\. Got 2 instead"):
        GridCursor(GridSpace([2, 3]), values=[[0, 1], [0, 1]])


def test_cursor_rejects_a_start_past_the_stop():
    with pytest.raises(ValueError, match="0 <= start <= stop <= 6"):
        GridCursor(GridSpace([2, 3]), 5, 4)
