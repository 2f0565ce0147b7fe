"""Helpers of the libertem-server tests: sample data, HTTP and WebSocket clients."""

from __future__ import annotations

import asyncio
import json
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np

NAV, SIG = (16, 16), (64, 64)


def write_sample(folder: Path, name: str = "sample") -> tuple[Path, np.ndarray]:
    """A small version of the README's demo scan as a Merlin acquisition in ``folder``."""
    from libertem.demo import make_scan
    from libertem.utils.sample_data import write_mib_acquisition

    folder.mkdir(parents=True, exist_ok=True)
    data = make_scan(NAV, SIG)
    path = write_mib_acquisition(folder / name, data, pixel_depth="U16")
    return Path(path), data


def http(
    base: str, path: str, token: str | None = None, body=None, method=None, headers=None
) -> tuple[int, bytes, dict]:
    """A request to the server: (status, body, headers)."""
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(base + path, data=data, method=method)
    if token is not None:
        req.add_header("Authorization", f"token {token}")
    for k, v in (headers or {}).items():
        req.add_header(k, v)
    try:
        with urllib.request.urlopen(req, timeout=60) as f:
            return f.status, f.read(), dict(f.headers)
    except urllib.error.HTTPError as e:
        return e.code, e.read(), dict(e.headers)


def ring_image(data: np.ndarray, cx: float, cy: float, ri: float, ro: float) -> np.ndarray:
    """The virtual image of a ring detector, plain numpy: ``ri < r <= ro``."""
    sy, sx = data.shape[-2:]
    y, x = np.mgrid[:sy, :sx]
    r2 = (y - cy) ** 2 + (x - cx) ** 2
    mask = (r2 <= ro**2) & ~(r2 <= ri**2)
    return (data.astype(np.float64) * mask).sum(axis=(-2, -1))


class WsClient:
    """A WebSocket connection of a tab, driven from synchronous test code."""

    def __init__(self, url: str):
        from tornado.websocket import websocket_connect

        async def connect():
            return await websocket_connect(url)

        self.loop = asyncio.new_event_loop()
        try:
            self.conn = self.loop.run_until_complete(connect())
        except BaseException:
            self.loop.close()
            raise

    def send(self, message: dict) -> None:
        async def write():
            await self.conn.write_message(json.dumps(message))

        self.loop.run_until_complete(write())

    def receive(self, timeout: float = 60):
        """The next message: a dict (JSON event) or (header, images) (binary)."""
        from libertem.web.protocol import decode_images

        async def read():
            return await asyncio.wait_for(self.conn.read_message(), timeout)

        message = self.loop.run_until_complete(read())
        if message is None:
            raise ConnectionError("the server closed the connection")
        if isinstance(message, bytes):
            return decode_images(message)
        return json.loads(message)

    def until(self, predicate, timeout: float = 60):
        """Messages up to the first one ``predicate`` accepts (returned last)."""
        seen = []
        deadline = time.monotonic() + timeout
        while True:
            m = self.receive(max(deadline - time.monotonic(), 0.01))
            seen.append(m)
            if predicate(m):
                return seen

    def close(self) -> None:
        async def close():
            self.conn.close()  # writes the close frame: needs the running loop
            await asyncio.sleep(0.05)

        self.loop.run_until_complete(close())
        self.loop.close()


def run_state(run_id: str, state: str):
    """A predicate: the event that ``run_id`` reached ``state``."""

    def check(m):
        return (
            isinstance(m, dict)
            and m.get("event") == "run"
            and m["run"]["id"] == run_id
            and (m["run"]["state"] == state)
        )

    return check


def started(channel: str):
    """A predicate: the first event of a new run on ``channel``."""
    return lambda m: (
        isinstance(m, dict)
        and m.get("event") == "run"
        and (m["run"]["channel"] == channel and m["run"]["state"] == "queued")
    )
