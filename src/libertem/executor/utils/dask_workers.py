"""What runs inside Dask worker processes: tasks, their parameters, cancellation marks.

:class:`DaskJobExecutor` sends the tasks of a run straight to the workers (not as
Dask futures through the scheduler): :class:`LiberTEMWorkerPlugin` gives every
worker the comm handlers ``libertem_task`` and ``libertem_cancel``. A task message
carries the pickled task (its large buffers out of band) and names the run's
parameters by ``(uid, version)``; the pickled parameters come along only when the
worker does not hold that version yet. The reply carries the pickled result, or
the exception with its traceback.
"""

from __future__ import annotations

import asyncio
import functools
import pickle
from typing import Any

import cloudpickle
import distributed
from distributed.diagnostics.plugin import WorkerPlugin
from distributed.protocol import to_serialize

from libertem.common.executor import ExecutorError, WorkerContext
from libertem.common.pickling import dumps
from libertem.executor.base import TaskEnvironment
from libertem.executor.utils.dask_setup import setup_worker_from_environment

#: parameters of recent runs kept unpickled per worker process
PARAMS_CACHE_SIZE = 4
#: cancelled runs remembered per worker process
CANCELLED_MEMORY = 64
#: names of the comm handlers on the workers
TASK_HANDLER = "libertem_task"
CANCEL_HANDLER = "libertem_cancel"


class DaskWorkerContext(WorkerContext):
    """Worker context of tasks on Dask workers: messages travel as Dask events.

    Parameters
    ----------
    comms_topic
        Dask event topic the main node listens to; ``None``: messages are dropped.
    run_id
        Identifies the run in the events (one topic serves all runs of an executor).
    worker
        The Dask worker (default: the one of this process).
    """

    def __init__(
        self,
        comms_topic: str | None,
        run_id: Any = None,
        worker: distributed.Worker | None = None,
    ):
        self._topic = comms_topic
        self._run_id = run_id
        self._worker = worker

    @property
    def dask_worker(self) -> distributed.Worker:
        """The Dask worker this runs on."""
        return self._worker if self._worker is not None else distributed.get_worker()

    def signal(self, ident: str, topic: str, msg_dict: dict[str, Any]) -> None:
        """Send ``msg_dict`` (with ``'ident'``) to the subscribers of ``topic``."""
        if self._topic is None:
            return
        message = {"run": self._run_id, "topic": topic, "message": {"ident": ident, **msg_dict}}
        self.dask_worker.log_event(self._topic, message)


class NeedParams(Exception):
    """This worker does not hold the parameters a task names (the sender resends them)."""


_LOADED: dict[str, tuple[int, Any]] = {}
_CANCELLED: dict[Any, None] = {}


def _remember(table: dict, key, value, limit: int) -> None:
    table.pop(key, None)
    table[key] = value
    while len(table) > limit:
        table.pop(next(iter(table)))


def params_for(uid: str, version: int, payload: bytes | None):
    """The parameters ``(uid, version)``: unpickled from ``payload`` once, then cached.

    Raises
    ------
    NeedParams
        If they were not sent and this process does not hold them.
    """
    entry = _LOADED.get(uid)
    if entry is None or entry[0] != version:
        if payload is None:
            raise NeedParams(uid)
        entry = (version, cloudpickle.loads(payload))
    _remember(_LOADED, uid, entry, PARAMS_CACHE_SIZE)
    return entry[1]


def mark_cancelled(cancel_id) -> None:
    """Tasks of the run ``cancel_id`` in this worker stop at their next tile."""
    _remember(_CANCELLED, cancel_id, None, CANCELLED_MEMORY)


def _is_cancelled(cancel_id) -> bool:
    return cancel_id in _CANCELLED


def run_on_worker(task, params, topic: str | None, cancel_id, worker=None):
    """Run one task on the Dask ``worker`` (default: this process's); its messages go to
    the Dask event ``topic``."""
    setup_worker_from_environment()
    if worker is None:
        worker = distributed.get_worker()
    env = TaskEnvironment(
        threads_per_worker=1,
        threaded_executor=worker.state.nthreads > 1,
        worker_context=DaskWorkerContext(topic, cancel_id, worker),
        cancelled=functools.partial(_is_cancelled, cancel_id),
        worker=worker.name,
    )
    with env.enter():
        return task(params, env)


