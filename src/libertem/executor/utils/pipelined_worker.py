"""What runs in a worker process of the pipelined executor: a loop over requests.

Each worker reads its own request queue. Requests are dict headers with a
``'type'``, most with a pickled payload:

- ``SCATTER`` / ``PATCH`` / ``FORGET`` (``key``): keep, patch or drop parameters;
- ``BEGIN_RUN`` (``run``, ``key``): the tasks that follow belong to run ``run`` and
  get the parameters stored under ``key``;
- ``RUN_TASK`` (``task_id``): run the pickled task;
- ``RUN_FUNCTION`` (``id``): call the pickled ``(fn, args, kwargs)``;
- ``SHUTDOWN``: leave the loop.

A task may read more messages from the request queue while it runs (data that a
``TaskCommHandler`` sent for it, see ``WorkerContext.get_worker_queue``); messages
of that kind left over by a failed task are skipped by the loop. Results go to the
shared response queue as ``RESULT`` / ``ERROR`` (with ``run`` and ``task_id``, or
``function_id``); messages of tasks (progress) go to the shared message queue.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
import sys
import threading
import traceback
from dataclasses import dataclass
from typing import Any, Literal, NamedTuple

import cloudpickle

from libertem.common.backend import set_file_limit
from libertem.common.executor import Environment, WorkerContext, WorkerQueue
from libertem.common.pickling import dumps
from libertem.common.tracing import add_partition_to_span, attach_to_parent, maybe_setup_tracing
from libertem.executor.base import TaskEnvironment
from libertem.executor.utils.dask_setup import (
    THREAD_ENV_VARS,
    WORKER_ENV,
    apply_numba_thread_env,
    worker_setup,
)

logger = logging.getLogger(__name__)

WORKER_THREAD_ENV = {**WORKER_ENV, **{var: "1" for var in THREAD_ENV_VARS}}

#: where ``BEGIN_RUN`` keeps the current run and its parameter key in ``work_mem``
CURRENT_RUN = "__current_run__"


@dataclass(frozen=True)
class WorkerSpec:
    """One worker process of a :class:`~libertem.executor.pipelined.PipelinedExecutor`.

    Attributes
    ----------
    name
        Worker name (unique).
    device_id
        The CPU (core) or CUDA device the worker uses.
    device_kind
        ``'CPU'`` or ``'CUDA'``.
    worker_idx
        Position of the worker.
    has_cupy
        Whether CuPy can be used by a CUDA worker.
    """

    name: str
    device_id: int
    device_kind: Literal["CPU", "CUDA"]
    worker_idx: int
    has_cupy: bool = False

    @property
    def resources(self) -> dict[str, int]:
        """The resource tags of the worker."""
        if self.device_kind == "CUDA":
            tags = {"CUDA": 1, "compute": 1}
            if self.has_cupy:
                tags["ndarray"] = 1
            return tags
        return {"CPU": 1, "compute": 1, "ndarray": 1}


class WorkerQueues(NamedTuple):
    """The channels between the main process and one worker process.

    Attributes
    ----------
    request
        Main process -> this worker: requests, and data for the running task.
    response
        Workers -> main process: results (shared by all workers of a pool).
    message
        Workers -> main process: messages of running tasks (shared).
    cancelled
        Event set while the current run is being cancelled (shared), or ``None``.
    """

    request: WorkerQueue
    response: WorkerQueue
    message: WorkerQueue
    cancelled: Any = None


class PipelinedWorkerContext(WorkerContext):
    """The worker context of tasks in a pipelined worker process.

    Parameters
    ----------
    queue
        The worker's request queue, where data for the running task arrives.
    msg_queue
        Where :meth:`signal` sends messages to the main process.
    """

    def __init__(self, queue: WorkerQueue, msg_queue: WorkerQueue):
        self._queue = queue
        self._msg_queue = msg_queue
        #: the run the current task belongs to (set by :func:`worker_run_task`)
        self.run_id: str | None = None

    def get_worker_queue(self) -> WorkerQueue:
        """The queue on which the main process sends data for the running task."""
        return self._queue

    def signal(self, ident: str, topic: str, msg_dict: dict[str, Any]) -> None:
        """Send ``msg_dict`` (with ``'ident'``) to the subscribers of ``topic``."""
        self._msg_queue.put(
            {
                "type": "SIGNAL",
                "run": self.run_id,
                "topic": topic,
                "message": {"ident": ident, **msg_dict},
            }
        )


class ByValue:
    """A callable that travels by value (cloudpickle) even where plain pickle is used,
    e.g. as an argument of a process started with ``spawn``."""

    def __init__(self, fn):
        self._data = cloudpickle.dumps(fn)

    def __call__(self, *args, **kwargs):
        return cloudpickle.loads(self._data)(*args, **kwargs)


def set_thread_name(name: str) -> None:
    """Name the current thread (also for tools like ``top -H``, where the OS allows)."""
    threading.current_thread().name = name
    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        pr_set_name = 15
        libc.prctl(pr_set_name, name.encode()[:15], 0, 0, 0)
    except (OSError, AttributeError):  # pragma: no cover - unusual libc
        pass


def _pin(spec: WorkerSpec) -> None:
    if spec.device_kind != "CPU" or not hasattr(os, "sched_setaffinity"):
        return
    if spec.device_id in os.sched_getaffinity(0):
        os.sched_setaffinity(0, {spec.device_id})


def _error_payload(exc: BaseException) -> bytes:
    text = "".join(traceback.format_exception(exc))
    try:
        return cloudpickle.dumps((exc, text))
    except Exception:  # noqa: BLE001 - an exception that cannot travel
        return cloudpickle.dumps((RuntimeError(repr(exc)), text))


def _reply(queues: WorkerQueues, reply: dict, run) -> None:
    try:
        data = dumps(run())
    except BaseException as e:  # noqa: BLE001 - handed to the main process
        reply["type"] = "ERROR"
        data = _error_payload(e)
    queues.response.put(reply, payload=memoryview(data))


def pipelined_worker(
    queues: WorkerQueues,
    pin: bool,
    spec: WorkerSpec,
    span_context,
    early_setup=None,
) -> None:
    """The main function of a worker process: set up, report ``READY``, serve requests.

    Parameters
    ----------
    queues
        The worker's channels.
    pin
        Pin the process to its CPU core.
    spec
        What the worker is.
    span_context
        Tracing context for the worker's spans (or ``None``).
    early_setup
        Called first thing, before anything else is set up.
    """
    # one thread per worker
    os.environ.update(WORKER_THREAD_ENV)
    apply_numba_thread_env()
    if early_setup is not None:
        early_setup()
    set_thread_name(f"libertem-{spec.name}")
    set_file_limit()
    if pin:
        _pin(spec)
    worker_setup(spec.device_kind, spec.device_id)
    import libertem.preload  # noqa: F401

    maybe_setup_tracing(service_name="libertem-pipelined-worker", service_id=spec.name)
    cancelled = queues.cancelled
    env = TaskEnvironment(
        threads_per_worker=1,
        threaded_executor=False,
        worker_context=PipelinedWorkerContext(queues.request, queues.message),
        gpu_id=spec.device_id if spec.device_kind == "CUDA" else None,
        cancelled=None if cancelled is None else cancelled.is_set,
        worker=spec.name,
    )
    queues.response.put({"type": "READY", "worker_idx": spec.worker_idx, "pid": os.getpid()})
    with attach_to_parent(span_context):
        worker_loop(queues, {}, spec.worker_idx, env)


def worker_loop(queues: WorkerQueues, work_mem: dict, worker_idx: int, env: Environment) -> None:
    """Serve requests from ``queues.request`` until ``SHUTDOWN`` (see the module description).

    ``work_mem`` holds the scattered parameters (by key) and the current run.
    """
    while True:
        with queues.request.get() as (header, payload):
            kind = header.get("type") if isinstance(header, dict) else None
            if kind == "SHUTDOWN":
                return
            if kind in ("SCATTER", "PATCH", "FORGET", "BEGIN_RUN"):
                _update_work_mem(kind, header, payload, work_mem)
                continue
            if kind not in ("RUN_TASK", "RUN_FUNCTION"):
                logger.debug("worker %d skips a stray message %r", worker_idx, header)
                continue
            try:
                request, error = cloudpickle.loads(payload), None
            except BaseException as e:  # noqa: BLE001 - e.g. a class not importable here
                request, error = None, e
        if kind == "RUN_TASK":
            worker_run_task(
                {**header, "task": request, "error": error}, work_mem, queues, worker_idx, env
            )
        else:
            worker_run_function(
                {**header, "function": request, "error": error}, queues, worker_idx
            )


class _Unusable:
    """Parameters that could not be unpickled here; tasks using them raise the error."""

    def __init__(self, error: BaseException):
        self.error = error

    def patch(self, patch) -> None:
        """Nothing to patch."""


def _update_work_mem(kind: str, header: dict, payload, work_mem: dict) -> None:
    if kind == "SCATTER":
        try:
            work_mem[header["key"]] = cloudpickle.loads(payload)
        except BaseException as e:  # noqa: BLE001 - raised by the tasks that use them
            work_mem[header["key"]] = _Unusable(e)
    elif kind == "PATCH":
        work_mem[header["key"]].patch(cloudpickle.loads(payload))
    elif kind == "FORGET":
        work_mem.pop(header["key"], None)
    else:
        work_mem[CURRENT_RUN] = (header["run"], header["key"])


def worker_run_task(
    header: dict, work_mem: dict, queues: WorkerQueues, worker_idx: int, env: Environment
) -> None:
    """Run the task ``header['task']`` with the current run's parameters; send the result.

    The reply is ``RESULT`` (or ``ERROR``) with ``run``, ``task_id`` and ``worker_idx``,
    the pickled result (or ``(exception, traceback text)``) as payload.
    """
    run, key = work_mem.get(CURRENT_RUN, (None, None))
    context = env.worker_context
    if isinstance(context, PipelinedWorkerContext):
        context.run_id = run
    reply = {"type": "RESULT", "run": run, "task_id": header["task_id"], "worker_idx": worker_idx}

    def run_task():
        if header.get("error") is not None:
            raise header["error"]
        if key not in work_mem:
            raise RuntimeError(f"worker {worker_idx} has no parameters for run {run!r}")
        params = work_mem[key]
        if isinstance(params, _Unusable):
            raise params.error
        task = header["task"]
        get_span, get_partition = (
            getattr(task, name, lambda: None)
            for name in ("get_tracing_span_context", "get_partition")
        )
        with attach_to_parent(get_span()):
            partition = get_partition()
            if partition is not None and hasattr(partition, "slice"):
                add_partition_to_span(partition)
            with env.enter():
                return task(params, env)

    _reply(queues, reply, run_task)


def worker_run_function(header, queues, worker_idx) -> None:
    """Call ``fn(*args, **kwargs)`` from ``header['function']``; send the result.

    The reply is ``RESULT`` (or ``ERROR``) with ``function_id`` and ``worker_idx``.
    """
    reply = {"type": "RESULT", "function_id": header["id"], "worker_idx": worker_idx}

    def call():
        if header.get("error") is not None:
            raise header["error"]
        fn, args, kwargs = header["function"]
        return fn(*args, **kwargs)

    _reply(queues, reply, call)


__all__ = [
    "ByValue",
    "PipelinedWorkerContext",
    "WorkerQueues",
    "WorkerSpec",
    "pipelined_worker",
    "set_thread_name",
    "worker_loop",
    "worker_run_function",
    "worker_run_task",
]
