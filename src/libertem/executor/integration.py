"""Run on whatever Dask scheduler is current: a distributed client or dask's local schedulers."""

from __future__ import annotations

import dask
import dask.local
import dask.threaded

from libertem.executor.base import JobExecutor, TaskEnvironment


def _current_client():
    try:
        import distributed

        return distributed.default_client()
    except (ImportError, ValueError):
        return None


class DaskSchedulerExecutor(JobExecutor):
    """Runs tasks as ``dask.delayed`` calls computed by the current Dask scheduler.

    Used by ``Context.make_with('dask-integration')`` when no distributed client is
    current; results arrive together when the scheduler finishes.
    """

    def run_tasks(self, tasks, params_handle, cancel_id, progress=None):
        scheduler = dask.base.get_scheduler()
        in_process = scheduler in (None, dask.threaded.get, dask.local.get_sync)
        env = TaskEnvironment(progress=progress if in_process else None, worker="dask")
        delayed = [dask.delayed(task, pure=False)(params_handle, env) for task in tasks]
        results = dask.compute(*delayed)
        yield from zip(results, tasks)

    def run_function(self, fn, *args, **kwargs):
        return dask.delayed(fn, pure=False)(*args, **kwargs).compute()


def get_dask_integration_executor() -> JobExecutor:
    """An executor on the current Dask scheduler.

    A current ``distributed.Client`` is used directly (and not closed with the
    executor); otherwise tasks go through ``dask.compute`` with the configured
    local scheduler.
    """
    client = _current_client()
    if client is not None:
        from libertem.executor.dask import DaskJobExecutor

        return DaskJobExecutor(client=client, is_local=False)
    return DaskSchedulerExecutor()
