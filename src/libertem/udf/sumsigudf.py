"""Sum of each frame."""

from __future__ import annotations

import numba
import numpy as np

from libertem.udf.base import UDF  # noqa: F401 (LiberTEM's name in this module)
from libertem.udf.sum import StreamingSumUDF, signal_sum

__all__ = ["SumSigUDF", "run_sumsig"]


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

    Works on dense and sparse input alike.

    Parameters
    ----------
    **kwargs
        ``dtype``: the dtype to sum in (default float32), combined with the dataset's
        dtype by ``numpy.result_type``; other parameters are kept as ``self.params``.
    """

    def __init__(self, **kwargs):
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)

    def get_result_buffers(self):
        return {"intensity": self.buffer(kind="nav", dtype=self.meta.input_dtype, where="device")}

    def process_tile(self, tile):
        """Add each frame's part of the tile to its sum."""
        out = self.results.intensity
        if (
            isinstance(tile, np.ndarray)
            and isinstance(out, np.ndarray)
            and out.dtype.kind == "f"
            and tile.dtype.kind in "fiu"
            and tile.dtype.itemsize <= 8
        ):
            _add_row_sums(tile.reshape((tile.shape[0], -1)), out)
        else:
            out[:] += signal_sum(tile)


def run_sumsig(ctx, dataset) -> dict:
    """Sum of each frame of ``dataset``: ``ctx.run_udf`` with :class:`SumSigUDF`.

    Returns
    -------
    dict
        ``{'intensity': BufferWrapper}``, navigation-shaped.
    """
    return ctx.run_udf(dataset=dataset, udf=SumSigUDF())
