"""Sum of each frame."""

from __future__ import annotations

import numba
import numpy as np

from libertem.udf.classes import UDF  # noqa: F401 (LiberTEM's name in this module)
from libertem.udf.sum import StreamingSumUDF, signal_sum

__all__ = ["SumSigUDF", "run_sumsig"]


@numba.njit(nogil=True, fastmath=True, cache=True)
def _add_row_sums(flat, out, zero):
    """``out[i] += sum(flat[i])``, accumulated in the type of ``zero`` (GIL released).

    ``np.int64(0)`` sums integers of up to 32 bits exactly (2**31 pixels of 2**32 cannot
    overflow), with integer adds that vectorize twice as wide as float64 ones;
    ``0.0`` accumulates in float64.
    """
    for i in range(flat.shape[0]):
        acc = zero
        row = flat[i]
        for j in range(row.shape[0]):
            acc += row[j]
        out[i] += acc


# what the compiled row sums take: native-order integers and single/double floats
_INT_KERNEL_DTYPES = frozenset(
    np.dtype(t) for t in ("int8", "uint8", "int16", "uint16", "int32", "uint32")
)
_FLOAT_KERNEL_DTYPES = frozenset(np.dtype(t) for t in ("int64", "uint64", "float32", "float64"))


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
        """Add each frame's part of the tile to its sum."""
        out = self.results.intensity
        compiled = isinstance(tile, np.ndarray) and isinstance(out, np.ndarray)
        if compiled and out.dtype.kind == "f" and tile.dtype in _INT_KERNEL_DTYPES:
            _add_row_sums(tile.reshape((tile.shape[0], -1)), out, np.int64(0))
        elif compiled and out.dtype.kind == "f" and tile.dtype in _FLOAT_KERNEL_DTYPES:
            _add_row_sums(tile.reshape((tile.shape[0], -1)), out, 0.0)
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
