"""Detector corrections: dark frame subtraction, gain map and patching of excluded pixels.

A corrected frame is ``(raw - dark) * gain``, after which every *excluded* pixel
(dead, hot or otherwise defective) is replaced by the arithmetic mean of its
valid neighbours: the pixels that differ by at most one in every signal
coordinate (the 8 surrounding pixels of a 2D frame, 26 in 3D), lie inside the
frame and are not excluded themselves.

Excluded pixels are given as a boolean array or ``sparse.COO`` of the signal
shape (``True`` = excluded), or as an integer array of coordinates of shape
``(sig_dims, n)``, as :func:`numpy.nonzero` stacked or ``sparse.COO.coords``.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import product as _cartesian

import numpy as np
import scipy.sparse
import sparse

from libertem.common.math import prod
from libertem.common.sparse import is_sparse
from libertem.io.corrections import kernels

__all__ = [
    "CorrectError",
    "RepairDescriptor",
    "RepairValueError",
    "correct",
    "correct_dot_masks",
    "environments",
    "flatten_filter",
    "is_sparse",
    "numba_ravel_multi_index_multi",
    "numba_unravel_index_multi",
    "prod",
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


def check_real(arr: np.ndarray, what: str) -> np.ndarray:
    """``arr`` if it holds real numbers (a dark frame, a gain map).

    Raises
    ------
    CorrectError
        For a complex or non-numeric dtype.
    """
    if not np.issubdtype(arr.dtype, np.number) or np.issubdtype(arr.dtype, np.complexfloating):
        raise CorrectError(f"{what} must hold real numbers, got dtype {arr.dtype}")
    return arr


def _frame_array(a, sig_shape: tuple[int, ...], what: str) -> np.ndarray | None:
    """A dark frame or gain map as an array of ``sig_shape`` (a flat one is reshaped)."""
    if a is None:
        return None
    arr = np.asarray(a)
    if arr.shape != sig_shape:
        if arr.size != prod(sig_shape) or arr.ndim != 1:
            raise CorrectError(f"{what} has shape {arr.shape}, the signal shape is {sig_shape}")
        arr = arr.reshape(sig_shape)
    return check_real(arr, what)


def _infer_sig_shape(buffer, sig_shape, dark_image, gain_map, repair_descriptor):
    if sig_shape is not None:
        return tuple(int(s) for s in sig_shape)
    for a in (dark_image, gain_map):
        if a is not None:
            return tuple(np.shape(a))
    if repair_descriptor is not None:
        return repair_descriptor.sig_shape
    return tuple(buffer.shape[1:])


def apply_prepared(data, sig_ndim, dark, gain, descriptor) -> None:
    """Correct ``data`` ``(..., *sig)`` in place with prepared parts.

    ``dark`` and ``gain`` are ``None`` or arrays of the signal shape and of
    ``data``'s dtype; ``descriptor`` is ``None`` or a :class:`RepairDescriptor`
    for that signal shape.
    """
    stack = kernels.frame_stack(data, sig_ndim)
    if dark is not None or gain is not None:
        rows, cols = stack.shape[1:]
        placeholder = np.zeros((1, 1), dtype=stack.dtype)
        d = placeholder if dark is None else dark.reshape((rows, cols))
        g = placeholder if gain is None else gain.reshape((rows, cols))
        kernels.subtract_multiply(stack, d, g, dark is not None, gain is not None)
    if descriptor is not None and descriptor.n_excluded > 0:
        kernels.patch_mean(
            stack, descriptor.exclude_flat, descriptor.repair_flat, descriptor.repair_counts
        )
    kernels.write_back(stack, data)


def correct(
    buffer: np.ndarray,
    dark_image: np.ndarray | None = None,
    gain_map: np.ndarray | None = None,
    excluded_pixels=None,
    repair_descriptor: RepairDescriptor | None = None,
    inplace: bool = False,
    sig_shape: Sequence[int] | None = None,
    allow_empty: bool = False,
) -> np.ndarray:
    """Correct detector frames: ``(buffer - dark_image) * gain_map``, then patch excluded pixels.

    Parameters
    ----------
    buffer : numpy.ndarray
        Frames, shape ``(..., *sig_shape)``, or ``(..., prod(sig_shape))``.
    dark_image, gain_map : numpy.ndarray, optional
        Arrays of the signal shape.
    excluded_pixels : optional
        Pixels to patch from their neighbours, in any form described in this
        module's docstring.
    repair_descriptor : RepairDescriptor, optional
        A precomputed description of the repair (it takes precedence over
        ``excluded_pixels``); reuse one to correct many buffers.
    inplace : bool
        Correct ``buffer`` itself (it must have a float dtype and be C-contiguous)
        instead of a copy.
    sig_shape : tuple of int, optional
        The signal shape; by default that of ``dark_image`` or ``gain_map``,
        else ``buffer.shape[1:]``.
    allow_empty : bool
        Accept excluded pixels without valid neighbours (they keep their value).

    Returns
    -------
    numpy.ndarray
        The corrected frames, shaped like ``buffer``; ``buffer`` itself if
        ``inplace``, else a new array of ``buffer``'s dtype promoted to at least
        ``float32``.

    Raises
    ------
    CorrectError
        If shapes do not fit each other; if ``buffer`` is Fortran-ordered, or
        ``inplace`` and ``buffer`` is not C-contiguous.
    TypeError
        For ``inplace=True`` with a buffer that is not of a float dtype.
    RepairValueError
        For an excluded pixel without valid neighbours, unless ``allow_empty``.
    """
    buffer = buffer if isinstance(buffer, np.ndarray) else np.asarray(buffer)
    sig_shape = _infer_sig_shape(buffer, sig_shape, dark_image, gain_map, repair_descriptor)
    dark = _frame_array(dark_image, sig_shape, "dark_image")
    gain = _frame_array(gain_map, sig_shape, "gain_map")
    if repair_descriptor is None and excluded_pixels is not None:
        repair_descriptor = RepairDescriptor(sig_shape, excluded_pixels, allow_empty)
    elif repair_descriptor is not None and repair_descriptor.sig_shape != sig_shape:
        raise CorrectError(
            f"repair_descriptor is for signal shape {repair_descriptor.sig_shape}, "
            f"the signal shape is {sig_shape}"
        )
    sig_ndim = len(sig_shape)
    if tuple(buffer.shape[buffer.ndim - sig_ndim :]) == sig_shape:
        frame_shape = (*buffer.shape[: buffer.ndim - sig_ndim], *sig_shape)
    elif buffer.ndim >= 1 and buffer.shape[-1] == prod(sig_shape):
        frame_shape = (*buffer.shape[:-1], *sig_shape)
    else:
        raise CorrectError(
            f"buffer of shape {buffer.shape} does not hold frames of signal shape {sig_shape}"
        )
    if inplace:
        if not np.issubdtype(buffer.dtype, np.floating):
            raise TypeError("In-place correction only supported for floating point data.")
        out = buffer
    else:
        # the copy keeps the memory layout: Fortran order stays Fortran order
        out = buffer.astype(np.result_type(buffer.dtype, np.float32))
    if not out.flags.c_contiguous or np.isfortran(buffer):
        raise CorrectError("For in-place operation, the buffer given must be C-contiguous")
    # splitting the last axis or adding a leading one is always a view
    frames = out.reshape((1, *sig_shape) if len(frame_shape) == sig_ndim else frame_shape)
    apply_prepared(
        frames,
        sig_ndim,
        None if dark is None else np.ascontiguousarray(dark, dtype=out.dtype),
        None if gain is None else np.ascontiguousarray(gain, dtype=out.dtype),
        repair_descriptor,
    )
    return out


def repair_matrix(descriptor: RepairDescriptor) -> scipy.sparse.csr_array:
    """The linear map ``raw -> repaired`` (flat frames) that patches with neighbour means.

    Row ``e`` of an excluded pixel holds ``1 / count`` at its valid neighbours;
    all other rows, including those of excluded pixels without valid neighbours,
    are those of the identity.
    """
    size = prod(descriptor.sig_shape)
    keep = np.ones(size, dtype=bool)
    keep[descriptor.exclude_flat[descriptor.repair_counts > 0]] = False
    rows = [np.flatnonzero(keep)]
    cols = [rows[0]]
    vals = [np.ones(rows[0].size)]
    counts = descriptor.repair_counts
    has = counts > 0
    mask = np.arange(descriptor.repair_flat.shape[1])[None, :] < counts[:, None]
    rows.append(np.broadcast_to(descriptor.exclude_flat[:, None], mask.shape)[mask])
    cols.append(descriptor.repair_flat[mask])
    vals.append(np.broadcast_to((1.0 / np.where(has, counts, 1))[:, None], mask.shape)[mask])
    return scipy.sparse.csr_array(
        (np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(size, size)
    )


def correct_dot_masks(
    masks, gain_map: np.ndarray | None, excluded_pixels=None, allow_empty: bool = False
):
    """Fold a gain map and excluded pixels into a mask stack.

    Returns masks ``m'`` so that ``m' . raw`` equals ``m . corrected`` for every
    frame, where ``corrected`` is ``raw * gain_map`` with each excluded pixel
    replaced by the mean of its valid neighbours, as :func:`correct` does. A
    dark frame is not folded in: subtract ``m' . dark`` from the result instead.

    Parameters
    ----------
    masks
        Mask stack of shape ``(..., *sig_shape)`` or ``(..., prod(sig_shape))``:
        a numpy array, a ``sparse`` array or (2D) a ``scipy.sparse`` matrix/array.
    gain_map : numpy.ndarray or None
        Gain map of the signal shape.
    excluded_pixels : optional
        Excluded pixels, in any form described in this module's docstring.
    allow_empty : bool
        Accept excluded pixels without valid neighbours (they keep their value).

    Returns
    -------
    Masks of the same shape and kind (numpy, sparse, scipy.sparse) as ``masks``.
    """
    if gain_map is None and excluded_pixels is None:
        return masks
    if gain_map is not None:
        sig_shape = tuple(np.shape(gain_map))
    elif isinstance(excluded_pixels, np.ndarray) and excluded_pixels.dtype == bool:
        sig_shape = excluded_pixels.shape
    elif is_sparse(excluded_pixels):
        sig_shape = tuple(excluded_pixels.shape)
    else:
        sig_shape = tuple(masks.shape[1:])
    size = prod(sig_shape)
    shape = tuple(masks.shape)
    if shape[-1] == size and shape[len(shape) - len(sig_shape) :] != sig_shape:
        lead = shape[:-1]
    elif shape[len(shape) - len(sig_shape) :] == sig_shape:
        lead = shape[: len(shape) - len(sig_shape)]
    else:
        raise CorrectError(f"masks of shape {shape} do not fit the signal shape {sig_shape}")
    gain = None if gain_map is None else _frame_array(gain_map, sig_shape, "gain_map")
    flat = masks.reshape((prod(lead), size))
    if excluded_pixels is not None:
        descriptor = RepairDescriptor(sig_shape, excluded_pixels, allow_empty)
        repair = repair_matrix(descriptor)
        if isinstance(flat, np.ndarray):
            flat = np.asarray((repair.T @ flat.T).T)
        elif scipy.sparse.issparse(flat):
            flat = type(flat)(flat @ repair)
        else:
            flat = flat @ sparse.COO.from_scipy_sparse(repair)
    if gain is not None:
        g = gain.reshape(size)
        if scipy.sparse.issparse(flat):
            flat = type(flat)(flat.multiply(g[None, :]))
        else:
            flat = flat * g[None, :]
    return flat.reshape(shape) if not scipy.sparse.issparse(flat) else flat
