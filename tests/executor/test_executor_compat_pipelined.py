"""PipelinedExecutor: pinned worker processes, UDF runs with and without ROI, progress,
parameter updates, cancellation, errors in tasks and in workers, Context.make_with."""

from __future__ import annotations

import gc
import os
import socket
import sys
import time

import cloudpickle
import numpy as np
import pytest

from libertem.api import Context
from libertem.common.exceptions import ExecutorSpecException
from libertem.common.executor import (
    ExecutorError,
    JobCancelledError,
    NoopCommHandler,
    ResourceError,
)
from libertem.common.progress import ProgressReporter
from libertem.executor.pipelined import PipelinedExecutor, WorkerSpec
from libertem.udf.sum import SumUDF
from libertem.udf.sumsigudf import SumSigUDF
from utils import make_roi

cloudpickle.register_pickle_by_value(sys.modules[__name__])


class Params:
    def __init__(self, factor):
        self.factor = factor

    def patch(self, patch):
        self.factor = patch["factor"]


class MulTask:
    def __init__(self, task_id, value, delay=0.0, resources=None, fail=False, done_dir=None):
        self.task_id = task_id
        self.value = value
        self.delay = delay
        self.resources = resources or {"CPU": 1, "compute": 1}
        self.fail = fail
        self.done_dir = done_dir  # a file per finished task goes here

    def __call__(self, params, env):
        env.worker_context.signal(self.task_id, "tile_complete", {"frames": 1.0})
        if self.fail:
            raise KeyError(f"task {self.task_id} failed")
        deadline = time.monotonic() + self.delay
        while time.monotonic() < deadline:
            env.check_cancelled()
            time.sleep(0.01)
        if self.done_dir is not None:
            open(os.path.join(self.done_dir, f"done-{self.task_id}"), "w").close()
        return params.factor * self.value, env.threads_per_worker, os.getpid()

    def get_partition(self):
        return None

    def get_resources(self):
        return self.resources

    def get_tracing_span_context(self):
        return None


@pytest.fixture(scope="module")
def pipelined():
    executor = PipelinedExecutor(spec=PipelinedExecutor.make_spec(cpus=2, cudas=[]))
    yield executor
    executor.close()


def test_make_spec():
    spec = PipelinedExecutor.make_spec(cpus=[0, 3], cudas=[1], has_cupy=True)
    assert [(s.name, s.device_kind, s.device_id) for s in spec] == [
        ("cpu-0", "CPU", 0),
        ("cpu-3", "CPU", 3),
        ("cuda-1-2", "CUDA", 1),
    ]
    assert spec[2].resources == {"CUDA": 1, "compute": 1, "ndarray": 1}
    assert spec[0].resources == {"CPU": 1, "compute": 1, "ndarray": 1}
    with pytest.raises(ValueError, match="at least one worker"):
        PipelinedExecutor(spec=[])


def test_workers_are_pinned_processes(pipelined):
    workers = pipelined.get_available_workers()
    assert workers.names() == ["cpu-0", "cpu-1"]
    assert all(w.resources == {"CPU": 1, "compute": 1, "ndarray": 1} for w in workers)
    pids = pipelined.run_each_worker(os.getpid)
    assert len(set(pids.values())) == 2 and os.getpid() not in pids.values()
    allowed = os.sched_getaffinity(0)
    affinity = pipelined.run_each_worker(os.sched_getaffinity, 0)
    for name, cpus in affinity.items():
        core = int(name.split("-")[1])
        assert cpus == ({core} if core in allowed else allowed)
    threads = pipelined.run_each_worker(lambda: os.environ.get("NUMBA_NUM_THREADS"))
    assert set(threads.values()) == {"1"}


def test_functions(pipelined):
    assert pipelined.run_function(lambda a, b=0: a * b, 6, b=7) == 42
    assert pipelined.map(lambda x: x + 1, range(5)) == [1, 2, 3, 4, 5]
    assert pipelined.map(lambda x: x, []) == []
    assert pipelined.run_each_host(lambda: "ok") == {socket.gethostname(): "ok"}
    with pytest.raises(ZeroDivisionError) as info:
        pipelined.run_function(lambda: 1 / 0)
    assert any("pipelined worker" in note for note in getattr(info.value, "__notes__", []))


@pytest.mark.parametrize("use_roi", [False, True], ids=["noroi", "roi"])
def test_udf_runs(pipelined, use_roi):
    ctx = Context(executor=pipelined)
    data = np.random.default_rng(5).random((8, 8, 10, 10)).astype(np.float32)
    roi = make_roi((8, 8), seed=4) if use_roi else None
    sel = np.ones((8, 8), bool) if roi is None else roi
    ds = ctx.load("memory", data=data, sig_dims=2, num_partitions=5)

    class Reporter(ProgressReporter):
        def __init__(self):
            super().__init__()
            self.last = None

        def update(self, state):
            self.last = state

    reporter = Reporter()
    total, sumsig = ctx.run_udf(
        dataset=ds, udf=[SumUDF(), SumSigUDF()], roi=roi, progress=reporter
    )
    np.testing.assert_allclose(total["intensity"].data, data[sel].sum(axis=0), rtol=1e-5)
    np.testing.assert_allclose(
        sumsig["intensity"].data[sel], data.sum(axis=(2, 3))[sel], rtol=1e-5
    )
    assert reporter.last.num_frames_complete == np.count_nonzero(sel)


