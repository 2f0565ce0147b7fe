"""LiberTEM's executor members on the Dask executor: task communication through Dask
events, scatter updates on the workers, cancellation, run_each_partition, resource
details, connect/async variants, worker set-up, and snoozing a local cluster."""

from __future__ import annotations

import asyncio
import os
import sys
import time

import cloudpickle
import distributed
import numpy as np
import pytest

from dask_shared import N_CPU_WORKERS, acquire_cluster, release_cluster, scheduler_address
from libertem.api import Context
from libertem.common import backend
from libertem.common.executor import JobCancelledError, NoopCommHandler, ResourceError
from libertem.common.progress import ProgressReporter
from libertem.executor.dask import (
    AsyncDaskJobExecutor,
    DaskJobExecutor,
    cluster_spec,
    set_worker_log_level,
)
from libertem.udf.sum import SumUDF
from libertem.udf.sumsigudf import SumSigUDF

# the workers cannot import this test module: its classes travel by value
cloudpickle.register_pickle_by_value(sys.modules[__name__])


class Params:
    def __init__(self, factor):
        self.factor = factor

    def patch(self, patch):
        self.factor = patch["factor"]


class MulTask:
    def __init__(self, task_id, value, delay=0.0, resources=None, done_dir=None):
        self.task_id = task_id
        self.value = value
        self.delay = delay
        self.resources = resources or {"CPU": 1, "compute": 1}
        self.done_dir = done_dir  # a file per finished task goes here

    def __call__(self, params, env):
        env.worker_context.signal(self.task_id, "tile_complete", {"frames": 1.0})
        deadline = time.monotonic() + self.delay
        while time.monotonic() < deadline:
            env.check_cancelled()
            time.sleep(0.01)
        if self.done_dir is not None:
            open(os.path.join(self.done_dir, f"done-{self.task_id}"), "w").close()
        return params.factor * self.value, env.threads_per_worker, backend.get_use_cpu()

    def get_partition(self):
        return None

    def get_resources(self):
        return self.resources

    def get_tracing_span_context(self):
        return None


@pytest.fixture(scope="module")
def dask_executor():
    executor = acquire_cluster()
    yield executor
    release_cluster()


def test_run_tasks_messages_travel_as_events(dask_executor):
    comms = NoopCommHandler()
    seen = []
    comms.subscribe("tile_complete", lambda topic, msg: seen.append(msg["ident"]))
    handle = dask_executor.scatter(Params(3))
    tasks = [MulTask(i, i, delay=0.5) for i in range(4)]
    results = {t.task_id: r for r, t in dask_executor.run_tasks(tasks, handle, "m1", comms)}
    assert {k: v[0] for k, v in results.items()} == {i: 3 * i for i in range(4)}
    assert {v[1] for v in results.values()} == {1}  # one thread per Dask worker
    assert all(isinstance(v[2], int) for v in results.values())  # LIBERTEM_USE_CPU applied
    assert sorted(seen) == [0, 1, 2, 3]


def test_progress_of_udf_runs(dask_executor):
    class Reporter(ProgressReporter):
        def __init__(self):
            super().__init__()
            self.last = None

        def update(self, state):
            self.last = state

    ctx = Context(executor=dask_executor)
    data = np.ones((8, 4, 4, 4), dtype=np.float32)
    ds = ctx.load("memory", data=data, sig_dims=2, num_partitions=4)
    reporter = Reporter()
    res = ctx.run_udf(dataset=ds, udf=SumSigUDF(), progress=reporter)
    assert np.all(res["intensity"].data == 16)
    assert reporter.last.num_frames_complete == 32
    assert reporter.last.num_part_complete == 4


