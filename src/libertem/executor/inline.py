"""Run every task in the calling thread, one after the other."""

from __future__ import annotations

import socket

from libertem.common.backend import get_use_cuda
from libertem.executor.base import JobExecutor, TaskEnvironment, WorkerInfo, WorkerSet


class InlineJobExecutor(JobExecutor):
    """Runs tasks synchronously, in order, in the current thread.

    Useful for debugging (breakpoints and tracebacks work as usual) and for UDFs
    that parallelize themselves.

    Parameters
    ----------
    debug
        Accepted for compatibility; has no effect.
    """

    def __init__(self, debug: bool = False, **kwargs):
        self._debug = debug

    def run_tasks(self, tasks, params_handle, cancel_id, progress=None):
        env = TaskEnvironment(progress=progress, worker="inline")
        for task in tasks:
            yield task(params_handle, env), task

    def run_function(self, fn, *args, **kwargs):
        return fn(*args, **kwargs)

    def get_available_workers(self) -> WorkerSet:
        """One worker: this thread, with a CUDA resource if this process uses a GPU."""
        resources = {"CPU": 1, "compute": 1, "ndarray": 1}
        if get_use_cuda() is not None:
            resources = {"CUDA": 1, "compute": 1, "ndarray": 1}
        return WorkerSet([WorkerInfo("inline", socket.gethostname(), resources)])
