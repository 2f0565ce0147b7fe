"""DaskJobExecutor: local clusters, connecting, ownership on close, Context.make_with,
Dask integration, shipping parameters once, async runs and cancellation."""

from __future__ import annotations

import asyncio
import collections
import os
import sys
import time
import types
import uuid

import dask
import dask.array as da
import distributed
import numpy as np
import pytest

from dask_shared import (
    N_CPU_WORKERS,
    acquire_cluster,
    libertem_task_keys,
    release_cluster,
    scheduler_address,
    wait_until,
)
from libertem.api import Context
from libertem.common.exceptions import ExecutorSpecException
from libertem.contrib.daskadapter import make_dask_array
from libertem.executor.concurrent import ConcurrentJobExecutor
from libertem.executor.dask import DaskJobExecutor, cluster_spec
from libertem.executor.delayed import DelayedJobExecutor
from libertem.executor.inline import InlineJobExecutor
from libertem.udf import UDF
from libertem.udf.masks import ApplyMasksUDF
from libertem.udf.sum import SumUDF
from libertem.udf.sumsigudf import SumSigUDF
from libertem.utils.devices import detect

CPU_TAGS = {"CPU": 1, "compute": 1, "ndarray": 1}


@pytest.fixture(scope="session")
def dask_executor():
    """The shared local cluster: 2 single-threaded CPU workers and 1 service worker."""
    executor = acquire_cluster()
    yield executor
    release_cluster()


@pytest.fixture
def dask_ctx(dask_executor):
    # the Context does not own the executor: closing it leaves the cluster running
    with Context(executor=dask_executor) as ctx:
        yield ctx


def _data(shape=(8, 6, 10, 12), seed=3):
    return np.random.default_rng(seed).integers(0, 256, size=shape).astype(np.float32)


def _check_sum(ctx, data=None):
    data = _data() if data is None else data
    ds = ctx.load("memory", data=data, sig_dims=2, num_partitions=4)
    res = ctx.run_udf(dataset=ds, udf=[SumUDF(), SumSigUDF()])
    assert np.array_equal(res[0]["intensity"].data, data.sum(axis=(0, 1)))
    assert np.array_equal(res[1]["intensity"].data, data.sum(axis=(2, 3)))


def _worker_names_and_resources(client) -> dict:
    info = client.scheduler_info(n_workers=-1)["workers"]
    return {w["name"]: dict(w.get("resources", {})) for w in info.values()}


# --- cluster_spec and detect ---------------------------------------------------------------


def test_detect_keys():
    devices = detect()
    assert set(devices) >= {"cpus", "cudas", "has_cupy"}
    assert len(list(devices["cpus"])) >= 1
    assert all(isinstance(i, int) for i in devices["cudas"])
    assert isinstance(devices["has_cupy"], bool)


def test_cluster_spec_as_in_the_docs():
    devices = detect()
    devices["cudas"] = []
    devices["has_cupy"] = False
    devices["cpus"] = range(3)
    spec = cluster_spec(**devices)
    assert len(spec) == 3 + 1  # three CPU workers, one service worker
    resources = [entry["options"].get("resources", {}) for entry in spec.values()]
    assert sum(1 for r in resources if r == CPU_TAGS) == 3
    assert sum(1 for r in resources if "compute" not in r) == 1
    for entry in spec.values():
        assert entry["options"]["nthreads"] == 1


def test_cluster_spec_name_service_options():
    spec = cluster_spec(
        cpus=[0, 1],
        cudas=[0],
        has_cupy=True,
        name="node7",
        num_service=2,
        options={"memory_limit": "1GB"},
    )
    names = [entry["options"]["name"] for entry in spec.values()]
    assert len(names) == 2 + 1 + 2
    assert all(n.startswith("node7") for n in names)
    cuda = [
        e["options"]["resources"]
        for e in spec.values()
        if "CUDA" in e["options"].get("resources", {})
    ]
    assert cuda == [{"CUDA": 1, "compute": 1, "ndarray": 1}]
    assert all(e["options"]["memory_limit"] == "1GB" for e in spec.values())
    spec = cluster_spec(cpus=1, cudas=[0], has_cupy=False, num_service=0)
    cuda = [
        e["options"]["resources"]
        for e in spec.values()
        if "CUDA" in e["options"].get("resources", {})
    ]
    assert cuda == [{"CUDA": 1, "compute": 1}]  # no CuPy: no 'ndarray' on CUDA workers
    assert len(spec) == 2


