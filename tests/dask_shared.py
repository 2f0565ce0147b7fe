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
            _shared = DaskJobExecutor.make_local(spec=spec)
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


# --- processes of a real cluster (dask scheduler, libertem-worker) ------------------------


def subprocess_env() -> dict:
    """Environment for scheduler and worker processes started by tests."""
    env = dict(os.environ)
    env["DASK_LOGGING__DISTRIBUTED"] = "warning"
    env.setdefault("PYTHONUNBUFFERED", "1")
    return env


def popen_logged(args, log):
    """Start a process in its own process group (so it and its children can be killed),
    its output going to the file ``log``."""
    import subprocess

    fh = open(log, "wb")  # noqa: SIM115 - closed in terminate
    proc = subprocess.Popen(
        [str(a) for a in args],
        stdout=fh,
        stderr=subprocess.STDOUT,
        env=subprocess_env(),
        start_new_session=True,
    )
    proc._log_handle = fh  # type: ignore[attr-defined]
    return proc


def terminate(procs) -> None:
    """SIGTERM each process group, then SIGKILL what is left after a grace period."""
    import signal
    import subprocess

    for proc in procs:
        if proc.poll() is None:
            try:
                os.killpg(proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
    deadline = time.monotonic() + 15
    for proc in procs:
        try:
            proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            pass
    for proc in procs:
        # the group may hold children (worker processes) even if the leader exited
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass
        proc._log_handle.close()  # type: ignore[attr-defined]


def logs_of(directory) -> str:
    """The ends of the ``*.log`` files in ``directory``."""
    from pathlib import Path

    return "\n".join(
        f"--- {p.name}\n{p.read_text(errors='replace')[-3000:]}"
        for p in Path(directory).glob("*.log")
    )


def wait_for_processes(predicate, timeout, what, procs, log_dir):
    """Poll ``predicate()`` until it returns something true; fail the test if one of
    ``procs`` exits or ``timeout`` s pass (with the processes' logs)."""
    import pytest

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        for proc in procs:
            if proc.poll() is not None:
                pytest.fail(f"{proc.args} exited with {proc.returncode}\n{logs_of(log_dir)}")
        time.sleep(0.2)
    pytest.fail(f"timed out waiting for {what}\n{logs_of(log_dir)}")


def listening_addresses(pids) -> list[tuple[str, int, int]]:
    """``(ip, port, pid)`` of every listening TCP socket of the processes ``pids`` and of
    all their children."""
    import psutil

    procs = []
    for pid in pids:
        try:
            proc = psutil.Process(pid)
            procs.append(proc)
            procs.extend(proc.children(recursive=True))
        except psutil.NoSuchProcess:
            pass
    out = []
    for proc in procs:
        try:
            conns = proc.net_connections(kind="inet")
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
        for conn in conns:
            if conn.status == psutil.CONN_LISTEN:
                out.append((conn.laddr.ip, conn.laddr.port, proc.pid))
    return out
