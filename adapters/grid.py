"""A lazy grid over value indices: exactly-once, seeded order, never materialised.

A space is a sequence of sizes (values per parameter, in parameter order). Three maps take a
*position* (0, 1, 2, ... handed out once each) to a combination:

1. position -> flat index: a seeded bijection of ``[0, total)`` (a keyed Feistel network with
   cycle walking), or the identity when ``shuffle=False``;
2. flat index -> value indices: mixed radix with the **first parameter varying fastest**;
3. value indices -> values: a lookup in each parameter's list (done by the caller, or by
   ``GridCursor(values=...)``).

The bijection depends only on ``(sizes, seed)``, so any process computes the same order and
distinct positions always give distinct combinations: exactly-once across workers and resumes
follows from positions never repeating. Memory is O(1) in the size of the space, and batches of
positions are computed with numpy when ``total < 2**63`` (Python ints beyond).
"""

from __future__ import annotations

import hashlib
import math
import operator
import random
from collections.abc import Callable, Iterator, Sequence
from numbers import Integral
from typing import Any

import numpy as np

from limen.utils.validation import invalid

__all__ = ["DEFAULT_BATCH_SIZE", "GridCursor", "GridSpace", "IndexArray"]

_ROUNDS = 8
_MASK64 = (1 << 64) - 1
# SplitMix64 finaliser constants: a cheap 64-bit mixer whose output bits all depend on every
# input bit, computable identically on Python ints and on numpy uint64 arrays.
_MIX1 = 0xBF58476D1CE4E5B9
_MIX2 = 0x94D049BB133111EB
_U_MIX1, _U_MIX2 = np.uint64(_MIX1), np.uint64(_MIX2)
_U27, _U30, _U31 = np.uint64(27), np.uint64(30), np.uint64(31)
_NUMPY_LIMIT = 2**63
_CHUNK = 1 << 16
# Past a few thousand rows per batch, garbage collection of the row tuples costs more than the
# numpy calls a larger batch saves.
DEFAULT_BATCH_SIZE = 2048
_SCALAR_TAIL = 32
_BLOCK = 1 << 16

IndexArray = np.ndarray | list[int]


