"""LiberTEM's executor members on the in-process executors (inline, thread pool, the
Dask-integration choices): run_tasks with task communication, scatter updates,
cancellation, run_each_*, async adapters, debug pickling, threads and GPUs of tasks."""

from __future__ import annotations

import asyncio
import concurrent.futures
import socket
import threading
import time

import dask
import numpy as np
import pytest

from libertem.api import Context
from libertem.common import backend
from libertem.common.executor import (
    GenericTask,
    JobCancelledError,
    JobExecutor,
    NoopCommHandler,
    ParamsHandle,
    TaskCommHandler,
)
from libertem.common.progress import ProgressReporter
from libertem.executor.base import AsyncAdapter, sync_to_async
from libertem.executor.concurrent import AsyncConcurrentJobExecutor, ConcurrentJobExecutor
from libertem.executor.inline import InlineJobExecutor
from libertem.executor.integration import DaskSchedulerExecutor, get_dask_integration_executor
from libertem.udf import UDF
from libertem.udf.runner import UDFRunner
from libertem.udf.sum import SumUDF


class Params:
    """Parameters with LiberTEM's patch protocol."""

    def __init__(self, factor):
        self.factor = factor

    def patch(self, patch):
        self.factor = patch["factor"]


class MulTask:
    """Returns ``params.factor * value``; signals progress on the way."""

    def __init__(self, task_id, value, delay=0.0, gate=None, done=None):
        self.task_id = task_id
        self.value = value
        self.delay = delay
        self.gate = gate
        self.done = done  # ids of finished tasks are appended here
        self.partition = None

    def __call__(self, params, env):
        if self.gate is not None:
            self.gate.wait(5)
        ctx = env.worker_context
        if ctx is not None:
            ctx.signal(self.task_id, "partition_start", {})
            ctx.signal(self.task_id, "tile_complete", {"frames": 1.0})
        time.sleep(self.delay)
        env.check_cancelled()
        if self.done is not None:
            self.done.append(self.task_id)
        return params.factor * self.value, env.threads_per_worker

    def get_partition(self):
        return self.partition

    def get_resources(self):
        return {"CPU": 1, "compute": 1}

    def get_tracing_span_context(self):
        return None


@pytest.fixture(scope="module", params=["inline", "threads"])
def executor(request):
    if request.param == "inline":
        ex = InlineJobExecutor()
    else:
        ex = ConcurrentJobExecutor.make_local(n_threads=2)
    yield ex
    ex.close()


class Recorder(TaskCommHandler):
    def __init__(self):
        self.prepared = []
        self.calls = []
        self.messages = []
        self._lock = threading.Lock()
        for topic in ("partition_start", "tile_complete"):
            self.subscribe(topic, self._record)

    def _record(self, topic, msg):
        with self._lock:
            self.messages.append((topic, msg["ident"]))

    def handle_task(self, task, queue):
        self.prepared.append((task.task_id, queue))

    def start(self):
        self.calls.append("start")

    def done(self):
        self.calls.append("done")


def test_run_tasks_results_and_messages(executor):
    handle = executor.scatter(Params(3))
    tasks = [MulTask(i, i) for i in range(5)]
    comms = Recorder()
    results = {task.task_id: res for res, task in executor.run_tasks(tasks, handle, "r1", comms)}
    assert {k: v[0] for k, v in results.items()} == {i: 3 * i for i in range(5)}
    assert comms.calls == ["start", "done"]
    # every message delivered before run_tasks finished
    assert sorted(comms.messages) == sorted(
        [(t, i) for i in range(5) for t in ("partition_start", "tile_complete")]
    )
    if isinstance(executor, InlineJobExecutor):
        # inline: one data queue per run, handed to handle_task before each task
        assert [tid for tid, _ in comms.prepared] == list(range(5))
        assert len({id(q) for _, q in comms.prepared}) == 1
    # a plain progress callable and None are accepted too
    frames = []
    list(executor.run_tasks(tasks, handle, "r2", lambda tid, n: frames.append((tid, n))))
    assert sorted(frames) == [(i, 1.0) for i in range(5)]
    assert len(list(executor.run_tasks(tasks, handle, "r3", None))) == 5


def test_threads_per_worker_of_tasks():
    with InlineJobExecutor(inline_threads=3) as inline:
        ((result, _),) = inline.run_tasks([MulTask(0, 1)], Params(1), "t", None)
        assert result[1] == 3
    with ConcurrentJobExecutor.make_local(n_threads=2) as threads:
        ((result, _),) = threads.run_tasks([MulTask(0, 1)], Params(1), "t", None)
        assert result[1] == 1
    with pytest.raises(ValueError, match="inline_threads"):
        InlineJobExecutor(inline_threads=0)


