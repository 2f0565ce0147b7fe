"""The message queue interface between the main node and workers: a header and an
optional binary payload per message. The implementations are in
:mod:`libertem.executor.utils.queues` and :mod:`libertem.executor.utils.shmqueue`."""

from __future__ import annotations

import contextlib
from abc import ABC, abstractmethod
from collections.abc import Generator
from typing import Any


class WorkerQueueEmpty(Exception):  # noqa: N818 - LiberTEM's name
    """No message arrived within the timeout (or the queue is empty and not blocking)."""


class WorkerQueue(ABC):
    """A queue of messages: a picklable header and an optional binary payload each."""

    @abstractmethod
    def put(self, header: Any, payload: memoryview | None = None) -> None:
        """Send a message; ``payload`` (bytes-like) is copied."""

    @abstractmethod
    @contextlib.contextmanager
    def put_nocopy(self, header: Any, size: int) -> Generator[memoryview, None, None]:
        """Send a message whose payload of ``size`` bytes is written in place.

        Use as ``with queue.put_nocopy(header, size) as buf: buf[:] = ...``; the
        message is sent when the block ends without an exception.
        """

    @abstractmethod
    @contextlib.contextmanager
    def get(
        self, block: bool = True, timeout: float | None = None
    ) -> Generator[tuple[Any, memoryview], None, None]:
        """Receive a message as ``with queue.get() as (header, payload):``.

        ``payload`` is a memoryview (``None`` without payload), valid inside the block.

        Raises
        ------
        WorkerQueueEmpty
            If no message arrives (``block=False``: none is waiting; else within
            ``timeout`` seconds).
        """

    @abstractmethod
    def size(self) -> int:
        """Number of messages waiting."""

    @abstractmethod
    def close(self, drain: bool = True, force: bool = False) -> None:
        """Stop using the queue; ``drain`` discards waiting messages first."""


__all__ = ["WorkerQueue", "WorkerQueueEmpty"]