# --- the shared local cluster --------------------------------------------------------------


def test_make_local_resources(dask_executor):
    assert isinstance(dask_executor.client, distributed.Client)
    workers = _worker_names_and_resources(dask_executor.client)
    cpu = {n: r for n, r in workers.items() if r.get("CPU")}
    service = {n: r for n, r in workers.items() if not r.get("compute")}
    assert len(cpu) == N_CPU_WORKERS
    assert all(r == CPU_TAGS for r in cpu.values())
    assert len(service) == 1
    assert len(workers) == N_CPU_WORKERS + 1
    # single-threaded worker processes
    nthreads = dask_executor.client.nthreads()
    assert set(nthreads.values()) == {1}
    pids = dask_executor.run_each_worker(lambda: __import__("os").getpid())
    assert len(set(pids.values())) == len(workers)
    assert __import__("os").getpid() not in pids.values()
    # WorkerSet view of the same
    available = dask_executor.get_available_workers()
    assert len(available) == N_CPU_WORKERS + 1
    assert len(available.compute_workers()) == N_CPU_WORKERS
    assert not available.has_cuda()


def test_run_udfs_on_cluster(dask_ctx):
    _check_sum(dask_ctx)


def test_run_function_map_each_host(dask_executor):
    assert dask_executor.run_function(lambda a, b=1: a + b, 1, b=2) == 3
    assert dask_executor.map(lambda x: x * 2, [1, 2, 3]) == [2, 4, 6]
    hosts = dask_executor.run_each_host(lambda: "ok")
    assert list(hosts.values()) == ["ok"]


# --- connect, ownership on close -----------------------------------------------------------


def test_connect_closes_only_its_client(dask_executor):
    addr = scheduler_address(dask_executor)
    executor = DaskJobExecutor.connect(addr)
    try:
        assert isinstance(executor.client, distributed.Client)
        assert executor.client is not dask_executor.client
        workers = _worker_names_and_resources(executor.client)
        assert len(workers) == N_CPU_WORKERS + 1
        with Context(executor=executor) as ctx:
            _check_sum(ctx)
    finally:
        executor.close()
    assert executor.client.status == "closed"
    # the external cluster keeps running
    assert dask_executor.client.status == "running"
    with Context(executor=dask_executor) as ctx:
        _check_sum(ctx)


def test_connect_context_manager(dask_executor):
    addr = scheduler_address(dask_executor)
    with DaskJobExecutor.connect(addr, client_kwargs={"timeout": 10}) as executor:
        _check_sum(Context(executor=executor))
        client = executor.client
    assert client.status == "closed"
    assert dask_executor.run_function(lambda: 42) == 42


def test_wrapped_user_client_is_not_closed(dask_executor):
    addr = scheduler_address(dask_executor)
    client = distributed.Client(addr, set_as_default=False)
    try:
        executor = DaskJobExecutor(client=client)
        with Context(executor=executor) as ctx:
            _check_sum(ctx)
        executor.close()
        assert client.status == "running"
        assert client.submit(lambda: 5).result() == 5
    finally:
        client.close()


def test_connect_set_as_default(dask_executor):
    addr = scheduler_address(dask_executor)
    with DaskJobExecutor.connect(addr, client_kwargs={"set_as_default": True}) as executor:
        assert distributed.default_client() is executor.client
        assert da.arange(10, chunks=5).sum().compute() == 45
    with pytest.raises(ValueError):
        distributed.default_client()


def test_no_default_client_by_default(dask_executor):
    """Our own cluster does not replace Dask's default scheduler unless asked to."""
    with pytest.raises(ValueError):
        distributed.default_client()


# --- Context() and Context.make_with -------------------------------------------------------


def test_context_default_is_local_dask_cluster():
    ctx = Context()
    try:
        executor = ctx.executor
        assert isinstance(executor, DaskJobExecutor)
        workers = _worker_names_and_resources(executor.client)
        n_cpus = len(list(detect()["cpus"]))
        cpu = [r for r in workers.values() if r.get("CPU")]
        assert len(cpu) == n_cpus
        assert all(r == CPU_TAGS for r in cpu)
        assert set(executor.client.nthreads().values()) == {1}
        _check_sum(ctx)
        addr = scheduler_address(executor)
    finally:
        ctx.close()
    # the Context created the cluster, so closing it stops the cluster
    assert executor.client.status == "closed"
    with pytest.raises(ConnectionError):
        DaskJobExecutor.connect(addr, client_kwargs={"timeout": 2})


