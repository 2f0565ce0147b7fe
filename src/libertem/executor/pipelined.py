"""Run tasks on worker processes of this machine, one per core, each pinned to its core.

The workers (:class:`~libertem.executor.utils.pipelined_pool.WorkerPool`) run
:func:`~libertem.executor.utils.pipelined_worker.pipelined_worker`. Each gets up to
:data:`TASKS_AHEAD` tasks in advance, so it never waits for work. A dataset's
:class:`~libertem.common.executor.TaskCommHandler` may send data for a task on the
worker's request queue right after the task (live sources stream their frames this
way); the task reads it with ``env.worker_context.get_worker_queue()``.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import functools
import itertools
import socket
import threading
import time
import uuid
import weakref
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, TypeVar

from libertem.common.backend import get_use_cuda, set_file_limit, set_use_cpu, set_use_cuda
from libertem.common.executor import (
    Environment,
    ExecutorError,
    JobCancelledError,
    ResourceError,
    TaskCommHandler,
    TaskProtocol,
    WorkerContext,
    WorkerQueue,
    WorkerQueueEmpty,
)
from libertem.common.pickling import dumps
from libertem.common.scheduler import Scheduler, Worker, WorkerSet
from libertem.common.tracing import add_partition_to_span, attach_to_parent, maybe_setup_tracing
from libertem.executor.base import BaseJobExecutor, as_comm_handler, make_canonical
from libertem.executor.utils.dask_setup import assign_cudas
from libertem.executor.utils.pipelined_pool import (
    PoolStateError,
    PoolWorkerInfo,
    WorkerPool,
    schedule_task,
)
from libertem.executor.utils.pipelined_receiver import ResponseReceiver
from libertem.executor.utils.pipelined_worker import (
    ByValue,
    PipelinedWorkerContext,
    WorkerQueues,
    WorkerSpec,
    pipelined_worker,
    set_thread_name,
    worker_loop,
    worker_run_function,
    worker_run_task,
)
from libertem.executor.utils.queues import SimpleMPWorkerQueue

T = TypeVar("T")

#: tasks sent ahead to each worker, so that it never waits for the next one
TASKS_AHEAD = 2


class PipelinedParamsHandle:
    """What :meth:`PipelinedExecutor.scatter` returns: the key of parameters held by the
    workers. The workers drop the parameters at the end of a ``with`` block on the
    handle, or once the handle is no longer referenced."""

    def __init__(self, executor: PipelinedExecutor, key: str):
        self.key = key
        self._release = weakref.finalize(self, executor._forget, key)

    def __enter__(self) -> PipelinedParamsHandle:
        return self

    def __exit__(self, *exc) -> None:
        self._release()

    def __repr__(self) -> str:
        return f"<PipelinedParamsHandle {self.key}>"


class PipelinedExecutor(BaseJobExecutor):
    """Runs tasks on worker processes, one per CPU core (and CUDA device), each pinned to
    its core; tasks are sent ahead so workers never wait for work.

    Parameters
    ----------
    spec
        The workers (see :meth:`make_spec`); by default one per CPU core of this
        process and per CUDA device found.
    pin_workers
        Pin each CPU worker to its core.
    startup_timeout
        Seconds to wait for all workers to start.
    cleanup_timeout
        Seconds to wait for the workers to stop on :meth:`close`.
    early_setup
        Called first thing in every worker process.
    main_process_gpu
        CUDA device for work in this process.

    Raises
    ------
    ExecutorError
        If the workers do not start within ``startup_timeout``.
    """

    def __init__(
        self,
        spec: list[WorkerSpec] | None = None,
        pin_workers: bool = True,
        startup_timeout: float = 30.0,
        cleanup_timeout: float = 10.0,
        early_setup: Callable | None = None,
        main_process_gpu: int | None = None,
    ) -> None:
        super().__init__(main_process_gpu=main_process_gpu)
        if spec is None:
            from libertem.utils.devices import detect

            spec = self.make_spec(**detect())
        if not spec:
            raise ValueError("a PipelinedExecutor needs at least one worker in its spec")
        self._cleanup_timeout = cleanup_timeout
        self._ids = itertools.count()
        self._send_lock = threading.Lock()  # keeps a task and the data sent for it together
        self._forgotten: list[str] = []  # parameter keys to drop, sent with the next request
        self._run_lock = threading.Lock()
        self._scattered: dict[str, Any] = {}
        self._closed = False
        worker_fn = functools.partial(
            pipelined_worker,
            pin=pin_workers,
            span_context=None,
            early_setup=None if early_setup is None else ByValue(early_setup),
        )
        self._pool = WorkerPool(worker_fn, list(spec))
        self._receiver = ResponseReceiver(self._pool)
        # also stops the workers of an executor that is never closed
        self._finalizer = weakref.finalize(
            self, _shut_down, self._pool, self._receiver, cleanup_timeout
        )
        host = socket.gethostname()
        self._infos = {
            Worker(info.spec.name, host, info.spec.resources, 1): info
            for info in self._pool.workers
        }
        self._wait_ready(startup_timeout)

    # creating ----------------------------------------------------------------------------
    @classmethod
    def make_spec(
        cls, cpus: int | Iterable[int], cudas: int | Iterable[int], has_cupy: bool = False
    ) -> list[WorkerSpec]:
        """One worker per CPU id (or per core, for a count) and per CUDA device id."""
        cpus = range(cpus) if isinstance(cpus, int) else list(cpus)
        specs = [WorkerSpec(f"cpu-{c}", int(c), "CPU", i) for i, c in enumerate(cpus)]
        for device in assign_cudas(cudas):
            specs.append(
                WorkerSpec(f"cuda-{device}-{len(specs)}", device, "CUDA", len(specs), has_cupy)
            )
        return specs

    @classmethod
    def make_local(cls, main_process_gpu: int | bool | None = None, **kwargs):
        """An executor with the default workers; ``kwargs`` go to the constructor."""
        return cls(main_process_gpu=main_process_gpu, **kwargs)

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while len(self._receiver.ready) < self._pool.size:
            alive = self._pool.all_alive()
            if not alive or time.monotonic() > deadline:
                dead = [w.spec.name for w in self._pool.workers if not w.process.is_alive()]
                self.close()
                raise ExecutorError(
                    f"pipelined workers did not start within {timeout} s"
                    + (f" (died: {dead})" if dead else "")
                )
            time.sleep(0.02)

    # functions ---------------------------------------------------------------------------
    def _call(self, info: PoolWorkerInfo, fn, args, kwargs) -> concurrent.futures.Future:
        function_id = next(self._ids)
        if self._closed:
            raise ExecutorError("the executor is closed")
        future = self._receiver.expect(("function", function_id), info.spec.name)
        payload = memoryview(dumps((fn, args, kwargs)))
        with self._sending():
            info.queues.request.put({"type": "RUN_FUNCTION", "id": function_id}, payload=payload)
        return future

    def _round_robin(self) -> PoolWorkerInfo:
        return self._pool.workers[next(self._ids) % self._pool.size]

    def run_function(self, fn: Callable[..., T], *args, **kwargs) -> T:
        """Run ``fn(*args, **kwargs)`` in one of the worker processes."""
        future = self._call(self._round_robin(), fn, args, kwargs)
        self._receiver.wait([future])
        return future.result()

    def map(self, fn, iterable):
        """``fn(item)`` for every item, spread over the workers; the results in order."""
        futures = [self._call(self._round_robin(), fn, (x,), {}) for x in iterable]
        if futures:
            self._receiver.wait(futures)
        return [f.result() for f in futures]

    def run_each_worker(self, fn, *args, **kwargs):
        """Run ``fn`` in every worker process: worker name -> result."""
        futures = {w.spec.name: self._call(w, fn, args, kwargs) for w in self._pool.workers}
        self._receiver.wait(list(futures.values()))
        return {name: f.result() for name, f in futures.items()}

    def run_each_host(self, fn, *args, **kwargs):
        """``{hostname: result}``: all workers run on this host."""
        return {socket.gethostname(): self.run_function(fn, *args, **kwargs)}

    def get_available_workers(self) -> WorkerSet:
        """One worker per process, with its resource tags."""
        return WorkerSet(list(self._infos))

    # parameters --------------------------------------------------------------------------
    def _broadcast(self, header: dict, payload: bytes | None = None) -> None:
        view = None if payload is None else memoryview(payload)
        with self._sending():
            for info in self._pool.workers:
                info.queues.request.put(header, payload=view)

    def scatter(self, obj) -> PipelinedParamsHandle:
        """Send ``obj`` to every worker once; the handle is for :meth:`run_tasks`.

        Use it as a context manager (``with executor.scatter(obj) as handle:``) to
        drop ``obj`` from the workers at the end of the block.
        """
        key = f"params-{uuid.uuid4().hex}"
        self._broadcast({"type": "SCATTER", "key": key}, dumps(obj))
        self._scattered[key] = obj
        return PipelinedParamsHandle(self, key)

    def _key(self, handle) -> str:
        key = handle.key if isinstance(handle, PipelinedParamsHandle) else handle
        if not isinstance(key, str) or key not in self._scattered:
            raise TypeError(f"not a handle returned by this executor's scatter: {handle!r}")
        return key

    def scatter_update(self, handle: str, obj) -> None:
        """Tasks of ``handle`` that start from now on get ``obj``."""
        key = self._key(handle)
        self._broadcast({"type": "SCATTER", "key": key}, dumps(obj))
        self._scattered[key] = obj

    def scatter_update_patch(self, handle: str, patch) -> None:
        """Apply ``patch`` (``obj.patch(patch)``) to the parameters in every worker."""
        key = self._key(handle)
        self._broadcast({"type": "PATCH", "key": key}, dumps(patch))

    def _forget(self, key: str) -> None:
        # may run from the garbage collector, e.g. while this thread sends a task and its
        # data: the FORGET requests go out with the next request instead
        if self._scattered.pop(key, None) is not None:
            self._forgotten.append(key)

    @contextlib.contextmanager
    def _sending(self):
        """Hold the send lock; send the pending FORGET requests first."""
        with self._send_lock:
            while self._forgotten and not self._closed:
                key = self._forgotten.pop()
                for info in self._pool.workers:
                    info.queues.request.put({"type": "FORGET", "key": key})
            yield

    # tasks -------------------------------------------------------------------------------
    def run_tasks(
        self,
        tasks: Iterable[TaskProtocol],
        params_handle: Any,
        cancel_id: Any,
        task_comm_handler: TaskCommHandler | None = None,
    ):
        """Run ``tasks`` on the workers; yield ``(result, task)`` pairs as they complete.

        ``params_handle`` is what :meth:`scatter` returned, or the parameters
        themselves (then they are sent for this run only). Before each task is sent,
        ``task_comm_handler.handle_task(task, queue)`` gets the request queue of the
        worker that runs it.

        Raises
        ------
        ResourceError
            If no worker offers the resources a task needs.
        JobCancelledError
            If the run is cancelled.
        """
        tasks = list(tasks)
        scheduler = Scheduler(self.get_available_workers())
        for task in tasks:
            try:
                scheduler.workers_for_task(task)
            except ValueError:
                raise ResourceError(
                    f"no pipelined worker offers the resources {task.get_resources()}"
                ) from None
        handler = as_comm_handler(task_comm_handler)
        temporary = None
        try:
            key = self._key(params_handle)
        except TypeError:
            temporary = self.scatter(params_handle)  # for this run only
            key = temporary.key
        with self._run_lock:
            try:
                yield from self._run(tasks, key, cancel_id, handler)
            finally:
                if temporary is not None:
                    temporary.__exit__()

    def _run(self, tasks, key, cancel_id, handler):
        run = uuid.uuid4().hex
        cancelled = self._start_run(cancel_id)
        self._pool.cancelled.clear()
        self._receiver.set_handler(run, handler)
        self._broadcast({"type": "BEGIN_RUN", "run": run, "key": key})
        todo = list(enumerate(tasks))
        running: dict[concurrent.futures.Future, tuple[TaskProtocol, str]] = {}
        load = {info.spec.name: 0 for info in self._infos.values()}

        def least_loaded(candidates, pool, task, task_idx):
            return min(candidates, key=lambda info: load[info.spec.name])

        def feed():
            i = 0
            while i < len(todo):
                free = WorkerSet(
                    [w for w, info in self._infos.items() if load[info.spec.name] < TASKS_AHEAD]
                )
                if not free:
                    return
                task_idx, task = todo[i]
                scheduler = Scheduler(free)
                try:
                    scheduler.workers_for_task(task)
                except ValueError:
                    i += 1  # the workers for this task are busy; try the next task
                    continue
                key = ("task", run, task_idx)
                future = self._receiver.expect(key)
                try:
                    with self._sending():
                        worker_idx, queues = schedule_task(
                            task_idx, task, self._pool, scheduler, self._infos, least_loaded
                        )
                        try:
                            handler.handle_task(task, queues.request)
                        except BaseException:
                            # a task waiting for its data reads this and fails, instead
                            # of taking the requests that follow as its data
                            queues.request.put({"type": "ABORT_TASK"})
                            raise
                except BaseException:
                    self._receiver.forget(key.__eq__)
                    raise
                name = self._pool.workers[worker_idx].spec.name
                todo.pop(i)
                running[future] = (task, name)
                load[name] += 1

        handler.start()
        try:
            feed()
            while running:
                done, _ = self._receiver.wait(list(running), concurrent.futures.FIRST_COMPLETED)
                if cancelled.is_set():
                    raise JobCancelledError(f"run {cancel_id!r} was cancelled")
                for future in done:
                    task, name = running.pop(future)
                    load[name] -= 1
                    result = future.result()
                    feed()
                    yield result, task
            if cancelled.is_set():
                raise JobCancelledError(f"run {cancel_id!r} was cancelled")
        finally:
            if running:
                self._pool.cancelled.set()
                concurrent.futures.wait(list(running), timeout=self._cleanup_timeout)
            self._receiver.forget(lambda k: k[0] == "task" and k[1] == run)
            self._pool.cancelled.clear()
            handler.done()
            self._receiver.set_handler(run, None)
            self._end_run(cancel_id)

    def cancel(self, cancel_id) -> None:
        """Cancel the run ``cancel_id``; running tasks stop at their next tile."""
        super().cancel(cancel_id)
        with self._runs_lock:
            running = cancel_id in self._runs
        if running:
            self._pool.cancelled.set()

    # lifecycle ---------------------------------------------------------------------------
    def close(self) -> None:
        """Stop the worker processes (killing those that do not stop in time)."""
        if self._closed:
            return
        self._closed = True
        self._finalizer()


def _shut_down(pool: WorkerPool, receiver: ResponseReceiver, timeout: float) -> None:
    """Stop the workers (killing those still running after ``timeout`` seconds), then the
    receiver; close the queues."""
    pool.kill(timeout=timeout)
    receiver.stop()
    pool.close_resp_queue()
    pool.close_mesg_queue()


def make_for_context(
    cpus: list[int] | None, cudas: list[int] | None, main_process_gpu: int | bool | None = None
) -> PipelinedExecutor:
    """The executor of ``Context.make_with('pipelined', cpus=..., gpus=...)``.

    ``None`` means the devices found here.

    Raises
    ------
    ExecutorSpecException
        If no worker would be left, or a CUDA device is not there.
    """
    from libertem.common.exceptions import ExecutorSpecException
    from libertem.utils.devices import detect

    found = detect()
    cpus = list(found["cpus"]) if cpus is None else list(cpus)
    cudas = list(found["cudas"]) if cudas is None else list(cudas)
    missing = sorted(set(cudas) - set(found["cudas"]))
    if missing:
        raise ExecutorSpecException(
            f"CUDA devices {missing} requested, but not available "
            f"(found: {list(found['cudas']) or 'none'})"
        )
    if not cpus and not cudas:
        raise ExecutorSpecException("no CPU and no GPU requested: there would be no workers")
    spec = PipelinedExecutor.make_spec(cpus, cudas, found["has_cupy"])
    return PipelinedExecutor(spec=spec, main_process_gpu=main_process_gpu)


__all__ = [
    "BaseJobExecutor",
    "Environment",
    "JobCancelledError",
    "PipelinedExecutor",
    "PipelinedParamsHandle",
    "PipelinedWorkerContext",
    "PoolStateError",
    "PoolWorkerInfo",
    "ResourceError",
    "Scheduler",
    "SimpleMPWorkerQueue",
    "TYPE_CHECKING",
    "TaskCommHandler",
    "TaskProtocol",
    "Worker",
    "WorkerContext",
    "WorkerPool",
    "WorkerQueue",
    "WorkerQueueEmpty",
    "WorkerQueues",
    "WorkerSet",
    "WorkerSpec",
    "add_partition_to_span",
    "assign_cudas",
    "attach_to_parent",
    "get_use_cuda",
    "make_canonical",
    "make_for_context",
    "maybe_setup_tracing",
    "pipelined_worker",
    "schedule_task",
    "set_file_limit",
    "set_thread_name",
    "set_use_cpu",
    "set_use_cuda",
    "worker_loop",
    "worker_run_function",
    "worker_run_task",
]
