"""What our executors share: task environments, cancellation, message delivery, async use.

The interfaces themselves (:class:`JobExecutor`, :class:`Environment`, ...) are in
:mod:`libertem.common.executor`; they are importable from here as well.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import functools
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from libertem.common.async_utils import adjust_event_loop_policy, async_generator_eager
from libertem.common.exceptions import ExecutorSpecException
from libertem.common.executor import (
    STOP_TOPIC,
    AsyncJobExecutor,
    Environment,
    GenericTaskProtocol,
    JobCancelledError,
    JobExecutor,
    NoopCommHandler,
    ResourceError,
    TaskCommHandler,
    WorkerContext,
    WorkerQueue,
)
from libertem.common.scheduler import Worker, WorkerSet
from libertem.common.tracing import TracedThreadPoolExecutor

T = TypeVar("T")

#: cancel ids asked for before their run started, remembered at most (per executor)
MAX_EARLY_CANCELS = 256


class TaskEnvironment(Environment):
    """The :class:`Environment` our executors hand to tasks, plus cancellation checks.

    Parameters
    ----------
    threads_per_worker, threaded_executor, worker_context, gpu_id
        As for :class:`Environment`.
    cancelled
        Returns ``True`` once the run was cancelled.
    worker
        Name of the worker running the task (``'inline'``, ``'thread'``, a Dask address).

    Notes
    -----
    The partition runner reads :attr:`threads_per_worker` (for
    ``UDFMeta.threads_per_worker``), sends progress through
    ``worker_context.signal`` and calls :meth:`check_cancelled` before each tile.
    """

    def __init__(
        self,
        threads_per_worker: int | None = None,
        threaded_executor: bool = False,
        worker_context: WorkerContext | None = None,
        gpu_id: int | None = None,
        *,
        cancelled: Callable[[], bool] | None = None,
        worker: str = "inline",
    ):
        super().__init__(threads_per_worker, threaded_executor, worker_context, gpu_id)
        self._cancelled = cancelled
        self.worker = worker

    def check_cancelled(self) -> None:
        """Raise :class:`JobCancelledError` if the run was cancelled."""
        if self._cancelled is not None and self._cancelled():
            raise JobCancelledError("the run was cancelled")


def make_canonical(main_gpu: int | bool | None) -> int | None:
    """Validate a ``main_process_gpu`` argument; the CUDA device it means, or ``None``.

    ``False``: no GPU. ``None``: the first CUDA device if there is one and CuPy works,
    else no GPU. ``True``: the first CUDA device. An int: that device, which must be
    among the detected ones.

    Raises
    ------
    ExecutorSpecException
        For ``True`` or a device id when no such CUDA device (or no working CuPy) is
        found.
    ValueError
        For any other type.
    """
    from libertem.utils.devices import detect

    if main_gpu is False:
        return None
    if main_gpu is None or main_gpu is True:
        found = detect()
        if found["cudas"] and found["has_cupy"]:
            return int(found["cudas"][0])
        if main_gpu is None:
            return None
        raise ExecutorSpecException(
            "Cannot specify main GPU as no GPUs detected or no CuPy found."
        )
    if isinstance(main_gpu, int):
        found = detect()
        if main_gpu in found["cudas"] and found["has_cupy"]:
            return int(main_gpu)
        raise ExecutorSpecException(
            f"Main GPU {main_gpu} not detected, only found {list(found['cudas'])}."
        )
    raise ValueError(f"Invalid type for main_process_gpu: {type(main_gpu)}")


def main_gpu_id(main_gpu: int | bool | None) -> int | None:
    """The CUDA device an executor's ``main_process_gpu`` argument names, unchecked.

    ``None`` and ``False``: no GPU; ``True``: the first CUDA device found (``None``
    if there is none); an int: that device (not checked against the detected ones:
    :meth:`Context.make_with` validates with :func:`make_canonical`).

    Raises
    ------
    TypeError
        For anything else.
    ExecutorSpecException
        For a negative device id.
    """
    if main_gpu is None or main_gpu is False:
        return None
    if main_gpu is True:
        from libertem.utils.devices import detect

        cudas = list(detect()["cudas"])
        return int(cudas[0]) if cudas else None
    if isinstance(main_gpu, int):
        if main_gpu < 0:
            raise ExecutorSpecException(f"main_process_gpu={main_gpu}: not a CUDA device id")
        return int(main_gpu)
    raise TypeError(f"main_process_gpu must be an int, a bool or None, got {main_gpu!r}")


class _ProgressCallbackHandler(NoopCommHandler):
    """Calls ``progress(task_id, frames)`` for every tile message."""

    def __init__(self, progress: Callable[[Any, float], None]):
        from libertem.common.progress import TOPIC_TILE

        self.subscribe(TOPIC_TILE, lambda topic, msg: progress(msg["ident"], msg["frames"]))


def as_comm_handler(task_comm_handler) -> TaskCommHandler:
    """A :class:`TaskCommHandler` for what ``run_tasks`` was given.

    A handler is used as it is; a callable ``progress(task_id, frames)`` gets the
    tile messages; ``None`` gives a handler without subscribers.
    """
    if isinstance(task_comm_handler, TaskCommHandler):
        return task_comm_handler
    if task_comm_handler is None:
        return NoopCommHandler()
    if callable(task_comm_handler):
        return _ProgressCallbackHandler(task_comm_handler)
    raise TypeError(
        f"task_comm_handler must be a TaskCommHandler, a callable or None, "
        f"got {type(task_comm_handler).__name__}"
    )


class MessagePump:
    """Delivers a run's messages from ``queue`` to ``handler`` in a thread while a run goes on.

    Use as a context manager around the run: it calls ``handler.start()``, runs
    ``handler.monitor(queue)`` and, at the end, delivers what is still queued and
    calls ``handler.done()`` if the run completed (not after an error or a
    cancellation).
    """

    def __init__(self, handler: TaskCommHandler, queue: WorkerQueue):
        self._handler = handler
        self._queue = queue
        self._thread: threading.Thread | None = None

    def __enter__(self) -> MessagePump:
        self._handler.start()
        self._thread = threading.Thread(
            target=self._handler.monitor,
            args=(self._queue,),
            name="libertem-messages",
            daemon=True,
        )
        self._thread.start()
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self._queue.put({"topic": STOP_TOPIC})
        self._thread.join()
        if exc_type is None:
            self._handler.done()


class BaseJobExecutor(JobExecutor):
    """Base of our executors: the main-process GPU, cancellation by ``cancel_id``.

    Parameters
    ----------
    main_process_gpu
        CUDA device for tasks that run in this process (see :func:`main_gpu_id`).
    """

    def __init__(self, main_process_gpu: int | None = None):
        import libertem.preload  # noqa: F401 - tasks may run in this process

        self._main_process_gpu = main_gpu_id(main_process_gpu)
        self._runs_lock = threading.Lock()
        self._runs: dict[Any, threading.Event] = {}
        self._early_cancels: dict[Any, None] = {}

    def _start_run(self, cancel_id) -> threading.Event:
        """Register a run; the returned event is set when it gets cancelled."""
        event = threading.Event()
        with self._runs_lock:
            if cancel_id in self._early_cancels:
                del self._early_cancels[cancel_id]
                event.set()
            self._runs[cancel_id] = event
        return event

    def _end_run(self, cancel_id) -> None:
        with self._runs_lock:
            self._runs.pop(cancel_id, None)

    def cancel(self, cancel_id) -> None:
        """Cancel the run ``cancel_id``: tasks not yet started are skipped, running
        ones stop at their next tile, and ``run_tasks`` raises :class:`JobCancelledError`.

        A ``cancel_id`` whose run has not started yet is cancelled when it starts.
        """
        with self._runs_lock:
            event = self._runs.get(cancel_id)
            if event is None:
                self._early_cancels[cancel_id] = None
                while len(self._early_cancels) > MAX_EARLY_CANCELS:
                    self._early_cancels.pop(next(iter(self._early_cancels)))
                return
        event.set()

    def _local_resources(self) -> dict[str, int]:
        """Resource tags of a worker in this process (CUDA with a main-process GPU)."""
        from libertem.common.backend import get_use_cuda

        if self._main_process_gpu is not None or get_use_cuda() is not None:
            return {"CUDA": 1, "compute": 1, "ndarray": 1}
        return {"CPU": 1, "compute": 1, "ndarray": 1}

    def ensure_async(self, pool=None) -> AsyncAdapter:
        """An :class:`AsyncAdapter` around this executor (using ``pool`` if given)."""
        return AsyncAdapter(self, pool=pool)

    def get_udf_runner(self) -> type:
        """The class that runs UDFs with this executor."""
        from libertem.udf.runner import UDFRunner

        return UDFRunner


# --- async use ---------------------------------------------------------------------------


async def sync_to_async(
    fn: Callable[..., T],
    pool: concurrent.futures.ThreadPoolExecutor | None = None,
    *args,
    **kwargs,
) -> T:
    """Await ``fn(*args, **kwargs)`` run in ``pool`` (default: asyncio's), in this context."""
    loop = asyncio.get_running_loop()
    call = functools.partial(contextvars.copy_context().run, fn, *args, **kwargs)
    return await loop.run_in_executor(pool, call)


class AsyncAdapter(AsyncJobExecutor):
    """``async`` access to a synchronous :class:`JobExecutor`.

    Blocking calls run in ``pool`` (by default one thread of its own, so the
    wrapped executor is called from one thread at a time); :meth:`run_tasks`
    drives the wrapped generator eagerly in a thread and hands the results over
    as an async generator.

    Parameters
    ----------
    wrapped
        The executor.
    pool
        Thread pool for the blocking calls (see :meth:`make_pool`).
    """

    def __init__(self, wrapped: JobExecutor, pool=None):
        self._wrapped = wrapped
        self._owns_pool = pool is None
        self._pool = self.make_pool() if pool is None else pool

    @classmethod
    def make_pool(cls) -> concurrent.futures.ThreadPoolExecutor:
        """A pool of one thread (the default for the blocking calls)."""
        return concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="libertem-async")

    def _call(self, fn, *args, **kwargs):
        return sync_to_async(fn, self._pool, *args, **kwargs)

    async def run_tasks(self, tasks, params_handle, cancel_id, task_comm_handler=None):
        """Async generator of ``(result, task)`` pairs, as the wrapped ``run_tasks``."""
        gen = self._wrapped.run_tasks(tasks, params_handle, cancel_id, task_comm_handler)
        async for item in async_generator_eager(gen):
            yield item

    async def run_function(self, fn: Callable[..., T], *args, **kwargs) -> T:
        """Run ``fn(*args, **kwargs)`` on a worker."""
        return await self._call(self._wrapped.run_function, fn, *args, **kwargs)

    async def map(self, fn, iterable):
        """``fn(item)`` for every item, on workers; the results in order."""
        return await self._call(self._wrapped.map, fn, iterable)

    async def run_each_host(self, fn, *args, **kwargs):
        """Run ``fn`` once per host: host name -> result."""
        return await self._call(self._wrapped.run_each_host, fn, *args, **kwargs)

    async def run_each_worker(self, fn, *args, **kwargs):
        """Run ``fn`` once per worker: worker name -> result."""
        return await self._call(self._wrapped.run_each_worker, fn, *args, **kwargs)

    async def run_each_partition(self, partitions, fn, all_nodes=False):
        """The results of ``fn(partition)`` for all partitions, as a list."""

        def run():
            return list(self._wrapped.run_each_partition(partitions, fn, all_nodes=all_nodes))

        return await self._call(run)

    async def scatter(self, obj):
        """Make ``obj`` available to tasks; the handle for :meth:`run_tasks`."""
        return await self._call(self._wrapped.scatter, obj)

    async def get_available_workers(self) -> WorkerSet:
        """The wrapped executor's workers."""
        return await self._call(self._wrapped.get_available_workers)

    async def get_resource_details(self):
        """Worker counts per host."""
        return await self._call(self._wrapped.get_resource_details)

    async def cancel(self, cancel_id):
        """Cancel the run ``cancel_id`` (runs right away, not behind other calls)."""
        cancel = getattr(self._wrapped, "cancel", None)
        if cancel is not None:
            await sync_to_async(cancel, None, cancel_id)

    async def close(self):
        """Close the wrapped executor and the pool this adapter made."""
        await self._call(self._wrapped.close)
        if self._owns_pool:
            self._pool.shutdown(wait=False)

    def ensure_sync(self) -> JobExecutor:
        """The wrapped executor."""
        return self._wrapped

    def get_udf_runner(self) -> type:
        """The UDF runner class of the wrapped executor."""
        return self._wrapped.get_udf_runner()

    @property
    def snooze_manager(self):
        """The wrapped executor's snooze manager (or ``None``)."""
        return self._wrapped.snooze_manager


__all__ = [
    "TYPE_CHECKING",
    "AsyncAdapter",
    "AsyncJobExecutor",
    "BaseJobExecutor",
    "Environment",
    "ExecutorSpecException",
    "GenericTaskProtocol",
    "JobExecutor",
    "MessagePump",
    "ResourceError",
    "TaskEnvironment",
    "TracedThreadPoolExecutor",
    "Worker",
    "WorkerSet",
    "adjust_event_loop_policy",
    "as_comm_handler",
    "async_generator_eager",
    "main_gpu_id",
    "make_canonical",
    "sync_to_async",
]
