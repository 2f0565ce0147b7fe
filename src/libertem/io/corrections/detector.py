"""Detector corrections: dark frame subtraction, gain map and patching of excluded pixels.

A corrected frame is ``(raw - dark) * gain``, after which every *excluded* pixel
(dead, hot or otherwise defective) is replaced by the arithmetic mean of its
valid neighbours: the pixels that differ by at most one in every signal
coordinate (the 8 surrounding pixels of a 2D frame, 26 in 3D), lie inside the
frame and are not excluded themselves (see :mod:`libertem.io.corrections.repair`).

Excluded pixels are given as a boolean array or ``sparse.COO`` of the signal
shape (``True`` = excluded), or as an integer array of coordinates of shape
``(sig_dims, n)``, as :func:`numpy.nonzero` stacked or ``sparse.COO.coords``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import scipy.sparse
import sparse

from libertem.common.math import prod
from libertem.common.sparse import is_sparse
from libertem.io.corrections import kernels
from libertem.io.corrections.repair import (
    CorrectError,
    RepairDescriptor,
    RepairValueError,
    environments,
    flatten_filter,
    numba_ravel_multi_index_multi,
    numba_unravel_index_multi,
)

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