def test_run_tasks_messages_and_params(pipelined):
    comms = NoopCommHandler()
    seen = []
    comms.subscribe("tile_complete", lambda topic, msg: seen.append(msg["ident"]))
    handle = pipelined.scatter(Params(3))
    tasks = [MulTask(i, i) for i in range(6)]
    results = {t.task_id: r for r, t in pipelined.run_tasks(tasks, handle, "p1", comms)}
    assert {k: v[0] for k, v in results.items()} == {i: 3 * i for i in range(6)}
    assert {v[1] for v in results.values()} == {1}
    assert len({v[2] for v in results.values()}) <= 2
    assert sorted(seen) == list(range(6))
    pipelined.scatter_update(handle, Params(5))
    assert {r[0] for r, _ in pipelined.run_tasks(tasks[1:2], handle, "p2", None)} == {5}
    pipelined.scatter_update_patch(handle, {"factor": 7})
    assert {r[0] for r, _ in pipelined.run_tasks(tasks[1:2], handle, "p3", None)} == {7}
    # parameters passed as they are get scattered for the run only
    assert [r[0] for r, _ in pipelined.run_tasks(tasks[2:3], Params(2), "p4", None)] == [4]
    with pytest.raises(TypeError, match="scatter"):
        pipelined.scatter_update("params-unknown", Params(1))


def test_scatter_is_a_context_manager(pipelined):
    with pipelined.scatter(Params(4)) as handle:
        assert [r[0] for r, _ in pipelined.run_tasks([MulTask(0, 2)], handle, "s1", None)] == [8]
        pipelined.scatter_update_patch(handle, {"factor": 5})
        assert [r[0] for r, _ in pipelined.run_tasks([MulTask(0, 2)], handle, "s2", None)] == [10]
    with pytest.raises(TypeError, match="scatter"):
        pipelined.scatter_update(handle, Params(1))
    # parameters nobody refers to any more are dropped from the workers as well
    key = pipelined.scatter(Params(1)).key
    gc.collect()
    with pytest.raises(TypeError, match="scatter"):
        pipelined.scatter_update(key, Params(1))
    assert [r[0] for r, _ in pipelined.run_tasks([MulTask(0, 3)], Params(2), "s3", None)] == [6]


def test_cancel_and_errors(pipelined, tmp_path):
    tasks = [MulTask(i, 1, delay=0.1 if i == 0 else 5.0, done_dir=tmp_path) for i in range(6)]
    gen = pipelined.run_tasks(tasks, Params(1), "c1", None)
    next(gen)
    pipelined.cancel("c1")
    with pytest.raises(JobCancelledError):
        list(gen)
    # the run ends before any of the long tasks finished: they were stopped
    assert sorted(os.listdir(tmp_path)) == ["done-0"]
    with pytest.raises(KeyError, match="task 1 failed"):
        list(pipelined.run_tasks([MulTask(0, 1), MulTask(1, 1, fail=True)], Params(1), "e", None))
    with pytest.raises(ResourceError, match="CUDA"):
        list(pipelined.run_tasks([MulTask(0, 1, resources={"CUDA": 1})], Params(1), "r", None))
    assert [r[0] for r, _ in pipelined.run_tasks([MulTask(0, 2)], Params(1), "ok", None)] == [2]


def _exit_now():
    os._exit(3)


def test_worker_death_and_failed_start():
    spec = [WorkerSpec("cpu-0", 0, "CPU", 0)]
    with PipelinedExecutor(spec=spec, pin_workers=False) as executor:
        with pytest.raises(ExecutorError, match="died"):
            executor.run_function(_exit_now)
    with pytest.raises(ExecutorError, match="did not start"):
        PipelinedExecutor(spec=spec, early_setup=_exit_now, startup_timeout=20)
    executor.close()  # closing twice is fine
    with pytest.raises(ExecutorError, match="closed"):
        executor.run_function(lambda: 1)


def test_make_with_pipelined():
    with Context.make_with("pipelined", cpus=1) as ctx:
        assert len(ctx.executor.get_available_workers()) == 1
        data = np.ones((4, 4, 3, 3), dtype=np.float32)
        ds = ctx.load("memory", data=data, sig_dims=2, num_partitions=2)
        assert np.all(ctx.run_udf(dataset=ds, udf=SumUDF())["intensity"].data == 16)
    with pytest.raises(ExecutorSpecException, match="no CPU and no GPU"):
        Context.make_with("pipelined", cpus=0)
