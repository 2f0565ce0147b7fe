"""Sum of all frames, and the base of the streaming sums."""

from __future__ import annotations

import numpy as np

from libertem.udf.base import UDF

# Streaming reductions do so little per byte that Python's per-tile overhead shows at
# 1 MiB tiles; 4 MiB tiles still sit in the L3 cache and halve that overhead's share.
STREAMING_TILE_BYTES = 4 * 1024 * 1024


class StreamingSumUDF(UDF):
    """Base of sums over the data: a dtype to sum in, NumPy and CuPy, large tiles.

    Parameters
    ----------
    dtype
        Dtype to sum in; combined with the dataset's dtype by ``numpy.result_type``.
    """

    def __init__(self, dtype="float32"):
        super().__init__(dtype=dtype)

    def get_preferred_input_dtype(self):
        return self.params.dtype

    def get_backends(self):
        return (self.BACKEND_NUMPY, self.BACKEND_CUPY)

    def get_tiling_preferences(self):
        return {"depth": self.TILE_DEPTH_DEFAULT, "total_size": STREAMING_TILE_BYTES}


class SumUDF(StreamingSumUDF):
    """Sum over the navigation axes: the result ``'intensity'`` is frame-shaped.

    Parameters
    ----------
    dtype
        Dtype to sum in; combined with the dataset's dtype by ``numpy.result_type``.
    """

    def get_result_buffers(self):
        return {"intensity": self.buffer(kind="sig", dtype=self.meta.input_dtype, where="device")}

    def process_tile(self, tile):
        """Add the tile's frames to the (tile-sized view of the) sum."""
        self.results.intensity[:] += tile.sum(axis=0)

    def merge(self, dest, src):
        dest.intensity[:] += src.intensity

    def merge_all(self, ordered_results):
        return {"intensity": np.stack([r.intensity for r in ordered_results.values()]).sum(axis=0)}
