"""Executor behaviour of LiberTEM 0.16: ``scatter`` as a context manager on every executor,
``SnoozeManager.keep_alive``, ``DaskJobExecutor.is_local`` and ``run_each_partition``,
``make_with`` argument checks, ``cluster_spec`` without GPUs, a broken CuPy, and the
async helpers."""

from __future__ import annotations

import asyncio
import contextlib
import os
import queue
import subprocess
import sys
import textwrap
import types
import warnings

import numpy as np
import pytest

from dask_shared import acquire_cluster, release_cluster, scheduler_address
from libertem.api import Context
from libertem.common.async_utils import (
    AsyncGenToQueueThread,
    MyStopIteration,
    SyncGenToQueueThread,
    async_to_sync_generator,
)
from libertem.common.exceptions import ExecutorSpecException
from libertem.common.executor import ExecutorError, NoopCommHandler
from libertem.common.snooze import SnoozeManager, SnoozeMessage
from libertem.executor.dask import DaskJobExecutor, cluster_spec
from libertem.executor.delayed import DelayedJobExecutor
from libertem.io.dataset.memory import MemoryDataSet
from libertem.utils.devices import detect


class EchoTask:
    def __call__(self, params, env):
        return params

    def get_locations(self):
        return None

    def get_resources(self):
        return {}


class Box:
    def __init__(self, value):
        self.value = value

    def patch(self, patch):
        self.value = patch


def _run(ex, handle, cancel_id):
    return [r for r, _t in ex.run_tasks([EchoTask()], handle, cancel_id, NoopCommHandler())]


def _scatter_round_trip(ex):
    cm = ex.scatter("first")
    assert isinstance(cm, contextlib.AbstractContextManager)
    with cm as handle:
        assert _run(ex, handle, "s1") == ["first"]
        ex.scatter_update(handle, "second")
        assert _run(ex, handle, "s2") == ["second"]
    with ex.scatter(Box("old")) as handle:
        ex.scatter_update_patch(handle, "patched")
        assert [b.value for b in _run(ex, handle, "s3")] == ["patched"]
    return handle


def test_scatter_context_manager_in_process(ctx):
    handle = _scatter_round_trip(ctx.executor)
    with pytest.raises(ExecutorError, match="released"):
        _run(ctx.executor, handle, "s4")  # the block is over


def test_scatter_context_manager_delayed():
    ex = DelayedJobExecutor()
    with ex.scatter(Box(1)) as handle:
        ex.scatter_update_patch(handle, 2)
        assert handle.obj.value == 2


@pytest.fixture(scope="module")
def dask_executor():
    executor = acquire_cluster()
    yield executor
    release_cluster()


def test_scatter_context_manager_dask(dask_executor):
    _scatter_round_trip(dask_executor)


def test_connect_is_local_and_no_snoozing(dask_executor):
    addr = scheduler_address(dask_executor)
    with DaskJobExecutor.connect(addr) as ex:
        assert ex.is_local is True and ex.snooze_manager is None
        assert ex.client.cluster is None
    with DaskJobExecutor.connect(addr, client_kwargs={"set_as_default": True}) as ex:
        assert ex.is_local is False


def test_run_each_partition_skips_unplaced_partitions_for_all_nodes(dask_executor):
    ds = MemoryDataSet(data=np.zeros((4, 8, 8)), num_partitions=4)
    parts = list(ds.get_partitions())
    assert all(p.get_locations() is None for p in parts)
    assert list(dask_executor.run_each_partition(parts, lambda p: p.slice, all_nodes=True)) == []
    done = list(dask_executor.run_each_partition(parts, lambda p: p.slice.origin[0]))
    assert sorted(done) == [0, 1, 2, 3]


def test_snooze_manager_keep_alive_counter():
    calls = []
    manager = SnoozeManager(
        up=lambda: calls.append("up"), down=lambda: calls.append("down"), timeout=3600
    )
    try:
        assert manager.keep_alive == 0
        with manager.in_use():
            with manager.in_use():
                assert manager.keep_alive == 2
            manager.snooze()  # in use: nothing happens
            assert not manager.is_snoozing and calls == []
        assert manager.keep_alive == 0
        manager.snooze()
        assert manager.is_snoozing and calls == ["down"]
        with manager.in_use():  # wakes up first
            assert not manager.is_snoozing and calls == ["down", "up"]
    finally:
        manager.close()
    assert [m.value for m in SnoozeMessage] == ["snooze", "unsnooze"]


# --- make_with ---------------------------------------------------------------------------------


@pytest.mark.parametrize("spec", ["inline", "synchronous", "delayed", "dask-integration"])
def test_make_with_rejects_cpus_and_gpus(spec):
    with pytest.raises(ExecutorSpecException, match=f"Executor type {spec} does not support"):
        Context.make_with(spec, cpus=2)
    with pytest.raises(ExecutorSpecException, match="specifying GPU workers"):
        Context.make_with(spec, gpus=1)


