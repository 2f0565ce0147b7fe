"""Small integer and array helpers that also accept sparse arrays."""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator

import numpy as np

_INTEGER_TYPES = (int, bool, np.bool_, np.integer)


def prod(iterable: Iterable[int | bool | np.bool_ | np.integer]) -> int:
    """Product of integers as an exact Python ``int`` (``1`` for an empty iterable).

    Unlike ``numpy.prod`` this cannot overflow, and unlike ``math.prod`` it refuses
    floats, so that shape arithmetic stays exact.

    Raises
    ------
    TypeError
        If an element is not an integer (or bool).
    """
    result = 1
    for value in iterable:
        if not isinstance(value, _INTEGER_TYPES):
            raise TypeError(f"prod() takes integers, got {value!r} of type {type(value).__name__}")
        result *= int(value)
    return result


def count_nonzero(array) -> int:
    """Number of nonzero elements of a dense or sparse array (stored zeros not counted)."""
    from libertem.common.sparse import is_sparse, sparse_to_coo

    if is_sparse(array):
        return int(np.count_nonzero(sparse_to_coo(array).data))
    return int(np.count_nonzero(array))


def flat_nonzero(array) -> np.ndarray:
    """Sorted flat (C-order) indices of the nonzero elements of a dense or sparse array."""
    from libertem.common.sparse import is_sparse, sparse_to_coo

    if is_sparse(array):
        coo = sparse_to_coo(array)
        keep = coo.data != 0
        flat = np.ravel_multi_index(tuple(coo.coords[:, keep]), coo.shape)
        return np.unique(flat)
    return np.flatnonzero(array)


def make_2D_square(shape: tuple[int, ...]) -> tuple[int, ...]:
    """A 1D shape of a perfect square size ``n * n`` as ``(n, n)``; other shapes unchanged.

    Used to show a line of ``n * n`` scan points as a square image.
    """
    shape = tuple(shape)
    if len(shape) != 1:
        return shape
    side = math.isqrt(int(shape[0]))
    if side * side == shape[0]:
        return (side, side)
    return shape


def ndenumerate(array) -> Iterator[tuple[tuple[int, ...], object]]:
    """Like ``numpy.ndenumerate``, for dense and sparse arrays: ``(index, value)`` in C order."""
    from libertem.common.sparse import is_sparse, to_dense

    if is_sparse(array):
        array = to_dense(array)
    return np.ndenumerate(np.asarray(array))


__all__ = ["prod", "count_nonzero", "flat_nonzero", "make_2D_square", "ndenumerate"]
