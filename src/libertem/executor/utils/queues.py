"""Message queues between the main node and workers in one process or across processes
(the interface, :class:`WorkerQueue`, is in :mod:`libertem.common.queues`)."""

from __future__ import annotations

import contextlib
import multiprocessing
import queue
from collections.abc import Generator
from typing import Any

from libertem.common.queues import WorkerQueue, WorkerQueueEmpty


def _payload_bytes(payload) -> bytes | None:
    if payload is None:
        return None
    return bytes(memoryview(payload))


class _QueueBacked(WorkerQueue):
    """A :class:`WorkerQueue` on top of a ``queue.Queue``-like ``self._q``."""

    _q: Any

    def put(self, header, payload: memoryview | None = None) -> None:
        """Send ``header`` with a copy of ``payload``."""
        self._q.put((header, _payload_bytes(payload)))

    @contextlib.contextmanager
    def put_nocopy(self, header: Any, size: int) -> Generator[memoryview, None, None]:
        """Hand out a buffer of ``size`` bytes; send it with ``header`` at the end."""
        buf = bytearray(size)
        yield memoryview(buf)
        self._q.put((header, buf))

    @contextlib.contextmanager
    def get(self, block: bool = True, timeout: float | None = None):
        """Receive the next message; see :meth:`WorkerQueue.get`."""
        try:
            header, payload = self._q.get(block=block, timeout=timeout)
        except queue.Empty:
            raise WorkerQueueEmpty() from None
        yield header, (None if payload is None else memoryview(payload))


class SimpleWorkerQueue(_QueueBacked):
    """A :class:`WorkerQueue` between threads of one process."""

    def __init__(self) -> None:
        self._q: queue.Queue = queue.Queue()

    def size(self) -> int:
        """Number of messages waiting."""
        return self._q.qsize()

    def close(self, drain: bool = True, force: bool = False) -> None:
        """Discard waiting messages if ``drain``."""
        if drain:
            while True:
                try:
                    self._q.get_nowait()
                except queue.Empty:
                    break


class SimpleMPWorkerQueue(_QueueBacked):
    """A :class:`WorkerQueue` between processes (a :class:`multiprocessing.Queue`).

    Pass it to a child process when starting it (it cannot be pickled otherwise).
    """

    def __init__(self) -> None:
        self._q = multiprocessing.get_context("spawn").Queue()

    def size(self) -> int:
        """Number of messages waiting (approximate; 0 or 1 where the OS cannot count)."""
        try:
            return self._q.qsize()
        except NotImplementedError:  # pragma: no cover - macOS
            return 0 if self._q.empty() else 1

    def close(self, drain: bool = True, force: bool = False) -> None:
        """Discard waiting messages if ``drain``; ``force`` does not wait for the feeder."""
        if drain:
            while True:
                try:
                    self._q.get(timeout=0.01)
                except (queue.Empty, OSError, ValueError):
                    break
        self._q.close()
        if force:
            self._q.cancel_join_thread()
        else:
            self._q.join_thread()


__all__ = ["SimpleMPWorkerQueue", "SimpleWorkerQueue", "WorkerQueue", "WorkerQueueEmpty"]
