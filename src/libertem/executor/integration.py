"""Run on whatever Dask scheduler is current: a distributed client or dask's local schedulers."""

from __future__ import annotations

import socket

import dask
import dask.local
import dask.threaded

from libertem.common.executor import resolve_params
from libertem.common.scheduler import Worker, WorkerSet
from libertem.executor.base import (
    BaseJobExecutor,
    MessagePump,
    TaskEnvironment,
    as_comm_handler,
    main_gpu_id,
    make_canonical,
)
from libertem.executor.concurrent import ConcurrentJobExecutor, ConcurrentWorkerContext
from libertem.executor.dask import DaskJobExecutor
from libertem.executor.inline import InlineJobExecutor
from libertem.executor.utils.queues import SimpleWorkerQueue


def _current_client():
    try:
        import distributed

        return distributed.default_client()
    except (ImportError, ValueError):
        return None


def _run_task(task, params_handle, env):
    with env.enter():
        return task(resolve_params(params_handle), env)


class DaskSchedulerExecutor(BaseJobExecutor):
    """Runs tasks as ``dask.delayed`` calls computed by the current Dask scheduler.

    What ``get_dask_integration_executor`` uses for schedulers other than a
    distributed client, the thread pool and the synchronous one (e.g. the process
    pool, or a scheduler function of your own); results arrive together when the
    scheduler finishes.
    """

    def run_tasks(self, tasks, params_handle, cancel_id, task_comm_handler=None):
        """Compute all ``tasks`` in one ``dask.compute``; yield ``(result, task)`` pairs."""
        tasks = list(tasks)
        handler = as_comm_handler(task_comm_handler)
        scheduler = dask.base.get_scheduler()
        in_process = scheduler in (None, dask.threaded.get, dask.local.get_sync)
        msg_queue = SimpleWorkerQueue()
        cancelled = self._start_run(cancel_id)
        env = TaskEnvironment(
            threads_per_worker=1,
            threaded_executor=in_process,
            worker_context=ConcurrentWorkerContext(msg_queue) if in_process else None,
            cancelled=cancelled.is_set if in_process else None,
            worker="dask",
        )
        try:
            with MessagePump(handler, msg_queue):
                delayed = [
                    dask.delayed(_run_task, pure=False)(task, params_handle, env) for task in tasks
                ]
                results = dask.compute(*delayed)
            yield from zip(results, tasks)
        finally:
            self._end_run(cancel_id)

    def run_function(self, fn, *args, **kwargs):
        """``fn(*args, **kwargs)`` computed by the current scheduler."""
        return dask.delayed(fn, pure=False)(*args, **kwargs).compute()

    def get_available_workers(self) -> WorkerSet:
        """One worker standing for the scheduler."""
        return WorkerSet([Worker("dask", socket.gethostname(), self._local_resources(), 1)])


def get_dask_integration_executor(main_process_gpu: int | bool | None = None):
    """An executor that runs on the current Dask scheduler.

    - a current ``distributed.Client``: a :class:`DaskJobExecutor` on it (not
      closed with the executor);
    - Dask's thread scheduler (the default): a :class:`ConcurrentJobExecutor` (Dask's configured
      ``pool`` if it has one, else ``num_workers`` or one thread per core);
    - the synchronous scheduler: an :class:`InlineJobExecutor`;
    - anything else: tasks go through ``dask.compute`` with that scheduler.
    """
    gpu = main_gpu_id(main_process_gpu)
    client = _current_client()
    if client is not None:
        return DaskJobExecutor(client=client, is_local=False, main_process_gpu=gpu)
    scheduler = dask.base.get_scheduler()
    if scheduler is None or scheduler is dask.threaded.get:
        pool = dask.config.get("pool", None)
        if pool is not None and hasattr(pool, "submit"):
            return ConcurrentJobExecutor(client=pool, is_local=False, main_process_gpu=gpu)
        return ConcurrentJobExecutor.make_local(
            n_threads=dask.config.get("num_workers", None), main_process_gpu=gpu
        )
    if scheduler is dask.local.get_sync:
        return InlineJobExecutor(main_process_gpu=gpu)
    return DaskSchedulerExecutor(main_process_gpu=gpu)


__all__ = [
    "ConcurrentJobExecutor",
    "DaskJobExecutor",
    "DaskSchedulerExecutor",
    "InlineJobExecutor",
    "get_dask_integration_executor",
    "make_canonical",
]
