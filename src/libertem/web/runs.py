"""Runs of the GUI: UDFs executed with ``Context.run_udf_iter`` in worker threads.

Every partial result becomes a binary image message (:mod:`libertem.web.protocol`)
for the run's *watchers* (the browser tabs that show it); updates come at most
every ``min_interval`` seconds, the first and the last always. A run with no
watcher left is cancelled: a tab that draws a new detector stops watching the
stale run, and a closed tab stops watching all of its runs. Finished runs keep
their results for downloads.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import threading
import time
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from libertem.web.analyses import as_2d
from libertem.web.plan import Plan
from libertem.web.protocol import encode_images

log = logging.getLogger(__name__)


class Watcher(Protocol):
    """Something that shows runs, e.g. a WebSocket connection."""

    def send_message(self, message: bytes | dict) -> None:
        """Send a binary image message or a JSON event (called in the event loop)."""


@dataclass
class Run:
    """One execution of a :class:`~libertem.web.plan.Plan` on an open dataset."""

    id: str
    dataset: Any
    channel: str
    spec: dict
    plan: Plan
    state: str = "queued"
    error: str | None = None
    progress: tuple[int, int] = (0, 0)
    arrays: dict[str, np.ndarray] | None = None
    last_message: bytes | None = None
    watchers: set = field(default_factory=set)
    cancel_event: threading.Event = field(default_factory=threading.Event)
    started: float = field(default_factory=time.time)
    finished: float | None = None

    def info(self) -> dict:
        """JSON-able description."""
        return {
            "id": self.id,
            "dataset": self.dataset.id,
            "channel": self.channel,
            "kind": self.plan.kind,
            "label": self.plan.label,
            "title": self.plan.title,
            "spec": self.spec,
            "state": self.state,
            "error": self.error,
            "progress": list(self.progress),
            "watchers": len(self.watchers),
            "outputs": list(self.plan.outputs),
        }

    @property
    def active(self) -> bool:
        """Whether the run is still queued or running."""
        return self.state in ("queued", "running")


def display_images(plan: Plan, arrays: dict, valid: np.ndarray | None, dataset) -> dict:
    """The 2D float32 images the GUI shows, NaN where ``valid`` (nav-shaped) is False."""
    nav_shape, sig_shape = tuple(dataset.nav_shape), tuple(dataset.sig_shape)
    nav_2d, sig_2d = as_2d(nav_shape), as_2d(sig_shape)
    out = {}
    for name, value in arrays.items():
        value = np.asarray(value)
        if plan.nav_kind:
            if value.shape != nav_shape:
                continue  # e.g. the (..., 2) field: shown from its components
            image = value.astype(np.float32)
            if valid is not None:
                image = np.where(valid, image, np.float32(np.nan))
            out[name] = image.reshape(nav_2d)
        elif value.size == sig_2d[0] * sig_2d[1]:
            out[name] = value.astype(np.float32).reshape(sig_2d)
    return out


class RunManager:
    """Starts, publishes, cancels and keeps the runs of one server.

    Parameters
    ----------
    ctx
        The :class:`~libertem.api.Context` the runs use.
    loop
        The server's event loop (watchers are called in it).
    min_interval
        Least time in seconds between two updates of a run.
    keep
        How many finished runs keep their results for downloads.
    """

    def __init__(
        self, ctx, loop: asyncio.AbstractEventLoop, min_interval: float = 0.05, keep: int = 100
    ):
        self.ctx = ctx
        self.loop = loop
        self.min_interval = min_interval
        self.keep = keep
        self.runs: OrderedDict[str, Run] = OrderedDict()
        self._ids = itertools.count(1)
        self._pool = ThreadPoolExecutor(max_workers=8, thread_name_prefix="libertem-web-run")
        self._lock = threading.Lock()

    # watchers -----------------------------------------------------------------
    def start(self, dataset, channel: str, spec: dict, plan: Plan, watcher: Watcher) -> Run:
        """Start ``plan`` on ``dataset`` for ``watcher`` (call in the event loop)."""
        run = Run(id=f"r{next(self._ids)}", dataset=dataset, channel=channel, spec=spec, plan=plan)
        n_total = plan.n_frames(tuple(dataset.nav_shape))
        run.progress = (0, n_total)
        run.watchers.add(watcher)
        with self._lock:
            self.runs[run.id] = run
            self._evict()
        self._event(run)
        self._pool.submit(self._execute, run)
        return run

    def watch(self, run: Run, watcher: Watcher) -> None:
        """Let ``watcher`` follow ``run``: it gets the latest image and all updates."""
        run.watchers.add(watcher)
        watcher.send_message({"event": "run", "run": run.info()})
        if run.last_message is not None:
            watcher.send_message(run.last_message)

    def unwatch(self, run: Run, watcher: Watcher) -> None:
        """``watcher`` stops following ``run``; a run nobody follows is cancelled."""
        run.watchers.discard(watcher)
        if not run.watchers and run.active:
            self.cancel(run)

    def drop_watcher(self, watcher: Watcher) -> None:
        """``watcher`` is gone (its tab closed): unwatch all its runs."""
        for run in list(self.runs.values()):
            if watcher in run.watchers:
                self.unwatch(run, watcher)

    def cancel(self, run: Run) -> None:
        """Stop ``run`` after the partition in progress."""
        if run.active:
            run.cancel_event.set()

    def active_runs(self) -> list[Run]:
        """The runs that are queued or running."""
        return [run for run in list(self.runs.values()) if run.active]

    def close(self) -> None:
        """Cancel every run and wait for the worker threads."""
        for run in self.active_runs():
            run.cancel_event.set()
        self._pool.shutdown(wait=True, cancel_futures=True)

    def drop_dataset(self, dataset) -> None:
        """Cancel and forget the runs of ``dataset`` (it is being closed)."""
        for run in list(self.runs.values()):
            if run.dataset is dataset:
                run.cancel_event.set()
                with self._lock:
                    self.runs.pop(run.id, None)

    def _evict(self) -> None:
        finished = [r for r in self.runs.values() if not r.active]
        for run in finished[: max(0, len(finished) - self.keep)]:
            self.runs.pop(run.id, None)

    # publishing ----------------------------------------------------------------
    def _publish(self, run: Run, message: bytes | dict) -> None:
        if isinstance(message, bytes):
            run.last_message = message
        for watcher in list(run.watchers):
            try:
                watcher.send_message(message)
            except Exception:  # a watcher that is going away must not stop the others
                log.debug("could not send to a watcher", exc_info=True)

    def _send(self, run: Run, message: bytes | dict) -> None:
        try:
            self.loop.call_soon_threadsafe(self._publish, run, message)
        except RuntimeError:  # the loop is closed: the server is shutting down
            pass

    def _event(self, run: Run) -> None:
        self._send(run, {"event": "run", "run": run.info()})

    # execution -----------------------------------------------------------------
    def _images_message(self, run: Run, arrays: dict, valid, final: bool) -> bytes:
        images = display_images(run.plan, arrays, valid, run.dataset)
        header = {
            "run": run.id,
            "dataset": run.dataset.id,
            "channel": run.channel,
            "final": final,
            "progress": list(run.progress),
        }
        return encode_images(header, images)

    def _execute(self, run: Run) -> None:
        if run.cancel_event.is_set():
            self._finish(run, "cancelled")
            return
        run.state = "running"
        self._event(run)
        plan, ds = run.plan, run.dataset
        nav_shape = tuple(ds.nav_shape)
        roi = None if plan.roi is None else plan.roi.reshape(nav_shape)
        total = run.progress[1]
        gen = None
        outcome = "done"
        try:
            gen = self.ctx.run_udf_iter(dataset=ds.ds, udf=plan.udf, roi=plan.roi)
            last, sent_at = None, 0.0
            for partial in gen:
                if run.cancel_event.is_set():
                    break
                valid = np.asarray(partial.damage.data, dtype=bool).reshape(nav_shape)
                if roi is not None:
                    valid = valid & roi
                done = int(np.count_nonzero(valid))
                run.progress = (done, total)
                last = (partial, valid)
                now = time.monotonic()
                if now - sent_at >= self.min_interval and done < total:
                    arrays = plan.arrays(partial.buffers[0], max(done, 1))
                    self._send(run, self._images_message(run, arrays, valid, False))
                    sent_at = now
            if run.cancel_event.is_set():
                outcome = "cancelled"
            elif last is None:
                raise RuntimeError("the run produced no result")
            else:
                run.progress = (total, total)
                run.arrays = plan.arrays(last[0].buffers[0], max(total, 1))
                self._send(run, self._images_message(run, run.arrays, roi, True))
        except Exception as e:
            log.info("run %s failed", run.id, exc_info=True)
            run.error = f"{type(e).__name__}: {e}"
            outcome = "error"
        finally:
            if gen is not None:
                gen.close()
        self._finish(run, outcome)

    def _finish(self, run: Run, state: str) -> None:
        run.state = state
        run.finished = time.time()
        self._event(run)
