"""The Dask worker class of LiberTEM's worker processes: it sets their log level first.

The nannies of :meth:`DaskJobExecutor.make_local` and of ``libertem-worker`` start
:class:`LiberTEMWorker`. Before the worker starts (and announces itself in a dozen
log lines), it

- makes numba follow the worker's ``NUMBA_NUM_THREADS`` (numba may have been imported
  before the nanny set it: see :func:`~.dask_setup.apply_numba_thread_env`);
- sets the level of the Dask loggers to the one named by the environment variable
  ``LIBERTEM_WORKER_LOG_LEVEL`` (the executors set it: ``WARNING`` by default);
- at ``WARNING`` and above, drops Dask's "Compute Failed" reports: the error reaches
  the caller anyway, as the exception itself.
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


def quiet_logging(level: str) -> None:
    """Set the Dask loggers of this process to ``level``; hide "Compute Failed" above INFO."""
    set_worker_log_level(level)
    if logging.getLevelName(level.upper()) > logging.INFO:
        worker_logger = logging.getLogger("distributed.worker")
        if not any(isinstance(f, DropComputeFailed) for f in worker_logger.filters):
            worker_logger.addFilter(DropComputeFailed())


class LiberTEMWorker(distributed.Worker):
    """A :class:`distributed.Worker` that first sets up logging and numba of its process."""

    def __init__(self, *args, **kwargs):
        apply_numba_thread_env()
        level = os.environ.get(LOG_LEVEL_ENV)
        if level:
            quiet_logging(level)
        super().__init__(*args, **kwargs)


__all__ = ["DropComputeFailed", "LiberTEMWorker", "quiet_logging"]
