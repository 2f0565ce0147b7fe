"""``libertem-worker``: start LiberTEM workers on this node and join a Dask scheduler."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys

from libertem.executor.dask import cluster_spec, worker_environment


def _ids(text: str | None) -> list[int] | None:
    """``'4'`` -> [0, 1, 2, 3]; ``'0,2'`` -> [0, 2]; ``''`` -> []."""
    if text is None:
        return None
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
    return parser.parse_args(argv)


async def run_workers(args: argparse.Namespace) -> None:
    """Start the workers and wait until they are closed (Ctrl-C or SIGTERM)."""
    import socket

    from libertem.utils.devices import detect

    devices = detect()
    cpus = _ids(args.cpus)
    cudas = _ids(args.cudas)
    options = {"memory_limit": args.memory_limit}
    if args.local_directory:
        options["local_directory"] = args.local_directory
    spec = cluster_spec(
        cpus=devices["cpus"] if cpus is None else cpus,
        cudas=devices["cudas"] if cudas is None else cudas,
        has_cupy=devices["has_cupy"] if args.has_cupy is None else args.has_cupy,
        name=args.name or socket.gethostname(),
        num_service=args.num_service,
        options=options,
    )
    with worker_environment():
        nannies = [entry["cls"](args.scheduler, **entry["options"]) for entry in spec.values()]
        await asyncio.gather(*nannies)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    finished = asyncio.gather(*(nanny.finished() for nanny in nannies))
    stopped = asyncio.ensure_future(stop.wait())
    await asyncio.wait([finished, stopped], return_when=asyncio.FIRST_COMPLETED)
    await asyncio.gather(*(nanny.close() for nanny in nannies), return_exceptions=True)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``libertem-worker`` console script."""
    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    try:
        asyncio.run(run_workers(args))
    except OSError as e:
        print(f"libertem-worker: cannot start workers for {args.scheduler}: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