def test_scatter_update_reaches_workers(dask_executor):
    handle = dask_executor.scatter(Params(2))

    def run(cancel_id):
        tasks = [MulTask(i, 1) for i in range(4)]
        return sorted(r[0] for r, _ in dask_executor.run_tasks(tasks, handle, cancel_id, None))

    assert run("u1") == [2] * 4
    dask_executor.scatter_update(handle, Params(5))
    assert run("u2") == [5] * 4
    dask_executor.scatter_update_patch(handle, {"factor": 7})
    assert run("u3") == [7] * 4
    # scattering the original parameters again gives a fresh, unchanged handle
    again = dask_executor.scatter(Params(2))
    tasks = [MulTask(0, 1)]
    assert [r[0] for r, _ in dask_executor.run_tasks(tasks, again, "u4", None)] == [2]
    with pytest.raises(TypeError, match="scatter"):
        dask_executor.scatter_update(object(), Params(1))


def test_cancel_stops_running_tasks(dask_executor, tmp_path):
    tasks = [MulTask(i, 1, delay=0.2 if i == 0 else 5.0, done_dir=tmp_path) for i in range(6)]
    gen = dask_executor.run_tasks(tasks, dask_executor.scatter(Params(1)), "c1", None)
    next(gen)
    dask_executor.cancel("c1")
    with pytest.raises(JobCancelledError):
        list(gen)
    # the run ends before any of the long tasks finished: they were stopped
    assert sorted(os.listdir(tmp_path)) == ["done-0"]
    # the workers are free again
    assert dask_executor.run_function(lambda: 1) == 1
    dask_executor.cancel("c2")  # before the run starts
    with pytest.raises(JobCancelledError):
        list(dask_executor.run_tasks(tasks[:1], Params(1), "c2", None))


def test_resources(dask_executor):
    details = dask_executor.get_resource_details()
    assert len(details) == 1
    assert details[0]["cpu"] == N_CPU_WORKERS
    assert details[0]["service"] == 1 and details[0]["cuda"] == 0
    assert dask_executor.has_libertem_resources()
    cuda_task = MulTask(0, 1, resources={"CUDA": 1, "compute": 1})
    with pytest.raises(ResourceError, match="CUDA"):
        list(dask_executor.run_tasks([cuda_task], Params(1), "r1", None))
    plain = DaskJobExecutor(dask_executor.client, lt_resources=False)
    assert [r[0] for r, _ in plain.run_tasks([cuda_task], Params(4), "r2", None)] == [4]


class FakePartition:
    def __init__(self, location):
        self.location = location

    def get_locations(self):
        return [self.location]


def test_run_each_partition_places_by_location(dask_executor):
    workers = dask_executor.get_available_workers().has_cpu().names()
    partitions = [FakePartition(w) for w in workers * 2]

    def where(partition):
        return partition.location, distributed.get_worker().address

    results = list(dask_executor.run_each_partition(partitions, where))
    assert len(results) == len(partitions)
    assert all(wanted == got for wanted, got in results)
    # all_nodes: once per location of each partition; partitions without one are skipped
    unplaced = FakePartition(None)
    unplaced.get_locations = lambda: None
    everywhere = list(
        dask_executor.run_each_partition(partitions + [unplaced], where, all_nodes=True)
    )
    assert sorted(everywhere) == sorted(results)


def test_worker_environment_and_log_level(dask_executor):
    env = dask_executor.run_each_worker(lambda: os.environ.get("NUMBA_NUM_THREADS"))
    assert set(env.values()) == {"1"}
    # ... but not in this process, whose numba threads are running already
    import numba

    ours = str(numba.config.NUMBA_NUM_THREADS)
    assert os.environ.get("NUMBA_NUM_THREADS", ours) == ours
    dask_executor.run_each_worker(set_worker_log_level, "ERROR")
    levels = dask_executor.run_each_worker(
        lambda: __import__("logging").getLogger("distributed").level
    )
    assert set(levels.values()) == {40}
    dask_executor.run_each_worker(set_worker_log_level, "WARNING")


def test_connect_passes_constructor_arguments(dask_executor):
    addr = scheduler_address(dask_executor)
    with DaskJobExecutor.connect(addr, False, main_process_gpu=None) as ex:
        assert ex._lt_resources is False
        assert ex.run_function(lambda: 2) == 2
        assert ex.snooze_manager is None


