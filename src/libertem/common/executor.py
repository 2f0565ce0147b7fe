"""The executor interfaces: what runs tasks, what tasks see, how workers talk back.

An executor (:class:`JobExecutor`) runs *tasks* (:class:`TaskProtocol`, one per
partition) on its workers and yields their results. Each task gets an
:class:`Environment`: how many threads it may use, which GPU, and a
:class:`WorkerContext` to send messages (for example progress) to the main node,
where a :class:`TaskCommHandler` hands them to the callbacks subscribed to
their topic.

The pieces live in their own modules of this layer (``environment``, ``queues``,
``task_comm``, ``scatter``, ``exceptions``) and are importable from here, as in
LiberTEM; the queue implementations are in :mod:`libertem.executor.utils.queues`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any, Protocol, TypeVar, runtime_checkable

from libertem.common.cupy import use_gpu
from libertem.common.environment import Environment
from libertem.common.exceptions import (
    ExecutorError,
    JobCancelledError,
    ResourceError,
    WorkerLostError,
)
from libertem.common.lazy import lazy_names
from libertem.common.queues import WorkerQueue, WorkerQueueEmpty
from libertem.common.scatter import (
    ParamsHandle,
    ScatterHandle,
    enter_scatter,
    resolve_params,
    scattered,
)
from libertem.common.scheduler import ResourceDef, Worker, WorkerSet
from libertem.common.task_comm import (
    STOP_TOPIC,
    NoopCommHandler,
    SubscriptionManager,
    TaskCommHandler,
    WorkerContext,
)
from libertem.common.threading import mitigations, set_num_threads
from libertem.utils.devices import has_cupy

if TYPE_CHECKING:
    from libertem.io.dataset.base import Partition

T = TypeVar("T")
V = TypeVar("V")


# --- tasks -------------------------------------------------------------------------------


@runtime_checkable
class TaskProtocol(Protocol):
    """A task of a run: called as ``task(params, env)`` on a worker."""

    def __call__(self, params: Any, env: Environment) -> Any:
        """Run; ``params`` is what was scattered for the run."""

    def get_partition(self) -> Partition:
        """The partition the task processes."""

    def get_resources(self) -> ResourceDef:
        """Worker resources the task needs, e.g. ``{'CPU': 1, 'compute': 1}``."""

    def get_tracing_span_context(self):
        """Tracing context of whoever created the task (or ``None``)."""


@runtime_checkable
class GenericTaskProtocol(Protocol):
    """A callable with a tracing context, for :meth:`JobExecutor.run_process_local`."""

    def __call__(self, *args, **kwargs) -> Any:
        """Run."""

    def get_tracing_span_context(self):
        """Tracing context of whoever created the task (or ``None``)."""


class GenericTask:
    """Wrap ``fn`` as a :class:`GenericTaskProtocol` task.

    Parameters
    ----------
    fn
        What to call.
    span_context
        Tracing context to run it in (``None``: none).
    """

    def __init__(self, fn: Callable, span_context):
        self._fn = fn
        self._span_context = span_context

    def get_tracing_span_context(self):
        """The tracing context given at creation."""
        return self._span_context

    def __call__(self, *args, **kwargs):
        return self._fn(*args, **kwargs)


# --- the executors -----------------------------------------------------------------------


class JobExecutor(ABC):
    """Runs tasks and functions on workers: this thread, a thread pool, a cluster.

    A run goes like this: the parameters shared by its tasks are sent once with
    :meth:`scatter`; :meth:`run_tasks` runs the tasks and yields ``(result,
    task)`` pairs as they finish. Everything else runs single functions.
    """

    # running tasks ---------------------------------------------------------------------
    @abstractmethod
    def run_tasks(
        self,
        tasks: Iterable[TaskProtocol],
        params_handle: Any,
        cancel_id: Any,
        task_comm_handler: TaskCommHandler,
    ) -> Iterator[tuple[Any, TaskProtocol]]:
        """Run ``tasks``; yield ``(result, task)`` pairs as they complete.

        Parameters
        ----------
        tasks
            The tasks; each is called as ``task(params, env)`` on a worker.
        params_handle
            What :meth:`scatter` returned for the parameters.
        cancel_id
            Identifies the run for :meth:`cancel`.
        task_comm_handler
            Receives the messages the tasks send (progress); also accepted: a
            callable ``progress(task_id, frames)`` or ``None``.

        Closing the generator cancels what has not finished; an exception in a
        task is raised here with its own traceback; a cancelled run raises
        :class:`JobCancelledError`.
        """

    @abstractmethod
    def run_function(self, fn: Callable[..., T], *args, **kwargs) -> T:
        """Run ``fn(*args, **kwargs)`` on a worker and return its result."""

    @abstractmethod
    def get_available_workers(self) -> WorkerSet:
        """The workers of this executor, one per process or thread that runs tasks."""

    def map(self, fn: Callable[[V], T], iterable: Iterable[V]) -> Iterable[T]:
        """``fn(item)`` for every item, on workers; the results in order."""
        return [self.run_function(fn, item) for item in iterable]

    def run_each_worker(self, fn, *args, **kwargs) -> dict[str, Any]:
        """Run ``fn(*args, **kwargs)`` once per worker: worker name -> result."""
        return {
            worker.name: self.run_function(fn, *args, **kwargs)
            for worker in self.get_available_workers()
        }

    def run_each_host(self, fn, *args, **kwargs) -> dict[str, Any]:
        """Run ``fn(*args, **kwargs)`` once per host: host name -> result."""
        return {
            host: self.run_function(fn, *args, **kwargs)
            for host in sorted(self.get_available_workers().hosts())
        }

    def run_each_partition(self, partitions, fn, all_nodes: bool = False) -> Iterator[Any]:
        """Run ``fn(partition)`` for every partition; yield the results as they finish.

        Executors with several hosts run each call where the partition's data is
        (``partition.get_locations()``), unless ``all_nodes`` allows any host.
        """
        for partition in partitions:
            yield self.run_function(fn, partition)

    def run_process_local(
        self, task: GenericTaskProtocol, args=(), kwargs: dict | None = None
    ) -> Any:
        """Run ``task(*args, **kwargs)`` in this process, in the task's tracing context."""
        from libertem.common.tracing import attach_to_parent

        get_span = getattr(task, "get_tracing_span_context", None)
        with attach_to_parent(get_span() if get_span is not None else None):
            return task(*args, **(kwargs or {}))

    # parameters ------------------------------------------------------------------------
    def scatter(self, obj) -> ScatterHandle:
        """Make ``obj`` available to tasks, as a context manager yielding the handle.

        ``with executor.scatter(obj) as handle:`` gives the handle to pass to
        :meth:`run_tasks` as ``params_handle``; leaving the block releases ``obj``.
        """
        return ParamsHandle(obj)

    def scatter_update(self, handle, obj) -> None:
        """Replace the object behind ``handle``: tasks that start later get ``obj``."""
        if not isinstance(handle, ParamsHandle):
            raise TypeError(f"not a handle returned by scatter: {handle!r}")
        resolve_params(handle)  # not released
        handle.obj = obj

    def scatter_update_patch(self, handle, patch) -> None:
        """Apply ``patch`` in place to the object behind ``handle`` (``obj.patch(patch)``)."""
        obj = resolve_params(handle)
        if not hasattr(obj, "patch"):
            raise TypeError(f"{type(obj).__name__} cannot be patched: it has no patch() method")
        obj.patch(patch)

    # information and hooks -------------------------------------------------------------
    def get_resource_details(self) -> list[dict[str, Any]]:
        """Per host: ``{'host': ..., 'cpu': n, 'cuda': n, 'service': n}`` worker counts."""
        details: dict[str, dict[str, Any]] = {}
        for worker in self.get_available_workers():
            entry = details.setdefault(
                worker.host, {"host": worker.host, "cpu": 0, "cuda": 0, "service": 0}
            )
            resources = worker.resources
            if resources.get("CUDA", 0):
                entry["cuda"] += 1
            elif resources.get("CPU", 0) or (not resources and worker.nthreads):
                entry["cpu"] += 1
            else:
                entry["service"] += 1
        return list(details.values())

    def get_udf_runner(self) -> type:
        """The class that runs UDFs with this executor.

        Raises
        ------
        NotImplementedError
            Here: the executors of :mod:`libertem.executor` name the runner.
        """
        raise NotImplementedError(f"{type(self).__name__} names no UDF runner")

    def modify_buffer_type(self, buf):
        """The buffer to use for ``buf`` with this executor (here: ``buf`` itself)."""
        return buf

    @property
    def snooze_manager(self):
        """What scales idle workers down (see ``DaskJobExecutor.make_local``); ``None`` here."""
        return None

    def _subscription_manager(self) -> SubscriptionManager:
        manager = self.__dict__.get("_subscriptions")
        if manager is None:
            manager = self.__dict__["_subscriptions"] = SubscriptionManager()
        return manager

    def subscribe(self, topic: str, callback: Callable[[str, dict], None]) -> str:
        """Call ``callback(topic, msg_dict)`` on executor events of ``topic``; returns a key.

        Local Dask clusters with a ``snooze_timeout`` send ``'snooze'`` and ``'unsnooze'``.
        """
        return self._subscription_manager().subscribe(topic, callback)

    def unsubscribe(self, key: str) -> bool:
        """End the subscription ``key``; whether it existed."""
        return self._subscription_manager().unsubscribe(key)

    # lifecycle -------------------------------------------------------------------------
    def ensure_sync(self) -> JobExecutor:
        """This executor (it is synchronous already)."""
        return self

    def ensure_async(self, pool=None):
        """An asynchronous executor doing the same work.

        Raises
        ------
        NotImplementedError
            Here: the executors of :mod:`libertem.executor` wrap themselves in an
            :class:`~libertem.executor.base.AsyncAdapter`.
        """
        raise NotImplementedError(f"{type(self).__name__} has no asynchronous form")

    def close(self) -> None:
        """Release what the executor started (nothing here)."""
        return None

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class AsyncJobExecutor(ABC):
    """The ``async`` counterpart of :class:`JobExecutor`."""

    @abstractmethod
    def run_tasks(self, tasks, params_handle, cancel_id):
        """An async generator of ``(result, task)`` pairs, as :meth:`JobExecutor.run_tasks`."""

    @abstractmethod
    async def run_function(self, fn: Callable[..., T], *args, **kwargs) -> T:
        """Run ``fn(*args, **kwargs)`` on a worker."""

    @abstractmethod
    async def map(self, fn, iterable):
        """``fn(item)`` for every item, on workers; the results in order."""

    @abstractmethod
    async def run_each_host(self, fn, *args, **kwargs):
        """Run ``fn`` once per host: host name -> result."""

    @abstractmethod
    async def run_each_worker(self, fn, *args, **kwargs):
        """Run ``fn`` once per worker: worker name -> result."""

    @abstractmethod
    async def run_each_partition(self, partitions, fn, all_nodes=False):
        """The results of ``fn(partition)`` for every partition."""

    @abstractmethod
    async def get_available_workers(self):
        """The workers, as :meth:`JobExecutor.get_available_workers`."""

    @abstractmethod
    async def get_resource_details(self):
        """Worker counts per host, as :meth:`JobExecutor.get_resource_details`."""

    @abstractmethod
    async def cancel(self, cancel_id):
        """Cancel the run ``cancel_id``."""

    @abstractmethod
    async def close(self):
        """Release what the executor started."""

    @abstractmethod
    def ensure_sync(self):
        """A synchronous executor doing the same work."""

    def ensure_async(self, pool=None):
        """This executor (it is asynchronous already)."""
        return self

    def get_udf_runner(self) -> type:
        """The class that runs UDFs with this executor."""
        return self.ensure_sync().get_udf_runner()


# LiberTEM's names here that live in higher layers, imported on first access
_ELSEWHERE = {
    "Partition": "libertem.io.dataset.base",
    "SimpleMPWorkerQueue": "libertem.executor.utils.queues",
    "SimpleWorkerQueue": "libertem.executor.utils.queues",
}

__getattr__, __dir__ = lazy_names(__name__, _ELSEWHERE)


__all__ = [
    "AsyncJobExecutor",
    "Environment",
    "ExecutorError",
    "GenericTask",
    "enter_scatter",
    "GenericTaskProtocol",
    "JobCancelledError",
    "JobExecutor",
    "NoopCommHandler",
    "ParamsHandle",
    "ResourceDef",
    "ResourceError",
    "STOP_TOPIC",
    "ScatterHandle",
    "SubscriptionManager",
    "TYPE_CHECKING",
    "TaskCommHandler",
    "TaskProtocol",
    "Worker",
    "WorkerContext",
    "WorkerLostError",
    "WorkerQueue",
    "WorkerQueueEmpty",
    "WorkerSet",
    "has_cupy",
    "mitigations",
    "resolve_params",
    "scattered",
    "set_num_threads",
    "use_gpu",
    *(name for name in _ELSEWHERE if name != "Partition"),
]
