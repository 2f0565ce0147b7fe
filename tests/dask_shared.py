"""Helpers for the Dask tests: one shared local cluster per test session, timeouts.

Starting a Dask.distributed cluster takes seconds, so the test modules that need a
"plain" cluster share one: each module declares a session-scoped fixture that calls
:func:`acquire_cluster` and :func:`release_cluster`; the cluster is started on first
use and stopped when the last of these fixtures is torn down (at the end of the session).
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
import time

# worker processes are spawned: they read the logging config from the environment
os.environ.setdefault("DASK_LOGGING__DISTRIBUTED", "warning")
logging.getLogger("distributed").setLevel(logging.WARNING)

import distributed  # noqa: E402

from libertem.executor.dask import DaskJobExecutor, cluster_spec  # noqa: E402

N_CPU_WORKERS = 2

_lock = threading.Lock()
_shared: DaskJobExecutor | None = None
_users = 0


def _close_shared() -> None:
    global _shared
    if _shared is not None:
        executor, _shared = _shared, None
        executor.close()


atexit.register(_close_shared)


def acquire_cluster() -> DaskJobExecutor:
    """The shared executor: a local cluster of two CPU workers and one service worker."""
    global _shared, _users
    with _lock:
        if _shared is None:
            spec = cluster_spec(cpus=range(N_CPU_WORKERS), cudas=[], has_cupy=False)
            scheduler = {
                "cls": distributed.Scheduler,
                "options": {
                    "host": "127.0.0.1",
                    "port": 0,
                    "dashboard": False,
                    "dashboard_address": ":0",
                },
            }
            _shared = DaskJobExecutor.make_local(
                spec=spec, cluster_kwargs={"scheduler": scheduler}
            )
        _users += 1
        return _shared


def release_cluster() -> None:
    """Stop the shared cluster once its last user released it."""
    global _users
    with _lock:
        _users -= 1
        if _users <= 0:
            _users = 0
            _close_shared()


def scheduler_address(executor: DaskJobExecutor) -> str:
    """Address of the scheduler the executor's client talks to."""
    return executor.client.scheduler.address


def call_with_timeout(fn, timeout: float):
    """Call ``fn()`` in a thread; fail the test (instead of hanging) after ``timeout`` s.

    Returns ``(result, exception, elapsed)``.
    """
    out: dict = {}

    def target():
        try:
            out["result"] = fn()
        except BaseException as e:  # noqa: BLE001 - handed back to the caller
            out["exc"] = e

    t0 = time.monotonic()
    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(timeout)
    elapsed = time.monotonic() - t0
    if thread.is_alive():
        raise AssertionError(f"call did not return within {timeout} s (hang?)")
    return out.get("result"), out.get("exc"), elapsed


def libertem_task_keys(client) -> list[str]:
    """Keys of LiberTEM tasks the scheduler still knows about."""

    def keys(dask_scheduler=None):
        return [str(k) for k in dask_scheduler.tasks if str(k).startswith("libertem-task-")]

    return client.run_on_scheduler(keys)


def wait_until(predicate, timeout: float, interval: float = 0.05) -> bool:
    """Poll ``predicate()`` until it is true or ``timeout`` s passed; return its last value."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(interval)