@pytest.mark.parametrize(
    "spec, cls",
    [
        ("inline", InlineJobExecutor),
        ("synchronous", InlineJobExecutor),
        ("threads", ConcurrentJobExecutor),
        ("delayed", DelayedJobExecutor),
    ],
)
def test_make_with_in_process_specs(spec, cls):
    with Context.make_with(spec) as ctx:
        assert isinstance(ctx.executor, cls)
        data = _data()
        ds = ctx.load("memory", data=data, sig_dims=2, num_partitions=3)
        res = ctx.run_udf(dataset=ds, udf=SumUDF())
        assert np.array_equal(res["intensity"].data, data.sum(axis=(0, 1)))


def test_make_with_threads_cpus():
    with Context.make_with("threads", cpus=2) as ctx:
        assert isinstance(ctx.executor, ConcurrentJobExecutor)
        assert len(ctx.executor.get_available_workers()) == 2
        _check_sum(ctx)


def test_make_with_dask_cpus():
    with Context.make_with("dask", cpus=1) as ctx:
        executor = ctx.executor
        assert isinstance(executor, DaskJobExecutor)
        workers = _worker_names_and_resources(executor.client)
        assert [r for r in workers.values() if r.get("compute")] == [CPU_TAGS]
        with pytest.raises(ValueError):
            distributed.default_client()
        _check_sum(ctx)
    assert executor.client.status == "closed"


def _worker_address():
    return distributed.get_worker().address


def test_make_with_dask_make_default():
    with Context.make_with("dask-make-default", cpus=1) as ctx:
        client = ctx.executor.client
        assert distributed.default_client() is client
        # plain Dask computations now run on our cluster
        assert da.arange(100, chunks=10).sum().compute() == 4950
        where = dask.delayed(_worker_address)().compute()
        assert where in client.scheduler_info(n_workers=-1)["workers"]
        arr = da.ones((8, 8), chunks=4)
        assert arr.map_blocks(lambda b: b * 2).sum().compute() == 128
        _check_sum(ctx)
    assert client.status == "closed"
    with pytest.raises(ValueError):
        distributed.default_client()


@pytest.mark.parametrize(
    "spec, kwargs",
    [
        ("no-such-executor", {}),
        ("threads", {"cpus": 0}),
        ("inline", {"gpus": 1}),
        ("delayed", {"gpus": 1}),
    ],
)
def test_make_with_impossible_spec(spec, kwargs, monkeypatch):
    def no_cluster(*args, **kwargs):
        raise AssertionError("a cluster was started for an impossible spec")

    monkeypatch.setattr(DaskJobExecutor, "make_local", no_cluster)
    with pytest.raises(ExecutorSpecException):
        Context.make_with(spec, **kwargs)


@pytest.mark.skipif(bool(detect()["cudas"]), reason="this machine has CUDA devices")
@pytest.mark.parametrize("gpus", [1, [0]])
def test_make_with_gpus_without_cuda(gpus):
    with pytest.raises(ExecutorSpecException, match="(?i)cuda|gpu"):
        Context.make_with("dask", gpus=gpus)


# --- dask-integration ----------------------------------------------------------------------


def test_dask_integration_without_distributed_client(dask_executor):
    with pytest.raises(ValueError):
        distributed.default_client()
    calls = collections.Counter()

    def counting_get(dsk, keys, **kwargs):
        calls["get"] += 1
        return dask.get(dsk, keys, **kwargs)

    data = _data()
    with dask.config.set(scheduler=counting_get):
        with Context.make_with("dask-integration") as ctx:
            assert not isinstance(ctx.executor, DaskJobExecutor)
            ds = ctx.load("memory", data=data, sig_dims=2, num_partitions=4)
            res = ctx.run_udf(dataset=ds, udf=SumSigUDF())
    assert calls["get"] >= 1
    assert np.array_equal(res["intensity"].data, data.sum(axis=(2, 3)))
    for scheduler in ("threads", "synchronous"):
        with dask.config.set(scheduler=scheduler):
            with Context.make_with("dask-integration") as ctx:
                _check_sum(ctx)