class GridSpace:
    """A finite grid of ``prod(sizes)`` combinations visited in a seeded order.

    Args:
        sizes: Number of values of each parameter, in parameter order.
        seed: Key of the shuffled order. ``None`` draws one from the global ``random`` module
            (so ``random.seed`` makes it reproducible); the drawn value is kept in ``seed`` so it
            can be stored and the same order rebuilt elsewhere.
        shuffle: ``False`` visits flat indices in order (position ``p`` is index ``p``).
    """

    def __init__(self, sizes: Sequence[int], *, seed: int | None = 0, shuffle: bool = True) -> None:
        self._sizes = _validate_sizes(sizes)
        self._seed = _validate_seed(seed)
        if not isinstance(shuffle, bool):
            raise TypeError(
                f"The 'shuffle' parameter of GridSpace must be a bool. Got {shuffle!r} instead."
            )
        self._shuffle = shuffle
        self._total = math.prod(self._sizes)
        self._vectorised = self._total < _NUMPY_LIMIT
        self._feistel = _Feistel(
            max(2, (self._total - 1).bit_length()), _round_keys(self._seed, self._sizes)
        )

    @property
    def sizes(self) -> tuple[int, ...]:
        """Number of values per parameter."""
        return self._sizes

    @property
    def seed(self) -> int:
        """The key of the order (drawn at construction when ``None`` was given)."""
        return self._seed

    @property
    def shuffle(self) -> bool:
        """Whether positions map to flat indices through the seeded permutation."""
        return self._shuffle

    @property
    def total(self) -> int:
        """Number of combinations (an exact int, however large)."""
        return self._total

    def __repr__(self) -> str:
        return f"GridSpace(sizes={list(self._sizes)}, seed={self._seed}, shuffle={self._shuffle})"

    def index_at(self, position: int) -> int:
        """The flat index visited at ``position`` (in ``[0, total)``)."""
        position = self._check_position(position)
        if not self._shuffle:
            return position
        return self._walk(self._feistel.encrypt, position)

    def position_of(self, index: int) -> int:
        """The position at which flat ``index`` is visited: the inverse of ``index_at``."""
        index = self._check_index(index)
        if not self._shuffle:
            return index
        return self._walk(self._feistel.decrypt, index)

    def positions(self, start: int, count: int) -> IndexArray:
        """Flat indices of positions ``start .. start + count - 1``.

        A numpy ``uint64`` array when ``total < 2**63``, else a list of Python ints.
        """
        count = _check_int("count", count, "GridSpace.positions")
        if count < 0:
            raise invalid("count", "GridSpace.positions", "an int in the range [0, inf)", count)
        start = _check_int("start", start, "GridSpace.positions")
        if start < 0 or start + count > self._total:
            raise IndexError(
                f"Positions {start}..{start + count - 1} are outside [0, {self._total}) "
                f"for this GridSpace of {self._total} combinations."
            )
        if not self._vectorised:
            return [self.index_at(p) for p in range(start, start + count)]
        out = np.arange(start, start + count, dtype=np.uint64)
        if self._shuffle:
            # Chunks keep the temporaries of the Feistel rounds small and in cache.
            for lo in range(0, count, _CHUNK):
                out[lo : lo + _CHUNK] = self._permute_array(out[lo : lo + _CHUNK])
        return out

    def decode(self, index: int) -> tuple[int, ...]:
        """Value indices of flat ``index``, first parameter varying fastest."""
        rest = self._check_index(index)
        values = []
        for size in self._sizes:
            rest, value = divmod(rest, size)
            values.append(value)
        return tuple(values)

    def encode(self, value_indices: Sequence[int]) -> int:
        """Flat index of ``value_indices``: the inverse of ``decode``."""
        if len(value_indices) != len(self._sizes):
            raise ValueError(
                f"The 'value_indices' parameter of GridSpace.encode must hold one index per "
                f"parameter ({len(self._sizes)}). Got {len(value_indices)} instead."
            )
        index = 0
        for position in reversed(range(len(self._sizes))):
            size = self._sizes[position]
            value = _check_int("value_indices", value_indices[position], "GridSpace.encode")
            if not 0 <= value < size:
                raise IndexError(
                    f"Value index {value} of parameter {position} is outside [0, {size})."
                )
            index = index * size + value
        return index

    def decode_many(self, indices: IndexArray | Sequence[int]) -> np.ndarray:
        """Value indices of many flat indices: an ``int64`` array of shape (count, n_params)."""
        rest = self._index_array(indices)
        out = np.empty((len(self._sizes), rest.shape[0]), dtype=np.int64)
        for row, size in enumerate(self._sizes):
            # `//` by a scalar is far faster in numpy than `divmod` or `%`.
            quotient = rest // size
            out[row] = rest - quotient * size
            rest = quotient
        # Built parameter-major so each step writes a contiguous row; returned as a view.
        return out.T

    def _check_position(self, position: int) -> int:
        position = _check_int("position", position, "GridSpace.index_at")
        if not 0 <= position < self._total:
            raise IndexError(
                f"Position {position} is outside [0, {self._total}) for this GridSpace of "
                f"{self._total} combinations."
            )
        return position

    def _check_index(self, index: int) -> int:
        index = _check_int("index", index, "GridSpace")
        if not 0 <= index < self._total:
            raise IndexError(
                f"Flat index {index} is outside [0, {self._total}) for this GridSpace of "
                f"{self._total} combinations."
            )
        return index

    def _index_array(self, indices: IndexArray | Sequence[int]) -> np.ndarray:
        if self._vectorised:
            flat = np.asarray(indices)
            if flat.size and not np.issubdtype(flat.dtype, np.integer):
                raise TypeError(
                    f"The 'indices' parameter of GridSpace.decode_many must hold ints. "
                    f"Got an array of {flat.dtype} instead."
                )
            flat = flat.reshape(-1)
            # Signed input is checked before the cast so negatives cannot wrap around.
            if flat.size and (flat.min() < 0 or flat.max() >= self._total):
                raise IndexError(
                    f"Flat indices {int(flat.min())}..{int(flat.max())} are outside "
                    f"[0, {self._total}) for this GridSpace of {self._total} combinations."
                )
            return flat.astype(np.uint64)
        flat = np.empty(len(indices), dtype=object)
        for i, index in enumerate(indices):
            flat[i] = self._check_index(index)
        return flat

    def _permute_array(self, positions: np.ndarray) -> np.ndarray:
        out = self._feistel.encrypt_array(positions)
        total = np.uint64(self._total)
        # Cycle walking: indices past the end are encrypted again until they land inside.
        pending = np.flatnonzero(out >= total)
        while pending.size > _SCALAR_TAIL:
            walked = self._feistel.encrypt_array(out[pending])
            out[pending] = walked
            pending = pending[walked >= total]
        # The last few stragglers are cheaper to walk one by one than by more numpy passes.
        for i in pending.tolist():
            out[i] = self._walk(self._feistel.encrypt, int(out[i]))
        return out

    def _walk(self, step: Callable[[int], int], value: int) -> int:
        value = step(value)
        while value >= self._total:
            value = step(value)
        return value


