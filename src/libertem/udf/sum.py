"""Sum of all frames, and the base of the streaming sums (for dense and sparse tiles)."""

from __future__ import annotations

import functools
import operator
from collections.abc import Mapping
from typing import Any

import numpy as np

from libertem.common.sparse import densify, is_sparse
from libertem.common.udf import BACKEND_NAMES, CUDA
from libertem.udf.classes import UDF
from libertem.udf.sum_kernels import (
    EXACT_SUM_TILE_DTYPES,
    SWAPPED_UINT16,
    add_tile_frame_sums,
    frame_sums_apply,
)

__all__ = ["SumUDF", "StreamingSumUDF", "frame_sum", "signal_sum", "sum_partials"]

# Streaming reductions do so little per byte that Python's per-tile overhead shows at
# 1 MiB tiles; 4 MiB tiles still sit in the L3 cache and halve that overhead's share.
STREAMING_TILE_BYTES = 4 * 1024 * 1024
#: bytes per tile of :class:`SumUDF` on integer data (measured on 256 x 256 and 96 x 96
#: uint16 frames: 4 MiB 66-72% of the read limit, 8 MiB 70-74%, 16 MiB 75-81%)
EXACT_SUM_TILE_BYTES = 16 * 1024 * 1024

# Every array backend: the sums below accept dense, pydata.sparse and scipy.sparse tiles
# (on the CPU or, through CuPy, on a GPU). 'cuda' is a CUDA worker fed NumPy arrays.
ALL_BACKENDS = tuple(sorted(BACKEND_NAMES - {CUDA})) + (CUDA,)


def _is_2d_sparse(tile) -> bool:
    """scipy.sparse / cupyx tiles are 2D: frames times flattened signal."""
    if isinstance(tile, np.ndarray) or not is_sparse(tile):
        return False
    import sparse

    return not isinstance(tile, sparse.SparseArray)


def frame_sum(tile, shape: tuple[int, ...], dtype=None):
    """Sum of a tile over its frames, dense, reshaped to ``shape`` (the tile's signal part).

    Parameters
    ----------
    tile
        Dense or sparse tile ``(frames, *signal)`` or a 2D sparse matrix ``(frames, pixels)``.
    shape
        Shape of the result.
    dtype
        Dtype to add up in (the tile's values are cast on the fly); ``None``: numpy's
        default for the tile's dtype.
    """
    return densify(tile.sum(axis=0, dtype=dtype)).reshape(shape)


def signal_sum(tile, dtype=None) -> Any:
    """Sum of each frame of a dense or sparse tile, as a dense 1D array, in ``dtype``."""
    if _is_2d_sparse(tile):
        return densify(tile.sum(axis=1, dtype=dtype)).reshape(-1)
    flat = tile.reshape((tile.shape[0], -1))
    return densify(flat.sum(axis=1, dtype=dtype))


def sum_partials(ordered_results: Mapping, *names: str) -> dict:
    """``merge_all`` of sums: each named buffer added up over all partial results.

    Not in place, so that the parts may be Dask arrays (``DelayedJobExecutor``).

    Parameters
    ----------
    ordered_results
        What ``merge_all`` receives: partial results by partition slice.
    *names
        The buffers to add up.
    """
    parts = list(ordered_results.values())
    return {
        name: functools.reduce(operator.add, (getattr(part, name) for part in parts))
        for name in names
    }


class StreamingSumUDF(UDF):
    """Base of sums over the data: a dtype to sum in, every array backend, large tiles.

    Tiles arrive in the dataset's own dtype (:attr:`UDF.USE_NATIVE_DTYPE`) and are cast
    to the sum's dtype while they are added up: one pass over the data instead of a
    conversion pass followed by a summing pass, with the same (bitwise) result.

    Parameters
    ----------
    dtype
        Dtype to sum in; combined with the dataset's dtype by ``numpy.result_type``.
    """

    def __init__(self, dtype="float32", **kwargs):
        super().__init__(dtype=dtype, **kwargs)

    def get_preferred_input_dtype(self):
        return self.USE_NATIVE_DTYPE

    @property
    def sum_dtype(self) -> np.dtype:
        """The dtype the sums are added up and returned in: the ``dtype`` parameter
        combined with the tiles' dtype (float when corrections apply)."""
        return np.result_type(self.params.dtype, self.meta.input_dtype)

    def get_backends(self):
        return ALL_BACKENDS

    def get_tiling_preferences(self):
        return {"depth": self.TILE_DEPTH_DEFAULT, "total_size": STREAMING_TILE_BYTES}


class SumUDF(StreamingSumUDF):
    """Sum over the navigation axes: the result ``'intensity'`` is frame-shaped.

    Works on dense and sparse input alike (see :meth:`get_backends`).

    Parameters
    ----------
    dtype
        Dtype to sum in; combined with the dataset's dtype by ``numpy.result_type``.
    """

    # numpy casts (and byte-swaps) while it adds up: big-endian frames need no swap pass.
    # Applies to this process_tile only; subclasses that override it get native tiles.
    _TAKES_STORED_BYTE_ORDER = True

    def __init__(self, dtype="float32"):
        super().__init__(dtype=dtype)

    def get_result_buffers(self):
        return {"intensity": self.buffer(kind="sig", dtype=self.sum_dtype, where="device")}

    def get_tiling_preferences(self):
        """Tiles of :data:`EXACT_SUM_TILE_BYTES` on uncorrected integer data, whose
        frames the exact kernel adds up while whole rows of them stream past an
        accumulator in the L2 cache (longer tiles: fewer passes over the accumulator,
        less overhead per frame); else those of :class:`StreamingSumUDF`."""
        meta = getattr(self, "meta", None)
        dtype = None if meta is None else meta.dataset_dtype
        corrections = None if meta is None else meta.corrections
        corrected = corrections is not None and corrections.have_corrections()
        exact = dtype is not None and (
            np.dtype(dtype) in EXACT_SUM_TILE_DTYPES or np.dtype(dtype) == SWAPPED_UINT16
        )
        if exact and not corrected:
            return {"depth": self.TILE_DEPTH_DEFAULT, "total_size": EXACT_SUM_TILE_BYTES}
        return super().get_tiling_preferences()

    def process_tile(self, tile):
        """Add the tile's frames to the (tile-sized view of the) sum."""
        out = self.results.intensity
        if frame_sums_apply(tile, out):
            add_tile_frame_sums(tile, out)
        else:
            out[:] += frame_sum(tile, out.shape, dtype=out.dtype)

    def merge(self, dest, src):
        dest.intensity[:] += src.intensity

    def merge_all(self, ordered_results):
        """Add up the partitions' sums."""
        return sum_partials(ordered_results, "intensity")
