"""LiberTEM's executor interfaces without any executor: workers and worker sets, message
queues, communication handlers, task environments, device and Dask set-up helpers,
the snooze manager (with fake up/down)."""

from __future__ import annotations

import logging
import os
import threading
import time
import warnings

import numba
import numpy as np
import pytest
from threadpoolctl import threadpool_info

from libertem.common import backend
from libertem.common.exceptions import ExecutorSpecException, UDFRunCancelled
from libertem.common.executor import (
    STOP_TOPIC,
    Environment,
    ExecutorError,
    GenericTask,
    GenericTaskProtocol,
    JobCancelledError,
    NoopCommHandler,
    ResourceError,
    SimpleMPWorkerQueue,
    SimpleWorkerQueue,
    SubscriptionManager,
    TaskCommHandler,
    TaskProtocol,
    WorkerContext,
    WorkerQueueEmpty,
    mitigations,
    set_num_threads,
    use_gpu,
)
from libertem.common.scheduler import Scheduler, Worker, WorkerSet
from libertem.executor.base import (
    TaskEnvironment,
    as_comm_handler,
    main_gpu_id,
    make_canonical,
)
from libertem.executor.dask import (
    assign_cudas,
    cluster_spec,
    set_num_threads_env,
    set_worker_log_level,
    worker_setup,
)
from libertem.executor.utils.snooze import SnoozeManager, keep_alive, keep_alive_context
from libertem.utils.devices import DetectResult, detect, has_cupy


def _workers() -> WorkerSet:
    return WorkerSet(
        [
            Worker("a-cpu-0", "host-a", {"CPU": 1, "compute": 1, "ndarray": 1}, 1),
            Worker("a-cuda-0", "host-a", {"CUDA": 1, "compute": 1}, 1),
            Worker("b-cpu-0", "host-b", {"CPU": 1, "compute": 1, "ndarray": 1}, 4),
            Worker("a-service", "host-a", {}, 1),
        ]
    )


# --- Worker, WorkerSet, Scheduler ----------------------------------------------------------


def test_worker_set_queries():
    ws = _workers()
    assert len(ws) == 4 and ws
    assert ws.names() == ["a-cpu-0", "a-cuda-0", "b-cpu-0", "a-service"]
    assert ws.hosts() == {"host-a", "host-b"}
    assert ws.has_cpu().names() == ["a-cpu-0", "b-cpu-0"]
    assert ws.has_cuda().names() == ["a-cuda-0"]
    assert ws.get_by_host("host-b").names() == ["b-cpu-0"]
    groups = ws.group_by_host()
    assert [g.names() for g in groups] == [["a-cpu-0", "a-cuda-0", "a-service"], ["b-cpu-0"]]
    assert ws.filter(lambda w: w.nthreads > 1).names() == ["b-cpu-0"]
    assert ws.example() is ws[0]
    assert ws.concurrency() == 1 + 1 + 4 + 1
    assert ws.has_threaded_workers()
    assert not ws.has_cpu().filter(lambda w: w.host == "host-a").has_threaded_workers()
    assert ws.compute_workers().names() == ["a-cpu-0", "a-cuda-0", "b-cpu-0"]
    both = ws.has_cpu().extend(ws.has_cuda())
    assert both.names() == ["a-cpu-0", "b-cpu-0", "a-cuda-0"]
    assert len(ws) == 4  # queries leave the set as it is
    assert not WorkerSet([]).has_cuda()
    with pytest.raises(IndexError, match="empty"):
        WorkerSet([]).example()


def test_untagged_workers_all_compute():
    ws = WorkerSet([Worker("x", "h", {}, 2), Worker("y", "h", {}, 2)])
    assert ws.compute_workers() == ws
    assert Scheduler(ws).effective_worker_count() == 4
    assert Scheduler(_workers()).effective_worker_count() == 6
    assert Scheduler(WorkerSet([])).effective_worker_count() == 1