class ThreadsUDF(UDF):
    def get_result_buffers(self):
        return {"threads": self.buffer(kind="nav", dtype="int64")}

    def process_frame(self, frame):
        self.results.threads[:] = self.meta.threads_per_worker


def test_udf_sees_threads_per_worker():
    data = np.zeros((4, 4, 2, 2), dtype=np.float32)
    for executor, expected in (
        (InlineJobExecutor(inline_threads=2), 2),
        (ConcurrentJobExecutor.make_local(2), 1),
    ):
        with executor:
            ctx = Context(executor=executor)
            ds = ctx.load("memory", data=data, sig_dims=2, num_partitions=2)
            res = ctx.run_udf(dataset=ds, udf=ThreadsUDF())
            assert np.all(res["threads"].data == expected)


def test_scatter_update_changes_what_later_tasks_see(executor):
    params = Params(2)
    handle = executor.scatter(params)
    assert isinstance(handle, ParamsHandle)
    gen = executor.run_tasks([MulTask(0, 1)], handle, "s1", None)
    assert next(gen)[0][0] == 2
    gen.close()
    executor.scatter_update(handle, Params(5))
    assert [r[0] for r, _ in executor.run_tasks([MulTask(0, 1)], handle, "s2", None)] == [5]
    executor.scatter_update_patch(handle, {"factor": 7})
    assert [r[0] for r, _ in executor.run_tasks([MulTask(0, 1)], handle, "s3", None)] == [7]
    with pytest.raises(TypeError, match="patch"):
        executor.scatter_update_patch(executor.scatter(object()), {})
    with pytest.raises(TypeError, match="scatter"):
        executor.scatter_update("not a handle", Params(1))


def test_inline_scatter_update_between_tasks_of_one_run():
    executor = InlineJobExecutor()
    handle = executor.scatter(Params(1))
    gen = executor.run_tasks([MulTask(i, 1) for i in range(3)], handle, "u", None)
    first = next(gen)[0][0]
    executor.scatter_update_patch(handle, {"factor": 10})
    rest = [r[0] for r, _ in gen]
    assert (first, rest) == (1, [10, 10])


def test_cancel_stops_a_run(executor):
    tasks = [MulTask(i, 1, delay=0.05) for i in range(8)]
    gen = executor.run_tasks(tasks, Params(1), "c1", None)
    next(gen)
    executor.cancel("c1")
    with pytest.raises(JobCancelledError):
        list(gen)
    # cancelled before it started: the run raises at once
    executor.cancel("c2")
    with pytest.raises(JobCancelledError):
        list(executor.run_tasks(tasks, Params(1), "c2", None))
    # other runs are not affected
    assert len(list(executor.run_tasks(tasks[:2], Params(1), "c3", None))) == 2


def test_cancel_from_another_thread_stops_running_task():
    executor = ConcurrentJobExecutor.make_local(n_threads=2)
    try:
        gate = threading.Event()
        done = []
        tasks = [MulTask(i, 1, delay=0.3, gate=gate, done=done) for i in range(6)]
        gen = executor.run_tasks(tasks, Params(1), "c", None)
        # the tasks wait for the gate, which opens when the run is cancelled
        timer = threading.Timer(0.1, lambda: (executor.cancel("c"), gate.set()))
        timer.start()
        with pytest.raises(JobCancelledError):
            list(gen)
        assert done == []  # the running tasks stopped, the others never started
    finally:
        executor.close()


class CountingReporter(ProgressReporter):
    def __init__(self):
        super().__init__()
        self.states = []

    def update(self, state):
        self.states.append(state)


class SlowSumUDF(SumUDF):
    def postprocess(self):
        time.sleep(0.2)  # time for the messages of the partition to be delivered


def test_progress_messages_reach_reporter(executor):
    ctx = Context(executor=executor)
    data = np.ones((8, 8, 4, 4), dtype=np.float32)
    ds = ctx.load("memory", data=data, sig_dims=2, num_partitions=4)
    reporter = CountingReporter()
    res = ctx.run_udf(dataset=ds, udf=SlowSumUDF(), progress=reporter)
    assert np.all(res["intensity"].data == 64)
    assert reporter.states[-1].num_frames_complete == 64
    assert reporter.states[-1].num_part_complete == 4
    # messages from the running tasks were seen on the way: partitions in progress,
    # frames counted before their partition's result arrived
    assert any(s.num_part_in_progress > 0 for s in reporter.states)
    assert any(s.num_frames_complete > 16 * s.num_part_complete for s in reporter.states)


