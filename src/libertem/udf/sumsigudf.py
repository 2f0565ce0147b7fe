"""Sum of each frame."""

from __future__ import annotations

import numpy as np

from libertem.udf.classes import UDF  # noqa: F401 (LiberTEM's name in this module)
from libertem.udf.sum import StreamingSumUDF, signal_sum
from libertem.udf.sum_kernels import FRAME_SUM_OUT_DTYPES, ROW_SUM_TILE_DTYPES, add_row_sums

__all__ = ["SumSigUDF", "run_sumsig"]


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
        return {"intensity": self.buffer(kind="nav", dtype=self.sum_dtype, where="device")}

    def process_tile(self, tile):
        """Add each frame's part of the tile to its sum.

        Integer tiles of up to 32 bits are added up exactly (in int64) by a compiled
        kernel, then added to the sums; other tiles by NumPy in the sums' dtype.
        """
        out = self.results.intensity
        if (
            isinstance(tile, np.ndarray)
            and isinstance(out, np.ndarray)
            and not isinstance(tile, np.matrix)
            and out.dtype in FRAME_SUM_OUT_DTYPES
            and tile.dtype in ROW_SUM_TILE_DTYPES
        ):
            add_row_sums(tile.reshape((tile.shape[0], -1)), out)
        else:
            out[:] += signal_sum(tile, dtype=out.dtype)


def run_sumsig(ctx, dataset) -> dict:
    """Sum of each frame of ``dataset``: ``ctx.run_udf`` with :class:`SumSigUDF`.

    Returns
    -------
    dict
        ``{'intensity': BufferWrapper}``, navigation-shaped.
    """
    return ctx.run_udf(dataset=dataset, udf=SumSigUDF())
