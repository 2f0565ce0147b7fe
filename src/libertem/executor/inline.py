"""Run every task in the calling thread, one after the other."""

from __future__ import annotations

import os
import socket
from typing import Any

import cloudpickle

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
from libertem.executor.base import BaseJobExecutor, MessagePump, TaskEnvironment, as_comm_handler
from libertem.executor.utils.queues import SimpleWorkerQueue


def _cpu_count() -> int:
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


class InlineWorkerContext(WorkerContext):
    """The worker context of tasks run inline.

    Parameters
    ----------
    queue
        Data queue from the main node to the task (see ``TaskCommHandler.handle_task``).
    msg_queue
        Where :meth:`signal` puts the task's messages for the main node.
    """

    def __init__(self, queue: SimpleWorkerQueue, msg_queue: SimpleWorkerQueue):
        self._queue = queue
        self._msg_queue = msg_queue

    def signal(self, ident: str, topic: str, msg_dict: dict[str, Any]) -> None:
        """Queue ``msg_dict`` (with ``'ident'``) for the subscribers of ``topic``."""
        self._msg_queue.put({"topic": topic, "message": {"ident": ident, **msg_dict}})

    def get_worker_queue(self) -> WorkerQueue:
        """The data queue from the main node."""
        return self._queue


def _round_trip(obj):
    """``obj`` pickled and unpickled, as it would travel to a worker process."""
    return cloudpickle.loads(cloudpickle.dumps(obj))


class InlineJobExecutor(BaseJobExecutor):
    """Runs tasks synchronously, in order, in the current thread.

    Useful for debugging (breakpoints and tracebacks work as usual) and for UDFs
    that parallelize themselves.

    Parameters
    ----------
    debug
        Send tasks, parameters and results through a pickle round trip, as a
        multi-process executor would: a UDF that cannot be pickled fails here too.
    inline_threads
        Threads a task may use (``UDFMeta.threads_per_worker``, BLAS and numba
        limits); default: all CPU cores available to this process.
    main_process_gpu
        CUDA device the tasks use (see :func:`~libertem.executor.base.make_canonical`).
    *args, **kwargs
        Ignored (accepted for compatibility).
    """

    def __init__(
        self,
        debug=False,
        inline_threads=None,
        main_process_gpu: int | None = None,
        *args,
        **kwargs,
    ):
        super().__init__(main_process_gpu=main_process_gpu)
        self._debug = bool(debug)
        if inline_threads is not None and int(inline_threads) < 1:
            raise ValueError(f"inline_threads must be at least 1, got {inline_threads!r}")
        self._inline_threads = None if inline_threads is None else int(inline_threads)

    @property
    def threads_per_worker(self) -> int:
        """Threads a task may use."""
        return self._inline_threads or _cpu_count()

    def run_tasks(
        self,
        tasks: list[TaskProtocol],
        params_handle: Any,
        cancel_id: Any,
        task_comm_handler: TaskCommHandler | None = None,
    ):
        """Run ``tasks`` one after the other here; yield ``(result, task)`` after each."""
        handler = as_comm_handler(task_comm_handler)
        cancelled = self._start_run(cancel_id)
        worker_queue, msg_queue = SimpleWorkerQueue(), SimpleWorkerQueue()
        env = TaskEnvironment(
            threads_per_worker=self.threads_per_worker,
            threaded_executor=False,
            worker_context=InlineWorkerContext(worker_queue, msg_queue),
            gpu_id=self._main_process_gpu,
            cancelled=cancelled.is_set,
            worker="inline",
        )
        try:
            with MessagePump(handler, msg_queue):
                for task in tasks:
                    if cancelled.is_set():
                        raise JobCancelledError(f"run {cancel_id!r} was cancelled")
                    handler.handle_task(task, worker_queue)
                    params = resolve_params(params_handle)
                    if self._debug:
                        task, params = _round_trip(task), _round_trip(params)
                    with env.enter():
                        result = task(params, env)
                    if self._debug:
                        result = _round_trip(result)
                    yield result, task
        finally:
            self._end_run(cancel_id)
            worker_queue.close()

    def run_function(self, fn, *args, **kwargs):
        """``fn(*args, **kwargs)``, called here."""
        if self._debug:
            fn, args, kwargs = _round_trip((fn, args, kwargs))
        return fn(*args, **kwargs)

    def map(self, fn, iterable):
        """``[fn(item) for item in iterable]``, called here."""
        return [self.run_function(fn, item) for item in iterable]

    def run_each_worker(self, fn, *args, **kwargs):
        """``{'inline': fn(*args, **kwargs)}``: this thread is the only worker."""
        return {"inline": self.run_function(fn, *args, **kwargs)}

    def run_each_host(self, fn, *args, **kwargs):
        """``{hostname: fn(*args, **kwargs)}``."""
        return {socket.gethostname(): self.run_function(fn, *args, **kwargs)}

    def get_available_workers(self) -> WorkerSet:
        """One worker: this thread, with a CUDA resource if it uses a GPU."""
        return WorkerSet([Worker("inline", socket.gethostname(), self._local_resources(), 1)])


__all__ = [
    "BaseJobExecutor",
    "Environment",
    "InlineJobExecutor",
    "InlineWorkerContext",
    "SimpleWorkerQueue",
    "TaskCommHandler",
    "TaskProtocol",
    "Worker",
    "WorkerContext",
    "WorkerQueue",
    "WorkerSet",
    "get_use_cuda",
]
