"""Sum of each frame."""

from __future__ import annotations

from libertem.udf.base import UDF
from libertem.udf.sum import STREAMING_TILE_BYTES


class SumSigUDF(UDF):
    """Sum over the signal axes: the result ``'intensity'`` has one value per frame.

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

    def get_result_buffers(self):
        return {"intensity": self.buffer(kind="nav", dtype=self.meta.input_dtype, where="device")}

    def process_tile(self, tile):
        """Add each frame's part of the tile to its sum."""
        flat = tile.reshape((tile.shape[0], -1))
        self.results.intensity[:] += flat.sum(axis=1)
