"""The HTTP routes of the server (tornado request handlers).

Every route checks the access token first: a request without one gets 401, one
with a wrong token 403. The token comes as ``?token=...``, as the header
``Authorization: token ...``, or (for GET requests only: pages, static files,
downloads) as the cookie set when the page was opened with the token.
"""

from __future__ import annotations

import asyncio
import hmac
import json
from importlib import resources

import tornado.web

from libertem.web import codegen, exports
from libertem.web.datasets import OpenError, detect, formats
from libertem.web.paths import PathRefused, list_directory, resolve
from libertem.web.state import ServerState

STATIC = resources.files("libertem.web") / "static"


def cookie_name(state: ServerState) -> str:
    """The name of the token cookie (one per server port)."""
    return f"libertem_token_{state.port}"


def check_token(handler: tornado.web.RequestHandler, state: ServerState) -> bool:
    """Raise 401/403 unless the request carries the server's token.

    Returns whether the token came in the URL (so the caller may set the cookie).
    """
    given = handler.get_query_argument("token", None)
    from_query = given is not None
    if given is None:
        auth = handler.request.headers.get("Authorization", "")
        if auth.lower().startswith("token "):
            given = auth[6:].strip()
    if given is None and handler.request.method in ("GET", "HEAD"):
        given = handler.get_cookie(cookie_name(state))
    if not given:
        raise tornado.web.HTTPError(401, reason="access token required")
    if not hmac.compare_digest(given.encode(), state.token.encode()):
        raise tornado.web.HTTPError(403, reason="wrong access token")
    return from_query


class BaseHandler(tornado.web.RequestHandler):
    """Checks the token; JSON errors for API routes."""

    def initialize(self, state: ServerState) -> None:
        self.state = state

    def prepare(self) -> None:
        if check_token(self, self.state):
            self.set_cookie(
                cookie_name(self.state), self.state.token, httponly=True, samesite="Strict"
            )

    def set_default_headers(self) -> None:
        self.set_header("Cache-Control", "no-store")
        self.set_header("X-Content-Type-Options", "nosniff")

    def write_error(self, status_code: int, **kwargs) -> None:
        message = self._reason
        exc = kwargs.get("exc_info", (None, None, None))[1]
        if isinstance(exc, tornado.web.HTTPError) and exc.log_message:
            message = exc.log_message
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps({"error": message}))

    def json_body(self) -> dict:
        try:
            body = json.loads(self.request.body or b"{}")
        except json.JSONDecodeError as e:
            raise tornado.web.HTTPError(400, f"request body is not JSON: {e}") from e
        if not isinstance(body, dict):
            raise tornado.web.HTTPError(400, "request body must be a JSON object")
        return body

    def send_json(self, data, status: int = 200) -> None:
        self.set_status(status)
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps(data))

    def resolve(self, relative: str):
        try:
            return resolve(self.state.root, relative)
        except PathRefused as e:
            raise tornado.web.HTTPError(403, str(e)) from e


class NotFoundHandler(BaseHandler):
    """Unknown routes: 404, after the token check."""

    def get(self, *args) -> None:
        raise tornado.web.HTTPError(404, "no such page")

    post = delete = put = get


class IndexHandler(BaseHandler):
    """The page of the app."""

    def get(self) -> None:
        self.set_header("Content-Type", "text/html; charset=utf-8")
        self.finish((STATIC / "index.html").read_bytes())


class StaticHandler(tornado.web.StaticFileHandler):
    """The built front end (scripts, styles), behind the token."""

    def initialize(self, state: ServerState, path: str) -> None:
        super().initialize(path=path)
        self.state = state

    def prepare(self) -> None:
        check_token(self, self.state)


class ConfigHandler(BaseHandler):
    """What the page needs to know about the server."""

    def get(self) -> None:
        from libertem import __version__

        self.send_json(
            {
                "version": __version__,
                "root": self.state.root.name or str(self.state.root),
                "executor": self.state.context_code.description,
                "colormaps": list(exports.COLORMAPS),
                "formats": formats(),
            }
        )


class FilesHandler(BaseHandler):
    """The entries of a folder below the root: ``?path=relative/folder``."""

    def get(self) -> None:
        try:
            self.send_json(list_directory(self.state.root, self.get_query_argument("path", "")))
        except PathRefused as e:
            raise tornado.web.HTTPError(403, str(e)) from e


class DetectHandler(BaseHandler):
    """POST ``{"path": ...}``: the detected format and parameters of a file."""

    async def post(self) -> None:
        path = self.json_body().get("path", "")
        real = self.resolve(path if isinstance(path, str) else "")
        try:
            found = await asyncio.to_thread(detect, real)
        except OpenError as e:
            self.send_json({"error": e.message, "field": e.field}, 400)
            return
        self.send_json({"path": path, **found})


