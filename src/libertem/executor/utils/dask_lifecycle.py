"""The lifecycle of a Dask executor's cluster: starting a local one or connecting to a
scheduler, scaling idle workers down and up again (snoozing), and closing."""

from __future__ import annotations

import contextlib
import logging
import time

from distributed import Client

from libertem.common.scheduler import WorkerSet
from libertem.executor.utils.dask_cluster import (
    LOOPBACK,
    LocalDaskCluster,
    prepare_worker_spec,
)
from libertem.executor.utils.dask_common import check_tls, loopback_scheduler
from libertem.executor.utils.dask_setup import cluster_spec, worker_environment
from libertem.executor.utils.snooze import SnoozeManager

#: seconds to wait for workers to come back when waking up
SNOOZE_WAIT_S = 60.0
#: seconds to wait for the workers to leave when snoozing
SNOOZE_DOWN_WAIT_S = 3.0


class DaskLifecycleMixin:
    """Creating, snoozing and closing the cluster of a
    :class:`~libertem.executor.dask.DaskJobExecutor` (its ``client``, ``_cluster``,
    ``_owns_client`` and ``_snooze``)."""

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
    ) -> DaskLifecycleMixin:
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
    ) -> DaskLifecycleMixin:
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


__all__ = ["SNOOZE_DOWN_WAIT_S", "SNOOZE_WAIT_S", "DaskLifecycleMixin"]
