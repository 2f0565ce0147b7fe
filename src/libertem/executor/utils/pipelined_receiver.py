"""The main-process side of the pipelined workers' response queue: results to futures,
messages of tasks to the handler of their run."""

from __future__ import annotations

import concurrent.futures
import logging
import threading
from typing import Any

import cloudpickle

from libertem.common.executor import ExecutorError, TaskCommHandler, WorkerQueueEmpty
from libertem.executor.utils.pipelined_pool import WorkerPool

logger = logging.getLogger(__name__)

#: seconds between checks that the worker processes are alive while waiting
LIVENESS_INTERVAL_S = 0.5


class ResponseReceiver:
    """Reads the response queue of ``pool`` in a thread.

    Callers announce what they wait for with :meth:`expect` (a key: ``('function',
    id)`` or ``('task', run, task_id)``) and get a future; ``READY`` messages are
    counted in :attr:`ready`; ``SIGNAL`` messages go to the handler registered for
    their run with :meth:`set_handler`.

    Parameters
    ----------
    pool
        The worker processes.
    """

    def __init__(self, pool: WorkerPool):
        self._pool = pool
        self._lock = threading.Lock()
        self._pending: dict[Any, tuple[concurrent.futures.Future, str]] = {}
        self._handlers: dict[str, TaskCommHandler] = {}
        self._stopped = False
        #: worker index -> process id, for the workers that reported ``READY``
        self.ready: dict[int, int] = {}
        self._thread = threading.Thread(
            target=self._receive, name="libertem-pipelined-receiver", daemon=True
        )
        self._thread.start()

    # what the executor waits for ---------------------------------------------------------
    def expect(self, key, worker: str = "") -> concurrent.futures.Future:
        """A future for the response ``key`` (from ``worker``, for error messages)."""
        if self._stopped:
            raise ExecutorError("the executor is closed")
        future: concurrent.futures.Future = concurrent.futures.Future()
        with self._lock:
            self._pending[key] = (future, worker)
        return future

    def forget(self, predicate) -> None:
        """Stop waiting for the keys for which ``predicate(key)`` is true."""
        with self._lock:
            for key in [k for k in self._pending if predicate(k)]:
                del self._pending[key]

    def set_handler(self, run: str, handler: TaskCommHandler | None) -> None:
        """Deliver the messages of tasks of ``run`` to ``handler`` (``None``: drop them)."""
        if handler is None:
            self._handlers.pop(run, None)
        else:
            self._handlers[run] = handler

    def wait(self, futures, return_when=concurrent.futures.ALL_COMPLETED):
        """Wait for ``futures`` as :func:`concurrent.futures.wait`; raise
        :class:`~libertem.executor.utils.pipelined_pool.PoolStateError` if a worker
        process died meanwhile."""
        while True:
            done, pending = concurrent.futures.wait(
                futures, timeout=LIVENESS_INTERVAL_S, return_when=return_when
            )
            if not pending or (done and return_when == concurrent.futures.FIRST_COMPLETED):
                return done, pending
            self._pool.assert_all_alive()

    # the thread --------------------------------------------------------------------------
    def _receive(self) -> None:
        responses = self._pool.response_queue
        while True:
            try:
                with responses.get(timeout=0.2) as (header, payload):
                    data = None if payload is None else bytes(payload)
            except WorkerQueueEmpty:
                if self._stopped:
                    return
                continue
            except (OSError, EOFError, ValueError):
                return
            kind = header["type"]
            if kind == "STOP":
                return
            if kind == "READY":
                self.ready[header["worker_idx"]] = header["pid"]
            elif kind == "SIGNAL":
                handler = self._handlers.get(header["run"])
                if handler is not None:
                    try:
                        handler.dispatch(header["topic"], header["message"])
                    except Exception:  # a subscriber's error must not stop the receiver
                        logger.exception("error in a subscriber of %r", header["topic"])
            else:
                self._deliver(header, data)

    def _deliver(self, header: dict, data: bytes) -> None:
        if "function_id" in header:
            key = ("function", header["function_id"])
        else:
            key = ("task", header["run"], header["task_id"])
        with self._lock:
            future, _worker = self._pending.pop(key, (None, None))
        if future is None:
            return  # a result of an abandoned run
        try:
            value = cloudpickle.loads(data)
        except Exception as e:  # noqa: BLE001 - handed to the waiting caller
            future.set_exception(e)
            return
        if header["type"] == "RESULT":
            future.set_result(value)
            return
        exc, text = value
        if hasattr(exc, "add_note"):
            exc.add_note(f"raised in pipelined worker {header['worker_idx']}:\n{text}")
        future.set_exception(exc)

    def stop(self) -> None:
        """End the thread (after the workers are gone); fail the futures still waiting."""
        self._stopped = True
        self._pool.response_queue.put({"type": "STOP"})
        self._thread.join(5.0)
        with self._lock:
            pending, self._pending = list(self._pending.values()), {}
        for future, worker in pending:
            if not future.done():
                future.set_exception(ExecutorError(f"worker {worker or '?'} was stopped"))


__all__ = ["LIVENESS_INTERVAL_S", "ResponseReceiver"]