class _Task:
    def __init__(self, resources):
        self._resources = resources

    def get_resources(self):
        return self._resources


def test_scheduler_workers_for_task():
    scheduler = Scheduler(_workers())
    cpu = scheduler.workers_for_task(_Task({"CPU": 1, "compute": 1}))
    assert cpu.names() == ["a-cpu-0", "b-cpu-0"]
    assert scheduler.workers_for_task(_Task({"CUDA": 1})).names() == ["a-cuda-0"]
    # no requirements: every compute worker, never the service worker
    assert scheduler.workers_for_task(_Task({})).names() == ["a-cpu-0", "a-cuda-0", "b-cpu-0"]
    untagged = WorkerSet([Worker("x", "h", {}, 1)])
    assert Scheduler(untagged).workers_for_task(_Task({"CUDA": 1})).names() == ["x"]
    with pytest.raises(ValueError, match="CUDA"):
        Scheduler(_workers().has_cpu()).workers_for_task(_Task({"CUDA": 1}))


# --- queues --------------------------------------------------------------------------------


@pytest.mark.parametrize("cls", [SimpleWorkerQueue, SimpleMPWorkerQueue])
def test_worker_queue_round_trip(cls):
    q = cls()
    try:
        with pytest.raises(WorkerQueueEmpty):
            with q.get(block=False):
                pass
        q.put({"n": 1})
        q.put({"n": 2}, payload=memoryview(b"abc"))
        with q.put_nocopy({"n": 3}, size=4) as buf:
            buf[:] = b"wxyz"
        deadline = time.monotonic() + 5
        while q.size() < 3 and time.monotonic() < deadline:
            time.sleep(0.01)  # the process queue's feeder thread delivers
        assert q.size() == 3
        got = []
        for _ in range(3):
            with q.get(timeout=5) as (header, payload):
                got.append((header["n"], None if payload is None else bytes(payload)))
        assert got == [(1, None), (2, b"abc"), (3, b"wxyz")]
        with pytest.raises(WorkerQueueEmpty):
            with q.get(timeout=0.01):
                pass
        q.put({"n": 4})
    finally:
        q.close(drain=True)
    if cls is SimpleWorkerQueue:
        assert q.size() == 0


def test_put_nocopy_not_sent_on_error():
    q = SimpleWorkerQueue()
    with pytest.raises(RuntimeError):
        with q.put_nocopy({"n": 1}, size=2):
            raise RuntimeError("writer failed")
    assert q.size() == 0


# --- communication handlers ----------------------------------------------------------------


class RecordingHandler(TaskCommHandler):
    def __init__(self):
        self.prepared = []
        self.events = []

    def handle_task(self, task, queue):
        self.prepared.append(task)

    def start(self):
        self.events.append("start")

    def done(self):
        self.events.append("done")


def test_comm_handler_subscribe_dispatch_monitor():
    handler = RecordingHandler()
    seen = []
    handler.subscribe("tile_complete", lambda topic, msg: seen.append((topic, msg["frames"])))
    handler.subscribe("tile_complete", lambda topic, msg: seen.append(("again", msg["frames"])))
    assert len(handler.subscriptions["tile_complete"]) == 2
    handler.dispatch("tile_complete", {"frames": 2})
    handler.dispatch("other", {"frames": 0})  # nobody listens
    queue = SimpleWorkerQueue()
    queue.put({"topic": "tile_complete", "message": {"frames": 3}})
    queue.put({"topic": STOP_TOPIC})
    handler.monitor(queue)  # returns at STOP
    assert seen == [("tile_complete", 2), ("again", 2), ("tile_complete", 3), ("again", 3)]
    noop = NoopCommHandler()
    assert noop.handle_task(None, queue) is None
    with pytest.raises(TypeError):
        TaskCommHandler()  # handle_task is abstract


