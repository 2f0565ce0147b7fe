"""``Environment.enter()`` limits BLAS/OpenMP and numba threads while a task runs, without
looking for the thread pools again on every task (that reads /proc/self/maps)."""

from __future__ import annotations

import sys
import types

import numba
import pytest
import threadpoolctl

from libertem.common import threading as thread_limits
from libertem.common.environment import Environment

_Controller = threadpoolctl.ThreadpoolController


@pytest.fixture
def counted(monkeypatch):
    made = []

    class CountingController(threadpoolctl.ThreadpoolController):
        def __init__(self):
            made.append(self)
            super().__init__()

    monkeypatch.setattr(threadpoolctl, "ThreadpoolController", CountingController)
    monkeypatch.setitem(thread_limits._CONTROLLER, "controller", None)
    return made


def _blas_threads() -> list[int]:
    return [info["num_threads"] for info in _Controller().info()]


def test_enter_limits_threads_and_restores(counted):
    import numpy  # noqa: F401 - its BLAS is a thread pool to limit

    env = Environment(threads_per_worker=1, threaded_executor=False)
    with env.enter():  # the first one may load numba's threading layer
        pass
    del counted[:]
    before = _blas_threads()
    numba_before = numba.get_num_threads()
    for _ in range(5):
        with env.enter():
            assert all(n == 1 for n in _blas_threads()), _blas_threads()
            assert numba.get_num_threads() == 1
        assert _blas_threads() == before
        assert numba.get_num_threads() == numba_before
    # the pools were found once, not once per task
    assert not counted


def test_controller_found_again_after_imports(counted, monkeypatch):
    thread_limits.thread_controller()
    thread_limits.thread_controller()
    assert len(counted) == 1
    monkeypatch.setitem(sys.modules, "libertem_test_new_module", types.ModuleType("x"))
    thread_limits.thread_controller()
    assert len(counted) == 2


def test_threaded_executor_leaves_blas_alone(counted):
    env = Environment(threads_per_worker=1, threaded_executor=True)
    with env.enter():
        assert numba.get_num_threads() == 1
    assert not counted


def _blas_only() -> list[int]:
    # OpenMP limits are per thread: the pool threads keep their own
    return [i["num_threads"] for i in _Controller().info() if i["user_api"] == "blas"]


class _BlasTask:
    def __call__(self, params, env):
        return _blas_only()

    def get_partition(self):
        return None

    def get_resources(self):
        return {"CPU": 1, "compute": 1}

    def get_tracing_span_context(self):
        return None


def test_thread_executor_limits_blas_during_a_run(counted):
    from libertem.executor.concurrent import ConcurrentJobExecutor

    before = _blas_only()
    with ConcurrentJobExecutor.make_local(2) as executor:
        for run in range(5):
            results = executor.run_tasks([_BlasTask(), _BlasTask()], None, f"b{run}", None)
            assert all(r == [1] * len(before) for r, _ in results)
            assert _blas_only() == before
    # found once (again after the first run loaded numba's threading layer), not per run
    assert len(counted) <= 2
