"""Run tasks on a Dask.distributed cluster: local worker processes or a remote scheduler."""

from __future__ import annotations

import hashlib
import logging
import time
import uuid
from collections.abc import Iterable

import cloudpickle
import dask
import distributed
from distributed import Client, Nanny, SpecCluster

from libertem.common.exceptions import ExecutorSpecException
from libertem.executor.base import JobExecutor, TaskEnvironment, WorkerInfo, WorkerSet

CPU_RESOURCES = {"CPU": 1, "compute": 1, "ndarray": 1}
PROGRESS_INTERVAL_S = 0.2
WORKER_INFO_TTL_S = 1.0
PARAMS_CACHE_SIZE = 4

# Dask's nanny sets MALLOC_TRIM_THRESHOLD_ before it spawns a worker, which turns off
# glibc's dynamic mmap threshold: every temporary of 128 KiB or more would then be a fresh
# mmap, zeroed and page-faulted on each tile. Keep such buffers on the heap instead. glibc
# reads these when the process starts, so they must be in the pre-spawn environment.
WORKER_MALLOC_ENV = {
    "MALLOC_MMAP_THRESHOLD_": str(64 * 1024 * 1024),
    "MALLOC_TRIM_THRESHOLD_": str(256 * 1024 * 1024),
}


def cluster_spec(
    cpus: Iterable[int] | int,
    cudas: Iterable[int] | int,
    has_cupy: bool,
    name: str = "default",
    num_service: int = 1,
    options: dict | None = None,
) -> dict:
    """Worker specs for a :class:`distributed.SpecCluster` of LiberTEM workers.

    One single-threaded worker process per CPU and per CUDA device, each tagged with
    resources so that work is placed by capability: CPU workers carry ``CPU``,
    CUDA workers ``CUDA`` (and ``ndarray`` when CuPy can run there), both carry
    ``compute``. Service workers carry no compute resource and take light tasks.

    Parameters
    ----------
    cpus
        CPU ids (or their number) to start a worker for.
    cudas
        CUDA device ids (or their number) to start a worker for.
    has_cupy
        Whether CuPy is installed, so CUDA workers can run ``'cupy'`` UDFs.
    name
        Prefix of the worker names.
    num_service
        Number of service workers.
    options
        Extra keyword arguments for every worker (e.g. ``memory_limit``).
    """
    cpus = range(cpus) if isinstance(cpus, int) else list(cpus)
    cudas = range(cudas) if isinstance(cudas, int) else list(cudas)
    base = {"nthreads": 1, "memory_limit": 0, **(options or {})}
    spec = {}
    for cpu in cpus:
        spec[f"{name}-cpu-{cpu}"] = {
            "cls": Nanny,
            "options": {
                **base,
                "name": f"{name}-cpu-{cpu}",
                "resources": dict(CPU_RESOURCES),
                "env": {"LIBERTEM_USE_CPU": str(cpu)},
            },
        }
    for device in cudas:
        resources = {"CUDA": 1, "compute": 1}
        if has_cupy:
            resources["ndarray"] = 1
        spec[f"{name}-cuda-{device}"] = {
            "cls": Nanny,
            "options": {
                **base,
                "name": f"{name}-cuda-{device}",
                "resources": resources,
                "env": {"CUDA_VISIBLE_DEVICES": str(device), "LIBERTEM_USE_CUDA": "0"},
            },
        }
    for i in range(num_service):
        spec[f"{name}-service-{i}"] = {
            "cls": Nanny,
            "options": {**base, "name": f"{name}-service-{i}"},
        }
    return spec


def worker_environment():
    """Dask config for our worker processes, in effect while they are spawned.

    Gives them the malloc settings above, and turns off the statistical profiler,
    which samples the task thread every few milliseconds while holding the GIL.
    """
    environ = dict(dask.config.get("distributed.nanny.pre-spawn-environ", {}))
    return dask.config.set(
        {
            "distributed.nanny.pre-spawn-environ": {**environ, **WORKER_MALLOC_ENV},
            "distributed.worker.profile.enabled": False,
        }
    )


class _ProgressEvents:
    """Forward a task's progress to the client as worker events, at a bounded rate."""

    def __init__(self, topic: str):
        self._topic = topic
        self._pending: dict[int, float] = {}
        self._last = time.monotonic()

    def __call__(self, task_id: int, frames: float) -> None:
        self._pending[task_id] = self._pending.get(task_id, 0.0) + frames
        now = time.monotonic()
        if now - self._last >= PROGRESS_INTERVAL_S:
            self._last = now
            worker = distributed.get_worker()
            for tid, done in self._pending.items():
                worker.log_event(self._topic, (tid, done))
            self._pending.clear()


def _can_place(workers: WorkerSet, resources: dict) -> bool:
    return any(all(w.resources.get(k, 0) >= v for k, v in resources.items()) for w in workers)


class _Params:
    """Pickled run parameters and their digest, as scattered to the workers."""

    __slots__ = ("digest", "payload")

    def __init__(self, digest: str, payload: bytes):
        self.digest = digest
        self.payload = payload

    def __getstate__(self):
        return (self.digest, self.payload)

    def __setstate__(self, state):
        self.digest, self.payload = state


_LOADED_PARAMS: dict[str, object] = {}


def _load_params(params: _Params):
    """Unpickle run parameters once per worker process (a few recent ones are kept)."""
    loaded = _LOADED_PARAMS.pop(params.digest, None)
    if loaded is None:
        loaded = cloudpickle.loads(params.payload)
    _LOADED_PARAMS[params.digest] = loaded
    while len(_LOADED_PARAMS) > PARAMS_CACHE_SIZE:
        _LOADED_PARAMS.pop(next(iter(_LOADED_PARAMS)))
    return loaded


