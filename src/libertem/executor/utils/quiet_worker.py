"""The Dask worker class of LiberTEM's worker processes: it sets their log level first.

The nannies of :meth:`DaskJobExecutor.make_local` and of ``libertem-worker`` start
:class:`LiberTEMWorker`. Before the worker starts (and announces itself in a dozen
log lines), it

- makes numba follow the worker's ``NUMBA_NUM_THREADS`` (numba may have been imported
  before the nanny set it: see :func:`~.dask_setup.apply_numba_thread_env`);
- sets the level of the Dask loggers to the one named by the environment variable
  ``LIBERTEM_WORKER_LOG_LEVEL`` (the executors set it: ``WARNING`` by default);
- at ``WARNING`` and above, drops Dask's "Compute Failed" reports (the error reaches
  the caller anyway, as the exception itself) and the traceback of a heartbeat that
  the worker's own shutdown cut short.
"""

from __future__ import annotations

import logging
import os

import distributed

from libertem.executor.utils.dask_cluster import LOG_LEVEL_ENV
from libertem.executor.utils.dask_setup import apply_numba_thread_env, set_worker_log_level


class DropComputeFailed(logging.Filter):
    """Drops Dask's multi-line "Compute Failed" reports of failing tasks."""

    def filter(self, record: logging.LogRecord) -> bool:
        """``False`` for a "Compute Failed" report."""
        msg = record.msg
        return not (isinstance(msg, str) and msg.startswith("Compute Failed"))


def _worker_closing() -> bool:
    """Whether a Dask worker of this process is closing (or closed)."""
    from distributed.core import Status

    closing = {Status.closing, Status.closing_gracefully, Status.closed}
    return any(w.status in closing for w in list(distributed.Worker._instances))


class DropHeartbeatAtShutdown(logging.Filter):
    """Drops the traceback of a heartbeat that was under way while the worker closed
    (its connection pool, or the scheduler's end of the connection, closing under it):
    nothing went wrong."""

    def filter(self, record: logging.LogRecord) -> bool:
        """``False`` for a failed heartbeat whose cause is the worker's own shutdown."""
        msg = record.msg
        if not (isinstance(msg, str) and msg.startswith("Failed to communicate with scheduler")):
            return True
        exc = record.exc_info[1] if record.exc_info else None
        if not isinstance(exc, distributed.comm.CommClosedError):
            return True
        return not ("ConnectionPool closing" in str(exc) or _worker_closing())


def quiet_logging(level: str) -> None:
    """Set the Dask loggers of this process to ``level``; above INFO, hide "Compute
    Failed" reports and heartbeats cut short by the worker's own shutdown."""
    set_worker_log_level(level)
    if logging.getLevelName(level.upper()) > logging.INFO:
        worker_logger = logging.getLogger("distributed.worker")
        for kind in (DropComputeFailed, DropHeartbeatAtShutdown):
            if not any(isinstance(f, kind) for f in worker_logger.filters):
                worker_logger.addFilter(kind())


class LiberTEMWorker(distributed.Worker):
    """A :class:`distributed.Worker` that first sets up logging and numba of its process."""

    def __init__(self, *args, **kwargs):
        apply_numba_thread_env()
        level = os.environ.get(LOG_LEVEL_ENV)
        if level:
            quiet_logging(level)
        super().__init__(*args, **kwargs)


__all__ = ["DropComputeFailed", "DropHeartbeatAtShutdown", "LiberTEMWorker", "quiet_logging"]
