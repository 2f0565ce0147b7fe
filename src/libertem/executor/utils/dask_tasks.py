"""Dispatching work to a Dask cluster: the parameters of a run (scattered once), the
tasks of a run sent straight to the workers, and plain functions."""

from __future__ import annotations

import hashlib
import time
from typing import Any

import cloudpickle
import distributed

from libertem.common.executor import (
    ExecutorError,
    JobCancelledError,
    ResourceError,
    TaskCommHandler,
    TaskProtocol,
    WorkerLostError,
)
from libertem.common.pickling import dumps
from libertem.common.scheduler import WorkerSet
from libertem.executor.base import as_comm_handler
from libertem.executor.utils.dask_common import (
    can_place,
    locations_of,
    lost_message,
    resources_of,
)
from libertem.executor.utils.dask_dispatch import WORKER_WAIT_S, DaskParams, DirectRun
from libertem.executor.utils.dask_workers import (
    PARAMS_CACHE_SIZE,
    LiberTEMWorkerPlugin,
    pack,
    unpack,
)
from libertem.executor.utils.snooze import keep_alive, keep_alive_context


class DaskTasksMixin:
    """Scattering, running tasks and functions for a
    :class:`~libertem.executor.dask.DaskJobExecutor` (its ``client``, caches and
    subscriptions)."""

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


__all__ = ["DaskTasksMixin"]
