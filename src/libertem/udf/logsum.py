"""Sum of log-scaled frames."""

from __future__ import annotations

from libertem.udf.classes import UDF
from libertem.udf.sum import sum_partials

__all__ = ["LogsumUDF", "run_logsum"]


class LogsumUDF(UDF):
    """Sum of log-scaled frames: the result ``'logsum'`` is frame-shaped.

    Each frame is shifted to start at zero and scaled as ``log(frame - min(frame) + 1)``
    before adding. Compared with the log of the sum, this brings out features that
    appear with slightly raised intensity in many frames over strong ones in a few.
    """

    def __init__(self):
        super().__init__()

    def get_backends(self):
        """Dense NumPy and CuPy, and the pydata.sparse formats (``sparse.COO``,
        ``sparse.GCXS``); the log is taken of dense frames."""
        return (
            self.BACKEND_CUPY,
            self.BACKEND_NUMPY,
            self.BACKEND_SPARSE_COO,
            self.BACKEND_SPARSE_GCXS,
        )

    def get_result_buffers(self):
        return {"logsum": self.buffer(kind="sig", dtype=self.meta.input_dtype, where="device")}

    def process_frame(self, frame):
        """Add the log-scaled frame."""
        if hasattr(frame, "todense"):  # sparse: the shifted log is dense anyway
            frame = frame.todense()
        xp = self.xp
        self.results.logsum[:] += xp.log(frame - xp.min(frame) + 1)

    def merge(self, dest, src):
        dest.logsum[:] += src.logsum

    def merge_all(self, ordered_results):
        """Add up the partitions' sums."""
        return sum_partials(ordered_results, "logsum")


def run_logsum(ctx, dataset, roi=None) -> dict:
    """Sum of the log-scaled (selected) frames: ``ctx.run_udf`` with :class:`LogsumUDF`.

    Returns
    -------
    dict
        ``{'logsum': BufferWrapper}``, frame-shaped.
    """
    return ctx.run_udf(dataset=dataset, udf=LogsumUDF(), roi=roi)