def test_dask_integration_reuses_current_client(dask_executor):
    addr = scheduler_address(dask_executor)
    with distributed.Client(addr) as client:
        assert distributed.default_client() is client
        with Context.make_with("dask-integration") as ctx:
            assert isinstance(ctx.executor, DaskJobExecutor)
            assert ctx.executor.client is client
            _check_sum(ctx)
        # the Context did not create the client, so it did not close it
        assert client.status == "running"
        assert client.submit(lambda: 3).result() == 3


# --- make_dask_array on the cluster --------------------------------------------------------


def test_make_dask_array_on_cluster(dask_ctx):
    data = _data()
    ds = dask_ctx.load("memory", data=data, sig_dims=2, num_partitions=4)
    dask_array, workers = make_dask_array(ds)
    result = dask_ctx.executor.client.compute(dask_array.sum(axis=(-1, -2))).result()
    assert np.array_equal(result, data.sum(axis=(2, 3)))
    result = dask_ctx.executor.client.compute(dask_array, workers=workers).result()
    assert np.array_equal(result, data)
    roi = np.zeros(data.shape[:2], dtype=bool)
    roi[1, 2:5] = True
    roi[6, 0] = True
    arr, workers = make_dask_array(ds, roi=roi)
    result = dask_ctx.executor.client.compute(arr, workers=workers).result()
    assert np.array_equal(result, data[roi])


# --- parameters are shipped once per run ---------------------------------------------------

_REGISTRY = "_libertem_test_unpickle_counter"


def _bump(token):
    registry = sys.modules.get(_REGISTRY)
    if registry is None:
        registry = types.ModuleType(_REGISTRY)
        registry.counts = collections.Counter()
        sys.modules[_REGISTRY] = registry
    registry.counts[token] += 1


class CountingParam:
    """A UDF parameter that counts how often it is unpickled, per process."""

    def __init__(self, token, payload):
        self.token = token
        self.payload = payload

    def __getstate__(self):
        return {"token": self.token, "payload": self.payload}

    def __setstate__(self, state):
        self.__dict__.update(state)
        _bump(self.token)


class ParamUDF(UDF):
    def __init__(self, param):
        super().__init__(param=param)

    def get_result_buffers(self):
        return {"weighted": self.buffer(kind="nav", dtype="float64")}

    def process_tile(self, tile):
        self.results.weighted[:] += np.sum(tile * self.params.param.payload, axis=(1, 2))


def test_udf_parameters_shipped_once_per_run(dask_ctx):
    data = _data(shape=(16, 8, 6, 5))
    payload = np.random.default_rng(4).random(data.shape[2:])
    ds = dask_ctx.load("memory", data=data, sig_dims=2, num_partitions=16)
    assert len(list(ds.get_partitions())) == 16
    expected = np.einsum("ijkl,kl->ij", data.astype(np.float64), payload)
    for _ in range(2):
        token = uuid.uuid4().hex
        res = dask_ctx.run_udf(dataset=ds, udf=ParamUDF(param=CountingParam(token, payload)))
        np.testing.assert_allclose(res["weighted"].data, expected, rtol=1e-5)
        counts = dask_ctx.executor.run_each_worker(
            lambda token=token: (
                sys.modules[_REGISTRY].counts[token] if _REGISTRY in sys.modules else 0
            )
        )
        assert len(counts) == N_CPU_WORKERS + 1
        # each worker deserialized the parameters at most once, not once per task
        assert all(c <= 1 for c in counts.values()), counts
        assert sum(counts.values()) >= 1, counts


# --- async runs and cancellation -----------------------------------------------------------


class SlowUDF(UDF):
    """Sleeps ``delay`` per frame; with ``marker_dir``, leaves a file there per frame done."""

    def __init__(self, delay=0.05, marker_dir=None):
        super().__init__(delay=delay, marker_dir=marker_dir)

    def get_result_buffers(self):
        return {"s": self.buffer(kind="nav", dtype="float32")}

    def process_frame(self, frame):
        time.sleep(self.params.delay)
        self.results.s[:] = np.sum(frame)
        if self.params.marker_dir is not None:
            open(os.path.join(self.params.marker_dir, uuid.uuid4().hex), "w").close()


def _slow_dataset(ctx, n_partitions=8, frames_per_partition=2):
    data = _data(shape=(n_partitions, frames_per_partition, 4, 4))
    return data, ctx.load("memory", data=data, sig_dims=2, num_partitions=n_partitions)


