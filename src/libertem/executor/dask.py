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
    JobCancelledError,
    ResourceError,
    SubscriptionManager,
    TaskCommHandler,
    TaskProtocol,
    WorkerContext,
)
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
from libertem.executor.utils.dask_setup import (
    CPU_RESOURCES,
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
    Params,
    mark_cancelled,
    patch_params,
    run_on_worker,
    set_override,
)
from libertem.executor.utils.snooze import SnoozeManager, keep_alive, keep_alive_context

WORKER_INFO_TTL_S = 1.0
#: seconds to wait for workers to go away or come back when snoozing and waking up
SNOOZE_WAIT_S = 60.0


def _can_place(workers: WorkerSet, resources: dict) -> bool:
    return any(all(w.resources.get(k, 0) >= v for k, v in resources.items()) for w in workers)


class CommonDaskMixin:
    """What the Dask executors share: the workers as the scheduler sees them.

    Needs a ``client`` attribute (a :class:`distributed.Client`).
    """

    def get_available_workers(self) -> WorkerSet:
        """The cluster's workers (asked from the scheduler at most once a second)."""
        now = time.monotonic()
        cached = self.__dict__.get("_workers_cache")
        if cached is not None and now - cached[0] < WORKER_INFO_TTL_S:
            return cached[1]
        info = self.client.scheduler_info(n_workers=-1)["workers"]
        workers = WorkerSet(
            Worker(
                name=addr,
                host=w.get("host", ""),
                resources=dict(w.get("resources", {})),
                nthreads=int(w.get("nthreads", 1)),
            )
            for addr, w in info.items()
        )
        self.__dict__["_workers_cache"] = (now, workers)
        return workers

    def has_libertem_resources(self) -> bool:
        """Whether the workers carry LiberTEM's resource tags (``compute`` and others)."""
        return any("compute" in w.resources for w in self.get_available_workers())

    def get_resource_details(self) -> list[dict[str, Any]]:
        """Per host: ``{'host': ..., 'cpu': n, 'cuda': n, 'service': n}`` worker counts."""
        details: dict[str, dict[str, Any]] = {}
        tagged = self.has_libertem_resources()
        for worker in self.get_available_workers():
            entry = details.setdefault(
                worker.host, {"host": worker.host, "cpu": 0, "cuda": 0, "service": 0}
            )
            if worker.resources.get("CUDA", 0):
                entry["cuda"] += 1
            elif worker.resources.get("CPU", 0) or not tagged:
                entry["cpu"] += 1
            else:
                entry["service"] += 1
        return list(details.values())


