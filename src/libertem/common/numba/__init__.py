"""numba helpers: index arithmetic usable inside jitted code, dense @ sparse products.

The index functions are jitted versions of ``numpy.ravel_multi_index`` and
``numpy.unravel_index`` for C order, callable from other numba functions
(where numpy's are not available). ``*_single`` take one index, ``*_multi``
many, laid out as numpy does: one row per axis.
"""

from __future__ import annotations

import numba
import numpy as np

from libertem.common.numba.cache import cached_njit


@numba.njit(cache=True, nogil=True)
def numba_ravel_multi_index_single(multi_index, dims):
    """Flat C-order index of one index tuple ``multi_index`` into an array of shape ``dims``.

    Like ``numpy.ravel_multi_index(multi_index, dims)`` (no bounds check).
    """
    flat = 0
    for i in range(len(dims)):
        flat = flat * dims[i] + multi_index[i]
    return flat


@numba.njit(cache=True, nogil=True)
def numba_ravel_multi_index_multi(multi_index, dims):
    """Flat C-order indices of many indices: ``multi_index`` is ``(len(dims), n)``.

    Like ``numpy.ravel_multi_index(tuple(multi_index), dims)``; returns ``(n,)`` int64.
    """
    n = multi_index.shape[1]
    out = np.zeros(n, dtype=np.int64)
    for k in range(n):
        flat = 0
        for i in range(len(dims)):
            flat = flat * dims[i] + multi_index[i, k]
        out[k] = flat
    return out


@numba.njit(cache=True, nogil=True)
def numba_unravel_index_single(index, shape):
    """The index tuple (as an int64 array) of flat C-order ``index`` into ``shape``.

    Like ``numpy.unravel_index(index, shape)``.
    """
    out = np.zeros(len(shape), dtype=np.int64)
    rest = index
    for i in range(len(shape) - 1, -1, -1):
        out[i] = rest % shape[i]
        rest = rest // shape[i]
    return out


@numba.njit(cache=True, nogil=True)
def numba_unravel_index_multi(indices, shape):
    """Index tuples of many flat C-order ``indices``: an int64 array ``(len(shape), n)``.

    Like ``numpy.array(numpy.unravel_index(indices, shape))``.
    """
    n = len(indices)
    out = np.zeros((len(shape), n), dtype=np.int64)
    for k in range(n):
        rest = indices[k]
        for i in range(len(shape) - 1, -1, -1):
            out[i, k] = rest % shape[i]
            rest = rest // shape[i]
    return out


@numba.njit(cache=True, nogil=True)
def _rmatmul_csr(left, indptr, indices, data, out):
    for k in range(len(indptr) - 1):
        for p in range(indptr[k], indptr[k + 1]):
            j = indices[p]
            v = data[p]
            for i in range(left.shape[0]):
                out[i, j] += left[i, k] * v


@numba.njit(cache=True, nogil=True)
def _rmatmul_csc(left, indptr, indices, data, out):
    for j in range(len(indptr) - 1):
        for p in range(indptr[j], indptr[j + 1]):
            k = indices[p]
            v = data[p]
            for i in range(left.shape[0]):
                out[i, j] += left[i, k] * v


def rmatmul(left_dense: np.ndarray, right_sparse) -> np.ndarray:
    """``left_dense @ right_sparse`` as a dense array, for a CSR or CSC right operand.

    Multiplies a 2D numpy array with a ``scipy.sparse`` CSR or CSC matrix/array in
    one pass over the stored entries (scipy computes dense @ sparse by converting).

    Parameters
    ----------
    left_dense
        ``(m, k)`` array.
    right_sparse
        ``(k, n)`` ``scipy.sparse`` CSR or CSC matrix or array.

    Returns
    -------
    numpy.ndarray
        ``(m, n)``, of the result dtype of the operands.

    Raises
    ------
    ValueError
        If the shapes do not match or ``right_sparse`` is neither CSR nor CSC.
    """
    import scipy.sparse

    left = np.asarray(left_dense)
    if left.ndim != 2 or not scipy.sparse.issparse(right_sparse):
        raise ValueError("rmatmul takes a 2D array and a scipy.sparse matrix")
    if left.shape[1] != right_sparse.shape[0]:
        raise ValueError(
            f"shapes {left.shape} and {right_sparse.shape} do not match for a matrix product"
        )
    fmt = right_sparse.format
    if fmt not in ("csr", "csc"):
        raise ValueError(f"rmatmul takes CSR or CSC matrices, got {fmt!r}")
    dtype = np.result_type(left.dtype, right_sparse.dtype)
    out = np.zeros((left.shape[0], right_sparse.shape[1]), dtype=dtype)
    kernel = _rmatmul_csr if fmt == "csr" else _rmatmul_csc
    kernel(left, right_sparse.indptr, right_sparse.indices, right_sparse.data, out)
    return out


__all__ = [
    "cached_njit",
    "numba_ravel_multi_index_multi",
    "numba_ravel_multi_index_single",
    "numba_unravel_index_multi",
    "numba_unravel_index_single",
    "rmatmul",
]
