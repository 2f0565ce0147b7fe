"""Numba kernels of the detector corrections, working in place on frame stacks.

The kernels see a stack of frames as a 3D array ``(frames, rows, columns)``:
a 2D signal as it is, a 1D signal with one row, and higher-dimensional
signals with their leading axes merged into the rows. A pixel's *flat index*
``f`` within a frame is then at ``(f // columns, f % columns)``. They release
the GIL, so that threads correct their tiles in parallel.
"""

from __future__ import annotations

import numba
import numpy as np


@numba.njit(nogil=True, cache=True)
def subtract_multiply(data, dark, gain, has_dark, has_gain):
    """``data = (data - dark) * gain`` in place; either part may be switched off.

    Parameters
    ----------
    data
        ``(frames, rows, columns)`` float array, may be a strided view.
    dark, gain
        ``(rows, columns)`` arrays of ``data``'s dtype (ignored when switched off).
    has_dark, has_gain
        Which of the two corrections to apply.
    """
    n, rows, cols = data.shape
    if has_dark and has_gain:
        for k in range(n):
            for i in range(rows):
                for j in range(cols):
                    data[k, i, j] = (data[k, i, j] - dark[i, j]) * gain[i, j]
    elif has_dark:
        for k in range(n):
            for i in range(rows):
                for j in range(cols):
                    data[k, i, j] -= dark[i, j]
    elif has_gain:
        for k in range(n):
            for i in range(rows):
                for j in range(cols):
                    data[k, i, j] *= gain[i, j]


@numba.njit(nogil=True, cache=True)
def patch_mean(data, exclude_flat, repair_flat, repair_counts):
    """Replace excluded pixels by the mean of their valid neighbours, in place.

    Parameters
    ----------
    data
        ``(frames, rows, columns)`` float array.
    exclude_flat
        Flat indices (within a frame) of the excluded pixels.
    repair_flat
        ``(n_excluded, max_neighbours)`` flat indices of each pixel's valid
        neighbours; row ``i`` holds ``repair_counts[i]`` valid entries.
    repair_counts
        Number of valid neighbours per excluded pixel. A pixel without any
        keeps its value.
    """
    n, rows, cols = data.shape
    n_excluded = exclude_flat.shape[0]
    for k in range(n):
        for e in range(n_excluded):
            count = repair_counts[e]
            if count == 0:
                continue
            total = 0.0
            for r in range(count):
                f = repair_flat[e, r]
                total += data[k, f // cols, f % cols]
            target = exclude_flat[e]
            data[k, target // cols, target % cols] = total / count


@numba.njit(nogil=True, cache=True)
def ravel_multi(multi_index, dims):
    """Flat C-order indices of the ``(d, n)`` coordinates ``multi_index`` in shape ``dims``."""
    d, n = multi_index.shape
    out = np.zeros(n, dtype=np.int64)
    for i in range(n):
        flat = 0
        for axis in range(d):
            flat = flat * dims[axis] + multi_index[axis, i]
        out[i] = flat
    return out


@numba.njit(nogil=True, cache=True)
def unravel_multi(indices, shape):
    """``(d, n)`` coordinates of the flat C-order ``indices`` in ``shape``."""
    d = shape.shape[0]
    n = indices.shape[0]
    out = np.zeros((d, n), dtype=np.int64)
    for i in range(n):
        rest = indices[i]
        for axis in range(d - 1, -1, -1):
            out[axis, i] = rest % shape[axis]
            rest = rest // shape[axis]
    return out


def frame_stack(data: np.ndarray, sig_ndim: int) -> np.ndarray:
    """``data`` of shape ``(..., *sig)`` as ``(frames, rows, columns)`` for the kernels.

    A view whenever the axes can be merged without copying (always for 1D and 2D
    signals); otherwise a copy, which :func:`write_back` returns into ``data``.
    """
    split = data.ndim - sig_ndim
    sig = data.shape[split:]
    frames = int(np.prod(data.shape[:split], dtype=np.int64))
    rows = int(np.prod(sig[:-1], dtype=np.int64))
    return data.reshape((frames, rows, sig[-1]))


def write_back(stack: np.ndarray, data: np.ndarray) -> None:
    """Copy ``stack`` into ``data`` if :func:`frame_stack` had to copy."""
    if not np.may_share_memory(stack, data):
        data[...] = stack.reshape(data.shape)
