"""Run a plain function on every frame without writing a UDF class."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from libertem.udf.base import UDF


class AutoUDF(UDF):
    """Apply ``f`` to every frame; the result buffer ``'result'`` is ``kind='nav'``.

    Its per-frame shape and dtype are found by calling ``f`` on a frame of zeros
    of the input dtype.

    Parameters
    ----------
    f
        Function of one frame; its result should be much smaller than the frame.
    """

    def __init__(self, f: Callable[[np.ndarray], object]):
        super().__init__(f=f)

    def get_preferred_input_dtype(self):
        return self.USE_NATIVE_DTYPE

    def get_result_buffers(self):
        mock = np.zeros(tuple(self.meta.dataset_shape.sig), dtype=self.meta.input_dtype)
        sample = np.asarray(self.params.f(mock))
        return {"result": self.buffer(kind="nav", extra_shape=sample.shape, dtype=sample.dtype)}

    def process_frame(self, frame):
        """Store ``f(frame)`` as this frame's result."""
        self.results.result[:] = self.params.f(frame)