def _run_on_worker(task, params, topic):
    """Run one task in a worker process, forwarding progress as events."""
    env = TaskEnvironment(progress=_ProgressEvents(topic), worker=distributed.get_worker().name)
    if isinstance(params, _Params):
        params = _load_params(params)
    return task(params, env)


class DaskJobExecutor(JobExecutor):
    """Runs tasks as Dask futures on a Dask.distributed cluster.

    Parameters
    ----------
    client
        The Dask client.
    is_local
        Whether this executor started the cluster (and so stops it on close).
    """

    def __init__(self, client: Client, is_local: bool = False):
        self.client = client
        self._is_local = is_local
        self._owns_client = is_local
        self._cluster: SpecCluster | None = None
        self._workers_cache: tuple[float, WorkerSet] | None = None
        self._params_cache: dict[str, distributed.Future] = {}

    @classmethod
    def make_local(
        cls,
        spec: dict | None = None,
        cluster_kwargs: dict | None = None,
        client_kwargs: dict | None = None,
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
        """
        if spec is None:
            from libertem.utils.devices import detect

            spec = cluster_spec(**detect())
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
        executor = cls(client=client, is_local=True)
        executor._cluster = cluster
        return executor

    @classmethod
    def connect(cls, scheduler_uri: str, client_kwargs: dict | None = None) -> DaskJobExecutor:
        """Connect to a running scheduler, e.g. ``'tcp://localhost:8786'``.

        Raises
        ------
        ConnectionError
            If the scheduler cannot be reached within ``client_kwargs['timeout']``
            (default 10 s).
        """
        kwargs = {"set_as_default": False, "timeout": 10, **(client_kwargs or {})}
        try:
            client = Client(scheduler_uri, **kwargs)
        except (OSError, TimeoutError) as e:
            raise ConnectionError(
                f"could not connect to the Dask scheduler at {scheduler_uri!r} within "
                f"{kwargs['timeout']} s: {e}"
            ) from e
        executor = cls(client=client, is_local=False)
        executor._owns_client = True
        return executor

    # tasks ---------------------------------------------------------------------
    def scatter(self, obj):
        """Send ``obj`` to every worker once; tasks get it through the returned future.

        Runs with identical parameters (same pickled bytes) reuse what was sent before.
        """
        payload = cloudpickle.dumps(obj)
        digest = hashlib.blake2b(payload, digest_size=16).hexdigest()
        future = self._params_cache.pop(digest, None)
        if future is None or future.status != "finished":
            future = self.client.scatter(_Params(digest, payload), broadcast=True, hash=False)
        self._params_cache[digest] = future
        while len(self._params_cache) > PARAMS_CACHE_SIZE:
            self._params_cache.pop(next(iter(self._params_cache))).release()
        return future

    def run_tasks(self, tasks, params_handle, cancel_id, progress=None):
        topic = f"libertem-progress-{cancel_id}"
        workers = self.get_available_workers()
        use_resources = any(w.resources for w in workers)
        futures = {}
        for task in tasks:
            resources = getattr(task, "resources", None) or dict(CPU_RESOURCES)
            if use_resources and not _can_place(workers, resources):
                raise ExecutorSpecException(
                    f"no worker of this cluster offers the resources {resources} the task needs"
                )
            future = self.client.submit(
                _run_on_worker,
                task,
                params_handle,
                topic,
                key=f"libertem-task-{cancel_id}-{getattr(task, 'task_id', uuid.uuid4().hex)}",
                resources=resources if use_resources else None,
                pure=False,
            )
            futures[future] = task
        if progress is not None:
            self.client.subscribe_topic(topic, lambda event: progress(*event[1]))
        try:
            completed = distributed.as_completed(futures, loop=self.client.loop, with_results=True)
            for future, result in completed:
                yield result, futures[future]
        finally:
            self.client.cancel(list(futures))
            if progress is not None:
                self.client.unsubscribe_topic(topic)

    def run_function(self, fn, *args, **kwargs):
        return self.client.submit(fn, *args, pure=False, **kwargs).result()

    def map(self, fn, iterable):
        return self.client.gather(self.client.map(fn, list(iterable), pure=False))

    def run_each_worker(self, fn, *args, **kwargs):
        return self.client.run(fn, *args, **kwargs)

    def run_each_host(self, fn, *args, **kwargs):
        by_host = {}
        for worker in self.get_available_workers():
            by_host.setdefault(worker.host, worker.name)
        futures = {
            host: self.client.submit(
                fn, *args, workers=[addr], allow_other_workers=False, pure=False, **kwargs
            )
            for host, addr in by_host.items()
        }
        return {host: future.result() for host, future in futures.items()}

    def get_available_workers(self) -> WorkerSet:
        """The cluster's workers (asked from the scheduler at most once a second)."""
        now = time.monotonic()
        cached = self._workers_cache
        if cached is not None and now - cached[0] < WORKER_INFO_TTL_S:
            return cached[1]
        info = self.client.scheduler_info(n_workers=-1)["workers"]
        workers = WorkerSet(
            WorkerInfo(name=addr, host=w.get("host", ""), resources=dict(w.get("resources", {})))
            for addr, w in info.items()
        )
        self._workers_cache = (now, workers)
        return workers

    def close(self) -> None:
        """Close the client and stop the cluster, if this executor started them."""
        if self._owns_client:
            self.client.close()
        if self._cluster is not None:
            self._cluster.close()
