"""Sum of log-scaled frames."""

from __future__ import annotations

import numpy as np

from libertem.udf.base import UDF


class LogsumUDF(UDF):
    """Sum of ``log1p(max(frame, 0))`` over all frames: the result ``'logsum'`` is frame-shaped.

    Compared with the log of the sum, this brings out features that appear with
    slightly raised intensity in many frames over strong ones in a few frames.
    """

    def get_result_buffers(self):
        return {"logsum": self.buffer(kind="sig", dtype=self.meta.input_dtype)}

    def process_tile(self, tile):
        """Add the log-scaled frames of the tile."""
        self.results.logsum[:] += np.add.reduce(np.log1p(np.maximum(tile, 0)), axis=0)

    def merge(self, dest, src):
        dest.logsum[:] += src.logsum
