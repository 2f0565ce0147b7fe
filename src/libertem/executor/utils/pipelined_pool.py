"""The worker processes of the pipelined executor and the queues that connect them."""

from __future__ import annotations

import contextlib
import multiprocessing
import time
from collections.abc import Callable
from dataclasses import dataclass

from libertem.common.executor import ExecutorError, TaskProtocol, WorkerQueue
from libertem.common.pickling import dumps
from libertem.common.scheduler import Scheduler, Worker
from libertem.executor.utils.pipelined_worker import WorkerQueues, WorkerSpec
from libertem.executor.utils.queues import SimpleMPWorkerQueue
from libertem.executor.utils.shmqueue import ShmQueue


class PoolStateError(ExecutorError):
    """A worker process of the pool is not in the state it should be in (e.g. it died)."""


@dataclass
class PoolWorkerInfo:
    """A worker process of a :class:`WorkerPool`.

    Attributes
    ----------
    queues
        Its channels.
    process
        The process.
    spec
        What it is.
    """

    queues: WorkerQueues
    process: multiprocessing.process.BaseProcess
    spec: WorkerSpec


class WorkerPool:
    """Starts one process per worker spec, each running ``worker_fn(queues=..., spec=...)``.

    Every worker has its own request queue (a :class:`ShmQueue`: data sent from this
    process travels in shared memory); the response and message queues and the
    cancellation event are shared by all workers. Messages of tasks travel on the
    response queue (:attr:`message_queue` is the same queue), so that the messages
    a task sends arrive before its result.

    Parameters
    ----------
    worker_fn
        The main function of the worker processes (picklable; see
        :func:`~libertem.executor.utils.pipelined_worker.pipelined_worker`).
    spec
        The workers.
    """

    def __init__(self, worker_fn: Callable, spec: list[WorkerSpec]):
        ctx = multiprocessing.get_context("spawn")
        self._response = SimpleMPWorkerQueue()
        # a task's messages travel with the results, so they arrive before its result
        self._message = self._response
        self._response_closed = False
        self._cancelled = ctx.Event()
        self._workers: list[PoolWorkerInfo] = []
        try:
            for worker_spec in spec:
                queues = WorkerQueues(ShmQueue(), self._response, self._message, self._cancelled)
                process = ctx.Process(
                    target=worker_fn,
                    kwargs={"queues": queues, "spec": worker_spec},
                    name=f"libertem-{worker_spec.name}",
                    daemon=True,
                )
                self._workers.append(PoolWorkerInfo(queues, process, worker_spec))
                process.start()
        except BaseException:
            self.kill(timeout=1.0)
            raise

    # information -------------------------------------------------------------------------
    @property
    def workers(self) -> list[PoolWorkerInfo]:
        """The workers, in the order of their specs."""
        return list(self._workers)

    @property
    def size(self) -> int:
        """Number of workers."""
        return len(self._workers)

    @property
    def response_queue(self) -> WorkerQueue:
        """Where all workers send their results."""
        return self._response

    @property
    def message_queue(self) -> WorkerQueue:
        """Where all workers send the messages of running tasks."""
        return self._message

    @property
    def cancelled(self):
        """The event shared with the workers: set while a run is being cancelled."""
        return self._cancelled

    def get_worker_queues(self, worker_idx: int) -> WorkerQueues:
        """The channels of worker ``worker_idx``."""
        return self._workers[worker_idx].queues

    def all_alive(self) -> bool:
        """Whether every worker process is running."""
        return all(w.process.is_alive() for w in self._workers)

    def assert_all_alive(self) -> None:
        """Raise :class:`PoolStateError` naming the worker processes that are not running."""
        dead = [w.spec.name for w in self._workers if not w.process.is_alive()]
        if dead:
            codes = {w.spec.name: w.process.exitcode for w in self._workers if w.spec.name in dead}
            raise PoolStateError(f"pipelined worker process(es) {dead} died (exit codes {codes})")

    # stopping ----------------------------------------------------------------------------
    def kill_worker(self, worker_info: PoolWorkerInfo, timeout: float = 5.0) -> None:
        """Terminate one worker process (killing it if it does not end within ``timeout``)
        and close its request queue."""
        process = worker_info.process
        if process.pid is not None and process.is_alive():
            process.terminate()
            process.join(timeout)
            if process.is_alive():
                process.kill()
                process.join(timeout)
        worker_info.queues.request.close(drain=True, force=True)

    def kill(self, timeout: float = 5) -> None:
        """Stop all workers: ask them to shut down, terminate those still running after
        ``timeout`` seconds; close their request queues."""
        for w in self._workers:
            if w.process.pid is not None and w.process.is_alive():
                with contextlib.suppress(OSError, ValueError):
                    w.queues.request.put({"type": "SHUTDOWN"})
        deadline = time.monotonic() + timeout
        for w in self._workers:
            if w.process.pid is not None:
                w.process.join(max(0.0, deadline - time.monotonic()))
        for w in self._workers:
            self.kill_worker(w, timeout=1.0)

    def close_resp_queue(self) -> None:
        """Close the response queue (after the workers are gone)."""
        if not self._response_closed:
            self._response_closed = True
            self._response.close(drain=True, force=True)

    def close_mesg_queue(self) -> None:
        """Close the message queue (after the workers are gone)."""
        if self._message is not self._response:
            self._message.close(drain=True, force=True)


def schedule_task(
    task_idx: int,
    task: TaskProtocol,
    pool: WorkerPool,
    scheduler: Scheduler,
    pool_info_for_worker: dict[Worker, PoolWorkerInfo],
    selector: Callable[[list[PoolWorkerInfo], WorkerPool, TaskProtocol, int], PoolWorkerInfo],
) -> tuple[int, WorkerQueues]:
    """Send task ``task_idx`` to one of the workers that can run it.

    Parameters
    ----------
    task_idx, task
        The task and its number in the run (results come back under this number).
    pool
        The worker processes.
    scheduler
        Which workers may take the task (:meth:`Scheduler.workers_for_task`).
    pool_info_for_worker
        The pool's worker for each worker of the scheduler.
    selector
        Picks one of the candidates: ``selector(candidates, pool, task, task_idx)``.

    Returns
    -------
    worker_idx, queues
        The position of the chosen worker in the pool, and its queues (a
        ``TaskCommHandler`` sends the task's data on ``queues.request``).

    Raises
    ------
    ValueError
        If no worker of the scheduler offers the resources the task needs.
    """
    candidates = [pool_info_for_worker[w] for w in scheduler.workers_for_task(task)]
    info = selector(candidates, pool, task, task_idx)
    payload = memoryview(dumps(task))
    info.queues.request.put({"type": "RUN_TASK", "task_id": task_idx}, payload=payload)
    return pool.workers.index(info), info.queues


__all__ = ["PoolStateError", "PoolWorkerInfo", "WorkerPool", "schedule_task"]
