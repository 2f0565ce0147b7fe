"""The WebSocket of a browser tab: it starts runs and receives their images.

Messages from the tab (JSON):

``{"type": "run", "dataset": id, "channel": name, "analysis": {...}}``
    Start a run (see :mod:`libertem.web.analyses`) shown in the tab's pane
    ``channel``; the run shown there before is no longer watched by this tab, and
    cancelled if no other tab watches it.
``{"type": "watch", "run": id, "channel": name}``
    Show an existing run (e.g. one started by another tab) in pane ``channel``.
``{"type": "unwatch", "dataset": id, "channel": name}``
    Stop showing the run of that pane.
``{"type": "cancel", "run": id}``
    Cancel a run.

To the tab: JSON events ``{"event": "run", "run": {...}}`` (state and progress
changes), ``{"event": "error", ...}`` (a request that could not be served),
``{"event": "datasets", ...}`` (the open datasets changed) and binary image
messages (:mod:`libertem.web.protocol`). Closing the tab stops watching all its
runs, which cancels those nobody else watches.
"""

from __future__ import annotations

import json
import logging

import tornado.websocket

from libertem.web.analyses import AnalysisError
from libertem.web.handlers import check_token
from libertem.web.plan import make_plan
from libertem.web.state import ServerState

log = logging.getLogger(__name__)


class ResultsSocket(tornado.websocket.WebSocketHandler):
    """One tab's connection (a :class:`~libertem.web.runs.Watcher`)."""

    def initialize(self, state: ServerState) -> None:
        self.state = state
        self.current: dict[tuple[str, str], object] = {}
        self.closed = False

    def prepare(self) -> None:
        check_token(self, self.state)

    def open(self) -> None:
        self.state.connections.add(self)
        self.set_nodelay(True)
        datasets = [e.info() for e in self.state.datasets.entries.values()]
        self.send_message({"event": "datasets", "datasets": datasets})

    def on_close(self) -> None:
        self.closed = True
        self.state.connections.discard(self)
        self.state.runs.drop_watcher(self)
        self.current.clear()

    def send_message(self, message: bytes | dict) -> None:
        """Send an image message or a JSON event; ignored once the tab is gone."""
        if self.closed:
            return
        try:
            if isinstance(message, bytes):
                self.write_message(message, binary=True)
            else:
                self.write_message(json.dumps(message))
        except tornado.websocket.WebSocketClosedError:
            self.closed = True

    def _error(self, request: dict, message: str) -> None:
        self.send_message(
            {
                "event": "error",
                "dataset": request.get("dataset"),
                "channel": request.get("channel"),
                "message": message,
            }
        )

    def _replace(self, key: tuple[str, str], run) -> None:
        old = self.current.pop(key, None)
        if old is not None and old is not run:
            self.state.runs.unwatch(old, self)
        if run is not None:
            self.current[key] = run

    def on_message(self, message) -> None:
        try:
            request = json.loads(message)
            if not isinstance(request, dict):
                raise ValueError("a message must be a JSON object")
        except ValueError as e:
            self._error({}, f"bad message: {e}")
            return
        kind = request.get("type")
        runs = self.state.runs
        if kind == "run":
            entry = self.state.datasets.entries.get(request.get("dataset"))
            if entry is None:
                self._error(request, f"no open dataset {request.get('dataset')!r}")
                return
            channel = str(request.get("channel", "result"))
            spec = request.get("analysis")
            try:
                plan = make_plan(spec, entry.nav_shape, entry.sig_shape)
            except (AnalysisError, TypeError, KeyError) as e:
                self._error(request, str(e))
                return
            key = (entry.id, channel)
            self._replace(key, None)
            self.current[key] = runs.start(entry, channel, spec, plan, self)
        elif kind == "watch":
            run = runs.runs.get(request.get("run"))
            if run is None:
                self._error(request, f"no run {request.get('run')!r}")
                return
            self._replace((run.dataset.id, str(request.get("channel", run.channel))), run)
            runs.watch(run, self)
        elif kind == "unwatch":
            self._replace((request.get("dataset"), str(request.get("channel"))), None)
        elif kind == "cancel":
            run = runs.runs.get(request.get("run"))
            if run is not None:
                runs.cancel(run)
        else:
            self._error(request, f"unknown message type {kind!r}")
