"""Which pixels are excluded, and which neighbours repair them.

Excluded pixels are given as a boolean array or ``sparse.COO`` of the signal
shape (non-zero = excluded), or as an integer array of coordinates of shape
``(sig_dims, n)``, as :func:`numpy.nonzero` stacked or ``sparse.COO.coords``.
The repair environment of an excluded pixel are the pixels that differ from it
by at most one in every signal coordinate, lie inside the frame and are not
excluded themselves. :mod:`libertem.io.corrections.detector` applies the repair.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import product as _cartesian

import numpy as np
import scipy.sparse
import sparse

from libertem.common.sparse import is_sparse
from libertem.io.corrections import kernels

__all__ = [
    "CorrectError",
    "RepairDescriptor",
    "RepairValueError",
    "environments",
    "excluded_coords",
    "flatten_filter",
    "numba_ravel_multi_index_multi",
    "numba_unravel_index_multi",
]


class CorrectError(Exception):
    """Corrections that do not fit the data (shapes, dtypes, memory layout, coordinates)."""


class RepairValueError(CorrectError, ValueError):
    """An excluded pixel has no valid neighbour to be repaired from (a ``ValueError``)."""


def numba_ravel_multi_index_multi(multi_index, dims) -> np.ndarray:
    """Flat C-order indices of many coordinates, like :func:`numpy.ravel_multi_index`.

    Parameters
    ----------
    multi_index : array-like
        Coordinates of shape ``(len(dims), n)``; they must lie inside ``dims``.
    dims : sequence of int
        The shape the coordinates refer to.

    Returns
    -------
    numpy.ndarray
        ``n`` flat indices (``int64``).
    """
    multi_index = np.asarray(multi_index, dtype=np.int64).reshape((len(dims), -1))
    return kernels.ravel_multi(multi_index, np.asarray(dims, dtype=np.int64))


def numba_unravel_index_multi(indices, shape) -> np.ndarray:
    """Coordinates of many flat C-order indices, like :func:`numpy.unravel_index`.

    Parameters
    ----------
    indices : array-like
        ``n`` flat indices into ``shape``.
    shape : sequence of int
        The shape the indices refer to.

    Returns
    -------
    numpy.ndarray
        Coordinates of shape ``(len(shape), n)`` (``int64``).
    """
    indices = np.asarray(indices, dtype=np.int64).reshape(-1)
    return kernels.unravel_multi(indices, np.asarray(shape, dtype=np.int64))


def excluded_coords(excluded_pixels, sig_shape: Sequence[int]) -> np.ndarray:
    """Coordinates ``(sig_dims, n)`` of the excluded pixels, unique and in C order.

    Parameters
    ----------
    excluded_pixels
        ``None``, a boolean array or sparse array of shape ``sig_shape``, or
        integer coordinates of shape ``(sig_dims, n)``.
    sig_shape
        The signal shape they refer to.

    Raises
    ------
    CorrectError
        If the shape does not fit or a coordinate lies outside the frame.
    """
    sig_shape = tuple(int(s) for s in sig_shape)
    d = len(sig_shape)
    if excluded_pixels is None:
        return np.zeros((d, 0), dtype=np.int64)
    if isinstance(excluded_pixels, scipy.sparse.spmatrix | scipy.sparse.sparray):
        excluded_pixels = sparse.COO.from_scipy_sparse(excluded_pixels)
    if is_sparse(excluded_pixels):
        mask = sparse.COO(excluded_pixels)
        _check_mask_shape(mask.shape, sig_shape)
        coords = mask.coords[:, mask.data.astype(bool)]
    else:
        arr = np.asarray(excluded_pixels)
        if arr.dtype == bool:
            _check_mask_shape(arr.shape, sig_shape)
            coords = np.array(np.nonzero(arr))
        else:
            if not np.issubdtype(arr.dtype, np.integer) and arr.size > 0:
                raise CorrectError(
                    f"excluded pixels must be a boolean mask or integer coordinates, "
                    f"got dtype {arr.dtype}"
                )
            if arr.size == 0:
                arr = arr.reshape((d, 0))
            if arr.ndim != 2 or arr.shape[0] != d:
                raise CorrectError(
                    f"excluded pixel coordinates must have shape ({d}, n) for signal shape "
                    f"{sig_shape}, got {arr.shape}"
                )
            coords = arr
    coords = np.asarray(coords, dtype=np.int64).reshape((d, -1))
    outside = np.any((coords < 0) | (coords >= np.array(sig_shape)[:, None]), axis=0)
    if np.any(outside):
        first = tuple(int(c) for c in coords[:, np.argmax(outside)])
        raise CorrectError(f"excluded pixel {first} lies outside the signal shape {sig_shape}")
    flat = np.unique(np.ravel_multi_index(tuple(coords), sig_shape))
    return np.array(np.unravel_index(flat, sig_shape), dtype=np.int64).reshape((d, -1))


def _check_mask_shape(shape, sig_shape) -> None:
    if tuple(shape) != tuple(sig_shape):
        raise CorrectError(
            f"excluded pixel mask has shape {tuple(shape)}, the signal shape is {sig_shape}"
        )


def _neighbour_offsets(d: int) -> np.ndarray:
    """The ``3**d - 1`` offsets of the neighbours of a pixel in ``d`` dimensions."""
    offsets = np.array(list(_cartesian((-1, 0, 1), repeat=d)), dtype=np.int64)
    return offsets[np.any(offsets != 0, axis=1)]


def environments(excluded_pixels, sigshape: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
    """Neighbours inside the frame of each excluded pixel.

    Parameters
    ----------
    excluded_pixels
        Excluded pixels, in any form described in this module's docstring.
    sigshape
        The signal shape.

    Returns
    -------
    repairs : numpy.ndarray
        Neighbour coordinates, shape ``(n, 3**sig_dims - 1, sig_dims)``; for
        pixel ``i`` the first ``repair_counts[i]`` entries lie inside the frame
        (the others are meaningless).
    repair_counts : numpy.ndarray
        Number of neighbours inside the frame per excluded pixel.
    """
    sigshape = tuple(int(s) for s in sigshape)
    coords = excluded_coords(excluded_pixels, sigshape)
    offsets = _neighbour_offsets(len(sigshape))
    neighbours = coords.T[:, None, :] + offsets[None, :, :]
    inside = np.all((neighbours >= 0) & (neighbours < np.array(sigshape)), axis=2)
    order = np.argsort(~inside, axis=1, kind="stable")
    repairs = np.take_along_axis(neighbours, order[:, :, None], axis=1)
    return repairs, inside.sum(axis=1).astype(np.int64)


def flatten_filter(
    excluded_pixels, repairs: np.ndarray, repair_counts, sig_shape: Sequence[int]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Flat indices of the excluded pixels and of their valid neighbours.

    Takes the output of :func:`environments` and drops the neighbours that are
    excluded themselves.

    Parameters
    ----------
    excluded_pixels
        The excluded pixels passed to :func:`environments`.
    repairs, repair_counts
        What :func:`environments` returned. If ``repair_counts`` is a writable
        numpy array, it is overwritten with the counts of valid neighbours.
    sig_shape
        The signal shape.

    Returns
    -------
    exclude_flat : numpy.ndarray
        Flat indices of the excluded pixels, shape ``(n,)``.
    repair_flat : numpy.ndarray
        Flat indices of the valid neighbours, shape ``(n, 3**sig_dims - 1)``;
        row ``i`` holds ``counts[i]`` valid entries, then ``-1``.
    counts : numpy.ndarray
        Number of valid neighbours per excluded pixel.
    """
    sig_shape = tuple(int(s) for s in sig_shape)
    d = len(sig_shape)
    coords = excluded_coords(excluded_pixels, sig_shape)
    exclude_flat = numba_ravel_multi_index_multi(coords, sig_shape)
    n = exclude_flat.size
    m = 3**d - 1 if n == 0 else None
    repairs = np.asarray(repairs, dtype=np.int64).reshape((n, m or -1, d))
    counts_in = np.asarray(repair_counts, dtype=np.int64).reshape(n)
    m = repairs.shape[1]
    in_frame = np.arange(m)[None, :] < counts_in[:, None]
    clipped = np.where(in_frame[:, :, None], repairs, 0)
    flat = numba_ravel_multi_index_multi(clipped.reshape((-1, d)).T, sig_shape).reshape((n, m))
    valid = in_frame & ~np.isin(flat, exclude_flat)
    order = np.argsort(~valid, axis=1, kind="stable")
    repair_flat = np.take_along_axis(np.where(valid, flat, -1), order, axis=1)
    counts = valid.sum(axis=1).astype(np.int64)
    if isinstance(repair_counts, np.ndarray) and repair_counts.flags.writeable:
        repair_counts.reshape(-1)[:] = counts
    return exclude_flat, repair_flat, counts


