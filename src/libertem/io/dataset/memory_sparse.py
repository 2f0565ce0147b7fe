"""Tiles of sparse in-memory data (pydata.sparse or scipy.sparse), in any array backend."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import scipy.sparse
import sparse
import sparseconverter

from libertem.common.math import prod
from libertem.common.shape import Shape
from libertem.common.slice import Slice
from libertem.io.dataset.base import DataTile
from libertem.io.dataset.base.blocks import frame_blocks, stored_range


def sparse_backend_of(data) -> str:
    """The array backend name of a sparse array, e.g. ``'sparse.COO'``."""
    return sparseconverter.get_backend(data)


def as_frames(data, sig_shape: tuple[int, ...]) -> sparse.COO:
    """Sparse ``data`` as a `sparse.COO` stack of frames ``(n_frames, *sig_shape)``.

    scipy.sparse matrices hold one flattened frame per row.
    """
    if scipy.sparse.issparse(data):
        coo = sparse.COO.from_scipy_sparse(data)
    else:
        coo = sparse.COO(data)
    frame_size = prod(sig_shape)
    return coo.reshape((coo.size // frame_size, *sig_shape))


def _take(frames: sparse.COO, file_idx: np.ndarray) -> sparse.COO:
    """Frames ``file_idx`` of ``frames``; indices outside the stack give zero frames."""
    n = frames.shape[0]
    valid = (file_idx >= 0) & (file_idx < n)
    if valid.all():
        if file_idx.size and np.all(np.diff(file_idx) == 1):
            return frames[int(file_idx[0]) : int(file_idx[-1]) + 1]
        return frames[file_idx]
    shape = (file_idx.size, *frames.shape[1:])
    if not valid.any():
        return sparse.zeros(shape, dtype=frames.dtype, format="coo")
    part = frames[file_idx[valid]]
    positions = np.flatnonzero(valid)
    coords = part.coords.copy()
    coords[0] = positions[coords[0]]
    return sparse.COO(coords, part.data, shape=shape)


def sparse_tiles(
    frames: sparse.COO,
    start: int,
    stop: int,
    sync_offset: int,
    scheme,
    dest_dtype: np.dtype,
    roi_part: np.ndarray | None,
    array_backend: str,
    corrections=None,
) -> Iterator[DataTile]:
    """Tiles of dataset frames ``[start, stop)`` of a sparse frame stack.

    Dataset frame ``i`` is frame ``i + sync_offset`` of ``frames``. Tiles come out
    as ``array_backend`` (2D backends get the signal axes flattened) in
    ``dest_dtype``; with corrections, they are corrected as dense arrays first.
    """
    sig_dims = len(scheme.sig_shape)
    have_corrections = corrections is not None and corrections.have_corrections()
    stored = stored_range(start, stop, sync_offset, frames.shape[0])
    for block_start, n, runs in frame_blocks(start, stop, stored, scheme.depth, roi_part):
        idx = np.concatenate([np.arange(a, b) for _, a, b in runs])
        block = _take(frames, idx + sync_offset)
        for scheme_idx, sig in enumerate(scheme.slices):
            part = block[(slice(None), *sig.get())]
            tile_slice = Slice((block_start, *sig.origin), Shape((n, *sig.shape), sig_dims))
            if have_corrections:
                dense = part.todense().astype(dest_dtype)
                corrections.apply(dense, tile_slice)
                data = sparseconverter.for_backend(dense, array_backend)
            else:
                data = sparseconverter.for_backend(part.astype(dest_dtype), array_backend)
            yield DataTile(data, tile_slice, scheme_idx, start)


__all__ = ["as_frames", "sparse_backend_of", "sparse_tiles"]
