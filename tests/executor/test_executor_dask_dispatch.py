"""How the Dask executor hands tasks to its workers: parameters once per worker (and again
when a worker no longer holds them), results and exceptions back, nothing left behind on
the scheduler."""

from __future__ import annotations

import os
import sys
import threading

import cloudpickle
import numpy as np
import pytest

from dask_shared import acquire_cluster, libertem_task_keys, release_cluster
from libertem.executor.utils.dask_workers import PARAMS_CACHE_SIZE

# the workers cannot import this test module: its classes travel by value
cloudpickle.register_pickle_by_value(sys.modules[__name__])


@pytest.fixture(scope="module")
def executor():
    ex = acquire_cluster()
    yield ex
    release_cluster()


class Offset:
    def __init__(self, offset):
        self.offset = offset


class Task:
    """Returns ``params.offset + value`` and how often this process unpickled params."""

    def __init__(self, task_id, value=0, size=0):
        self.task_id = task_id
        self.value = value
        self.size = size

    def __call__(self, params, env):
        big = np.full(self.size, self.task_id, dtype=np.float64)
        return params.offset + self.value, os.getpid(), big

    def get_partition(self):
        return None

    def get_resources(self):
        return {"CPU": 1, "compute": 1}

    def get_tracing_span_context(self):
        return None


class LockedError(Exception):
    """An exception that does not pickle (it holds a lock)."""

    def __init__(self, message):
        super().__init__(message)
        self.lock = threading.Lock()


class FailingTask(Task):
    def __call__(self, params, env):
        raise LockedError(f"task {self.task_id} holds a lock")


def _run(executor, tasks, handle, cancel_id):
    return sorted(r[0] for r, _ in executor.run_tasks(tasks, handle, cancel_id, None))


def _forget_params():
    from libertem.executor.utils import dask_workers

    dask_workers._LOADED.clear()


def _unpickled_params() -> int:
    from libertem.executor.utils import dask_workers

    return len(dask_workers._LOADED)


def test_params_sent_again_when_a_worker_dropped_them(executor):
    first = executor.scatter(Offset(100))
    assert _run(executor, [Task(i, i) for i in range(4)], first, "p0") == [100, 101, 102, 103]
    # the workers drop what they hold (as after many other runs, or a restart) ...
    executor.run_each_worker(_forget_params)
    # ... the executor still thinks they hold it; they ask for it again
    expected = [100, 101, 102, 103]
    assert _run(executor, [Task(i, i) for i in range(4)], first, "p1") == expected
    assert sum(executor.run_each_worker(_unpickled_params).values()) >= 1


def test_many_parameter_sets(executor):
    for k in range(PARAMS_CACHE_SIZE + 3):
        handle = executor.scatter(Offset(k))
        assert _run(executor, [Task(i) for i in range(4)], handle, f"m{k}") == [k] * 4
    # what the executor remembers per worker stays as small as what the worker keeps
    assert all(len(k) <= PARAMS_CACHE_SIZE for k in executor._known_params.values())
    counts = executor.run_each_worker(_unpickled_params)
    assert all(n <= PARAMS_CACHE_SIZE for n in counts.values()), counts


def test_large_results_arrive_intact(executor):
    tasks = [Task(i, size=1_000_000) for i in range(4)]  # 8 MB each
    results = list(executor.run_tasks(tasks, executor.scatter(Offset(0)), "big", None))
    assert len(results) == 4
    for (_, _, big), task in results:
        assert big.shape == (1_000_000,)
        assert np.all(big == task.task_id)
    assert not libertem_task_keys(executor.client)


def test_exception_that_does_not_pickle_keeps_its_type(executor):
    with pytest.raises(LockedError, match="task 0 holds a lock") as info:
        list(executor.run_tasks([FailingTask(0)], executor.scatter(Offset(0)), "lock", None))
    assert "lock" not in vars(info.value)  # what did not pickle stayed on the worker


def test_raw_params_without_scatter(executor):
    assert _run(executor, [Task(0, 1), Task(1, 2)], Offset(10), "raw") == [11, 12]


def test_no_tasks(executor):
    assert list(executor.run_tasks([], executor.scatter(Offset(0)), "none", None)) == []


def test_slots_send_one_task_ahead_per_worker():
    """Each worker gets a task per free thread, then one more that waits in it (no idle
    round trip between tasks); tasks come back in the order they were booked."""
    from libertem.common.scheduler import Worker
    from libertem.executor.utils.dask_dispatch import QUEUE_AHEAD, _Slot

    assert QUEUE_AHEAD == 1
    slot = _Slot(Worker("tcp://a", "a", {"CPU": 1, "compute": 1}, 1), use_resources=False)
    need = {"threads": 1}
    assert slot.fits(need, ahead=False) and not slot.take(need)  # runs
    assert not slot.fits(need, ahead=False)
    assert slot.fits(need) and slot.take(need)  # waits in the worker
    assert not slot.fits(need)  # no second one ahead
    slot.give(need, queued=False)  # the first finished: the waiting one runs now
    assert slot.fits(need, ahead=False) and not slot.take(need)
    assert not slot.fits(need)
    slot.give(need, queued=True)
    assert slot.fits(need) and slot.take(need)
    slot.alive = False
    assert not slot.fits(need)
    # resources: a task that could never run on the worker is not sent ahead either
    gpu = _Slot(Worker("tcp://b", "b", {"CPU": 1, "compute": 1}, 1), use_resources=True)
    assert not gpu.fits({"CUDA": 1})
    assert gpu.fits({"compute": 1}, ahead=False) and not gpu.take({"compute": 1})
    assert gpu.fits({"compute": 1}) and gpu.take({"compute": 1})
    assert not gpu.fits({"CUDA": 1})


def test_tasks_ahead_run_one_after_the_other(executor):
    """More tasks than worker threads: every task runs once, on every worker."""
    tasks = [Task(i, value=i) for i in range(12)]
    results = [r for r, _ in executor.run_tasks(tasks, Offset(100), "ahead", None)]
    assert sorted(r[0] for r in results) == [100 + i for i in range(12)]
    assert len({r[1] for r in results}) == len(executor.get_available_workers().has_cpu())
