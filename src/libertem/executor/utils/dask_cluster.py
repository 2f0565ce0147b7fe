"""Local Dask clusters that only this machine can reach, and that keep quiet.

Every listener of a cluster started by :meth:`DaskJobExecutor.make_local` -- the
scheduler and its HTTP server, the nannies, the workers and their HTTP servers --
binds the loopback interface. The worker processes run
:class:`~.quiet_worker.LiberTEMWorker`, which sets their log level before they start
(``WARNING`` unless asked otherwise).
"""

from __future__ import annotations

import importlib.util
import logging

import distributed
from distributed import SpecCluster

#: the interface local clusters listen on
LOOPBACK = "127.0.0.1"
#: environment variable that tells a worker process its log level
LOG_LEVEL_ENV = "LIBERTEM_WORKER_LOG_LEVEL"


def has_bokeh() -> bool:
    """Whether ``bokeh`` is installed, which Dask's dashboard needs."""
    return importlib.util.find_spec("bokeh") is not None


def level_name(level) -> str | None:
    """The name of a log level given as a name or number; ``None`` for ``None``/``False``.

    Raises
    ------
    ValueError
        For a name that is no log level.
    """
    if level is None or level is False:
        return None
    if level is True:
        return "WARNING"
    if isinstance(level, str):
        number = logging.getLevelName(level.upper())
        if not isinstance(number, int):
            raise ValueError(f"unknown log level {level!r}")
        return level.upper()
    return logging.getLevelName(int(level))


def local_scheduler_spec(host: str = LOOPBACK) -> dict:
    """Spec of the scheduler of a local cluster: on ``host``, any free port.

    The dashboard is served (on ``host`` too) when bokeh is installed; without it,
    the scheduler's HTTP server only answers Dask's health and metrics routes.
    """
    return {
        "cls": distributed.Scheduler,
        "options": {
            "host": host,
            "port": 0,
            "dashboard": has_bokeh(),
            "dashboard_address": f"{host}:0",
        },
    }


def prepare_worker_spec(spec: dict, host: str | None, log_level) -> dict:
    """A copy of the worker ``spec`` whose workers bind ``host`` and set ``log_level``.

    Entries that name their own ``host``, ``interface`` or ``listen_address`` keep it.
    Nannies start :class:`~.quiet_worker.LiberTEMWorker` (unless an entry names its own
    ``worker_class``), which applies ``log_level`` (a name, a number, or ``None``:
    Dask's own configuration), handed to the worker processes in their environment.
    """
    from libertem.executor.utils.quiet_worker import LiberTEMWorker

    name = level_name(log_level)
    out = {}
    for key, entry in spec.items():
        options = dict(entry.get("options", {}))
        if host is not None and not any(
            options.get(k) for k in ("host", "interface", "listen_address")
        ):
            options["host"] = host
        if entry.get("cls") is distributed.Nanny:
            options.setdefault("worker_class", LiberTEMWorker)
        env = dict(options.get("env", {}))
        if name is not None:
            env.setdefault(LOG_LEVEL_ENV, name)
        options["env"] = env
        out[key] = {**entry, "options": options}
    return out


class LocalDaskCluster(SpecCluster):
    """The :class:`distributed.SpecCluster` of :meth:`DaskJobExecutor.make_local`.

    Its :attr:`dashboard_link` is empty unless a dashboard is served (bokeh is
    installed): Dask would otherwise point to a page that does not exist.
    """

    @property
    def dashboard_link(self) -> str:
        """Address of the dashboard, or ``''`` if there is none."""
        if not has_bokeh():
            return ""
        return super().dashboard_link


__all__ = [
    "LOG_LEVEL_ENV",
    "LOOPBACK",
    "LocalDaskCluster",
    "has_bokeh",
    "level_name",
    "local_scheduler_spec",
    "prepare_worker_spec",
]