class _Feistel:
    """A keyed Feistel permutation of ``[0, 2**bits)``.

    The two halves differ by at most one bit (unbalanced when ``bits`` is odd), so ``bits`` can
    be the smallest width covering the grid: the domain is then less than twice the grid (for
    grids of three or more) and cycle walking takes fewer than two encryptions on average.
    """

    def __init__(self, bits: int, keys: Sequence[int]) -> None:
        high_bits = bits // 2
        self._low_bits = bits - high_bits
        self._low_mask = (1 << self._low_bits) - 1
        # The halves swap every round, so the round output width alternates between them.
        widths = [high_bits if i % 2 == 0 else self._low_bits for i in range(len(keys))]
        self._rounds = tuple(
            (key, (1 << width) - 1) for key, width in zip(keys, widths, strict=True)
        )
        self._round_function = _mix_round if self._low_bits <= 64 else _hash_round
        # numpy scalars made once: converting them per call costs more than the work on a batch.
        self._array_constants = (
            (
                np.uint64(self._low_bits),
                np.uint64(self._low_mask),
                tuple((np.uint64(key), np.uint64(mask)) for key, mask in self._rounds),
            )
            if bits <= 64
            else None
        )

    def encrypt(self, value: int) -> int:
        f = self._round_function
        left, right = value >> self._low_bits, value & self._low_mask
        for key, mask in self._rounds:
            left, right = right, left ^ (f(right, key) & mask)
        return (left << self._low_bits) | right

    def decrypt(self, value: int) -> int:
        f = self._round_function
        left, right = value >> self._low_bits, value & self._low_mask
        for key, mask in reversed(self._rounds):
            left, right = right ^ (f(left, key) & mask), left
        return (left << self._low_bits) | right

    def encrypt_array(self, values: np.ndarray) -> np.ndarray:
        """``encrypt`` on a uint64 array (``bits <= 64``), bit-identical to the scalar one."""
        low_bits, low_mask, rounds = self._array_constants
        left, right = values >> low_bits, values & low_mask
        for key, mask in rounds:
            mixed = _mix_array(right ^ key)
            mixed &= mask
            mixed ^= left
            left, right = right, mixed
        left <<= low_bits
        left |= right
        return left


class GridCursor:
    """Walks a ``GridSpace`` from a position, decoding combinations in numpy batches.

    Iterating yields one combination per step as a tuple: value indices, or the values
    themselves when ``values`` (one sequence per parameter, aligned with ``space.sizes``) is
    given. The work is done per batch, so each step costs little more than reading a list.
    Iterating again continues from ``position``.

    Args:
        space: The grid to walk.
        start: First position to visit.
        stop: Position to stop before (default: ``space.total``).
        batch_size: Positions decoded at once.
        values: Optional values per parameter; ``values[j][i]`` is value ``i`` of parameter ``j``.
    """

    def __init__(
        self,
        space: GridSpace,
        start: int = 0,
        stop: int | None = None,
        *,
        batch_size: int = DEFAULT_BATCH_SIZE,
        values: Sequence[Sequence[Any]] | None = None,
    ) -> None:
        if not isinstance(space, GridSpace):
            raise TypeError(
                f"The 'space' parameter of GridCursor must be a GridSpace. Got {space!r} instead."
            )
        stop = space.total if stop is None else _check_int("stop", stop, "GridCursor")
        start = _check_int("start", start, "GridCursor")
        if not 0 <= start <= stop <= space.total:
            raise ValueError(
                f"The 'start' and 'stop' parameters of GridCursor must satisfy "
                f"0 <= start <= stop <= {space.total}. Got start={start}, stop={stop} instead."
            )
        batch_size = _check_int("batch_size", batch_size, "GridCursor")
        if batch_size < 1:
            raise invalid("batch_size", "GridCursor", "an int in the range [1, inf)", batch_size)
        self._space = space
        self._stop = stop
        self._batch_size = batch_size
        self._tables = None if values is None else _value_tables(values, space.sizes)
        self._batch_start = start
        self._batch: list[tuple[Any, ...]] = []
        self._pending: Iterator[tuple[Any, ...]] = iter(self._batch)
        # Python-int spaces gain nothing from blocks larger than a batch.
        self._block_size = max(batch_size, _BLOCK) if space.total < _NUMPY_LIMIT else batch_size
        self._block_start = start
        self._block: IndexArray = []

    @property
    def position(self) -> int:
        """The position of the next combination to be yielded."""
        return self._batch_start + len(self._batch) - operator.length_hint(self._pending)

    @property
    def stop(self) -> int:
        """The position the cursor stops before."""
        return self._stop

    def __iter__(self) -> Iterator[tuple[Any, ...]]:
        # `yield from` a list iterator keeps each step in C; `position` reads what is left of it.
        yield from self._pending
        while self._load():
            yield from self._pending

    def _load(self) -> bool:
        start = self._batch_start + len(self._batch)
        count = min(self._batch_size, self._stop - start)
        if count <= 0:
            return False
        decoded = self._space.decode_many(self._flat_indices(start, count))
        if self._tables is None:
            columns = decoded.T.tolist()
        else:
            columns = [
                table[column].tolist()
                for table, column in zip(self._tables, decoded.T, strict=True)
            ]
        self._batch_start = start
        self._batch = list(zip(*columns, strict=True))
        self._pending = iter(self._batch)
        return True

    def _flat_indices(self, start: int, count: int) -> IndexArray:
        # Positions are permuted a block at a time: the numpy passes of the Feistel network
        # cost per call far more than per item, and a block of flat indices is small.
        offset = start - self._block_start
        if offset + count > len(self._block):
            self._block_start, offset = start, 0
            self._block = self._space.positions(start, min(self._block_size, self._stop - start))
        return self._block[offset : offset + count]


