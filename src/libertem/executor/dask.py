"""Run tasks on a Dask.distributed cluster: local worker processes or a remote scheduler."""

from __future__ import annotations

import contextlib
import hashlib
import logging
import time
import uuid
from typing import Any

import cloudpickle
import distributed
from distributed import Client, SpecCluster

from libertem.common.backend import get_use_cuda
from libertem.common.executor import (
    Environment,
    ExecutorError,
    JobCancelledError,
    ResourceError,
    SubscriptionManager,
    TaskCommHandler,
    TaskProtocol,
    WorkerContext,
    WorkerLostError,
)
from libertem.common.pickling import dumps
from libertem.common.scheduler import Worker, WorkerSet
from libertem.executor.base import (
    AsyncAdapter,
    BaseJobExecutor,
    TaskEnvironment,
    adjust_event_loop_policy,
    as_comm_handler,
    make_canonical,
    sync_to_async,
)
from libertem.executor.cli import cli_worker
from libertem.executor.utils.dask_cluster import (
    LOOPBACK,
    LocalDaskCluster,
    prepare_worker_spec,
)
from libertem.executor.utils.dask_common import (
    CommonDaskMixin,
    can_place,
    check_tls,
    locations_of,
    loopback_scheduler,
    lost_message,
    resources_of,
)
from libertem.executor.utils.dask_dispatch import WORKER_WAIT_S, DaskParams, DirectRun
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
from libertem.executor.utils.dask_workers import (
    PARAMS_CACHE_SIZE,
    DaskWorkerContext,
    LiberTEMWorkerPlugin,
    pack,
    unpack,
)
from libertem.executor.utils.snooze import SnoozeManager, keep_alive, keep_alive_context

#: seconds to wait for workers to come back when waking up
SNOOZE_WAIT_S = 60.0
#: seconds to wait for the workers to leave when snoozing
SNOOZE_DOWN_WAIT_S = 3.0


