"""Run tasks on a pool of threads in this process."""

from __future__ import annotations

import concurrent.futures
import contextlib
import socket
from typing import Any

from libertem.common.backend import get_use_cuda
from libertem.common.executor import (
    Environment,
    JobCancelledError,
    TaskCommHandler,
    TaskProtocol,
    WorkerContext,
    WorkerQueue,
    resolve_params,
)
from libertem.common.scheduler import Worker, WorkerSet
from libertem.common.threading import limit_thread_pools
from libertem.common.tracing import TracedThreadPoolExecutor
from libertem.executor.base import (
    AsyncAdapter,
    BaseJobExecutor,
    MessagePump,
    TaskEnvironment,
    as_comm_handler,
    make_canonical,
    sync_to_async,
)
from libertem.executor.utils.queues import SimpleWorkerQueue
from libertem.utils.devices import detect


class ConcurrentWorkerContext(WorkerContext):
    """The worker context of tasks on the thread pool.

    Parameters
    ----------
    msg_queue
        Where :meth:`signal` puts the tasks' messages for the main node.
    """

    def __init__(self, msg_queue: WorkerQueue):
        self._msg_queue = msg_queue

    def signal(self, ident: str, topic: str, msg_dict: dict[str, Any]) -> None:
        """Queue ``msg_dict`` (with ``'ident'``) for the subscribers of ``topic``."""
        self._msg_queue.put({"topic": topic, "message": {"ident": ident, **msg_dict}})


def _pool_size(client: concurrent.futures.Executor) -> int:
    return int(getattr(client, "_max_workers", None) or 1)


class ConcurrentJobExecutor(BaseJobExecutor):
    """Runs tasks on a :class:`concurrent.futures.Executor` (a thread pool).

    Data and results are shared without copies; numpy, BLAS and numba kernels
    release the GIL, so the heavy parts of tasks run in parallel. Tasks get
    ``threads_per_worker=1``, and while a run goes on BLAS libraries are limited
    to one thread each, so the pool does not oversubscribe the cores.

    Parameters
    ----------
    client
        The pool to use.
    is_local
        Whether this executor created ``client`` (and so shuts it down on close).
    main_process_gpu
        CUDA device the tasks use (see :func:`~libertem.executor.base.make_canonical`).
    """

    def __init__(
        self,
        client: concurrent.futures.Executor,
        is_local=False,
        main_process_gpu: int | None = None,
    ):
        super().__init__(main_process_gpu=main_process_gpu)
        self.client = client
        self._is_local = is_local
        self._n_threads = _pool_size(client)

    @classmethod
    def make_local(
        cls, n_threads: int | None = None, main_process_gpu: int | bool | None = None
    ) -> ConcurrentJobExecutor:
        """An executor with its own pool of ``n_threads`` (default: one per CPU core)."""
        if n_threads is None:
            n_threads = len(list(detect()["cpus"]))
        if int(n_threads) < 1:
            raise ValueError(f"n_threads must be at least 1, got {n_threads!r}")
        pool = TracedThreadPoolExecutor(
            None, max_workers=int(n_threads), thread_name_prefix="libertem-worker"
        )
        return cls(client=pool, is_local=True, main_process_gpu=main_process_gpu)

    def run_tasks(
        self,
        tasks: list[TaskProtocol],
        params_handle: Any,
        cancel_id: Any,
        task_comm_handler: TaskCommHandler | None = None,
    ):
        """Run ``tasks`` on the pool; yield ``(result, task)`` pairs as they complete."""
        handler = as_comm_handler(task_comm_handler)
        cancelled = self._start_run(cancel_id)
        msg_queue = SimpleWorkerQueue()
        env = TaskEnvironment(
            threads_per_worker=1,
            threaded_executor=True,
            worker_context=ConcurrentWorkerContext(msg_queue),
            gpu_id=self._main_process_gpu,
            cancelled=cancelled.is_set,
            worker="thread",
        )

        def run_one(task):
            if cancelled.is_set():
                raise JobCancelledError(f"run {cancel_id!r} was cancelled")
            with env.enter():
                return task(resolve_params(params_handle), env)

        futures: dict = {}
        limits = contextlib.ExitStack()
        if self._n_threads > 1:
            limits.enter_context(limit_thread_pools(1))
        try:
            with MessagePump(handler, msg_queue):
                futures = {self.client.submit(run_one, task): task for task in tasks}
                for future in concurrent.futures.as_completed(futures):
                    if cancelled.is_set():
                        raise JobCancelledError(f"run {cancel_id!r} was cancelled")
                    yield future.result(), futures[future]
        finally:
            cancelled.set()
            for future in futures:
                future.cancel()
            concurrent.futures.wait(futures)
            self._end_run(cancel_id)
            limits.close()

    def run_function(self, fn, *args, **kwargs):
        """Run ``fn(*args, **kwargs)`` on the pool and return its result."""
        return self.client.submit(fn, *args, **kwargs).result()

    def map(self, fn, iterable):
        """``fn(item)`` for every item, on the pool; the results in order."""
        return list(self.client.map(fn, iterable))

    def run_each_worker(self, fn, *args, **kwargs):
        """Run ``fn`` once per pool thread (concurrently): worker name -> result."""
        names = self.get_available_workers().names()
        futures = {name: self.client.submit(fn, *args, **kwargs) for name in names}
        return {name: future.result() for name, future in futures.items()}

    def run_each_host(self, fn, *args, **kwargs):
        """``{hostname: fn(*args, **kwargs)}``: all threads are on this host."""
        return {socket.gethostname(): self.run_function(fn, *args, **kwargs)}

    def get_available_workers(self) -> WorkerSet:
        """One worker per pool thread."""
        host = socket.gethostname()
        resources = self._local_resources()
        return WorkerSet(Worker(f"thread-{i}", host, resources, 1) for i in range(self._n_threads))

    def close(self) -> None:
        """Shut the pool down if this executor created it."""
        if self._is_local:
            self.client.shutdown(wait=True, cancel_futures=True)


class AsyncConcurrentJobExecutor(AsyncAdapter):
    """An :class:`AsyncAdapter` around a :class:`ConcurrentJobExecutor`.

    Parameters
    ----------
    wrapped
        The executor; ``None`` makes one with ``ConcurrentJobExecutor.make_local(*args,
        **kwargs)``.
    *args, **kwargs
        For ``make_local`` when ``wrapped`` is ``None``; ``pool=`` goes to the adapter.
    """

    def __init__(self, wrapped=None, *args, **kwargs):
        pool = kwargs.pop("pool", None)
        if wrapped is None:
            wrapped = ConcurrentJobExecutor.make_local(*args, **kwargs)
        super().__init__(wrapped, pool=pool)

    @classmethod
    async def make_local(cls) -> AsyncConcurrentJobExecutor:
        """An adapter around a new local thread executor (one thread per core)."""
        return cls(wrapped=await sync_to_async(ConcurrentJobExecutor.make_local))


__all__ = [
    "AsyncAdapter",
    "AsyncConcurrentJobExecutor",
    "BaseJobExecutor",
    "ConcurrentJobExecutor",
    "ConcurrentWorkerContext",
    "Environment",
    "JobCancelledError",
    "SimpleWorkerQueue",
    "TaskCommHandler",
    "TaskProtocol",
    "TracedThreadPoolExecutor",
    "Worker",
    "WorkerContext",
    "WorkerQueue",
    "WorkerSet",
    "detect",
    "get_use_cuda",
    "make_canonical",
    "sync_to_async",
]