class DaskJobExecutor(CommonDaskMixin, BaseJobExecutor):
    """Runs tasks as Dask futures on a Dask.distributed cluster.

    Parameters
    ----------
    client
        The Dask client.
    is_local
        Whether this executor started the cluster (and so stops it on close).
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
        self._is_local = is_local
        self._owns_client = is_local
        self._lt_resources = lt_resources
        self._cluster: SpecCluster | None = None
        self._params_cache: dict[str, distributed.Future] = {}
        self._params_ids: dict[str, str] = {}
        self._run_futures: dict[Any, list] = {}
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

        Parameters
        ----------
        spec
            Worker specs, e.g. from :func:`cluster_spec`; by default from
            :func:`libertem.utils.devices.detect`.
        cluster_kwargs
            Extra arguments for :class:`distributed.SpecCluster`.
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
                key: {**entry, "options": {**entry["options"], "preload": list(preload)}}
                for key, entry in spec.items()
            }
        cluster_kwargs = dict(cluster_kwargs or {})
        scheduler = cluster_kwargs.pop(
            "scheduler",
            {
                "cls": distributed.Scheduler,
                "options": {
                    "host": "127.0.0.1",
                    "port": 0,
                    "dashboard": False,
                    "dashboard_address": "127.0.0.1:0",
                },
            },
        )
        cluster_kwargs.setdefault("silence_logs", logging.WARNING)
        with worker_environment():
            cluster = SpecCluster(workers=spec, scheduler=scheduler, **cluster_kwargs)
        try:
            client = Client(cluster, **{"set_as_default": False, **(client_kwargs or {})})
        except BaseException:
            cluster.close()
            raise
        executor = cls(client=client, is_local=True, main_process_gpu=main_process_gpu)
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

        Raises
        ------
        ConnectionError
            If the scheduler cannot be reached within ``client_kwargs['timeout']``
            (default 10 s).
        """
        ckwargs = {"set_as_default": False, "timeout": 10, **(client_kwargs or {})}
        try:
            client = Client(scheduler_uri, **ckwargs)
        except (OSError, TimeoutError) as e:
            raise ConnectionError(
                f"could not connect to the Dask scheduler at {scheduler_uri!r} within "
                f"{ckwargs['timeout']} s: {e}"
            ) from e
        executor = cls(client, False, *args, **kwargs)
        executor._owns_client = True
        return executor

    # snoozing ----------------------------------------------------------------------------
    @property
    def snooze_manager(self) -> SnoozeManager | None:
        """What stops idle workers (with ``make_local(snooze_timeout=...)``), or ``None``."""
        return self._snooze

    def _keep_alive(self):
        return self._snooze.in_use() if self._snooze is not None else contextlib.nullcontext()

    def _wait_for_worker_count(self, n: int) -> None:
        deadline = time.monotonic() + SNOOZE_WAIT_S
        while len(self.client.scheduler_info(n_workers=-1)["workers"]) != n:
            if time.monotonic() > deadline:
                raise TimeoutError(f"the cluster did not reach {n} workers in {SNOOZE_WAIT_S} s")
            time.sleep(0.05)
        self.__dict__.pop("_workers_cache", None)

    def _scale_down(self) -> None:
        cluster = self._cluster
        self._snoozed_spec = dict(cluster.worker_spec)
        for future in self._params_cache.values():
            future.release()
        self._params_cache.clear()
        cluster.scale(0)
        self._wait_for_worker_count(0)

    def _wake_up(self) -> None:
        cluster = self._cluster
        cluster.worker_spec.update(self._snoozed_spec)
        with worker_environment():
            cluster.sync(cluster._correct_state)
        self._wait_for_worker_count(len(self._snoozed_spec))

    # parameters --------------------------------------------------------------------------
    @keep_alive
    def scatter(self, obj):
        """Send ``obj`` to every worker once; tasks get it through the returned future.

        Runs with identical parameters (same pickled bytes) reuse what was sent before.
        """
        payload = cloudpickle.dumps(obj)
        digest = hashlib.blake2b(payload, digest_size=16).hexdigest()
        future = self._params_cache.pop(digest, None)
        if future is None or future.status != "finished":
            params = Params(digest, payload, uuid.uuid4().hex)
            future = self.client.scatter(params, broadcast=True, hash=False)
            self._params_ids[future.key] = params.uid
        self._params_cache[digest] = future
        while len(self._params_cache) > PARAMS_CACHE_SIZE:
            old = self._params_cache.pop(next(iter(self._params_cache)))
            self._params_ids.pop(old.key, None)
            old.release()
        return future

    def _uid_of(self, handle) -> str:
        uid = self._params_ids.get(getattr(handle, "key", None))
        if uid is None:
            raise TypeError(f"not a handle returned by this executor's scatter: {handle!r}")
        return uid

    def _forget_cached(self, handle) -> None:
        """Later scatters of the original parameters must not reuse the updated handle."""
        for digest, future in list(self._params_cache.items()):
            if future.key == handle.key:
                del self._params_cache[digest]

    def scatter_update(self, handle, obj) -> None:
        """Tasks of ``handle`` that start from now on get ``obj`` (sent to every worker)."""
        uid = self._uid_of(handle)
        with self._keep_alive():
            self._forget_cached(handle)
            self.client.run(set_override, uid, cloudpickle.dumps(obj))

    def scatter_update_patch(self, handle, patch) -> None:
        """Apply ``patch`` (``obj.patch(patch)``) to the parameters on every worker."""
        uid = self._uid_of(handle)
        with self._keep_alive():
            self._forget_cached(handle)
            self.client.run(patch_params, uid, handle.key, patch)

    # tasks -------------------------------------------------------------------------------
    def _use_resources(self, workers: WorkerSet) -> bool:
        if self._lt_resources is not None:
            return bool(self._lt_resources)
        return any(w.resources for w in workers)

    @keep_alive_context
    def run_tasks(
        self,
        tasks: list[TaskProtocol],
        params_handle: Any,
        cancel_id: Any,
        task_comm_handler: TaskCommHandler | None = None,
    ):
        """Submit ``tasks``; yield ``(result, task)`` pairs as they complete.

        Progress messages of the tasks travel as Dask events to ``task_comm_handler``.

        Raises
        ------
        ResourceError
            If no worker offers the resources a task needs.
        JobCancelledError
            If the run was cancelled with :meth:`cancel`.
        """
        handler = as_comm_handler(task_comm_handler)
        tasks = list(tasks)
        workers = self.get_available_workers()
        use_resources = self._use_resources(workers)
        for task in tasks:
            resources = _resources_of(task)
            if use_resources and not _can_place(workers, resources):
                raise ResourceError(
                    f"no worker of this cluster offers the resources {resources} the task needs"
                )
        cancelled = self._start_run(cancel_id)
        topic = f"libertem-comms-{cancel_id}" if handler.subscriptions else None
        futures = {}
        handler.start()
        try:
            if topic is not None:
                self.client.subscribe_topic(
                    topic, lambda event: handler.dispatch(event[1]["topic"], event[1]["message"])
                )
            for task in tasks:
                key = f"libertem-task-{cancel_id}-{getattr(task, 'task_id', uuid.uuid4().hex)}"
                resources = _resources_of(task)
                future = self.client.submit(
                    run_on_worker,
                    task,
                    params_handle,
                    topic,
                    cancel_id,
                    key=key,
                    resources=resources if use_resources else None,
                    pure=False,
                )
                futures[future] = task
            self._run_futures[cancel_id] = list(futures)
            if cancelled.is_set():
                raise JobCancelledError(f"run {cancel_id!r} was cancelled")
            completed = distributed.as_completed(futures, loop=self.client.loop, with_results=True)
            try:
                for future, result in completed:
                    if cancelled.is_set():
                        break
                    yield result, futures[future]
            except distributed.client.FutureCancelledError:
                if not cancelled.is_set():
                    raise
            if cancelled.is_set():
                raise JobCancelledError(f"run {cancel_id!r} was cancelled")
        finally:
            unfinished = [f for f in futures if not f.done()]
            self.client.cancel(list(futures))
            if unfinished:  # stopped early: running tasks stop at their next tile
                self.client.run(mark_cancelled, cancel_id, on_error="ignore")
            self._run_futures.pop(cancel_id, None)
            if topic is not None:
                self.client.unsubscribe_topic(topic)
            handler.done()
            self._end_run(cancel_id)

    def cancel(self, cancel_id) -> None:
        """Cancel the run ``cancel_id``: pending tasks are dropped, running ones stop at
        their next tile, ``run_tasks`` raises :class:`JobCancelledError`."""
        super().cancel(cancel_id)
        futures = self._run_futures.get(cancel_id)
        if futures:
            self.client.run(mark_cancelled, cancel_id, on_error="ignore")
            self.client.cancel(futures)

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
        """Run ``fn(partition)`` for every partition; yield the results as they finish.

        Each call runs on a host of ``partition.get_locations()`` when the partition
        names any, unless ``all_nodes``.
        """
        futures = []
        for partition in partitions:
            locations = None if all_nodes else _locations_of(partition)
            futures.append(self.client.submit(fn, partition, workers=locations, pure=False))
        try:
            for _future, result in distributed.as_completed(
                futures, loop=self.client.loop, with_results=True
            ):
                yield result
        finally:
            self.client.cancel(futures)

    def get_available_workers(self) -> WorkerSet:
        """The cluster's workers (waking a snoozing cluster up)."""
        with self._keep_alive():
            return super().get_available_workers()

    def close(self) -> None:
        """Close the client and stop the cluster, if this executor started them."""
        if self._snooze is not None:
            self._snooze.close()
        if self._owns_client:
            self.client.close()
        if self._cluster is not None:
            self._cluster.close()


def _resources_of(task) -> dict:
    get = getattr(task, "get_resources", None)
    resources = get() if get is not None else getattr(task, "resources", None)
    return dict(resources or CPU_RESOURCES)


def _locations_of(partition) -> list[str] | None:
    get = getattr(partition, "get_locations", None)
    locations = get() if get is not None else None
    return list(locations) if locations else None


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