def test_as_comm_handler():
    handler = NoopCommHandler()
    assert as_comm_handler(handler) is handler
    assert as_comm_handler(None).subscriptions == {}
    calls = []
    wrapped = as_comm_handler(lambda task_id, frames: calls.append((task_id, frames)))
    wrapped.dispatch("tile_complete", {"ident": 7, "frames": 1.5})
    wrapped.dispatch("partition_complete", {"ident": 7})
    assert calls == [(7, 1.5)]
    with pytest.raises(TypeError, match="task_comm_handler"):
        as_comm_handler(42)


def test_subscription_manager():
    manager = SubscriptionManager()
    got = []
    key = manager.subscribe("snooze", lambda topic, msg: got.append((topic, msg)))
    other = manager.subscribe("unsnooze", lambda topic, msg: got.append((topic, msg)))
    manager.send("snooze", {"timeout": 1})
    assert got == [("snooze", {"timeout": 1})]
    assert manager.unsubscribe(key)
    assert not manager.unsubscribe(key)
    manager.send("snooze", {})
    manager.send("unsnooze", {})
    assert got == [("snooze", {"timeout": 1}), ("unsnooze", {})]
    assert manager.unsubscribe(other)


# --- tasks and exceptions --------------------------------------------------------------------


def test_generic_task_and_protocols():
    task = GenericTask(lambda a, b=1: a + b, span_context=None)
    assert task(1, b=2) == 3
    assert task.get_tracing_span_context() is None
    assert isinstance(task, GenericTaskProtocol)
    assert not isinstance(task, TaskProtocol)  # no partition, no resources

    class MyTask:
        def __call__(self, params, env):
            return params

        def get_partition(self):
            return None

        def get_resources(self):
            return {"CPU": 1, "compute": 1}

        def get_tracing_span_context(self):
            return None

    assert isinstance(MyTask(), TaskProtocol)


def test_exception_hierarchy():
    # LiberTEM 0.16: unrelated; the UDF runner turns the first into the second
    assert not issubclass(JobCancelledError, UDFRunCancelled)
    assert JobCancelledError.__bases__ == (Exception,)
    assert issubclass(ResourceError, ExecutorError)
    assert not issubclass(ExecutorError, UDFRunCancelled)

    class Context(WorkerContext):
        def signal(self, ident, topic, msg_dict):
            pass

    with pytest.raises(ExecutorError, match="no per-worker data queue"):
        Context().get_worker_queue()


# --- environments ------------------------------------------------------------------------------


def _blas_threads() -> set[int]:
    return {lib["num_threads"] for lib in threadpool_info()}


def test_environment_properties():
    env = Environment(threads_per_worker=3, threaded_executor=False, gpu_id=None)
    assert env.threads_per_worker == 3
    assert not env.threaded_executor
    assert env.worker_context is None
    assert env.gpu_id is None
    assert env.device_class == "cpu"
    assert env.has_cupy == has_cupy()
    assert Environment(None, True, gpu_id=1).device_class == "cuda"


def test_environment_enter_sets_and_restores_limits():
    before_numba = numba.get_num_threads()
    before_blas = _blas_threads()
    env = Environment(threads_per_worker=1, threaded_executor=False)
    with env.enter() as entered:
        assert entered is env
        assert numba.get_num_threads() == 1
        if before_blas:
            assert _blas_threads() == {1}
    assert numba.get_num_threads() == before_numba
    assert _blas_threads() == before_blas
    # threaded executors: only numba's per-thread limit is set by the task
    with Environment(threads_per_worker=1, threaded_executor=True).enter():
        assert numba.get_num_threads() == 1
        assert _blas_threads() == before_blas
    with Environment(threads_per_worker=None, threaded_executor=False).enter():
        assert numba.get_num_threads() == before_numba


def test_set_num_threads_caps_numba():
    with set_num_threads(10_000):
        assert numba.get_num_threads() == numba.config.NUMBA_NUM_THREADS
    with set_num_threads(None):
        pass