async def _with_ticker(coro_fn):
    ticks = 0
    stop = asyncio.Event()

    async def ticker():
        nonlocal ticks
        while not stop.is_set():
            ticks += 1
            await asyncio.sleep(0.01)

    task = asyncio.create_task(ticker())
    try:
        result = await coro_fn()
    finally:
        stop.set()
        await task
    return result, ticks


def test_run_udf_async_does_not_block(dask_ctx):
    data, ds = _slow_dataset(dask_ctx)

    async def run():
        return await dask_ctx.run_udf(dataset=ds, udf=SlowUDF(delay=0.1), sync=False)

    res, ticks = asyncio.run(_with_ticker(run))
    assert np.array_equal(res["s"].data, data.sum(axis=(2, 3)))
    # the event loop kept running while the UDF ran (~0.8 s): the ticker (every 10 ms) ticked
    assert ticks >= 10


def test_run_udf_iter_async_does_not_block(dask_ctx):
    data, ds = _slow_dataset(dask_ctx)

    async def run():
        parts = []
        async for part in dask_ctx.run_udf_iter(dataset=ds, udf=SlowUDF(delay=0.1), sync=False):
            parts.append(part)
        return parts

    parts, ticks = asyncio.run(_with_ticker(run))
    assert len(parts) >= 2
    final = parts[-1]
    assert np.array_equal(final.buffers[0]["s"].data, data.sum(axis=(2, 3)))
    assert final.damage.data.all()
    assert ticks >= 10


def _assert_cancelled_and_usable(ctx, marker_dir, n_frames):
    client = ctx.executor.client
    # the remaining tasks are gone from the scheduler soon, long before they would finish
    assert wait_until(lambda: not libertem_task_keys(client), timeout=5.0), libertem_task_keys(
        client
    )
    # ... most frames were never processed ...
    assert len(os.listdir(marker_dir)) < n_frames // 2
    # ... and the Context runs the next job
    _check_sum(ctx)


def test_closing_async_iter_early_cancels(dask_ctx, tmp_path):
    # 16 partitions x 2 frames x 0.25 s on 2 workers: a full run would take ~4 s
    data, ds = _slow_dataset(dask_ctx, n_partitions=16)
    udf = SlowUDF(delay=0.25, marker_dir=str(tmp_path))

    async def run():
        agen = dask_ctx.run_udf_iter(dataset=ds, udf=udf, sync=False)
        async for part in agen:
            first = part
            break
        await agen.aclose()
        return first

    first = asyncio.run(run())
    damage = first.damage.data
    assert damage.any() and not damage.all()
    _assert_cancelled_and_usable(dask_ctx, tmp_path, data.shape[0] * data.shape[1])


def test_closing_sync_iter_early_cancels(dask_ctx, tmp_path):
    data, ds = _slow_dataset(dask_ctx, n_partitions=16)
    gen = dask_ctx.run_udf_iter(dataset=ds, udf=SlowUDF(delay=0.25, marker_dir=str(tmp_path)))
    first = next(gen)
    assert not first.damage.data.all()
    gen.close()
    _assert_cancelled_and_usable(dask_ctx, tmp_path, data.shape[0] * data.shape[1])


def test_keyboard_interrupt_in_consumer_cancels(dask_ctx, tmp_path):
    data, ds = _slow_dataset(dask_ctx, n_partitions=16)
    udf = SlowUDF(delay=0.25, marker_dir=str(tmp_path))
    with pytest.raises(KeyboardInterrupt):
        for _part in dask_ctx.run_udf_iter(dataset=ds, udf=udf):
            raise KeyboardInterrupt
    _assert_cancelled_and_usable(dask_ctx, tmp_path, data.shape[0] * data.shape[1])


def test_masks_on_cluster(dask_ctx):
    data = _data()
    masks = np.random.default_rng(9).random((3, *data.shape[2:])).astype(np.float32)
    ds = dask_ctx.load("memory", data=data, sig_dims=2, num_partitions=4)
    res = dask_ctx.run_udf(dataset=ds, udf=ApplyMasksUDF(mask_factories=lambda: masks))
    expected = np.einsum("ijkl,mkl->ijm", data, masks)
    np.testing.assert_allclose(res["intensity"].data, expected, rtol=1e-5)