class DaskJobExecutor(CommonDaskMixin, BaseJobExecutor):
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

    # creating ----------------------------------------------------------------------------
    @classmethod
    def make_local(
        cls,
        spec: dict | None = None,
        cluster_kwargs: dict | None = None,
        client_kwargs: dict | None = None,
        preload: tuple[str] | None = None,
        snooze_timeout: float | None = None,
        main_process_gpu: int | bool | None = None,
    ) -> DaskJobExecutor:
        """Start a local cluster (default: one worker process per CPU core) and connect.

        Everything of the cluster listens on the loopback interface (127.0.0.1)
        only, unless ``spec`` or ``cluster_kwargs['scheduler']`` say otherwise.
        Dask logs warnings and errors only: pass ``cluster_kwargs={'silence_logs':
        logging.INFO}`` (or ``False``, for Dask's configuration) for more.

        Parameters
        ----------
        spec
            Worker specs, e.g. from :func:`cluster_spec`; by default from
            :func:`libertem.utils.devices.detect`.
        cluster_kwargs
            Extra arguments for :class:`distributed.SpecCluster`; ``silence_logs``
            is the log level of the cluster (default ``logging.WARNING``).
        client_kwargs
            Extra arguments for :class:`distributed.Client`; ``{'set_as_default': True}``
            makes this cluster Dask's default scheduler.
        preload
            Modules every worker imports at start.
        snooze_timeout
            Seconds without use after which all workers are stopped; they are
            started again by the next call that needs them.
        main_process_gpu
            CUDA device for work that runs in this process.
        """
        if spec is None:
            from libertem.utils.devices import detect

            spec = cluster_spec(**detect(), preload=preload)
        elif preload:
            spec = {
                key: {
                    **entry,
                    "options": {**entry["options"], "preload": ["libertem.preload", *preload]},
                }
                for key, entry in spec.items()
            }
        cluster_kwargs = dict(cluster_kwargs or {})
        scheduler = loopback_scheduler(cluster_kwargs.pop("scheduler", None))
        cluster_kwargs.setdefault("silence_logs", logging.WARNING)
        spec = prepare_worker_spec(spec, LOOPBACK, cluster_kwargs["silence_logs"])
        with worker_environment():
            cluster = LocalDaskCluster(workers=spec, scheduler=scheduler, **cluster_kwargs)
        try:
            client = Client(cluster, **{"set_as_default": False, **(client_kwargs or {})})
        except BaseException:
            cluster.close()
            raise
        client_kwargs = client_kwargs or {}
        executor = cls(
            client=client,
            is_local=not client_kwargs.get("set_as_default", False),
            main_process_gpu=main_process_gpu,
        )
        executor._owns_client = True
        executor._cluster = cluster
        if snooze_timeout is not None:
            executor._snooze = SnoozeManager(
                up=executor._wake_up,
                down=executor._scale_down,
                timeout=snooze_timeout,
                subscriptions=executor._subscription_manager(),
            )
        return executor

    @classmethod
    def connect(
        cls, scheduler_uri, *args, client_kwargs: dict | None = None, **kwargs
    ) -> DaskJobExecutor:
        """Connect to a running scheduler, e.g. ``'tcp://localhost:8786'``.

        ``*args, **kwargs`` go to the constructor (``lt_resources``, ``main_process_gpu``).

        A scheduler that talks TLS (``'tls://...'``) needs
        ``client_kwargs={'security': distributed.security.Security(...)}`` with the
        CA and a client certificate (or Dask's TLS configuration).

        Raises
        ------
        ConnectionError
            If the scheduler cannot be reached within ``client_kwargs['timeout']``
            (default 10 s), or it talks TLS and no certificates were given.
        """
        ckwargs = {"set_as_default": False, "timeout": 10, **(client_kwargs or {})}
        check_tls(scheduler_uri, ckwargs)
        try:
            client = Client(scheduler_uri, **ckwargs)
        except (OSError, TimeoutError) as e:
            raise ConnectionError(
                f"could not connect to the Dask scheduler at {scheduler_uri!r} within "
                f"{ckwargs['timeout']} s: {e}"
            ) from e
        executor = cls(client, not ckwargs["set_as_default"], *args, **kwargs)
        executor._owns_client = True
        return executor

    # snoozing ----------------------------------------------------------------------------
    @property
    def snooze_manager(self) -> SnoozeManager | None:
        """What stops idle workers (with ``make_local(snooze_timeout=...)``), or ``None``."""
        return self._snooze

    def _keep_alive(self):
        return self._snooze.in_use() if self._snooze is not None else contextlib.nullcontext()

    def _wait_for_worker_count(self, n: int, timeout: float = SNOOZE_WAIT_S) -> None:
        deadline = time.monotonic() + timeout
        while len(self.client.scheduler_info(n_workers=-1)["workers"]) != n:
            if time.monotonic() > deadline:
                self.__dict__.pop("_workers_cache", None)
                if timeout < SNOOZE_WAIT_S:
                    return  # snoozing: the others may take a little longer to leave
                raise TimeoutError(f"the cluster did not reach {n} workers in {timeout} s")
            time.sleep(0.05)
        self.__dict__.pop("_workers_cache", None)

    def _scale_down(self) -> None:
        """Keep one worker (the first of the spec), stop the others."""
        cluster = self._cluster
        self._snoozed_spec = dict(cluster.worker_spec)
        cluster.scale(1)
        self._wait_for_worker_count(min(1, len(self._snoozed_spec)), SNOOZE_DOWN_WAIT_S)

    def _wake_up(self) -> None:
        cluster = self._cluster
        cluster.worker_spec.update(self._snoozed_spec)
        with worker_environment():
            cluster.sync(cluster._correct_state)
        self._wait_for_worker_count(len(self._snoozed_spec))

    # parameters --------------------------------------------------------------------------
    @keep_alive
    def scatter(self, obj) -> DaskParams:
        """Pickle ``obj`` once for the tasks of a run; each worker gets it with its first task.

        The handle is a context manager (``with executor.scatter(obj) as handle:``);
        with a snooze manager, the block counts as "in use". Runs with identical
        parameters (same pickled bytes) reuse the handle, and the workers what they
        unpickled before.
        """
        payload = dumps(obj)
        digest = hashlib.blake2b(payload, digest_size=16).hexdigest()
        handle = self._params_cache.pop(digest, None) or DaskParams(payload)
        self._params_cache[digest] = handle
        while len(self._params_cache) > PARAMS_CACHE_SIZE:
            self._params_cache.pop(next(iter(self._params_cache)))
        if self._snooze is not None:
            blocks: list = []

            def enter():
                block = self._snooze.in_use()
                block.__enter__()
                blocks.append(block)

            def leave():
                if blocks:
                    blocks.pop().__exit__(None, None, None)

            handle.set_hooks(enter, leave)
        return handle

    def _forget_cached(self, handle) -> None:
        """Later scatters of the original parameters must not reuse the updated handle."""
        if not isinstance(handle, DaskParams):
            raise TypeError(f"not a handle returned by this executor's scatter: {handle!r}")
        for digest, cached in list(self._params_cache.items()):
            if cached is handle:
                del self._params_cache[digest]

    @keep_alive
    def scatter_update(self, handle, obj) -> None:
        """Tasks of ``handle`` that start from now on get ``obj``."""
        self._forget_cached(handle)
        handle.update(dumps(obj))

    @keep_alive
    def scatter_update_patch(self, handle, patch) -> None:
        """Apply ``patch`` (``obj.patch(patch)``) to the parameters of later tasks."""
        self._forget_cached(handle)
        obj = cloudpickle.loads(handle.state[1])
        obj.patch(patch)
        handle.update(dumps(obj))

    # tasks -------------------------------------------------------------------------------
    def _use_resources(self, workers: WorkerSet) -> bool:
        if self._lt_resources is not None:
            return bool(self._lt_resources)
        return any(w.resources for w in workers)

    def _wait_for_workers(self) -> WorkerSet:
        deadline = time.monotonic() + WORKER_WAIT_S
        while True:
            self.__dict__.pop("_workers_cache", None)
            workers = self.get_available_workers()
            if workers:
                return workers
            if time.monotonic() > deadline:
                raise ResourceError(f"the Dask cluster has had no workers for {WORKER_WAIT_S} s")
            time.sleep(0.1)

    def _ensure_plugin(self) -> None:
        if not self._plugin_registered:
            self.client.register_plugin(LiberTEMWorkerPlugin())
            self._plugin_registered = True

    def _on_event(self, event) -> None:
        message = event[1]
        handler = self._comm_handlers.get(message.get("run"))
        if handler is not None:
            handler.dispatch(message["topic"], message["message"])

    def _listen(self, cancel_id, handler: TaskCommHandler) -> str:
        """The event topic for the messages of the tasks; they go to ``handler``."""
        self._comm_handlers[cancel_id] = handler
        if not self._subscribed:
            self.client.subscribe_topic(self._topic, self._on_event)
            self._subscribed = True
        return self._topic

    @keep_alive_context
    def run_tasks(
        self,
        tasks: list[TaskProtocol],
        params_handle: Any,
        cancel_id: Any,
        task_comm_handler: TaskCommHandler | None = None,
    ):
        """Send ``tasks`` to the workers; yield ``(result, task)`` pairs as they complete.

        Each task goes straight to a worker that offers the resources it needs (one
        request, answered with the result). Progress messages of the tasks travel
        as Dask events to ``task_comm_handler``.

        Raises
        ------
        ResourceError
            If no worker offers the resources a task needs.
        JobCancelledError
            If the run was cancelled with :meth:`cancel`.
        WorkerLostError
            If a worker process died while it ran a task of the run.
        """
        handler = as_comm_handler(task_comm_handler)
        tasks = list(tasks)
        workers = self.get_available_workers()
        if tasks and not workers:  # e.g. all restarting after they died: wait for them
            workers = self._wait_for_workers()
        use_resources = self._use_resources(workers)
        needs = []
        for task in tasks:
            resources = resources_of(task)
            if use_resources and not can_place(workers, resources):
                raise ResourceError(
                    f"no worker of this cluster offers the resources {resources} the task needs"
                )
            needs.append(resources if use_resources else {"threads": 1})
        params = params_handle
        if not isinstance(params, DaskParams):
            params = DaskParams(dumps(params_handle))
        packed = [pack(task) for task in tasks]
        cancelled = self._start_run(cancel_id)
        topic = self._listen(cancel_id, handler) if handler.subscriptions else None
        run = None
        handler.start()
        try:
            if cancelled.is_set():
                raise JobCancelledError(f"run {cancel_id!r} was cancelled")
            if tasks:
                self._ensure_plugin()
                run = DirectRun(
                    self.client,
                    packed,
                    needs,
                    params,
                    self._known_params,
                    workers,
                    use_resources,
                    topic,
                    cancel_id,
                )
                self._direct_runs[cancel_id] = run
                run.start()
                finished = 0
                for event in run.events():
                    if cancelled.is_set():
                        break
                    if event[0] == "result":
                        finished += 1
                        yield unpack(*event[2]), tasks[event[1]]
                    elif event[0] == "error":
                        raise unpack(event[2]["exception"], event[2]["buffers"])
                    elif event[0] == "lost":
                        self.__dict__.pop("_workers_cache", None)
                        raise WorkerLostError(lost_message(tasks[event[1]], event[2]))
                    elif event[0] == "failed":
                        raise event[1]
                if not cancelled.is_set() and finished < len(tasks):
                    raise ExecutorError(f"the run ended after {finished} of {len(tasks)} tasks")
            if cancelled.is_set():
                raise JobCancelledError(f"run {cancel_id!r} was cancelled")
        finally:
            if run is not None:
                run.stop()
                if run.gone:
                    self.__dict__.pop("_workers_cache", None)
            self._direct_runs.pop(cancel_id, None)
            self._comm_handlers.pop(cancel_id, None)
            handler.done()
            self._end_run(cancel_id)

    def cancel(self, cancel_id) -> None:
        """Cancel the run ``cancel_id``: pending tasks are dropped, running ones stop at
        their next tile, ``run_tasks`` raises :class:`JobCancelledError`."""
        super().cancel(cancel_id)
        run = self._direct_runs.get(cancel_id)
        if run is not None:
            run.stop()
            run.wake()

    # functions ---------------------------------------------------------------------------
    def run_function(self, fn, *args, **kwargs):
        """Run ``fn(*args, **kwargs)`` on a worker and return its result."""
        with self._keep_alive():
            return self.client.submit(fn, *args, pure=False, **kwargs).result()

    def map(self, fn, iterable):
        """``fn(item)`` for every item, on the workers; the results in order."""
        with self._keep_alive():
            return self.client.gather(self.client.map(fn, list(iterable), pure=False))

    def run_each_worker(self, fn, *args, **kwargs):
        """Run ``fn`` on every worker process: worker address -> result."""
        with self._keep_alive():
            return self.client.run(fn, *args, **kwargs)

    def run_each_host(self, fn, *args, **kwargs):
        """Run ``fn`` once on every host: host -> result."""
        with self._keep_alive():
            by_host: dict[str, str] = {}
            for worker in self.get_available_workers():
                by_host.setdefault(worker.host, worker.name)
            futures = {
                host: self.client.submit(
                    fn, *args, workers=[addr], allow_other_workers=False, pure=False, **kwargs
                )
                for host, addr in by_host.items()
            }
            return {host: future.result() for host, future in futures.items()}

    @keep_alive_context
    def run_each_partition(self, partitions, fn, all_nodes=False):
        """Run ``fn(partition)`` for partitions; yield the results as they finish.

        ``all_nodes=False``: once per partition, on a host of
        ``partition.get_locations()`` when it names any. ``all_nodes=True``: once on
        each host that holds the partition (``get_locations().group_by_host()``);
        partitions without locations (``None``, e.g. in memory) are skipped.
        """
        futures = []
        for partition in partitions:
            if not all_nodes:
                locations = locations_of(partition)
                futures.append(self.client.submit(fn, partition, workers=locations, pure=False))
                continue
            get = getattr(partition, "get_locations", None)
            locations = get() if get is not None else None
            if locations is None:
                continue
            if hasattr(locations, "group_by_host"):
                groups = [list(group.names()) for group in locations.group_by_host()]
            else:  # a plain list of worker addresses or host names
                groups = [[location] for location in dict.fromkeys(locations)]
            for group in groups:
                futures.append(
                    self.client.submit(
                        fn, partition, workers=group, allow_other_workers=False, pure=False
                    )
                )
        try:
            for _future, result in distributed.as_completed(
                futures, loop=self.client.loop, with_results=True
            ):
                yield result
        finally:
            self.client.cancel(futures)

    def get_available_workers(self) -> WorkerSet:
        """The cluster's workers as they are now (a snoozing cluster is not woken up)."""
        return super().get_available_workers()

    def close(self) -> None:
        """Close the client and stop the cluster, if this executor started them.

        Unlike LiberTEM, this also holds for a cluster started with
        ``client_kwargs={'set_as_default': True}`` (where :attr:`is_local` is ``False``).
        """
        if self._snooze is not None:
            self._snooze.close()
        if self._subscribed and self.client.status == "running":
            with contextlib.suppress(Exception):
                self.client.unsubscribe_topic(self._topic)
            self._subscribed = False
        if self._owns_client:
            self.client.close()
        if self._cluster is not None:
            self._cluster.close()


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