def test_use_gpu_sets_and_restores_device():
    before = dict(backend._state)
    with use_gpu(None):
        assert backend.get_use_cuda() == before["cuda"]
    if has_cupy():  # pragma: no cover - needs a GPU
        pytest.skip("exercised on the GPU machine")
    with use_gpu(0):
        assert backend.get_use_cuda() == 0
        assert backend.get_device_class() == "cuda"
    assert backend._state == before
    with Environment(None, False, gpu_id=0).enter():
        assert backend.get_use_cuda() == 0
    with Environment(None, False, gpu_id=0).enter(enable_gpu=False):
        assert backend.get_use_cuda() == before["cuda"]
    assert backend._state == before


def test_mitigations_silence_openmp_warnings_only():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with mitigations():
            warnings.warn(
                "Found Intel OpenMP and LLVM OpenMP loaded", RuntimeWarning, stacklevel=1
            )
            warnings.warn("something else", RuntimeWarning, stacklevel=1)
    assert [str(w.message) for w in caught] == ["something else"]


def test_task_environment_cancellation():
    flag = threading.Event()
    env = TaskEnvironment(1, False, cancelled=flag.is_set, worker="w")
    env.check_cancelled()
    flag.set()
    with pytest.raises(JobCancelledError):
        env.check_cancelled()
    assert env.worker == "w" and env.threads_per_worker == 1


def test_make_canonical():
    # LiberTEM validates main_process_gpu against the detected devices
    found = detect()
    usable = list(found["cudas"]) if found["has_cupy"] else []
    assert make_canonical(False) is None
    assert make_canonical(None) == (usable[0] if usable else None)
    if not usable:
        with pytest.raises(ExecutorSpecException, match="Cannot specify main GPU"):
            make_canonical(True)
        with pytest.raises(ExecutorSpecException, match="Main GPU 2 not detected"):
            make_canonical(2)
    with pytest.raises(ExecutorSpecException):
        make_canonical(-1)
    with pytest.raises(ValueError, match="Invalid type for main_process_gpu"):
        make_canonical("0")
    # what executors accept directly is not checked against the devices
    assert main_gpu_id(None) is None and main_gpu_id(False) is None and main_gpu_id(2) == 2
    with pytest.raises(TypeError, match="main_process_gpu"):
        main_gpu_id("0")


# --- devices and Dask set-up helpers -----------------------------------------------------------


def test_detect_result():
    result = detect()
    assert set(result) == set(DetectResult.__annotations__)
    assert len(list(result["cpus"])) == len(os.sched_getaffinity(0))
    assert isinstance(has_cupy(), bool)


def test_assign_cudas():
    assert assign_cudas([1, 1, 3]) == [1, 1, 3]
    assert assign_cudas(0) == []
    with pytest.raises(ValueError, match="negative"):
        assign_cudas(-1)
    found = list(detect()["cudas"])
    if found:  # pragma: no cover - GPU machine
        assert assign_cudas(len(found) + 1) == found + found[:1]
    else:  # LiberTEM: numbered 0, 1, ... when no device is visible
        assert assign_cudas(2) == [0, 1]


def test_cluster_spec_repeated_cuda_ids_and_preload():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # no visible CUDA devices
        spec = cluster_spec(cpus=[0], cudas=[0, 0], has_cupy=True, preload=("my_module",))
    assert list(spec) == [
        "default-cpu-0",
        "default-service-0",
        "default-cuda-0",
        "default-cuda-0-0",
    ]
    # LiberTEM's workers import libertem.preload first
    assert all(e["options"]["preload"] == ["libertem.preload", "my_module"] for e in spec.values())
    assert spec["default-cuda-0-0"]["options"]["env"]["CUDA_VISIBLE_DEVICES"] == "0"
    assert spec["default-service-0"]["options"]["resources"] == {}