def pack(obj) -> tuple[bytes, list[memoryview]]:
    """``obj`` pickled, contiguous buffers such as arrays out of band: they travel as
    they are, without a copy.

    Plain :mod:`pickle` where it does (it is faster); cloudpickle, keeping the file
    names of code, for what must travel by value (``__main__``, modules registered
    with ``cloudpickle.register_pickle_by_value``, lambdas).
    """
    buffers = []
    try:
        header = pickle.dumps(obj, protocol=5, buffer_callback=buffers.append)
        if not _by_value_inside(header):
            return header, [b.raw() for b in buffers]
    except (pickle.PicklingError, TypeError, AttributeError):
        pass
    buffers = []
    header = dumps(obj, protocol=5, buffer_callback=buffers.append)
    return header, [b.raw() for b in buffers]


def _by_value_inside(header: bytes) -> bool:
    """Whether ``header`` names ``__main__`` or a module that travels by value."""
    if b"__main__" in header:
        return True
    return any(name.encode() in header for name in cloudpickle.list_registry_pickle_by_value())


def unpack(header: bytes, buffers) -> Any:
    """The object :func:`pack` made ``(header, buffers)`` of."""
    return pickle.loads(header, buffers=buffers)


def _execute(worker: distributed.Worker, msg: dict) -> dict:
    try:
        params = params_for(msg["params_uid"], msg["params_version"], msg.get("params"))
        task = unpack(msg["task"], msg["buffers"])
        result = run_on_worker(task, params, msg["topic"], msg["cancel_id"], worker)
        header, buffers = pack(result)
        return {
            "status": "OK",
            "result": to_serialize(header),
            "buffers": [to_serialize(b) for b in buffers],
        }
    except NeedParams:
        return {"status": "need-params"}
    except Exception as e:  # noqa: BLE001 - the caller raises it, with its traceback
        header, buffers = pack_exception(e)
        return {
            "status": "error",
            "exception": to_serialize(header),
            "buffers": [to_serialize(b) for b in buffers],
        }


def pack_exception(e: BaseException) -> tuple[bytes, list[memoryview]]:
    """``e`` pickled with its traceback (and its cause and context), for the caller to raise.

    An exception that does not pickle travels as an instance of its type with its
    ``args`` (and notes) only, or else as an :class:`ExecutorError` naming it.
    """
    from tblib import pickling_support

    for candidate in (e, _bare_copy(e)):
        if candidate is None:
            continue
        try:
            pickling_support.install(candidate)
            packed = pack(candidate)
            unpack(*packed)  # some exception types cannot be made again from their args
            return packed
        except Exception:  # noqa: BLE001 - try the next, simpler form
            pass
    stand_in = ExecutorError(f"{type(e).__module__}.{type(e).__qualname__}: {e}")
    return pack(_with_origin(stand_in, e))


def _with_origin(copy: BaseException, e: BaseException) -> BaseException:
    copy.__traceback__ = e.__traceback__
    for note in getattr(e, "__notes__", ()):
        copy.add_note(note)
    return copy


def _bare_copy(e: BaseException) -> BaseException | None:
    try:
        copy = type(e).__new__(type(e))
        copy.args = e.args
    except Exception:  # noqa: BLE001 - no copy then
        return None
    return _with_origin(copy, e)


async def handle_task(worker: distributed.Worker, **msg) -> dict:
    """Comm handler ``libertem_task``: run the task in the worker's thread pool."""
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(worker.executor, _execute, worker, msg)


class LiberTEMWorkerPlugin(WorkerPlugin):
    """Adds the comm handlers for LiberTEM's tasks to every worker (also ones started later)."""

    name = "libertem-tasks"
    idempotent = True

    def setup(self, worker: distributed.Worker) -> None:
        """Install the handlers."""

        async def task_handler(**msg):
            return await handle_task(worker, **msg)

        def cancel_handler(cancel_id=None):
            mark_cancelled(cancel_id)

        worker.handlers[TASK_HANDLER] = task_handler
        worker.handlers[CANCEL_HANDLER] = cancel_handler

    def teardown(self, worker: distributed.Worker) -> None:
        """Remove the handlers."""
        worker.handlers.pop(TASK_HANDLER, None)
        worker.handlers.pop(CANCEL_HANDLER, None)


__all__ = [
    "CANCEL_HANDLER",
    "DaskWorkerContext",
    "LiberTEMWorkerPlugin",
    "NeedParams",
    "TASK_HANDLER",
    "mark_cancelled",
    "pack",
    "params_for",
    "run_on_worker",
    "unpack",
]
