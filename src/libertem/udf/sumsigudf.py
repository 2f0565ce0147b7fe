"""Sum of each frame."""

from __future__ import annotations

from libertem.udf.sum import StreamingSumUDF


class SumSigUDF(StreamingSumUDF):
    """Sum over the signal axes: the result ``'intensity'`` has one value per frame.

    Parameters
    ----------
    dtype
        Dtype to sum in; combined with the dataset's dtype by ``numpy.result_type``.
    """

    def get_result_buffers(self):
        return {"intensity": self.buffer(kind="nav", dtype=self.meta.input_dtype, where="device")}

    def process_tile(self, tile):
        """Add each frame's part of the tile to its sum."""
        flat = tile.reshape((tile.shape[0], -1))
        self.results.intensity[:] += flat.sum(axis=1)
