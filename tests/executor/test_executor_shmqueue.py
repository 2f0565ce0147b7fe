"""libertem.executor.utils.shmqueue: a shared memory pool of slots and a queue whose
payloads travel through it (falling back to the pipe where the pool cannot help)."""

from __future__ import annotations

import dataclasses
import multiprocessing
import sys
from multiprocessing import shared_memory

import cloudpickle
import numpy as np
import pytest

from libertem.executor.utils.pipelined_worker import ByValue
from libertem.executor.utils.queues import SimpleMPWorkerQueue
from libertem.executor.utils.shmqueue import (
    PoolAllocation,
    PoolShmAllocator,
    PoolShmClient,
    ShmQueue,
    WorkerQueue,
    WorkerQueueEmpty,
    drain_queue,
)

cloudpickle.register_pickle_by_value(sys.modules[__name__])


def _exists(name: str) -> bool:
    try:
        shared_memory.SharedMemory(name=name).close()
    except FileNotFoundError:
        return False
    return True


def test_allocation_resize():
    a = PoolAllocation("pool", handle=8192, full_size=4096, req_size=100)
    assert a.resize(4096) == PoolAllocation("pool", 8192, 4096, 4096)
    assert a.resize(0).req_size == 0 and a.req_size == 100
    with pytest.raises(ValueError, match="4097"):
        a.resize(4097)
    with pytest.raises(dataclasses.FrozenInstanceError):
        a.req_size = 1


def test_allocator_slots():
    pool = PoolShmAllocator(item_size=5000, size_num_items=2)
    try:
        assert PoolShmAllocator.ALIGN_TO == 4096 and pool.item_size == 8192
        a = pool.allocate(10)
        b = pool.allocate(8192)
        assert (a.shm_name, b.shm_name) == (pool.name, pool.name)
        assert {a.handle, b.handle} == {0, 8192} and a.full_size == 8192
        pool.get(a)[:] = bytes(range(10))
        with pytest.raises(MemoryError, match="in use"):
            pool.allocate(1)
        with pytest.raises(ValueError, match="8193"):
            pool.allocate(8193)
        # another process would read the slot through a client
        client = PoolShmClient()
        view = client.get(a)
        assert bytes(view) == bytes(range(10))
        view.release()
        client.close()
        # attaching by name sees the same memory
        other = PoolShmAllocator(8192, 2, create=False, name=pool.name)
        assert bytes(other.get(a)) == bytes(range(10))
        other.shutdown()
        assert _exists(pool.name)  # only the creator removes the segment
        pool.recycle(a)
        assert pool.allocate(3).handle == a.handle
        with pytest.raises(ValueError, match="pool"):
            pool.recycle(PoolAllocation("elsewhere", 0, 8192, 1))
        with pytest.raises(TypeError):
            cloudpickle.dumps(pool)
    finally:
        name = pool.name
        pool.shutdown()
    assert not _exists(name)
    with pytest.raises(ValueError):
        PoolShmAllocator(0, 1)
    with pytest.raises(ValueError, match="name"):
        PoolShmAllocator(4096, 1, create=False)


def test_queue_in_one_process():
    q = ShmQueue(item_size=4096, num_items=1)
    assert isinstance(q, WorkerQueue)
    try:
        with pytest.raises(WorkerQueueEmpty):
            with q.get(block=False):
                pass
        small = np.arange(100, dtype=np.uint16)
        big = np.arange(5000, dtype=np.float64)  # larger than a slot: goes through the pipe
        q.put({"n": 0})
        q.put({"n": 1}, payload=memoryview(small).cast("B"))
        q.put({"n": 2}, payload=memoryview(small[::-1].copy()).cast("B"))  # pool is full
        q.put({"n": 3}, payload=memoryview(big).cast("B"))
        with q.put_nocopy({"n": 4}, 16) as buf:
            buf[:] = b"0123456789abcdef"
        with pytest.raises(KeyError):
            with q.put_nocopy({"n": 5}, 8):
                raise KeyError("nothing is sent")
        received = []
        for _ in range(5):
            with q.get(timeout=5) as (header, payload):
                received.append((header["n"], None if payload is None else bytes(payload)))
        assert received == [
            (0, None),
            (1, small.tobytes()),
            (2, small[::-1].tobytes()),
            (3, big.tobytes()),
            (4, b"0123456789abcdef"),
        ]
        with pytest.raises(WorkerQueueEmpty):
            with q.get(timeout=0.05):
                pass
        assert q.empty() and q.size() == 0
        name = q._allocator.name
    finally:
        q.close()
    q.close()  # twice is fine
    assert not _exists(name)


def test_without_shared_memory_payloads_take_the_pipe(monkeypatch):
    import errno
    import os

    def full(fd, offset, size):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "posix_fallocate", full, raising=False)
    with pytest.raises(MemoryError, match="reserve"):
        PoolShmAllocator(4096, 2)
    q = ShmQueue(item_size=4096, num_items=2)
    try:
        q.put({"n": 1}, payload=memoryview(b"abc"))
        with q.get(timeout=5) as (header, payload):
            assert (header, bytes(payload)) == ({"n": 1}, b"abc")
        assert q._allocator is None
    finally:
        q.close()


def _sum_messages(requests: ShmQueue, results: SimpleMPWorkerQueue, count: int) -> None:
    for _ in range(count):
        with requests.get(timeout=30) as (header, payload):
            data = np.frombuffer(payload, dtype=header["dtype"])
            results.put({"i": header["i"], "sum": float(data.sum())})
    requests.close(drain=False)


def test_queue_between_processes():
    """Slots are recycled once the other process has read them: more messages than slots."""
    requests, results = ShmQueue(item_size=4096, num_items=2), SimpleMPWorkerQueue()
    arrays = [np.full(300, i, dtype=np.int32) for i in range(8)]
    ctx = multiprocessing.get_context("spawn")
    child = ctx.Process(target=ByValue(_sum_messages), args=(requests, results, len(arrays)))
    child.start()
    try:
        for i, a in enumerate(arrays):
            requests.put({"i": i, "dtype": "int32"}, payload=memoryview(a).cast("B"))
        sums = {}
        for _ in arrays:
            with results.get(timeout=60) as (header, _):
                sums[header["i"]] = header["sum"]
        assert sums == {i: float(a.sum()) for i, a in enumerate(arrays)}
        child.join(30)
        assert child.exitcode == 0
    finally:
        if child.is_alive():
            child.kill()
            child.join()
        requests.close(force=True)
        results.close(force=True)


def test_drain_queue():
    q = multiprocessing.get_context("spawn").Queue()
    for i in range(3):
        q.put(i)
    assert drain_queue(q) == 3
    assert drain_queue(q) == 0
    q.close()
    q.join_thread()