def test_run_each_and_functions(executor):
    workers = executor.get_available_workers()
    each = executor.run_each_worker(lambda: "hi")
    assert sorted(each) == sorted(workers.names()) and set(each.values()) == {"hi"}
    assert executor.run_each_host(lambda x: x + 1, 1) == {socket.gethostname(): 2}
    assert executor.run_function(lambda a, b=0: a - b, 5, b=2) == 3
    assert list(executor.map(lambda x: x * x, [1, 2, 3])) == [1, 4, 9]
    assert sorted(executor.run_each_partition([1, 2, 3], lambda p: p * 10)) == [10, 20, 30]
    task = GenericTask(lambda a, b: (a, b, threading.current_thread()), None)
    a, b, thread = executor.run_process_local(task, args=(1,), kwargs={"b": 2})
    assert (a, b, thread) == (1, 2, threading.current_thread())
    details = executor.get_resource_details()
    assert details == [
        {"host": socket.gethostname(), "cpu": len(workers), "cuda": 0, "service": 0}
    ]
    assert executor.get_udf_runner() is UDFRunner
    assert executor.snooze_manager is None
    assert executor.ensure_sync() is executor
    buf = SumUDF().buffer(kind="sig")
    assert executor.modify_buffer_type(buf) is buf


def test_subscribe_unsubscribe(executor):
    key = executor.subscribe("snooze", lambda topic, msg: None)
    assert isinstance(key, str)
    assert executor.unsubscribe(key)
    assert not executor.unsubscribe(key)


def test_inline_debug_pickles_tasks():
    lock = threading.Lock()

    class LockedParams(Params):
        def __init__(self):
            super().__init__(1)
            self.lock = lock

    list(InlineJobExecutor().run_tasks([MulTask(0, 1)], LockedParams(), "d", None))
    with pytest.raises(TypeError, match="pickle"):
        list(InlineJobExecutor(debug=True).run_tasks([MulTask(0, 1)], LockedParams(), "d", None))
    debug = InlineJobExecutor(debug=True)
    assert [r[0] for r, _ in debug.run_tasks([MulTask(0, 4)], Params(2), "d", None)] == [8]
    with pytest.raises(TypeError, match="pickle"):
        debug.run_function(lambda: lock)


class LockUDF(UDF):
    def __init__(self, lock=None):
        super().__init__(lock=lock)

    def get_result_buffers(self):
        return {"s": self.buffer(kind="nav")}

    def process_frame(self, frame):
        self.results.s[:] = frame.sum()


def test_inline_debug_catches_unpicklable_udf():
    data = np.ones((2, 2, 2, 2), dtype=np.float32)
    ctx = Context(executor=InlineJobExecutor(debug=True))
    ds = ctx.load("memory", data=data, sig_dims=2)
    assert np.all(ctx.run_udf(dataset=ds, udf=LockUDF())["s"].data == 4)
    with pytest.raises(TypeError, match="pickle"):
        ctx.run_udf(dataset=ds, udf=LockUDF(lock=threading.Lock()))


def test_main_process_gpu_is_given_to_tasks():
    if backend.get_use_cuda() is not None:  # pragma: no cover
        pytest.skip("this process uses a GPU already")

    class GpuTask(MulTask):
        def __call__(self, params, env):
            return env.gpu_id, backend.get_use_cuda(), env.device_class

    for executor in (
        InlineJobExecutor(main_process_gpu=0),
        ConcurrentJobExecutor.make_local(1, main_process_gpu=0),
    ):
        with executor:
            assert executor.get_available_workers().has_cuda()
            ((result, _),) = executor.run_tasks([GpuTask(0, 1)], Params(1), "g", None)
            assert result == (0, 0, "cuda")
            assert backend.get_use_cuda() is None  # restored after the task
    assert not InlineJobExecutor().get_available_workers().has_cuda()


# --- async ----------------------------------------------------------------------------------


