"""The server: a tornado application over a :class:`~libertem.api.Context`.

:class:`WebServer` runs in the current event loop (:meth:`WebServer.start`) or in
a thread of its own (:meth:`WebServer.start_in_thread`, for scripts, tests and
benchmarks). It listens on 127.0.0.1 unless told otherwise.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import socket
import threading
from pathlib import Path

import tornado.httpserver
import tornado.netutil
import tornado.web

from libertem.web.handlers import NotFoundHandler, routes
from libertem.web.state import ContextCode, ServerState

log = logging.getLogger(__name__)


def make_app(state: ServerState) -> tornado.web.Application:
    """The tornado application serving ``state``."""
    return tornado.web.Application(
        routes(state),
        default_handler_class=NotFoundHandler,
        default_handler_args={"state": state},
        websocket_max_message_size=1024 * 1024,
        compress_response=False,
        log_function=_log_request,
    )


def _log_request(handler: tornado.web.RequestHandler) -> None:
    """Server errors are logged as errors, everything else at debug level."""
    status = handler.get_status()
    level = logging.ERROR if status >= 500 else logging.DEBUG
    request = handler.request
    log.log(level, "%d %s %s", status, request.method, request.path)


class WebServer:
    """The GUI's server.

    Parameters
    ----------
    ctx
        The Context that opens datasets and runs the UDFs.
    root
        The folder the file browser shows; nothing outside it is listed or opened.
    token
        The access token; by default a random one.
    host
        Where to listen (default ``127.0.0.1``: this machine only).
    port
        The port; ``0`` picks a free one.
    context_code
        How generated scripts create their Context.
    """

    def __init__(
        self,
        ctx,
        root: str | Path = ".",
        token: str | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        context_code: ContextCode | None = None,
    ):
        self.state = ServerState(
            ctx=ctx,
            root=Path(root),
            token=token or secrets.token_hex(24),
            context_code=context_code or ContextCode(),
        )
        self.host = host
        self.port = port
        self._http: tornado.httpserver.HTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopped: asyncio.Event | None = None

    @property
    def token(self) -> str:
        """The access token."""
        return self.state.token

    @property
    def url(self) -> str:
        """The address of the app, with the token."""
        host = self.host if self.host not in ("0.0.0.0", "::", "") else socket.gethostname()
        if ":" in host:
            host = f"[{host}]"
        return f"http://{host}:{self.port}/?token={self.token}"

    async def start(self) -> None:
        """Listen and serve in the running event loop."""
        self._loop = asyncio.get_running_loop()
        self.state.attach_loop(self._loop)
        self._http = tornado.httpserver.HTTPServer(make_app(self.state))
        sockets = tornado.netutil.bind_sockets(self.port, address=self.host)
        self._http.add_sockets(sockets)
        self.port = sockets[0].getsockname()[1]
        self.state.port = self.port

    def listening_addresses(self) -> list[tuple]:
        """The ``(host, port, ...)`` of each listening socket."""
        return [s.getsockname() for s in self._http._sockets.values()] if self._http else []

    async def serve_forever(self) -> None:
        """Start, then serve until :meth:`stop` is called."""
        self._stopped = asyncio.Event()
        await self.start()
        await self._stopped.wait()
        await self._shutdown()

    async def _shutdown(self) -> None:
        if self._http is not None:
            self._http.stop()
            await self._http.close_all_connections()
        for conn in list(self.state.connections):
            conn.close()
        await asyncio.to_thread(self.state.close)

    def start_in_thread(self) -> WebServer:
        """Serve from a daemon thread with its own event loop; returns once listening."""
        ready = threading.Event()
        errors: list[BaseException] = []

        def main():
            async def serve():
                self._stopped = asyncio.Event()
                try:
                    await self.start()
                except BaseException as e:
                    errors.append(e)
                    return
                finally:
                    ready.set()
                await self._stopped.wait()
                await self._shutdown()

            asyncio.run(serve())

        self._thread = threading.Thread(target=main, name="libertem-web-server", daemon=True)
        self._thread.start()
        ready.wait()
        if errors:
            raise errors[0]
        return self

    def stop(self) -> None:
        """Stop serving (from any thread); waits for a server thread to end."""
        if self._loop is not None and self._stopped is not None:
            try:
                self._loop.call_soon_threadsafe(self._stopped.set)
            except RuntimeError:
                pass
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=30)
