"""Sum of each frame."""

from __future__ import annotations

import numba

from libertem.udf.sum import StreamingSumUDF


@numba.njit(nogil=True, fastmath=True, cache=True)
def _add_row_sums(flat, out):
    """``out[i] += sum(flat[i])``, accumulated in float64 (vectorized, GIL released)."""
    for i in range(flat.shape[0]):
        acc = 0.0
        row = flat[i]
        for j in range(row.shape[0]):
            acc += row[j]
        out[i] += acc


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
        out = self.results.intensity
        if (
            self.meta.array_backend == "numpy"
            and out.dtype.kind == "f"
            and flat.dtype.kind in "fiu"
            and flat.dtype.itemsize <= 8
        ):
            _add_row_sums(flat, out)
        else:
            out[:] += flat.sum(axis=1)