def _mix_round(half: int, key: int) -> int:
    """The round function for halves of up to 64 bits: the mixer applied to ``half ^ key``."""
    value = half ^ key
    value = ((value ^ (value >> 30)) * _MIX1) & _MASK64
    value = ((value ^ (value >> 27)) * _MIX2) & _MASK64
    return value ^ (value >> 31)


def _hash_round(half: int, key: int) -> int:
    """The round function for halves wider than 64 bits (grids beyond 2**128): keyed BLAKE2b."""
    width = (half.bit_length() + 7) // 8 or 1
    digest = hashlib.blake2b(half.to_bytes(width, "little"), key=key.to_bytes(8, "little"))
    return int.from_bytes(digest.digest(), "little")


def _mix_array(values: np.ndarray) -> np.ndarray:
    """The mixer of ``_mix_round`` on a uint64 array, in place (``values`` is a temporary)."""
    values ^= values >> _U30
    values *= _U_MIX1
    values ^= values >> _U27
    values *= _U_MIX2
    values ^= values >> _U31
    return values


def _round_keys(seed: int, sizes: tuple[int, ...]) -> tuple[int, ...]:
    """Feistel round keys from ``(seed, sizes)``, identical in every process and version."""
    material = f"{seed}|{','.join(map(str, sizes))}".encode()
    digest = hashlib.blake2b(material, digest_size=8 * _ROUNDS, person=b"limen.grid").digest()
    return tuple(int.from_bytes(digest[i : i + 8], "little") for i in range(0, len(digest), 8))


def _value_tables(values: Sequence[Sequence[Any]], sizes: tuple[int, ...]) -> list[np.ndarray]:
    """One object array per parameter, so a batch of value indices maps by fancy indexing."""
    if len(values) != len(sizes):
        raise ValueError(
            f"The 'values' parameter of GridCursor must hold one sequence per parameter "
            f"({len(sizes)}). Got {len(values)} instead."
        )
    tables = []
    for position, (options, size) in enumerate(zip(values, sizes, strict=True)):
        if len(options) != size:
            raise ValueError(
                f"The 'values' parameter of GridCursor must hold {size} values for parameter "
                f"{position}. Got {len(options)} instead."
            )
        table = np.empty(size, dtype=object)
        # Item by item: values that are themselves sequences must stay whole objects.
        for i, option in enumerate(options):
            table[i] = option
        tables.append(table)
    return tables


def _check_int(name: str, value: Any, owner: str) -> int:
    if isinstance(value, bool) or not isinstance(value, Integral):
        raise TypeError(f"The '{name}' parameter of {owner} must be an int. Got {value!r} instead.")
    return int(value)


def _validate_sizes(sizes: Any) -> tuple[int, ...]:
    valid = (
        isinstance(sizes, Sequence)
        and not isinstance(sizes, str)
        and len(sizes) > 0
        and all(
            isinstance(size, Integral) and not isinstance(size, bool) and size >= 1
            for size in sizes
        )
    )
    if not valid:
        raise ValueError(
            f"The 'sizes' parameter of GridSpace must be a non-empty sequence of ints >= 1. "
            f"Got {sizes!r} instead."
        )
    return tuple(int(size) for size in sizes)


def _validate_seed(seed: Any) -> int:
    if seed is None:
        return random.getrandbits(64)
    if isinstance(seed, bool) or not isinstance(seed, Integral):
        raise TypeError(
            f"The 'seed' parameter of GridSpace must be an int or None. Got {seed!r} instead."
        )
    return int(seed)
