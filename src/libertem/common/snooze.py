"""Scaling an idle local cluster down ("snoozing") and back up on the next use."""

from __future__ import annotations

import contextlib
import enum
import functools
import threading
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from libertem.common.executor import SubscriptionManager


class SnoozeMessage(enum.Enum):
    """The events a :class:`SnoozeManager` sends to its subscribers (topic = value)."""

    SNOOZE = "snooze"
    UNSNOOZE = "unsnooze"


#: topics of the events a :class:`SnoozeManager` sends
TOPIC_SNOOZE = SnoozeMessage.SNOOZE.value
TOPIC_UNSNOOZE = SnoozeMessage.UNSNOOZE.value


class SnoozeManager:
    """Calls ``down()`` after ``timeout`` seconds without use, ``up()`` on the next use.

    Work that needs the workers runs inside :meth:`in_use`; while anything is in
    use the workers are never snoozed. A watcher thread checks for idleness.

    Attributes
    ----------
    keep_alive : int
        Number of active "in use" blocks (0 when idle).
    is_snoozing : bool
        Whether the workers are scaled down.

    Parameters
    ----------
    up
        Brings the workers back (blocking until they are there).
    down
        Scales the workers down.
    timeout
        Seconds of inactivity before snoozing.
    subscriptions
        Told ``'snooze'`` and ``'unsnooze'`` events (with ``{'timeout': ...}``).
    """

    def __init__(
        self,
        *,
        up: Callable[[], None],
        down: Callable[[], None],
        timeout: float,
        subscriptions: SubscriptionManager | None = None,
    ):
        if timeout <= 0:
            raise ValueError(f"snooze timeout must be positive, got {timeout!r}")
        self._up = up
        self._down = down
        self._timeout = float(timeout)
        self._subscriptions = subscriptions
        self._lock = threading.RLock()
        #: how many "in use" blocks are active; snoozing waits until it is 0
        self.keep_alive = 0
        self._last_use = time.monotonic()
        self.is_snoozing = False
        self._stop = threading.Event()
        self._watcher = threading.Thread(target=self._watch, name="libertem-snooze", daemon=True)
        self._watcher.start()

    @property
    def timeout(self) -> float:
        """Seconds of inactivity before snoozing."""
        return self._timeout

    def _send(self, topic: str) -> None:
        if self._subscriptions is not None:
            self._subscriptions.send(topic, {"timeout": self._timeout})

    def _watch(self) -> None:
        interval = max(0.05, min(1.0, self._timeout / 4))
        while not self._stop.wait(interval):
            with self._lock:
                idle = time.monotonic() - self._last_use
                if not self.is_snoozing and self.keep_alive == 0 and idle >= self._timeout:
                    self.snooze()

    def snooze(self) -> None:
        """Scale the workers down now, unless they are in use or snoozing already."""
        with self._lock:
            if self.is_snoozing or self.keep_alive > 0:
                return
            self._down()
            self.is_snoozing = True
        self._send(TOPIC_SNOOZE)

    def unsnooze(self) -> None:
        """Bring the workers back now (if they are snoozing)."""
        with self._lock:
            if not self.is_snoozing:
                return
            self._up()
            self.is_snoozing = False
            self._last_use = time.monotonic()
        self._send(TOPIC_UNSNOOZE)

    @contextlib.contextmanager
    def in_use(self) -> Iterator[None]:
        """Use the workers in the block: they are woken up first and kept awake."""
        with self._lock:
            self.keep_alive += 1
            try:
                self.unsnooze()
            except BaseException:
                self.keep_alive = max(0, self.keep_alive - 1)
                raise
        try:
            yield
        finally:
            with self._lock:
                self.keep_alive = max(0, self.keep_alive - 1)
                self._last_use = time.monotonic()

    def close(self) -> None:
        """Stop watching (the workers stay as they are)."""
        self._stop.set()
        if self._watcher is not threading.current_thread():
            self._watcher.join()


def keep_alive(fn):
    """Decorate an executor method so that it runs inside ``self.snooze_manager.in_use()``.

    The wrapper takes ``(self, *args, **kwargs)``; executors without a snooze
    manager call ``fn`` directly.
    """

    def wrapper(self, *args, **kwargs):
        manager = self.snooze_manager
        if manager is None:
            return fn(self, *args, **kwargs)
        with manager.in_use():
            return fn(self, *args, **kwargs)

    functools.update_wrapper(wrapper, fn)
    del wrapper.__wrapped__
    return wrapper


def keep_alive_context(fn):
    """Decorate a generator method: the workers stay awake until the generator is done.

    The signature of ``fn`` is kept.
    """

    @functools.wraps(fn)
    def wrapper(self, *args, **kwargs):
        manager = self.snooze_manager
        if manager is None:
            yield from fn(self, *args, **kwargs)
            return
        with manager.in_use():
            yield from fn(self, *args, **kwargs)

    return wrapper


__all__ = [
    "SnoozeManager",
    "SnoozeMessage",
    "TOPIC_SNOOZE",
    "TOPIC_UNSNOOZE",
    "TYPE_CHECKING",
    "keep_alive",
    "keep_alive_context",
]
