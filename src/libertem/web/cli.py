"""The ``libertem-server`` command (also ``python -m libertem.web``)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
import webbrowser

from libertem.web.state import ContextCode


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line options."""
    parser = argparse.ArgumentParser(
        prog="libertem-server",
        description="A web GUI for interactive exploration of 4D-STEM datasets with LiberTEM.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (127.0.0.1)")
    parser.add_argument("--port", type=int, default=0, help="port (default: a free one)")
    parser.add_argument("--token", default=None, help="access token (default: random)")
    parser.add_argument("--no-browser", action="store_true", help="do not open a browser")
    parser.add_argument(
        "--local-directory",
        default=".",
        help="root of the file browser; nothing outside it is listed or opened (default: .)",
    )
    parser.add_argument("--cpus", type=int, default=None, help="number of CPU workers")
    parser.add_argument(
        "--executor",
        default="default",
        help="'default' (a local Dask cluster), 'threads', or the address of a Dask scheduler",
    )
    args = parser.parse_args(argv)
    if not os.path.isdir(args.local_directory):
        parser.error(f"--local-directory {args.local_directory!r} is not a folder")
    if args.cpus is not None and args.cpus < 1:
        parser.error("--cpus must be at least 1")
    if args.token is not None and not args.token:
        parser.error("--token must not be empty")
    return args


def make_context(executor: str, cpus: int | None):
    """The Context for ``--executor`` and ``--cpus``, and how scripts make one like it."""
    from libertem.api import Context

    if executor == "default":
        if cpus is None:
            return Context(), ContextCode("Context()", (), "local Dask cluster")
        ctx = Context.make_with("dask", cpus=cpus)
        code = f'Context.make_with("dask", cpus={cpus})'
        return ctx, ContextCode(code, (), f"local Dask cluster, {cpus} CPUs")
    if executor == "threads":
        ctx = Context.make_with("threads", cpus=cpus)
        arg = "" if cpus is None else f", cpus={cpus}"
        return ctx, ContextCode(f'Context.make_with("threads"{arg})', (), "thread pool")
    if "://" in executor or ":" in executor:
        from libertem.executor.dask import DaskJobExecutor

        ctx = Context(executor=DaskJobExecutor.connect(executor))
        code = f"Context(executor=DaskJobExecutor.connect({executor!r}))"
        imports = ("from libertem.executor.dask import DaskJobExecutor",)
        return ctx, ContextCode(code, imports, f"Dask scheduler at {executor}")
    raise SystemExit(
        f"libertem-server: --executor must be 'default', 'threads' or a scheduler address, "
        f"got {executor!r}"
    )


def main(argv: list[str] | None = None) -> int:
    """Start the server, print its URL (and open it), serve until interrupted."""
    from libertem.web.server import WebServer

    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    ctx, code = make_context(args.executor, args.cpus)
    server = WebServer(
        ctx,
        root=args.local_directory,
        token=args.token,
        host=args.host,
        port=args.port,
        context_code=code,
    )

    async def run():
        stop = asyncio.Event()
        try:
            asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
        except (NotImplementedError, RuntimeError):  # no signal handlers on this platform
            pass
        await server.start()
        print(f"libertem-server: serving {server.state.root} ({code.description})", flush=True)
        print(f"open this URL in a browser: {server.url}", flush=True)
        if not args.no_browser:
            webbrowser.open(server.url)
        await stop.wait()

    try:
        asyncio.run(run())
    except KeyboardInterrupt:
        print("libertem-server: stopped", file=sys.stderr)
    finally:
        server.state.close()
        ctx.close()
    return 0
