"""What the Dask executors share: the workers as the scheduler sees them, and helpers
for placing tasks, local schedulers, TLS checks and error messages."""

from __future__ import annotations

import time
from typing import Any

from libertem.common.scheduler import WorkerSet
from libertem.executor.utils.dask_cluster import LOOPBACK, local_scheduler_spec
from libertem.executor.utils.dask_dispatch import workers_from_info
from libertem.executor.utils.dask_setup import CPU_RESOURCES

#: seconds the list of workers is cached
WORKER_INFO_TTL_S = 1.0


def can_place(workers: WorkerSet, resources: dict) -> bool:
    """Whether one of ``workers`` offers all of ``resources``."""
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
        workers = workers_from_info(self.client.scheduler_info(n_workers=-1)["workers"])
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


def resources_of(task) -> dict:
    """The resources ``task`` needs (``get_resources()``; CPU by default)."""
    get = getattr(task, "get_resources", None)
    resources = get() if get is not None else getattr(task, "resources", None)
    return dict(resources or CPU_RESOURCES)


def loopback_scheduler(spec: dict | None) -> dict:
    """``spec`` (default: :func:`local_scheduler_spec`), on loopback unless it says where."""
    if spec is None:
        return local_scheduler_spec()
    options = dict(spec.get("options", {}))
    if not any(options.get(k) for k in ("host", "interface")):
        options["host"] = LOOPBACK
    options.setdefault("dashboard_address", f"{LOOPBACK}:0")
    return {**spec, "options": options}


def check_tls(scheduler_uri, client_kwargs: dict) -> None:
    """Raise :class:`ConnectionError` for a TLS scheduler without certificates."""
    if not str(scheduler_uri).startswith("tls://") or client_kwargs.get("security"):
        return
    from distributed.security import Security

    if Security().get_connection_args("client").get("ssl_context") is None:
        raise ConnectionError(
            f"the Dask scheduler at {scheduler_uri!r} talks TLS: pass "
            f"client_kwargs={{'security': distributed.security.Security(tls_ca_file=..., "
            f"tls_client_cert=..., tls_client_key=...)}}"
        )


def lost_message(task, address: str) -> str:
    """What :class:`WorkerLostError` says when the worker at ``address`` died running ``task``."""
    partition = task.get_partition() if hasattr(task, "get_partition") else None
    if hasattr(partition, "start") and hasattr(partition, "stop"):
        what = f"partition [{partition.start}, {partition.stop})"
    else:
        what = f"task {getattr(task, 'task_id', task)!r}"
    return (
        f"the Dask worker {address} died while it processed {what}, so the run was "
        f"cancelled. A worker process dies when it runs out of memory, is killed, or "
        f"crashes in native code (for example with SIGBUS when a memory-mapped input "
        f"file shrinks while it is read); restarted workers take the next run"
    )


def locations_of(partition) -> list[str] | None:
    """Hosts named by ``partition.get_locations()``, or ``None``."""
    get = getattr(partition, "get_locations", None)
    locations = get() if get is not None else None
    return list(locations) if locations else None


__all__ = [
    "CommonDaskMixin",
    "WORKER_INFO_TTL_S",
    "can_place",
    "check_tls",
    "locations_of",
    "loopback_scheduler",
    "lost_message",
    "resources_of",
]