def test_async_dask_executor(dask_executor):
    addr = scheduler_address(dask_executor)

    async def main():
        adapter = await AsyncDaskJobExecutor.connect(addr)
        assert isinstance(adapter.ensure_sync(), DaskJobExecutor)
        assert await adapter.run_function(lambda: 6) == 6
        handle = await adapter.scatter(Params(2))
        results = [r async for r in adapter.run_tasks([MulTask(0, 21)], handle, "a")]
        assert results[0][0][0] == 42
        await adapter.close()
        return adapter.ensure_sync().client.status

    assert asyncio.run(main()) == "closed"
    assert dask_executor.client.status == "running"
    wrapped = AsyncDaskJobExecutor(None, dask_executor.client)
    assert wrapped.ensure_sync().client is dask_executor.client


# --- snoozing a local cluster -------------------------------------------------------------------


@pytest.fixture(scope="module")
def snoozing_executor():
    spec = cluster_spec(cpus=1, cudas=[], has_cupy=False, num_service=1)
    executor = DaskJobExecutor.make_local(spec=spec, preload=("colorsys",), snooze_timeout=1.0)
    yield executor
    executor.close()


def _worker_count(executor) -> int:
    return len(executor.client.scheduler_info(n_workers=-1)["workers"])


def test_snooze_and_wake_up(snoozing_executor):
    ex = snoozing_executor
    events = []
    keys = [
        ex.subscribe(t, lambda topic, msg: events.append(topic)) for t in ("snooze", "unsnooze")
    ]
    ctx = Context(executor=ex)
    data = np.arange(4 * 4 * 3 * 3, dtype=np.float32).reshape((4, 4, 3, 3))
    ds = ctx.load("memory", data=data, sig_dims=2, num_partitions=2)
    assert ex.run_each_worker(lambda: "colorsys" in sys.modules) == {
        w: True for w in ex.get_available_workers().names()
    }
    np.testing.assert_allclose(
        ctx.run_udf(dataset=ds, udf=SumUDF())["intensity"].data, data.sum(axis=(0, 1))
    )
    deadline = time.monotonic() + 30
    while not ex.snooze_manager.is_snoozing and time.monotonic() < deadline:
        time.sleep(0.1)
    assert ex.snooze_manager.is_snoozing
    assert _worker_count(ex) == 1  # LiberTEM: snoozing keeps one worker
    assert len(ex.get_available_workers()) == 1  # looking does not wake it up
    assert events == ["snooze"]
    # the next run brings the workers back
    res = ctx.run_udf(dataset=ds, udf=SumSigUDF())
    np.testing.assert_allclose(res["intensity"].data, data.sum(axis=(2, 3)))
    assert events == ["snooze", "unsnooze"]
    assert _worker_count(ex) == 2
    for key in keys:
        assert ex.unsubscribe(key)


def test_cli_worker_joins_and_stops(dask_executor):
    from libertem.executor.dask import cli_worker

    addr = scheduler_address(dask_executor)
    client = dask_executor.client
    errors = []

    def run():
        try:
            cli_worker(addr, None, 1, [], False, "clitest", "WARNING", ("colorsys",))
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)

    thread = __import__("threading").Thread(target=run, daemon=True)
    thread.start()

    def joined():
        info = client.scheduler_info(n_workers=-1)["workers"]
        return [a for a, w in info.items() if str(w.get("name", "")).startswith("clitest")]

    deadline = time.monotonic() + 60
    while not joined() and time.monotonic() < deadline:
        time.sleep(0.1)
    (address,) = joined()
    info = client.scheduler_info(n_workers=-1)["workers"][address]
    assert info["resources"] == {"CPU": 1, "compute": 1, "ndarray": 1}
    assert client.run(lambda: "colorsys" in sys.modules, workers=[address]) == {address: True}
    client.retire_workers(workers=[address], close_workers=True)
    thread.join(60)
    assert not thread.is_alive() and not errors