class RepairDescriptor:
    """How to repair the excluded pixels of frames of one signal shape.

    Parameters
    ----------
    sig_shape : tuple of int
        The signal shape of the frames to repair.
    excluded_pixels
        Excluded pixels, in any form described in this module's docstring.
    allow_empty : bool
        Whether excluded pixels without any valid neighbour are accepted (they
        keep their value); otherwise they raise :class:`RepairValueError`.

    Attributes
    ----------
    exclude_flat, repair_flat, repair_counts : numpy.ndarray
        As returned by :func:`flatten_filter`.
    """

    def __init__(self, sig_shape, excluded_pixels=None, allow_empty=False):
        self.sig_shape = tuple(int(s) for s in sig_shape)
        coords = excluded_coords(excluded_pixels, self.sig_shape)
        repairs, counts = environments(coords, self.sig_shape)
        self.exclude_flat, self.repair_flat, self.repair_counts = flatten_filter(
            coords, repairs, counts, self.sig_shape
        )
        self.check_empty_repairs(allow_empty)

    @property
    def n_excluded(self) -> int:
        """Number of excluded pixels."""
        return int(self.exclude_flat.size)

    def empty_repairs(self) -> np.ndarray:
        """Coordinates ``(sig_dims, k)`` of the excluded pixels that have no valid neighbour."""
        empty = self.exclude_flat[self.repair_counts == 0]
        return numba_unravel_index_multi(empty, self.sig_shape)

    def check_empty_repairs(self, allow_empty) -> None:
        """Raise :class:`RepairValueError` for pixels without valid neighbours, unless allowed."""
        if allow_empty:
            return
        empty = np.argwhere(self.repair_counts == 0)
        if empty.size > 0:
            # indices into the C-ordered list of excluded pixels, as LiberTEM words it
            raise RepairValueError(f"Empty repair environments for pixel(s) number {empty}.")

    def __repr__(self) -> str:
        return f"<RepairDescriptor sig_shape={self.sig_shape} excluded={self.n_excluded}>"
