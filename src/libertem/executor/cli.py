"""``libertem-worker``: start LiberTEM workers on this node and join a Dask scheduler.

The workers listen on one interface: ``--host``, by default the loopback interface
when the scheduler runs on this machine, else the interface through which the
scheduler is reached. Whoever can connect to a Dask worker can run any code on it:
on a shared network, secure the cluster with TLS (``--tls-*``) or a firewall.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import socket
import sys
import threading
from collections.abc import Iterable
from dataclasses import dataclass

from libertem.executor.utils.dask_cluster import LOOPBACK, prepare_worker_spec
from libertem.executor.utils.dask_setup import (
    cluster_spec,
    set_worker_log_level,
    worker_environment,
)

#: help text of the ``--log-level`` option: the levels it takes
log_values = "Allowed values are 'critical', 'error', 'warning', 'info', 'debug'."
#: help text of the ``--preload`` option
preload_help = (
    "Module, file or code to preload on workers, for example HDF5 plugins. "
    "Can be specified multiple times. "
    "See also https://docs.dask.org/en/stable/customize-initialization.html"
)


@dataclass
class WorkerOptions:
    """What to start: the fields of the ``libertem-worker`` command line.

    ``cpus`` and ``cudas`` are counts, id lists or their text forms (``'4'``,
    ``'0,2'``); ``None`` means the devices found here.
    """

    scheduler: str
    cpus: int | Iterable[int] | str | None = None
    cudas: int | Iterable[int] | str | None = None
    has_cupy: bool | None = None
    name: str | None = None
    num_service: int = 0
    memory_limit: int | str = 0
    local_directory: str | None = None
    preload: tuple[str, ...] = ()
    host: str | None = None
    log_level: str | int = "WARNING"
    tls_ca_file: str | None = None
    tls_cert: str | None = None
    tls_key: str | None = None


def _scheduler_host(scheduler: str) -> str:
    """The host part of a scheduler address such as ``tls://10.0.0.1:8786``."""
    rest = scheduler.split("://", 1)[-1]
    if rest.startswith("["):  # [ipv6]:port
        return rest[1:].split("]", 1)[0]
    return rest.rsplit(":", 1)[0] if rest.count(":") == 1 else rest


def default_host(scheduler: str) -> str:
    """The interface the workers of ``scheduler`` listen on when ``--host`` is not given.

    Loopback (``127.0.0.1``) for a scheduler on this machine; else the address of
    the interface through which the scheduler is reached (never all interfaces).
    """
    from distributed.utils import get_ip

    host = _scheduler_host(scheduler)
    try:
        resolved = socket.gethostbyname(host) if host else LOOPBACK
    except OSError:
        resolved = host
    if resolved.startswith("127.") or resolved in ("::1", "localhost"):
        return LOOPBACK
    return get_ip(resolved)


def worker_security(args):
    """A :class:`distributed.security.Security` from the ``--tls-*`` options, or ``None``."""
    ca, cert, key = (getattr(args, n, None) for n in ("tls_ca_file", "tls_cert", "tls_key"))
    if not (ca or cert or key):
        return None
    from distributed.security import Security

    return Security(
        tls_ca_file=ca,
        tls_worker_cert=cert,
        tls_worker_key=key,
        tls_client_cert=cert,
        tls_client_key=key,
        require_encryption=True,
    )