def test_set_num_threads_env_restores():
    before = {v: os.environ.get(v) for v in ("OMP_NUM_THREADS", "NUMBA_NUM_THREADS")}
    with set_num_threads_env(2, set_numba=True):
        assert os.environ["OMP_NUM_THREADS"] == "2"
        assert os.environ["MKL_NUM_THREADS"] == "2"
        assert os.environ["NUMBA_NUM_THREADS"] == "2"
    assert {v: os.environ.get(v) for v in before} == before
    with set_num_threads_env(1, set_numba=False):
        assert os.environ.get("NUMBA_NUM_THREADS") == before["NUMBA_NUM_THREADS"]


def test_worker_setup():
    before = dict(backend._state)
    try:
        worker_setup("CPU", 3)
        assert backend.get_use_cpu() == 3 and backend.get_use_cuda() is None
        worker_setup("CUDA", 1)
        assert backend.get_use_cuda() == 1 and backend.get_use_cpu() is None
        with pytest.raises(ValueError, match="unknown device resource"):
            worker_setup("TPU", 0)
    finally:
        backend._state.update(before)


def test_set_worker_log_level():
    logger = logging.getLogger("distributed")
    before = logger.level
    try:
        set_worker_log_level("ERROR")
        assert logger.level == logging.ERROR
        assert logging.getLogger("libertem").level == logging.ERROR
        set_worker_log_level(logging.INFO)
        assert logger.level == logging.INFO
        with pytest.raises(ValueError, match="unknown log level"):
            set_worker_log_level("LOUD")
    finally:
        logger.setLevel(before)
        logging.getLogger("libertem").setLevel(logging.NOTSET)


# --- snoozing ---------------------------------------------------------------------------------


class FakeCluster:
    def __init__(self):
        self.up_calls = 0
        self.down_calls = 0
        self.snooze_manager = None

    def up(self):
        self.up_calls += 1

    def down(self):
        self.down_calls += 1

    @keep_alive
    def work(self, x, y=1):
        return x + y

    @keep_alive_context
    def stream(self, n):
        yield from range(n)


def _wait(predicate, timeout=5.0):
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def test_snooze_manager_scales_down_and_up():
    cluster = FakeCluster()
    subs = SubscriptionManager()
    events = []
    subs.subscribe("snooze", lambda t, m: events.append(t))
    subs.subscribe("unsnooze", lambda t, m: events.append(t))
    manager = SnoozeManager(up=cluster.up, down=cluster.down, timeout=0.2, subscriptions=subs)
    cluster.snooze_manager = manager
    try:
        assert manager.timeout == 0.2
        assert _wait(lambda: manager.is_snoozing)
        assert cluster.down_calls == 1 and events == ["snooze"]
        assert cluster.work(1, y=2) == 3  # wakes the cluster up first
        assert cluster.up_calls == 1 and not manager.is_snoozing
        assert events == ["snooze", "unsnooze"]
        gen = cluster.stream(3)
        assert next(gen) == 0
        time.sleep(0.5)  # in use: no snooze while the generator is open
        assert not manager.is_snoozing
        assert list(gen) == [1, 2]
        assert _wait(lambda: manager.is_snoozing)
        assert cluster.down_calls == 2
        manager.unsnooze()
        manager.unsnooze()  # already awake: nothing to do
        assert cluster.up_calls == 2
        manager.snooze()
        manager.snooze()
        assert cluster.down_calls == 3
    finally:
        manager.close()


def test_snooze_manager_bad_timeout_and_plain_use():
    with pytest.raises(ValueError, match="positive"):
        SnoozeManager(up=lambda: None, down=lambda: None, timeout=0)
    cluster = FakeCluster()  # no snooze manager: decorated methods just run
    assert cluster.work(2) == 3
    assert list(cluster.stream(2)) == [0, 1]
    assert np.array_equal(np.arange(2), list(cluster.stream(2)))
