"""The JobExecutor interface: where tasks run."""

from __future__ import annotations

import asyncio
import socket
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from libertem.common.exceptions import UDFRunCancelled


@dataclass(frozen=True)
class WorkerInfo:
    """A worker: its name, host and resources (e.g. ``{'CPU': 1, 'compute': 1}``)."""

    name: str
    host: str
    resources: dict = field(default_factory=dict)


class WorkerSet(list):
    """The workers of an executor."""

    def names(self) -> list[str]:
        """Names of all workers."""
        return [w.name for w in self]

    def hosts(self) -> set[str]:
        """Hosts that run workers."""
        return {w.host for w in self}

    def has_cuda(self) -> bool:
        """Whether any worker has a CUDA device."""
        return any(w.resources.get("CUDA", 0) for w in self)

    def compute_workers(self) -> WorkerSet:
        """Workers that run compute tasks (all of them on clusters without resource tags)."""
        if not any(w.resources for w in self):
            return self
        return WorkerSet(w for w in self if w.resources.get("compute", 0))


class TaskEnvironment:
    """What a running task may use: progress reporting and cancellation checks.

    Parameters
    ----------
    progress
        Called with ``(task_id, frames)`` as frames are processed; runs on the main
        node or is forwarded there by the executor.
    cancelled
        Returns ``True`` once the run was cancelled.
    worker
        Name of the worker running the task.
    """

    def __init__(
        self,
        progress: Callable[[int, float], None] | None = None,
        cancelled: Callable[[], bool] | None = None,
        worker: str = "inline",
    ):
        self._progress = progress
        self._cancelled = cancelled
        self.worker = worker

    def report_progress(self, task_id: int, frames: float) -> None:
        """Report that task ``task_id`` processed ``frames`` more frames."""
        if self._progress is not None:
            self._progress(task_id, frames)

    def check_cancelled(self) -> None:
        """Raise :class:`UDFRunCancelled` if the run was cancelled."""
        if self._cancelled is not None and self._cancelled():
            raise UDFRunCancelled("the run was cancelled")


Task = Callable[[Any, TaskEnvironment], Any]


class JobExecutor(ABC):
    """Runs tasks and functions somewhere: this thread, a pool, a cluster.

    Tasks are callables ``task(params, env)``; ``params`` is the object passed to
    :meth:`scatter` once per run, ``env`` a :class:`TaskEnvironment`.
    """

    @abstractmethod
    def run_tasks(
        self,
        tasks: Sequence[Task],
        params_handle: Any,
        cancel_id: Any,
        progress: Callable[[int, float], None] | None = None,
    ) -> Iterator[tuple[Any, Task]]:
        """Run ``tasks``; yield ``(result, task)`` pairs as they complete.

        Closing the generator cancels the tasks that have not finished. An
        exception in a task is raised here with its own traceback.
        """

    @abstractmethod
    def run_function(self, fn: Callable, *args, **kwargs) -> Any:
        """Run ``fn(*args, **kwargs)`` on a worker and return its result."""

    def scatter(self, obj: Any) -> Any:
        """Make ``obj`` available to tasks once; returns the handle to pass to ``run_tasks``."""
        return obj

    def map(self, fn: Callable, iterable: Iterable) -> list:
        """Run ``fn`` on every item, on workers; results in order."""
        return [self.run_function(fn, item) for item in iterable]

    def run_each_worker(self, fn: Callable, *args, **kwargs) -> dict[str, Any]:
        """Run ``fn`` once on every worker: worker name -> result."""
        return {
            worker.name: self.run_function(fn, *args, **kwargs)
            for worker in self.get_available_workers()
        }

    def run_each_host(self, fn: Callable, *args, **kwargs) -> dict[str, Any]:
        """Run ``fn`` once on every host: host name -> result."""
        return {
            host: self.run_function(fn, *args, **kwargs)
            for host in self.get_available_workers().hosts()
        }

    def get_available_workers(self) -> WorkerSet:
        """The workers this executor runs tasks on."""
        return WorkerSet([WorkerInfo("inline", socket.gethostname(), {"CPU": 1, "compute": 1})])

    def ensure_sync(self) -> JobExecutor:
        """This executor, usable from synchronous code."""
        return self

    def ensure_async(self) -> AsyncAdapter:
        """An adapter with ``async`` versions of the methods."""
        return AsyncAdapter(self)

    def close(self) -> None:
        """Release what the executor started."""
        return None

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class AsyncAdapter:
    """Awaitable wrappers around a synchronous :class:`JobExecutor`.

    Parameters
    ----------
    executor
        The executor to wrap; its blocking calls run in a thread.
    """

    def __init__(self, executor: JobExecutor):
        self._executor = executor

    def ensure_sync(self) -> JobExecutor:
        """The wrapped executor."""
        return self._executor

    async def run_function(self, fn: Callable, *args, **kwargs) -> Any:
        """Run ``fn`` on a worker without blocking the event loop."""
        return await asyncio.to_thread(self._executor.run_function, fn, *args, **kwargs)

    async def get_available_workers(self) -> WorkerSet:
        """The wrapped executor's workers."""
        return self._executor.get_available_workers()

    async def close(self) -> None:
        """Close the wrapped executor."""
        await asyncio.to_thread(self._executor.close)
