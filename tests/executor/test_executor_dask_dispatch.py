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
