"""A :class:`WorkerQueue` between processes whose payloads travel in shared memory.

Headers go through a :class:`multiprocessing.Queue`; payloads put by the process that
created the queue are written into slots of a shared memory pool
(:class:`PoolShmAllocator`), so that only a small :class:`PoolAllocation` record
travels with the header. The receiving process maps the pool once
(:class:`PoolShmClient`) and reads the payload in place; when it is done with the
message, the slot goes back to the creator for reuse. Payloads put by other processes,
payloads larger than a slot, and payloads put while all slots are in use travel
through the pipe instead, so a put never blocks on the pool; so do all payloads if
the pool's memory cannot be reserved (e.g. a small ``/dev/shm`` in a container).
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import queue
from collections.abc import Generator
from dataclasses import dataclass, replace
from multiprocessing import shared_memory
from typing import TYPE_CHECKING, Any

from libertem.common.queues import WorkerQueue, WorkerQueueEmpty

#: slot size of the pool of a :class:`ShmQueue` (larger payloads go through the pipe)
DEFAULT_ITEM_SIZE = 1024 * 1024
#: number of slots of the pool of a :class:`ShmQueue` (its memory is claimed when the
#: creating process first sends a payload)
DEFAULT_NUM_ITEMS = 8


@dataclass(frozen=True)
class PoolAllocation:
    """A slot of a shared memory pool holding one payload.

    Parameters
    ----------
    shm_name
        Name of the shared memory segment.
    handle
        Byte offset of the slot in the segment.
    full_size
        Size of the slot in bytes.
    req_size
        Bytes of the slot in use (the payload size).
    """

    shm_name: str
    handle: int
    full_size: int
    req_size: int

    def resize(self, new_req_size) -> PoolAllocation:
        """The same slot, with ``new_req_size`` bytes in use.

        Raises
        ------
        ValueError
            If ``new_req_size`` is negative or does not fit the slot.
        """
        new_req_size = int(new_req_size)
        if not 0 <= new_req_size <= self.full_size:
            raise ValueError(
                f"cannot resize an allocation of {self.full_size} bytes to {new_req_size} bytes"
            )
        return replace(self, req_size=new_req_size)


class PoolShmAllocator:
    """A shared memory segment divided into equal slots, handed out one per payload.

    Parameters
    ----------
    item_size
        Bytes per slot (rounded up to a multiple of :attr:`ALIGN_TO`).
    size_num_items
        Number of slots.
    create
        Create the segment (``True``) or attach to the existing segment ``name``.
    name
        Name of the segment; a new unique one by default.

    Notes
    -----
    Bookkeeping of free slots is local to this object: allocate and recycle in the
    process that created the allocator. Other processes read slots with a
    :class:`PoolShmClient`.
    """

    ALIGN_TO = 4096

    def __init__(self, item_size, size_num_items, create=True, name=None):
        item_size, size_num_items = int(item_size), int(size_num_items)
        if item_size < 1 or size_num_items < 1:
            raise ValueError(
                f"item_size and size_num_items must be positive, got {item_size}, {size_num_items}"
            )
        self._item_size = -(-item_size // self.ALIGN_TO) * self.ALIGN_TO
        self._num_items = size_num_items
        self._created = bool(create)
        size = self._item_size * self._num_items
        if create:
            self._shm = shared_memory.SharedMemory(name=name, create=True, size=size)
            self._reserve(size)
        else:
            if name is None:
                raise ValueError("name is needed to attach to an existing pool (create=False)")
            self._shm = shared_memory.SharedMemory(name=name, create=False)
        self._free = list(range(self._num_items))[::-1]

    def _reserve(self, size: int) -> None:
        """Claim the segment's memory now: a full ``/dev/shm`` fails here, with an
        exception, instead of crashing the process (SIGBUS) when a slot is written."""
        fd = getattr(self._shm, "_fd", -1)
        if not hasattr(os, "posix_fallocate") or fd < 0:
            return
        try:
            os.posix_fallocate(fd, 0, size)
        except OSError as e:
            self._created = True
            self.shutdown()
            raise MemoryError(f"cannot reserve {size} bytes of shared memory: {e}") from e

    @property
    def name(self) -> str:
        """Name of the shared memory segment."""
        return self._shm.name

    @property
    def item_size(self) -> int:
        """Bytes per slot."""
        return self._item_size

    @property
    def num_free(self) -> int:
        """Number of slots not allocated."""
        return len(self._free)

    def allocate(self, req_size: int) -> PoolAllocation:
        """A free slot for a payload of ``req_size`` bytes.

        Raises
        ------
        ValueError
            If ``req_size`` is larger than a slot.
        MemoryError
            If all slots are in use.
        """
        req_size = int(req_size)
        if not 0 <= req_size <= self._item_size:
            raise ValueError(
                f"cannot allocate {req_size} bytes from a pool of {self._item_size}-byte slots"
            )
        if not self._free:
            raise MemoryError(f"all {self._num_items} slots of pool {self.name} are in use")
        index = self._free.pop()
        return PoolAllocation(self.name, index * self._item_size, self._item_size, req_size)

    def get(self, allocation: PoolAllocation) -> memoryview:
        """The ``req_size`` bytes of ``allocation`` (writable, valid until shutdown)."""
        start = allocation.handle
        return self._shm.buf[start : start + allocation.req_size]

    def recycle(self, allocation: PoolAllocation) -> None:
        """Return the slot of ``allocation`` to the pool.

        Raises
        ------
        ValueError
            If the allocation does not belong to this pool.
        """
        if allocation.shm_name != self.name:
            raise ValueError(f"allocation of pool {allocation.shm_name}, not of {self.name}")
        index = allocation.handle // self._item_size
        if index not in self._free:
            self._free.append(index)

    def shutdown(self) -> None:
        """Unmap the segment (and remove it, if this allocator created it)."""
        shm, self._shm = self._shm, None
        if shm is None:
            return
        with contextlib.suppress(BufferError):
            shm.close()
        if self._created:
            with contextlib.suppress(FileNotFoundError):
                shm.unlink()

    def __getstate__(self):
        raise TypeError("a PoolShmAllocator stays in its process; send PoolAllocation records")


class PoolShmClient:
    """Reads slots of shared memory pools created elsewhere; maps each pool once."""

    def __init__(self):
        self._segments: dict[str, shared_memory.SharedMemory] = {}

    def get(self, allocation: PoolAllocation) -> memoryview:
        """The ``req_size`` bytes of ``allocation``."""
        shm = self._segments.get(allocation.shm_name)
        if shm is None:
            # processes started with ``spawn`` share the creator's resource tracker,
            # which removes the segment only if its creator did not
            shm = shared_memory.SharedMemory(name=allocation.shm_name, create=False)
            self._segments[allocation.shm_name] = shm
        start = allocation.handle
        return shm.buf[start : start + allocation.req_size]

    def close(self) -> None:
        """Unmap all pools (views handed out must have been released)."""
        segments, self._segments = self._segments, {}
        for shm in segments.values():
            with contextlib.suppress(BufferError):
                shm.close()


def drain_queue(q) -> int:
    """Take everything that is waiting from the multiprocessing queue ``q``; how many."""
    count = 0
    while True:
        try:
            q.get(timeout=0.01)
        except (queue.Empty, OSError, ValueError, EOFError):
            return count
        count += 1


class ShmQueue(WorkerQueue):
    """A :class:`WorkerQueue` between processes; payloads travel in shared memory.

    Create it before starting the processes that use it and pass it to them as a
    process argument. Payloads put by the creating process use the pool; see the
    module description.

    Parameters
    ----------
    item_size
        Slot size of the pool in bytes.
    num_items
        Number of slots.
    """

    def __init__(self, item_size: int = DEFAULT_ITEM_SIZE, num_items: int = DEFAULT_NUM_ITEMS):
        ctx = multiprocessing.get_context("spawn")
        self._q = ctx.Queue()
        self._release_q = ctx.Queue()
        self._item_size = int(item_size)
        self._num_items = int(num_items)
        self._owner_pid = os.getpid()
        self._allocator: PoolShmAllocator | None = None
        self._client: PoolShmClient | None = None
        self._no_pool = False
        self._closed = False

    def __getstate__(self):
        state = self.__dict__.copy()
        state["_allocator"] = None
        state["_client"] = None
        return state

    # sending ---------------------------------------------------------------------------
    def _pool(self) -> PoolShmAllocator | None:
        if os.getpid() != self._owner_pid or self._no_pool:
            return None
        if self._allocator is None:
            try:
                self._allocator = PoolShmAllocator(self._item_size, self._num_items)
            except (MemoryError, OSError):
                self._no_pool = True  # no shared memory to be had: use the pipe
                return None
        while True:
            try:
                allocation = self._release_q.get_nowait()
            except queue.Empty:
                break
            self._allocator.recycle(allocation)
        return self._allocator

    def put(self, header, payload: memoryview | None = None) -> None:
        """Send ``header`` with a copy of ``payload`` (bytes-like or ``None``)."""
        if payload is None:
            self._q.put((header, None))
            return
        view = memoryview(payload).cast("B")
        with self.put_nocopy(header, view.nbytes) as buf:
            buf[:] = view

    @contextlib.contextmanager
    def put_nocopy(self, header: Any, size: int) -> Generator[memoryview, None, None]:
        """Hand out a buffer of ``size`` bytes; it is sent with ``header`` at the end."""
        pool = self._pool()
        allocation = None
        if pool is not None and size <= pool.item_size and pool.num_free:
            allocation = pool.allocate(size)
        if allocation is None:
            buf = bytearray(size)
            yield memoryview(buf)
            self._q.put((header, buf))
            return
        view = pool.get(allocation)
        try:
            yield view
        except BaseException:
            view.release()
            pool.recycle(allocation)
            raise
        view.release()
        self._q.put((header, allocation))

    # receiving -------------------------------------------------------------------------
    @contextlib.contextmanager
    def get(self, block: bool = True, timeout: float | None = None):
        """Receive the next message as ``with q.get() as (header, payload):``.

        ``payload`` is a memoryview valid inside the block (``None`` without payload).

        Raises
        ------
        WorkerQueueEmpty
            If no message arrives (``block=False``: none waiting; else within ``timeout``).
        """
        try:
            header, payload = self._q.get(block=block, timeout=timeout)
        except queue.Empty:
            raise WorkerQueueEmpty() from None
        if not isinstance(payload, PoolAllocation):
            yield header, (None if payload is None else memoryview(payload))
            return
        if self._client is None:
            self._client = PoolShmClient()
        view = self._client.get(payload)
        try:
            yield header, view
        finally:
            view.release()
            self._release_q.put(payload)

    def empty(self) -> bool:
        """Whether no message is waiting (approximate, as for multiprocessing queues)."""
        return self._q.empty()

    def size(self) -> int:
        """Number of messages waiting (approximate; 0 or 1 where the OS cannot count)."""
        try:
            return self._q.qsize()
        except NotImplementedError:  # pragma: no cover - macOS
            return 0 if self._q.empty() else 1

    def close(self, drain: bool = True, force: bool = False) -> None:
        """Stop using the queue: drop waiting messages if ``drain``, unmap and (in the
        creating process) remove the pool. ``force`` does not wait for the feeder thread."""
        if self._closed:
            return
        self._closed = True
        if drain:
            drain_queue(self._q)
        drain_queue(self._release_q)
        for q in (self._q, self._release_q):
            q.close()
            if force:
                q.cancel_join_thread()
            else:
                q.join_thread()
        if self._client is not None:
            self._client.close()
        if self._allocator is not None:
            self._allocator.shutdown()
            self._allocator = None


__all__ = [
    "PoolAllocation",
    "PoolShmAllocator",
    "PoolShmClient",
    "ShmQueue",
    "TYPE_CHECKING",
    "WorkerQueue",
    "WorkerQueueEmpty",
    "drain_queue",
]
