"""Run tasks on worker processes of this machine, one per core, each pinned to its core."""

from __future__ import annotations

import concurrent.futures
import itertools
import multiprocessing
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

import cloudpickle

from libertem.common.executor import (
    ExecutorError,
    JobCancelledError,
    ResourceError,
    SimpleMPWorkerQueue,
    TaskCommHandler,
    TaskProtocol,
    WorkerQueueEmpty,
)
from libertem.common.scheduler import Worker, WorkerSet
from libertem.executor.base import BaseJobExecutor, as_comm_handler
from libertem.executor.utils.dask_setup import assign_cudas
from libertem.executor.utils.pipelined_worker import WorkerSpec, worker_main

T = TypeVar("T")

#: tasks sent ahead to each worker, so that it never waits for the next one
TASKS_AHEAD = 2
#: seconds between checks that the worker processes are alive while waiting
LIVENESS_INTERVAL_S = 0.5


class _Proc:
    """A worker process with its request queue."""

    def __init__(self, spec: WorkerSpec, process, requests: SimpleMPWorkerQueue):
        self.spec = spec
        self.process = process
        self.requests = requests


def _fits(resources: dict, needed: dict) -> bool:
    return all(resources.get(k, 0) >= v for k, v in needed.items())


class PipelinedExecutor(BaseJobExecutor):
    """Runs tasks on worker processes, one per CPU core (and CUDA device), each
    pinned to its core; tasks are sent ahead so workers never wait for work.

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
        Called first thing in every worker process (must be picklable).
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
        self._pending: dict[int, tuple[concurrent.futures.Future, str]] = {}
        self._lock = threading.Lock()
        self._run_lock = threading.Lock()
        self._handlers: dict[str, TaskCommHandler] = {}
        self._scattered: dict[str, Any] = {}
        self._closed = False
        ctx = multiprocessing.get_context("spawn")
        self._cancelled = ctx.Event()
        self._responses = SimpleMPWorkerQueue()
        self._ready: dict[str, int] = {}
        self._procs: list[_Proc] = []
        for worker_spec in spec:
            requests = SimpleMPWorkerQueue()
            process = ctx.Process(
                target=worker_main,
                args=(
                    worker_spec,
                    requests,
                    self._responses,
                    self._cancelled,
                    pin_workers,
                    early_setup,
                ),
                name=f"libertem-{worker_spec.name}",
                daemon=True,
            )
            process.start()
            self._procs.append(_Proc(worker_spec, process, requests))
        self._receiver = threading.Thread(target=self._receive, daemon=True)
        self._receiver.start()
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
        while len(self._ready) < len(self._procs):
            dead = [p.spec.name for p in self._procs if not p.process.is_alive()]
            if dead or time.monotonic() > deadline:
                self.close()
                raise ExecutorError(
                    f"pipelined workers did not start within {timeout} s"
                    + (f" (died: {dead})" if dead else "")
                )
            time.sleep(0.02)

    # the receiving side ------------------------------------------------------------------
    def _receive(self) -> None:
        while True:
            try:
                with self._responses.get(timeout=0.2) as (header, payload):
                    data = None if payload is None else bytes(payload)
            except WorkerQueueEmpty:
                if self._closed:
                    return
                continue
            except (OSError, EOFError, ValueError):
                return
            kind = header["type"]
            if kind == "stop":
                return
            if kind == "ready":
                self._ready[header["worker"]] = header["pid"]
            elif kind == "signal":
                handler = self._handlers.get(header["run"])
                if handler is not None:
                    handler.dispatch(header["topic"], header["message"])
            else:
                with self._lock:
                    future, _worker = self._pending.pop(header["id"], (None, None))
                if future is None:
                    continue
                if kind == "result":
                    future.set_result(cloudpickle.loads(data))
                else:
                    exc, text = cloudpickle.loads(data)
                    if hasattr(exc, "add_note"):
                        exc.add_note(f"raised in pipelined worker {header['worker']}:\n{text}")
                    future.set_exception(exc)

    # sending -----------------------------------------------------------------------------
    def _send(self, proc: _Proc, kind: str, obj, run: str | None = None):
        if self._closed:
            raise ExecutorError("the executor is closed")
        request_id = next(self._ids)
        future: concurrent.futures.Future = concurrent.futures.Future()
        with self._lock:
            self._pending[request_id] = (future, proc.spec.name)
        header = {"type": kind, "id": request_id, "run": run}
        proc.requests.put(header, payload=memoryview(cloudpickle.dumps(obj)))
        return future

    def _wait(self, futures, return_when=concurrent.futures.ALL_COMPLETED):
        """Wait for ``futures``; raise if a worker process died meanwhile."""
        while True:
            done, pending = concurrent.futures.wait(
                futures, timeout=LIVENESS_INTERVAL_S, return_when=return_when
            )
            if not pending or (done and return_when == concurrent.futures.FIRST_COMPLETED):
                return done, pending
            dead = [p.spec.name for p in self._procs if not p.process.is_alive()]
            if dead:
                raise ExecutorError(f"pipelined worker process(es) {dead} died")

    def _round_robin(self) -> _Proc:
        return self._procs[next(self._ids) % len(self._procs)]

    # functions ---------------------------------------------------------------------------
    def run_function(self, fn: Callable[..., T], *args, **kwargs) -> T:
        """Run ``fn(*args, **kwargs)`` in one of the worker processes."""
        future = self._send(self._round_robin(), "function", (fn, args, kwargs))
        self._wait([future])
        return future.result()

    def map(self, fn, iterable):
        """``fn(item)`` for every item, spread over the workers; the results in order."""
        futures = [self._send(self._round_robin(), "function", (fn, (x,), {})) for x in iterable]
        if futures:
            self._wait(futures)
        return [f.result() for f in futures]

    def run_each_worker(self, fn, *args, **kwargs):
        """Run ``fn`` in every worker process: worker name -> result."""
        futures = {p.spec.name: self._send(p, "function", (fn, args, kwargs)) for p in self._procs}
        self._wait(list(futures.values()))
        return {name: f.result() for name, f in futures.items()}

    def run_each_host(self, fn, *args, **kwargs):
        """``{hostname: result}``: all workers run on this host."""
        return {socket.gethostname(): self.run_function(fn, *args, **kwargs)}

    def get_available_workers(self) -> WorkerSet:
        """One worker per process, with its resource tags."""
        host = socket.gethostname()
        return WorkerSet(Worker(p.spec.name, host, p.spec.resources, 1) for p in self._procs)

    # parameters --------------------------------------------------------------------------
    def _broadcast(self, header: dict, payload: bytes) -> None:
        for proc in self._procs:
            proc.requests.put(header, payload=memoryview(payload))

    def scatter(self, obj) -> str:
        """Send ``obj`` to every worker once; returns its key for :meth:`run_tasks`."""
        key = f"params-{uuid.uuid4().hex}"
        self._broadcast({"type": "scatter", "key": key}, cloudpickle.dumps(obj))
        self._scattered[key] = obj
        return key

    def scatter_update(self, handle: str, obj) -> None:
        """Tasks of ``handle`` that start from now on get ``obj``."""
        self._check_handle(handle)
        self._broadcast({"type": "scatter", "key": handle}, cloudpickle.dumps(obj))
        self._scattered[handle] = obj

    def scatter_update_patch(self, handle: str, patch) -> None:
        """Apply ``patch`` (``obj.patch(patch)``) to the parameters in every worker."""
        self._check_handle(handle)
        self._broadcast({"type": "patch", "key": handle}, cloudpickle.dumps(patch))

    def _check_handle(self, handle) -> None:
        if handle not in self._scattered:
            raise TypeError(f"not a handle returned by this executor's scatter: {handle!r}")

    # tasks -------------------------------------------------------------------------------
    def run_tasks(
        self,
        tasks: Iterable[TaskProtocol],
        params_handle: Any,
        cancel_id: Any,
        task_comm_handler: TaskCommHandler | None = None,
    ):
        """Run ``tasks`` on the workers; yield ``(result, task)`` pairs as they complete.

        Raises
        ------
        ResourceError
            If no worker offers the resources a task needs.
        JobCancelledError
            If the run is cancelled.
        """
        tasks = list(tasks)
        for task in tasks:
            needed = task.get_resources()
            if not any(_fits(p.spec.resources, needed) for p in self._procs):
                raise ResourceError(f"no pipelined worker offers the resources {needed}")
        handler = as_comm_handler(task_comm_handler)
        temporary = (
            params_handle not in self._scattered if isinstance(params_handle, str) else True
        )
        key = self.scatter(params_handle) if temporary else params_handle
        with self._run_lock:
            yield from self._run(tasks, key, cancel_id, handler)
            if temporary:
                self._broadcast({"type": "forget", "key": key}, cloudpickle.dumps(None))
                self._scattered.pop(key, None)

    def _run(self, tasks, key, cancel_id, handler):
        run = uuid.uuid4().hex
        cancelled = self._start_run(cancel_id)
        self._cancelled.clear()
        self._handlers[run] = handler
        todo = list(tasks)
        running: dict[concurrent.futures.Future, tuple[TaskProtocol, _Proc]] = {}
        load = {p.spec.name: 0 for p in self._procs}

        def feed():
            for proc in self._procs:
                while load[proc.spec.name] < TASKS_AHEAD:
                    index = next(
                        (
                            i
                            for i, t in enumerate(todo)
                            if _fits(proc.spec.resources, t.get_resources())
                        ),
                        None,
                    )
                    if index is None:
                        break
                    task = todo.pop(index)
                    running[self._send(proc, "task", (task, key), run=run)] = (task, proc)
                    load[proc.spec.name] += 1

        handler.start()
        try:
            feed()
            while running:
                done, _ = self._wait(list(running), concurrent.futures.FIRST_COMPLETED)
                if cancelled.is_set():
                    raise JobCancelledError(f"run {cancel_id!r} was cancelled")
                for future in done:
                    task, proc = running.pop(future)
                    load[proc.spec.name] -= 1
                    result = future.result()
                    feed()
                    yield result, task
            if cancelled.is_set():
                raise JobCancelledError(f"run {cancel_id!r} was cancelled")
        finally:
            if running:
                self._cancelled.set()
                concurrent.futures.wait(list(running), timeout=self._cleanup_timeout)
            self._cancelled.clear()
            handler.done()
            self._handlers.pop(run, None)
            self._end_run(cancel_id)

    def cancel(self, cancel_id) -> None:
        """Cancel the run ``cancel_id``; running tasks stop at their next tile."""
        super().cancel(cancel_id)
        with self._runs_lock:
            running = cancel_id in self._runs
        if running:
            self._cancelled.set()

    # lifecycle ---------------------------------------------------------------------------
    def close(self) -> None:
        """Stop the worker processes (killing those that do not stop in time)."""
        if self._closed:
            return
        self._closed = True
        for proc in self._procs:
            try:
                proc.requests.put({"type": "shutdown"})
            except (OSError, ValueError):
                pass
        deadline = time.monotonic() + self._cleanup_timeout
        for proc in self._procs:
            proc.process.join(max(0.0, deadline - time.monotonic()))
            if proc.process.is_alive():
                proc.process.terminate()
                proc.process.join(1.0)
        self._responses.put({"type": "stop"})
        self._receiver.join(5.0)
        with self._lock:
            pending, self._pending = list(self._pending.values()), {}
        for future, worker in pending:
            if not future.done():
                future.set_exception(ExecutorError(f"worker {worker} was stopped"))
        for proc in self._procs:
            proc.requests.close(drain=True, force=True)
        self._responses.close(drain=True, force=True)


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


__all__ = ["PipelinedExecutor", "WorkerSpec", "make_for_context"]
