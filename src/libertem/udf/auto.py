"""Run a plain function on every frame without writing a UDF class."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from libertem.common.buffers import BufferWrapper
from libertem.udf.base import UDF


class AutoUDF(UDF):
    """Apply ``f`` to every frame; the result buffer ``'result'`` is ``kind='nav'``.

    Its per-frame shape and dtype are found by calling ``f`` on a frame of zeros
    of the input dtype.

    Parameters
    ----------
    f
        Function of one frame; its result should be much smaller than the frame.
    monitor
        Also keep the frame processed last in a ``'monitor'`` buffer (``kind='sig'``),
        e.g. to watch a long run in a live plot.
    """

    def __init__(self, f: Callable[[np.ndarray], object], monitor: bool = False):
        super().__init__(f=f, monitor=monitor)

    def get_preferred_input_dtype(self):
        """The dataset's native dtype: ``f`` sees the data as it is."""
        return self.USE_NATIVE_DTYPE

    def auto_buffer(self, var) -> BufferWrapper:
        """The ``kind='nav'`` buffer for per-frame results like ``var`` (shape and dtype)."""
        var = np.asarray(var)
        return self.buffer(kind="nav", extra_shape=var.shape, dtype=var.dtype)

    def auto_monitor_buffer(self, var) -> BufferWrapper:
        """The ``kind='sig'`` buffer for frames like ``var`` (its dtype)."""
        return self.buffer(kind="sig", dtype=np.asarray(var).dtype)

    def get_result_buffers(self):
        """``'result'`` shaped like ``f`` of a frame of zeros (and ``'monitor'``)."""
        mock = np.zeros(tuple(self.meta.dataset_shape.sig), dtype=self.meta.input_dtype)
        buffers = {"result": self.auto_buffer(self.params.f(mock))}
        if self.params.monitor:
            buffers["monitor"] = self.auto_monitor_buffer(mock)
        return buffers

    def process_frame(self, frame):
        """Store ``f(frame)`` as this frame's result (and the frame, with ``monitor``)."""
        self.results.result[:] = self.params.f(frame)
        if self.params.monitor:
            self.results.monitor[:] = frame

    def merge(self, dest, src):
        """Per-frame results by position; the monitor shows the last merged partition."""
        dest.result[:] = src.result
        if self.params.monitor:
            dest.monitor[:] = src.monitor
