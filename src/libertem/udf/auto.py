"""Run a plain function on every frame without writing a UDF class."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from libertem.common.buffers import BufferWrapper
from libertem.udf.classes import UDF


class AutoUDF(UDF):
    """Apply ``f`` to every frame; the result buffer ``'result'`` is ``kind='nav'``.

    Its per-frame shape and dtype are found by calling ``f`` on a frame of ones
    of the input dtype.

    Parameters
    ----------
    f
        Function of one frame; its result should be much smaller than the frame.
    monitor
        Also return ``'monitor'`` (``kind='single'``, shaped like one frame's
        result): ``f`` of the last frame processed so far that the ROI selects,
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
        """The ``use='result_only'``, ``kind='single'`` buffer for one result like ``var``."""
        var = np.asarray(var)
        return self.buffer(
            kind="single", extra_shape=var.shape, dtype=var.dtype, use="result_only"
        )

    def get_result_buffers(self):
        """``'result'`` shaped like ``f`` of a frame of ones (and ``'monitor'``)."""
        mock = np.ones(tuple(self.meta.dataset_shape.sig), dtype=self.meta.input_dtype)
        var = self.params.f(mock)
        buffers = {"result": self.auto_buffer(var)}
        if self.params.monitor:
            buffers["monitor"] = self.auto_monitor_buffer(var)
        return buffers

    def process_frame(self, frame):
        """Store ``f(frame)`` as this frame's result."""
        self.results.result[:] = self.params.f(frame)

    def get_results(self):
        """``'result'``, and with ``monitor`` the result of the last valid frame."""
        if not self.params.monitor:
            return {}
        result = self.results.result
        valid = self.meta.get_valid_nav_mask()
        done = np.flatnonzero(valid) if valid is not None else np.arange(len(result))
        if done.size:
            monitor = np.array(result[done[-1]])
        else:
            monitor = np.zeros(result.shape[1:], dtype=result.dtype)
        return {"monitor": monitor.reshape(result.shape[1:] or (1,))}
