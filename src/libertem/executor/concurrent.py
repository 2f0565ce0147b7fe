"""Run tasks on a pool of threads in this process."""

from __future__ import annotations

import concurrent.futures
import os
import socket
import threading

from threadpoolctl import threadpool_limits

from libertem.executor.base import JobExecutor, TaskEnvironment, WorkerInfo, WorkerSet


class ConcurrentJobExecutor(JobExecutor):
    """Runs tasks on a :class:`concurrent.futures.ThreadPoolExecutor`.

    Data and results are shared without copies; numpy, BLAS and numba kernels
    release the GIL, so the heavy parts of tasks run in parallel. While tasks run,
    BLAS libraries are limited to one thread each so the pool does not
    oversubscribe the cores.

    Parameters
    ----------
    client
        The thread pool to use.
    is_local
        Whether this executor created ``client`` (and so shuts it down on close).
    """

    def __init__(self, client: concurrent.futures.ThreadPoolExecutor, is_local: bool = False):
        self.client = client
        self._is_local = is_local
        self._n_threads = getattr(client, "_max_workers", 1)

    @classmethod
    def make_local(cls, n_threads: int | None = None) -> ConcurrentJobExecutor:
        """An executor with its own pool of ``n_threads`` (default: one per CPU core)."""
        if n_threads is None:
            n_threads = (
                len(os.sched_getaffinity(0))
                if hasattr(os, "sched_getaffinity")
                else (os.cpu_count() or 1)
            )
        pool = concurrent.futures.ThreadPoolExecutor(
            max_workers=int(n_threads), thread_name_prefix="libertem-worker"
        )
        return cls(client=pool, is_local=True)

    def run_tasks(self, tasks, params_handle, cancel_id, progress=None):
        cancelled = threading.Event()
        lock = threading.Lock()

        def locked_progress(task_id, frames):
            with lock:
                progress(task_id, frames)

        env = TaskEnvironment(
            progress=None if progress is None else locked_progress,
            cancelled=cancelled.is_set,
            worker="thread",
        )
        limits = threadpool_limits(1) if self._n_threads > 1 else None
        futures = {self.client.submit(task, params_handle, env): task for task in tasks}
        try:
            for future in concurrent.futures.as_completed(futures):
                yield future.result(), futures[future]
        finally:
            cancelled.set()
            for future in futures:
                future.cancel()
            concurrent.futures.wait(futures)
            if limits is not None:
                limits.restore_original_limits()

    def run_function(self, fn, *args, **kwargs):
        return self.client.submit(fn, *args, **kwargs).result()

    def map(self, fn, iterable):
        return list(self.client.map(fn, iterable))

    def get_available_workers(self) -> WorkerSet:
        host = socket.gethostname()
        return WorkerSet(
            WorkerInfo(f"thread-{i}", host, {"CPU": 1, "compute": 1})
            for i in range(self._n_threads)
        )

    def run_each_host(self, fn, *args, **kwargs):
        return {socket.gethostname(): self.run_function(fn, *args, **kwargs)}

    def close(self) -> None:
        if self._is_local:
            self.client.shutdown(wait=True, cancel_futures=True)