def _ids(text) -> list[int] | None:
    """``'4'`` or 4 -> [0, 1, 2, 3]; ``'0,2'`` or [0, 2] -> [0, 2]; ``''`` -> []."""
    if text is None:
        return None
    if isinstance(text, int):
        return list(range(text))
    if not isinstance(text, str):
        return [int(i) for i in text]
    text = text.strip()
    if not text:
        return []
    if "," in text or text.startswith("["):
        return [int(part) for part in text.strip("[]").split(",") if part.strip()]
    return list(range(int(text)))


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line arguments of ``libertem-worker``."""
    parser = argparse.ArgumentParser(
        prog="libertem-worker",
        description="Start one single-threaded worker process per CPU (and per CUDA device) "
        "on this node, tagged with resources, and connect them to a Dask scheduler.",
    )
    parser.add_argument("scheduler", help="scheduler address, e.g. tcp://10.0.0.1:8786")
    parser.add_argument("--cpus", help="number of CPU workers, or a comma-separated id list")
    parser.add_argument("--cudas", help="CUDA device ids (comma-separated) or a count")
    parser.add_argument("--has-cupy", action="store_true", default=None, help="CuPy is usable")
    parser.add_argument("--name", default=None, help="prefix of the worker names")
    parser.add_argument("--num-service", type=int, default=0, help="service workers to start")
    parser.add_argument("--memory-limit", default=0, help="per-worker memory limit (0: none)")
    parser.add_argument("--local-directory", default=None, help="scratch space of the workers")
    parser.add_argument("--preload", action="append", default=[], help=preload_help)
    parser.add_argument(
        "--log-level", default="WARNING", help=f"log level of the workers. {log_values}"
    )
    parser.add_argument(
        "--host",
        default=None,
        help="interface the workers listen on (default: loopback if the scheduler is on "
        "this machine, else the interface that reaches it). Anyone who can connect to a "
        "worker can run code on it: expose workers only on trusted networks, or use TLS",
    )
    parser.add_argument("--tls-ca-file", default=None, help="CA certificate(s) for TLS (PEM)")
    parser.add_argument("--tls-cert", default=None, help="certificate of the workers (PEM)")
    parser.add_argument("--tls-key", default=None, help="private key of the workers (PEM)")
    return parser.parse_args(argv)


async def run_workers(args: WorkerOptions | argparse.Namespace) -> None:
    """Start the workers and wait until they are closed (Ctrl-C or SIGTERM).

    Signals are handled when this runs in the main thread.
    """

    from libertem.utils.devices import detect

    devices = detect()
    cpus = _ids(args.cpus)
    cudas = _ids(args.cudas)
    options = {"memory_limit": getattr(args, "memory_limit", 0)}
    if getattr(args, "local_directory", None):
        options["local_directory"] = args.local_directory
    security = worker_security(args)
    if security is not None:
        options["security"] = security
    spec = cluster_spec(
        cpus=devices["cpus"] if cpus is None else cpus,
        cudas=devices["cudas"] if cudas is None else cudas,
        has_cupy=devices["has_cupy"] if args.has_cupy is None else args.has_cupy,
        name=args.name or socket.gethostname(),
        num_service=getattr(args, "num_service", 0),
        options=options,
        preload=tuple(getattr(args, "preload", ()) or ()),
    )
    host = getattr(args, "host", None) or default_host(args.scheduler)
    spec = prepare_worker_spec(spec, host, getattr(args, "log_level", "WARNING"))
    with worker_environment():
        nannies = [entry["cls"](args.scheduler, **entry["options"]) for entry in spec.values()]
        await asyncio.gather(*nannies)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
    finished = asyncio.gather(*(nanny.finished() for nanny in nannies))
    stopped = asyncio.ensure_future(stop.wait())
    await asyncio.wait([finished, stopped], return_when=asyncio.FIRST_COMPLETED)
    await asyncio.gather(*(nanny.close() for nanny in nannies), return_exceptions=True)


def cli_worker(scheduler, local_directory, cpus, cudas, has_cupy, name, log_level, preload):
    """Start LiberTEM workers on this node for ``scheduler``; return when they stop.

    What the ``libertem-worker`` command runs: one single-threaded worker process
    per CPU in ``cpus`` and per CUDA device in ``cudas`` (ids or counts), tagged
    with resources. Stops on SIGINT / SIGTERM (in the main thread) or when the
    workers are closed.
    """
    set_worker_log_level(log_level or logging.WARNING)
    options = WorkerOptions(
        scheduler=scheduler,
        cpus=cpus,
        cudas=cudas,
        has_cupy=has_cupy,
        name=name,
        local_directory=local_directory,
        preload=tuple(preload or ()),
        log_level=log_level or logging.WARNING,
    )
    asyncio.run(run_workers(options))


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``libertem-worker`` console script."""
    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    set_worker_log_level(args.log_level)
    try:
        asyncio.run(run_workers(args))
    except OSError as e:
        print(f"libertem-worker: cannot start workers for {args.scheduler}: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
