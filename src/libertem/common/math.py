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
    ValueError
        If an element is not an integer (``int``, ``bool``, numpy integer or bool);
        the message is empty, as in LiberTEM.
    """
    result = 1
    for value in iterable:
        if not isinstance(value, _INTEGER_TYPES):
            raise ValueError()
        result *= int(value)
    return result


def _fill_value_counts(array) -> bool:
    """Whether the positions a pydata.sparse array does not store are non-zero."""
    fill = getattr(array, "fill_value", 0)
    return bool(fill)


def count_nonzero(array) -> int:
    """Number of non-zero elements of a dense or sparse array, as a Python ``int``.

    Stored zeros of sparse arrays are not counted. For a pydata.sparse array whose
    ``fill_value`` is non-zero, every position it does not store counts as non-zero
    (computed from the shape, without densifying).
    """
    from libertem.common.sparse import is_sparse, sparse_to_coo

    if isinstance(array, np.ndarray):
        return int(np.count_nonzero(array))
    if not is_sparse(array):
        return int(np.count_nonzero(array))
    import sparse

    if isinstance(array, sparse.SparseArray):
        if not isinstance(array, (sparse.COO, sparse.GCXS)):
            array = sparse.COO(array)
        stored = int(np.count_nonzero(array.data))
        if _fill_value_counts(array):
            return stored + math.prod(array.shape) - int(array.nnz)
        return stored
    if is_sparse(array):
        if hasattr(array, "count_nonzero"):
            return int(array.count_nonzero())
        return int(np.count_nonzero(sparse_to_coo(array).data))
    return int(np.count_nonzero(array))


def flat_nonzero(array) -> np.ndarray:
    """Sorted flat (C-order) indices of the nonzero elements of a dense or sparse array."""
    from libertem.common.sparse import is_sparse, sparse_to_coo

    if is_sparse(array):
        if _fill_value_counts(array):
            from libertem.common.sparse import to_dense

            return np.flatnonzero(to_dense(array))
        coo = sparse_to_coo(array)
        keep = coo.data != 0
        flat = np.ravel_multi_index(tuple(coo.coords[:, keep]), coo.shape)
        return np.unique(flat)
    return np.flatnonzero(array)


def make_2D_square(shape: tuple[int, ...]) -> tuple[int, ...]:
    """A 1D shape of a perfect square size ``n * n`` as ``(n, n)``; other shapes unchanged.

    Used to show a line of ``n * n`` scan points as a square image.

    Raises
    ------
    ValueError
        If a 1D shape's size is not an integer (see :func:`prod`), or is below 1.
    """
    shape = tuple(shape)
    if len(shape) != 1:
        return shape
    size = prod(shape)
    if size < 1:
        raise ValueError("Zero or negative shape.size")
    side = math.isqrt(size)
    if side * side == size:
        return (side, side)
    return shape


def ndenumerate(array) -> Iterator[tuple[tuple[int, ...], object]]:
    """Like ``numpy.ndenumerate``, for dense and sparse arrays: ``(index, value)`` in C order."""
    from libertem.common.sparse import is_sparse, to_dense

    if is_sparse(array):
        array = to_dense(array)
    return np.ndenumerate(np.asarray(array))


def check_cast(fromvar, tovar) -> None:
    """Check that the values of ``fromvar`` survive conversion to the dtype of ``tovar``.

    A cast that ``numpy.can_cast`` calls safe always passes; otherwise the values
    are converted and compared.

    Raises
    ------
    RuntimeError
        If converting changes a value (e.g. float data with fractions into an
        integer buffer).
    """
    from_dtype, to_dtype = np.asarray(fromvar).dtype, np.asarray(tovar).dtype
    if np.can_cast(from_dtype, to_dtype, casting="safe"):
        return
    converted = np.asarray(fromvar).astype(to_dtype)
    if not np.array_equal(converted, np.asarray(fromvar), equal_nan=from_dtype.kind in "fc"):
        raise RuntimeError(
            f"unsafe cast from {from_dtype} to {to_dtype}: values would change; "
            "convert the data explicitly or choose a wider dtype"
        )


__all__ = ["check_cast", "prod", "count_nonzero", "flat_nonzero", "make_2D_square", "ndenumerate"]