def test_make_with_threads_rejects_gpus():
    with pytest.raises(ExecutorSpecException, match="Executor type threads does not support"):
        Context.make_with("threads", gpus=[0])


@pytest.mark.skipif(bool(detect()["cudas"]), reason="this machine has CUDA devices")
@pytest.mark.parametrize("spec", ["inline", "threads", "delayed", "dask", "pipelined"])
def test_make_with_main_process_gpu_without_gpu(spec):
    with pytest.raises(ExecutorSpecException, match="Cannot specify main GPU"):
        Context.make_with(spec, main_process_gpu=True)
    with pytest.raises(ExecutorSpecException, match=r"Main GPU 0 not detected, only found \[\]"):
        Context.make_with(spec, main_process_gpu=0)
    with pytest.raises(ValueError, match="Invalid type for main_process_gpu"):
        Context.make_with(spec, main_process_gpu="yes")
    with Context.make_with("inline", main_process_gpu=False) as ctx:
        assert not ctx.executor.get_available_workers().has_cuda()


def test_make_with_dask_without_cpu_workers():
    with Context.make_with("dask", cpus=0) as ctx:
        workers = ctx.executor.get_available_workers()
        assert len(workers) == 1 and not workers.has_cpu() and not workers.has_cuda()


# --- cluster_spec, devices -----------------------------------------------------------------------


@pytest.mark.skipif(bool(detect()["cudas"]), reason="this machine has CUDA devices")
def test_cluster_spec_cuda_workers_without_devices():
    with pytest.warns(RuntimeWarning, match="no visible CUDA devices"):
        spec = cluster_spec(cpus=(), cudas=2, has_cupy=True, name="n")
    assert list(spec) == ["n-service-0", "n-cuda-0", "n-cuda-1"]
    assert spec["n-service-0"]["options"]["resources"] == {}
    assert spec["n-cuda-1"]["options"]["resources"] == {"CUDA": 1, "compute": 1, "ndarray": 1}
    with pytest.warns(RuntimeWarning):
        spec = cluster_spec(cpus=1, cudas=[3, 3, 3], has_cupy=False)
    assert list(spec)[2:] == ["default-cuda-3", "default-cuda-3-0", "default-cuda-3-1"]
    assert spec["default-cuda-3-1"]["options"]["resources"] == {"CUDA": 1, "compute": 1}
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        cluster_spec(cpus=1, cudas=(), has_cupy=False)  # no CUDA asked: no warning


def test_detect_lists_cpu_ids():
    found = detect()
    assert found["cpus"] == list(range(len(found["cpus"]))) and len(found["cpus"]) >= 1


def test_broken_cupy_import_warns(tmp_path):
    pkg = tmp_path / "cupy"
    pkg.mkdir()
    (pkg / "__init__.py").write_text('raise ImportError("libcudart.so.12: missing")\n')
    script = textwrap.dedent(
        """
        import warnings
        with warnings.catch_warnings(record=True) as w:
            warnings.simplefilter("always")
            from libertem.utils.devices import detect, has_cupy
            found = detect()
            assert has_cupy() is False
        print(found["has_cupy"], [f"{x.category.__name__}: {x.message}" for x in w])
        """
    )
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(tmp_path), *sys.path]))
    out = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == (
        "False [\"RuntimeWarning: ImportError('libcudart.so.12: missing')\"]"
    )


def test_cupy_that_does_not_work_warns_once(monkeypatch):
    from libertem.utils import devices

    broken = types.ModuleType("cupy")  # imports, but has no CUDA support
    monkeypatch.setitem(sys.modules, "cupy", broken)
    with pytest.warns(RuntimeWarning, match="cuda"):
        assert devices.has_cupy() is False
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert devices.has_cupy() is False  # cached


# --- async helpers -------------------------------------------------------------------------------


def test_sync_gen_to_queue_thread():
    q = queue.Queue()
    thread = SyncGenToQueueThread((i * i for i in range(4)), q, None)
    thread.start()
    items = []
    while not isinstance(item := q.get(timeout=10), MyStopIteration):
        items.append(item)
    thread.join()
    assert items == [0, 1, 4, 9] and thread.get_exception() is None


def test_async_gen_to_queue_and_to_sync():
    async def agen(n, fail=False):
        for i in range(n):
            await asyncio.sleep(0)
            yield i
        if fail:
            raise KeyError("boom")

    q = queue.Queue()
    thread = AsyncGenToQueueThread(agen(3), q, None)
    thread.start()
    assert [q.get(timeout=10) for _ in range(3)] == [0, 1, 2]
    assert isinstance(q.get(timeout=10), MyStopIteration)
    thread.join()
    assert list(async_to_sync_generator(agen(4))) == [0, 1, 2, 3]
    with pytest.raises(KeyError, match="boom"):
        list(async_to_sync_generator(agen(2, fail=True)))
    gen = async_to_sync_generator(agen(100))
    assert next(gen) == 0
    gen.close()  # stops the thread
