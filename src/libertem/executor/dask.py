"""Run tasks on a Dask.distributed cluster: local worker processes or a remote scheduler.

The executor's cluster lifecycle is in :mod:`~libertem.executor.utils.dask_lifecycle`,
its task dispatch in :mod:`~libertem.executor.utils.dask_tasks`.
"""

from __future__ import annotations

import uuid
from typing import Any

from distributed import Client, SpecCluster

from libertem.common.backend import get_use_cuda
from libertem.common.executor import (
    Environment,
    JobCancelledError,
    ResourceError,
    SubscriptionManager,
    TaskCommHandler,
    TaskProtocol,
    WorkerContext,
    WorkerLostError,
)
from libertem.common.scheduler import Worker, WorkerSet
from libertem.executor.base import (
    AsyncAdapter,
    BaseJobExecutor,
    TaskEnvironment,
    adjust_event_loop_policy,
    make_canonical,
    sync_to_async,
)
from libertem.executor.cli import cli_worker
from libertem.executor.utils.dask_common import CommonDaskMixin
from libertem.executor.utils.dask_dispatch import DaskParams, DirectRun
from libertem.executor.utils.dask_lifecycle import DaskLifecycleMixin
from libertem.executor.utils.dask_setup import (
    assign_cudas,
    cluster_spec,
    set_num_threads_env,
    set_use_cpu,
    set_use_cuda,
    set_worker_log_level,
    setup_worker_from_environment,
    worker_environment,
    worker_setup,
)
from libertem.executor.utils.dask_tasks import DaskTasksMixin
from libertem.executor.utils.dask_workers import DaskWorkerContext
from libertem.executor.utils.snooze import SnoozeManager, keep_alive, keep_alive_context


class DaskJobExecutor(DaskLifecycleMixin, DaskTasksMixin, CommonDaskMixin, BaseJobExecutor):
    """Runs tasks on the worker processes of a Dask.distributed cluster.

    Parameters
    ----------
    client
        The Dask client.
    is_local
        Whether :meth:`close` closes the client (available as :attr:`is_local`).
    lt_resources
        Whether to place tasks by LiberTEM's resource tags (``None``: if the
        workers carry them).
    main_process_gpu
        CUDA device for work that runs in this process.
    """

    def __init__(
        self,
        client: Client,
        is_local: bool = False,
        lt_resources: bool = None,
        main_process_gpu: int | None = None,
    ):
        super().__init__(main_process_gpu=main_process_gpu)
        self.client = client
        self.is_local = is_local
        self._owns_client = is_local
        self._lt_resources = lt_resources
        self._cluster: SpecCluster | None = None
        self._params_cache: dict[str, DaskParams] = {}
        # worker address -> {params uid: version} the worker holds
        self._known_params: dict[str, dict[str, int]] = {}
        self._direct_runs: dict[Any, DirectRun] = {}
        self._plugin_registered = False
        self._topic = f"libertem-comms-{uuid.uuid4().hex}"
        self._comm_handlers: dict[Any, TaskCommHandler] = {}
        self._subscribed = False
        self._snooze: SnoozeManager | None = None
        self._snoozed_spec: dict = {}


class AsyncDaskJobExecutor(AsyncAdapter):
    """An :class:`AsyncAdapter` around a :class:`DaskJobExecutor`.

    Parameters
    ----------
    wrapped
        The executor; ``None`` makes one with ``DaskJobExecutor(*args, **kwargs)``.
    *args, **kwargs
        For the constructor when ``wrapped`` is ``None``; ``pool=`` goes to the adapter.
    """

    def __init__(self, wrapped=None, *args, **kwargs):
        pool = kwargs.pop("pool", None)
        if wrapped is None:
            wrapped = DaskJobExecutor(*args, **kwargs)
        super().__init__(wrapped, pool=pool)

    @classmethod
    async def connect(cls, scheduler_uri, *args, **kwargs) -> AsyncDaskJobExecutor:
        """Connect to a running scheduler without blocking the event loop."""
        executor = await sync_to_async(
            DaskJobExecutor.connect, None, scheduler_uri, *args, **kwargs
        )
        return cls(wrapped=executor)

    @classmethod
    async def make_local(
        cls,
        spec=None,
        cluster_kwargs=None,
        client_kwargs=None,
        main_process_gpu: int | bool | None = None,
    ) -> AsyncDaskJobExecutor:
        """Start a local cluster without blocking the event loop."""
        executor = await sync_to_async(
            DaskJobExecutor.make_local,
            None,
            spec=spec,
            cluster_kwargs=cluster_kwargs,
            client_kwargs=client_kwargs,
            main_process_gpu=main_process_gpu,
        )
        return cls(wrapped=executor)


__all__ = [
    "AsyncAdapter",
    "AsyncDaskJobExecutor",
    "BaseJobExecutor",
    "CommonDaskMixin",
    "DaskJobExecutor",
    "DaskWorkerContext",
    "Environment",
    "JobCancelledError",
    "ResourceError",
    "SnoozeManager",
    "SubscriptionManager",
    "TaskCommHandler",
    "TaskEnvironment",
    "TaskProtocol",
    "Worker",
    "WorkerContext",
    "WorkerLostError",
    "WorkerSet",
    "adjust_event_loop_policy",
    "assign_cudas",
    "cli_worker",
    "cluster_spec",
    "get_use_cuda",
    "keep_alive",
    "keep_alive_context",
    "make_canonical",
    "set_num_threads_env",
    "set_use_cpu",
    "set_use_cuda",
    "set_worker_log_level",
    "setup_worker_from_environment",
    "sync_to_async",
    "worker_environment",
    "worker_setup",
]