def test_async_adapter(executor):
    async def main():
        adapter = executor.ensure_async()
        assert isinstance(adapter, AsyncAdapter)
        assert adapter.ensure_sync() is executor
        assert adapter.get_udf_runner() is UDFRunner
        assert adapter.snooze_manager is None
        handle = await adapter.scatter(Params(2))
        results = [
            r async for r in adapter.run_tasks([MulTask(i, i) for i in range(3)], handle, "a1")
        ]
        assert sorted(r[0][0] for r in results) == [0, 2, 4]
        assert await adapter.run_function(lambda x: x + 1, 1) == 2
        assert await adapter.map(lambda x: -x, [1, 2]) == [-1, -2]
        assert len(await adapter.run_each_worker(lambda: 1)) == len(
            executor.get_available_workers()
        )
        assert await adapter.run_each_host(lambda: 0) == {socket.gethostname(): 0}
        assert sorted(await adapter.run_each_partition([1, 2], lambda p: p)) == [1, 2]
        assert len(await adapter.get_available_workers()) >= 1
        assert (await adapter.get_resource_details())[0]["host"] == socket.gethostname()
        # cancel runs right away, also while a run is going on
        gen = adapter.run_tasks([MulTask(i, 1, delay=0.05) for i in range(10)], handle, "a2")
        await gen.__anext__()
        await adapter.cancel("a2")
        with pytest.raises(JobCancelledError):
            async for _ in gen:
                pass

    asyncio.run(main())


def test_async_adapter_with_pool_and_sync_to_async():
    pool = concurrent.futures.ThreadPoolExecutor(1)

    async def main():
        adapter = AsyncAdapter(InlineJobExecutor(), pool=pool)
        thread = await sync_to_async(threading.current_thread, pool)
        assert await adapter.run_function(threading.current_thread) is thread
        await adapter.close()
        assert await sync_to_async(lambda a, b: a * b, None, 6, b=7) == 42

    asyncio.run(main())
    pool.shutdown()
    assert isinstance(AsyncAdapter.make_pool(), concurrent.futures.ThreadPoolExecutor)


def test_async_concurrent_executor():
    async def main():
        adapter = await AsyncConcurrentJobExecutor.make_local()
        assert isinstance(adapter.ensure_sync(), ConcurrentJobExecutor)
        assert await adapter.run_function(lambda: 5) == 5
        await adapter.close()
        other = AsyncConcurrentJobExecutor(n_threads=1)
        assert len(await other.get_available_workers()) == 1
        await other.close()

    asyncio.run(main())


# --- the Dask-integration choices, without a distributed client -------------------------------


def test_integration_executor_follows_dask_scheduler():
    with dask.config.set(scheduler="synchronous"):
        ex = get_dask_integration_executor()
        assert isinstance(ex, InlineJobExecutor)
    pool = concurrent.futures.ThreadPoolExecutor(3)
    with dask.config.set(scheduler="threads", pool=pool):
        ex = get_dask_integration_executor()
        assert isinstance(ex, ConcurrentJobExecutor) and ex.client is pool
        ex.close()  # not ours: the pool keeps running
        assert pool.submit(lambda: 1).result() == 1
    pool.shutdown()
    with dask.config.set(scheduler="threads", num_workers=2):
        with get_dask_integration_executor() as ex:
            assert len(ex.get_available_workers()) == 2
    with dask.config.set(scheduler="processes"):
        ex = get_dask_integration_executor()
        assert isinstance(ex, DaskSchedulerExecutor)


def test_dask_scheduler_executor_runs_tasks_with_messages():
    calls = []

    def get(dsk, keys, **kwargs):
        calls.append(keys)
        return dask.get(dsk, keys, **kwargs)

    executor = DaskSchedulerExecutor()
    comms = NoopCommHandler()
    seen = []
    comms.subscribe("tile_complete", lambda t, m: seen.append(m["ident"]))
    with dask.config.set(scheduler=get):
        results = list(
            executor.run_tasks(
                [MulTask(i, i) for i in range(3)], executor.scatter(Params(2)), "x", comms
            )
        )
        assert executor.run_function(lambda: 3) == 3
    assert calls
    assert sorted(r[0] for r, _ in results) == [0, 2, 4]
    assert seen == []  # a scheduler of unknown kind: tasks may run elsewhere, no messages
    with dask.config.set(scheduler="threads"):
        results = list(
            executor.run_tasks(
                [MulTask(i, i) for i in range(3)], executor.scatter(Params(3)), "y", comms
            )
        )
    assert sorted(r[0] for r, _ in results) == [0, 3, 6]
    assert sorted(seen) == [0, 1, 2]
    assert isinstance(executor, JobExecutor)
