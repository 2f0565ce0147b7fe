"""Conversions between dense arrays, pydata.sparse arrays and scipy.sparse matrices.

pydata.sparse (which imports numba) and scipy.sparse are imported when a function
first meets something that is not a NumPy array: work on dense data never imports them.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import sparse

    from libertem.common.shape import Shape


def _sparse():
    import sparse

    return sparse


def _scipy_sparse():
    import scipy.sparse

    return scipy.sparse


def is_pydata(a) -> bool:
    """Whether ``a`` is a pydata.sparse array (it can be one only if sparse is imported)."""
    pydata = sys.modules.get("sparse")
    return pydata is not None and isinstance(a, pydata.SparseArray)


def is_sparse(a) -> bool:
    """Whether ``a`` is a sparse array: pydata.sparse, scipy.sparse or cupyx.scipy.sparse."""
    if isinstance(a, np.ndarray):
        return False
    # an instance of a class of pydata.sparse or scipy.sparse: the module is imported
    if is_pydata(a):
        return True
    scipy_sparse = sys.modules.get("scipy.sparse")
    if scipy_sparse is not None and scipy_sparse.issparse(a):
        return True
    return type(a).__module__.startswith("cupyx.scipy.sparse")


def assert_sparse(a) -> sparse.SparseArray:
    """Return ``a`` if it is a pydata.sparse array.

    Raises
    ------
    TypeError
        If ``a`` is anything else (including scipy.sparse matrices).
    """
    if not isinstance(a, _sparse().SparseArray):
        raise TypeError(f"expected a pydata.sparse array, got {type(a).__name__}")
    return a


def _shape_tuple(shape) -> tuple[int, ...] | None:
    return None if shape is None else tuple(int(s) for s in shape)


def sparse_to_coo(a, shape: Shape | tuple[int, ...] | None = None) -> sparse.COO:
    """A sparse array (pydata.sparse or scipy.sparse) as `sparse.COO`, optionally reshaped.

    Parameters
    ----------
    a
        pydata.sparse array or scipy.sparse matrix/array.
    shape
        Reshape the result to this shape (same number of elements).

    Raises
    ------
    TypeError
        If ``a`` is not sparse.
    """
    sparse = _sparse()
    if isinstance(a, sparse.COO):
        coo = a
    elif isinstance(a, sparse.SparseArray):
        coo = sparse.COO(a)
    elif _scipy_sparse().issparse(a):
        coo = sparse.COO.from_scipy_sparse(a)
    elif hasattr(a, "get") and is_sparse(a):  # cupyx.scipy.sparse: to host first
        coo = sparse.COO.from_scipy_sparse(a.get())
    else:
        raise TypeError(f"expected a sparse array, got {type(a).__name__}")
    shape = _shape_tuple(shape)
    if shape is not None and coo.shape != shape:
        coo = coo.reshape(shape)
    return coo


def to_dense(a) -> np.ndarray:
    """Any dense or sparse array as a `numpy.ndarray` (CuPy arrays are copied to the host)."""
    if type(a) is np.ndarray:
        return a
    if is_pydata(a):
        return a.todense()
    if is_sparse(a) and _scipy_sparse().issparse(a):
        return a.toarray()
    if is_sparse(a):  # cupyx.scipy.sparse
        return a.get().toarray()
    if not isinstance(a, np.ndarray) and hasattr(a, "get"):  # cupy.ndarray
        return np.asarray(a.get())
    return np.asarray(a)


def densify(a) -> Any:
    """The result of a dense or sparse computation as a dense array on the same device.

    pydata.sparse, scipy.sparse and cupyx.scipy.sparse arrays become NumPy resp.
    CuPy arrays, ``numpy.matrix`` a plain ``numpy.ndarray``; dense arrays are
    returned as they are.
    """
    if type(a) is np.ndarray:
        return a
    if is_pydata(a):
        return a.todense()
    if is_sparse(a):
        return a.toarray()
    if isinstance(a, np.matrix):
        return np.asarray(a)
    return a


def to_sparse(a, shape: Shape | tuple[int, ...] | None = None) -> sparse.COO:
    """Any dense or sparse array as `sparse.COO`, optionally reshaped to ``shape``."""
    if is_sparse(a):
        return sparse_to_coo(a, shape=shape)
    coo = _sparse().COO.from_numpy(to_dense(a))
    shape = _shape_tuple(shape)
    if shape is not None and coo.shape != shape:
        coo = coo.reshape(shape)
    return coo


__all__ = [
    "is_pydata",
    "is_sparse",
    "assert_sparse",
    "densify",
    "sparse_to_coo",
    "to_dense",
    "to_sparse",
]
