"""The pieces of the pipelined executor: the worker loop and its requests (run here, in
this thread), and a pool of one worker process driven through its queues directly."""

from __future__ import annotations

import functools
import os
import sys

import cloudpickle
import pytest

from libertem.common.executor import SimpleWorkerQueue, WorkerQueueEmpty
from libertem.common.pickling import dumps
from libertem.common.scheduler import Scheduler, Worker, WorkerSet
from libertem.executor.base import TaskEnvironment
from libertem.executor.pipelined import (
    PipelinedWorkerContext,
    PoolStateError,
    WorkerPool,
    WorkerQueues,
    WorkerSpec,
    pipelined_worker,
    schedule_task,
    worker_loop,
)

cloudpickle.register_pickle_by_value(sys.modules[__name__])


class AddTask:
    """Adds its value to the parameters; signals once; fails for value None."""

    def __init__(self, value, resources=None):
        self.value = value
        self.resources = resources or {"CPU": 1, "compute": 1}

    def __call__(self, params, env):
        env.worker_context.signal("ident", "hello", {"value": self.value})
        return params + self.value, env.threads_per_worker

    def get_partition(self):
        return None

    def get_resources(self):
        return self.resources

    def get_tracing_span_context(self):
        return None


def _responses(queue) -> list[tuple[dict, object]]:
    out = []
    while True:
        try:
            with queue.get(block=False) as (header, payload):
                out.append((header, None if payload is None else cloudpickle.loads(payload)))
        except WorkerQueueEmpty:
            return out


def test_worker_loop_serves_requests_in_order():
    request, response = SimpleWorkerQueue(), SimpleWorkerQueue()
    queues = WorkerQueues(request, response, response)
    context = PipelinedWorkerContext(request, response)
    assert context.get_worker_queue() is request
    env = TaskEnvironment(1, False, worker_context=context, worker="w")
    request.put({"type": "SCATTER", "key": "k"}, payload=memoryview(dumps(10)))
    request.put({"type": "BEGIN_RUN", "run": "r1", "key": "k"})
    request.put({"type": "RUN_TASK", "task_id": 0}, payload=memoryview(dumps(AddTask(5))))
    request.put({"type": "FRAMES"})  # data left over from an aborted task: skipped
    request.put({"type": "RUN_TASK", "task_id": 1}, payload=memoryview(dumps(AddTask(None))))
    request.put({"type": "RUN_FUNCTION", "id": 7}, payload=memoryview(dumps((pow, (2, 5), {}))))
    request.put({"type": "RUN_TASK", "task_id": 2}, payload=memoryview(b"not a pickle"))
    request.put({"type": "FORGET", "key": "k"})
    request.put({"type": "RUN_TASK", "task_id": 3}, payload=memoryview(dumps(AddTask(1))))
    request.put({"type": "SHUTDOWN"})
    worker_loop(queues, {}, 4, env)
    got = _responses(response)
    signals = [h for h, _ in got if h["type"] == "SIGNAL"]
    assert all(s["run"] == "r1" and s["topic"] == "hello" for s in signals)
    assert [s["message"]["value"] for s in signals] == [5, None]
    results = [(h, p) for h, p in got if h["type"] != "SIGNAL"]
    first, failed, function, unpicklable, forgotten = results
    assert first[0] == {"type": "RESULT", "run": "r1", "task_id": 0, "worker_idx": 4}
    assert first[1] == (15, 1)
    assert failed[0]["type"] == "ERROR" and isinstance(failed[1][0], TypeError)
    assert "Traceback" in failed[1][1]
    assert function == ({"type": "RESULT", "function_id": 7, "worker_idx": 4}, 32)
    assert unpicklable[0]["type"] == "ERROR"
    assert forgotten[0]["type"] == "ERROR" and "no parameters" in str(forgotten[1][0])


def test_pool_of_one_worker():
    spec = [WorkerSpec("cpu-0", 0, "CPU", 0)]
    worker_fn = functools.partial(pipelined_worker, pin=False, span_context=None)
    pool = WorkerPool(worker_fn, spec)
    try:
        assert pool.size == 1 and pool.all_alive()
        (info,) = pool.workers
        queues = pool.get_worker_queues(0)
        assert queues is info.queues and queues.response is pool.response_queue
        with pool.response_queue.get(timeout=60) as (header, _):
            assert header == {"type": "READY", "worker_idx": 0, "pid": info.process.pid}
        assert info.process.pid != os.getpid()
        queues.request.put({"type": "SCATTER", "key": "p"}, payload=memoryview(dumps(100)))
        queues.request.put({"type": "BEGIN_RUN", "run": "r", "key": "p"})
        worker = Worker("cpu-0", "here", spec[0].resources, 1)
        chosen = []

        def selector(candidates, pool_, task, task_idx):
            chosen.append((candidates, task_idx))
            return candidates[0]

        scheduler = Scheduler(WorkerSet([worker]))
        idx, q = schedule_task(3, AddTask(7), pool, scheduler, {worker: info}, selector)
        assert (idx, q) == (0, queues) and chosen == [([info], 3)]
        with pytest.raises(ValueError, match="CUDA"):
            schedule_task(4, AddTask(1, {"CUDA": 1}), pool, scheduler, {worker: info}, selector)
        got = []
        while len(got) < 2:
            with pool.response_queue.get(timeout=60) as (header, payload):
                got.append((header, cloudpickle.loads(payload) if payload is not None else None))
        signal, result = got
        assert signal[0]["type"] == "SIGNAL" and signal[0]["run"] == "r"
        assert result == ({"type": "RESULT", "run": "r", "task_id": 3, "worker_idx": 0}, (107, 1))
        pool.kill_worker(info, timeout=5.0)
        assert not pool.all_alive()
        with pytest.raises(PoolStateError, match="cpu-0"):
            pool.assert_all_alive()
    finally:
        pool.kill(timeout=5)
        pool.close_resp_queue()
        pool.close_mesg_queue()
    assert not info.process.is_alive()