class DatasetsHandler(BaseHandler):
    """GET: the open datasets; POST ``{"path", "filetype", "params"}``: open one."""

    def get(self) -> None:
        self.send_json([e.info() for e in self.state.datasets.entries.values()])

    async def post(self) -> None:
        body = self.json_body()
        path, filetype = body.get("path"), body.get("filetype", "auto")
        if not isinstance(path, str) or not path:
            self.send_json({"error": "path: choose a file", "field": "path"}, 400)
            return
        if not isinstance(filetype, str):
            self.send_json({"error": "filetype must be a string", "field": "filetype"}, 400)
            return
        real = self.resolve(path)
        try:
            entry = await asyncio.to_thread(
                self.state.datasets.open,
                self.state.ctx,
                filetype,
                path,
                real,
                body.get("params") or {},
            )
        except OpenError as e:
            self.send_json({"error": e.message, "field": e.field}, 400)
            return
        self.state.broadcast({"event": "datasets", "datasets": _dataset_list(self.state)})
        self.send_json(entry.info(), 201)


class DatasetHandler(BaseHandler):
    """DELETE: close an open dataset (its runs are cancelled)."""

    def delete(self, dataset_id: str) -> None:
        try:
            entry = self.state.datasets.close(dataset_id)
        except KeyError:
            raise tornado.web.HTTPError(404, f"no open dataset {dataset_id!r}") from None
        self.state.runs.drop_dataset(entry)
        self.state.broadcast({"event": "datasets", "datasets": _dataset_list(self.state)})
        self.send_json({"closed": dataset_id})


def _dataset_list(state: ServerState) -> list[dict]:
    return [e.info() for e in state.datasets.entries.values()]


class StatusHandler(BaseHandler):
    """Open datasets and all known runs (``active`` lists the running ones)."""

    def get(self) -> None:
        runs = self.state.runs
        self.send_json(
            {
                "datasets": _dataset_list(self.state),
                "runs": [r.info() for r in list(runs.runs.values())],
                "active": [r.id for r in runs.active_runs()],
                "connections": len(self.state.connections),
            }
        )


class RunHandlerBase(BaseHandler):
    """A finished run by id."""

    def get_run(self, run_id: str):
        run = self.state.runs.runs.get(run_id)
        if run is None:
            raise tornado.web.HTTPError(404, f"no run {run_id!r} (finished runs are kept a while)")
        return run

    def attachment(self, name: str, content_type: str, data: bytes) -> None:
        self.set_header("Content-Type", content_type)
        self.set_header("Content-Disposition", f'attachment; filename="{name}"')
        self.finish(data)


class DownloadHandler(RunHandlerBase):
    """``/api/runs/<run>/download/<channel>.<npy|tif|png>`` of a finished run.

    ``.tif`` takes ``bits`` (16 or 32); ``.png`` takes ``cmap``, ``log`` (0/1),
    ``low`` and ``high`` (percentiles), as the GUI's colour scale.
    """

    def get(self, run_id: str, channel: str, ext: str) -> None:
        run = self.get_run(run_id)
        if run.arrays is None:
            raise tornado.web.HTTPError(409, f"run {run_id} has no final result ({run.state})")
        if channel not in run.arrays:
            raise tornado.web.HTTPError(404, f"run {run_id} has no result {channel!r}")
        value = run.arrays[channel]
        code = self.state.code_context(run.dataset, run.plan)
        name = f"{code.base_name}_{channel}.{ext}"
        try:
            if ext == "npy":
                self.attachment(name, "application/octet-stream", exports.to_npy(value))
            elif ext == "tif":
                bits = int(self.get_query_argument("bits", "32"))
                self.attachment(name, "image/tiff", exports.to_tiff(value, bits))
            else:
                png = exports.to_png(
                    value,
                    cmap=self.get_query_argument("cmap", "gray"),
                    log=self.get_query_argument("log", "0") in ("1", "true"),
                    low=float(self.get_query_argument("low", "0")),
                    high=float(self.get_query_argument("high", "100")),
                )
                self.attachment(name, "image/png", png)
        except (exports.ExportError, ValueError) as e:
            raise tornado.web.HTTPError(400, str(e)) from e


class CodeHandler(RunHandlerBase):
    """``/api/runs/<run>/script.py`` and ``/api/runs/<run>/notebook.ipynb``."""

    def get(self, run_id: str, kind: str) -> None:
        run = self.get_run(run_id)
        code = self.state.code_context(run.dataset, run.plan)
        if kind == "script.py":
            text = codegen.python_script(run.plan, code)
            self.attachment(f"{code.base_name}.py", "text/x-python; charset=utf-8", text.encode())
        else:
            text = codegen.notebook(run.plan, code)
            self.attachment(f"{code.base_name}.ipynb", "application/x-ipynb+json", text.encode())


def routes(state: ServerState) -> list:
    """The URL routes of the app."""
    from libertem.web.websocket import ResultsSocket

    s = {"state": state}
    return [
        (r"/", IndexHandler, s),
        (r"/static/(.*)", StaticHandler, {**s, "path": str(STATIC)}),
        (r"/api/config", ConfigHandler, s),
        (r"/api/files", FilesHandler, s),
        (r"/api/detect", DetectHandler, s),
        (r"/api/datasets", DatasetsHandler, s),
        (r"/api/datasets/([A-Za-z0-9]+)", DatasetHandler, s),
        (r"/api/status", StatusHandler, s),
        (r"/api/runs/([A-Za-z0-9]+)/download/([A-Za-z_]+)\.(npy|tif|png)", DownloadHandler, s),
        (r"/api/runs/([A-Za-z0-9]+)/(script\.py|notebook\.ipynb)", CodeHandler, s),
        (r"/api/ws", ResultsSocket, s),
    ]
