"""How running tasks talk to the main node: worker contexts send messages, a
:class:`TaskCommHandler` on the main node hands them to the callbacks subscribed to
their topic (:class:`CommsDispatcher` reads them from a queue until ``STOP``)."""

from __future__ import annotations

import threading
import uuid
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from libertem.common.exceptions import ExecutorError
from libertem.common.queues import WorkerQueue, WorkerQueueEmpty

if TYPE_CHECKING:
    from libertem.common.executor import TaskProtocol

#: the header topic that ends :meth:`TaskCommHandler.monitor`
STOP_TOPIC = "STOP"


class WorkerContext(ABC):
    """What a running task uses to talk to the main node."""

    @abstractmethod
    def signal(self, ident: str, topic: str, msg_dict: dict[str, Any]) -> None:
        """Send ``msg_dict`` under ``topic`` from the task ``ident`` to the main node."""

    def get_worker_queue(self) -> WorkerQueue:
        """The queue on which the main node sends per-task data to this worker.

        Raises
        ------
        ExecutorError
            If this executor gives its workers no such queue.
        """
        raise ExecutorError(f"{type(self).__name__} provides no per-worker data queue")


class TaskCommHandler(ABC):
    """Main-node side of the messages tasks send: topic -> subscribed callbacks.

    Executors call :meth:`start` before a run's first task and :meth:`done` after
    its last; executors whose workers have a data queue call :meth:`handle_task`
    before each task starts, with that worker's queue. Messages from the workers
    arrive through :meth:`monitor` (or are delivered with :meth:`dispatch`).
    """

    @property
    def subscriptions(self) -> dict[str, list[Callable[[str, dict], None]]]:
        """Topic -> the callbacks subscribed to it."""
        subs = self.__dict__.get("_subscriptions")
        if subs is None:
            subs = self.__dict__["_subscriptions"] = {}
        return subs

    def subscribe(self, topic: str, callback: Callable[[str, dict], None]) -> None:
        """Call ``callback(topic, message)`` for every message of ``topic``."""
        self.subscriptions.setdefault(topic, []).append(callback)

    def dispatch(self, topic: str, message: dict) -> None:
        """Hand ``message`` to the callbacks subscribed to ``topic``."""
        for callback in list(self.subscriptions.get(topic, ())):
            callback(topic, message)

    @abstractmethod
    def handle_task(self, task: TaskProtocol, queue: WorkerQueue) -> None:
        """Prepare ``task`` before it starts; ``queue`` reaches the worker that runs it."""

    def start(self) -> None:
        """A run starts."""
        return None

    def done(self) -> None:
        """A run is over."""
        return None

    def monitor(self, queue: WorkerQueue) -> None:
        """Deliver messages from ``queue`` until a header with topic ``'STOP'`` arrives.

        Headers are dicts ``{'topic': ..., 'message': {...}}``, as the worker
        contexts of our executors send them.
        """
        CommsDispatcher(queue, self.subscriptions).monitor_queue()


class NoopCommHandler(TaskCommHandler):
    """A :class:`TaskCommHandler` with nothing to prepare per task (messages still flow)."""

    def handle_task(self, task: TaskProtocol, queue: WorkerQueue) -> None:
        """Nothing to prepare."""

    def start(self) -> None:
        """Nothing to start."""

    def done(self) -> None:
        """Nothing to finish."""


class SubscriptionManager:
    """Executor-level events (e.g. ``'snooze'``, ``'unsnooze'``) and their subscribers."""

    def __init__(self):
        self._lock = threading.Lock()
        self._callbacks: dict[str, tuple[str, Callable[[str, dict], None]]] = {}

    def subscribe(self, topic: str, callback: Callable[[str, dict], None]) -> str:
        """Call ``callback(topic, msg_dict)`` on every event of ``topic``; returns a key."""
        key = uuid.uuid4().hex
        with self._lock:
            self._callbacks[key] = (topic, callback)
        return key

    def unsubscribe(self, key: str) -> bool:
        """Remove the subscription ``key``; whether it existed."""
        with self._lock:
            return self._callbacks.pop(key, None) is not None

    def send(self, topic: str, msg_dict: dict[str, Any]) -> None:
        """Tell the subscribers of ``topic``."""
        with self._lock:
            callbacks = [cb for t, cb in self._callbacks.values() if t == topic]
        for callback in callbacks:
            callback(topic, msg_dict)


class CommsDispatcher:
    """Reads messages from a worker queue and calls the subscribed callbacks.

    Parameters
    ----------
    queue
        Delivers ``(header, payload)`` pairs; headers are dicts with ``'topic'``
        and ``'message'`` (as sent by a worker context's ``signal``).
    subscriptions
        Topic -> list of ``callback(topic, message)``.

    Notes
    -----
    :meth:`monitor_queue` runs until a header with ``'topic': 'STOP'`` arrives.
    """

    STOP = STOP_TOPIC

    def __init__(self, queue: WorkerQueue, subscriptions: dict[str, list[Callable]]):
        self._queue = queue
        self._subscriptions = subscriptions

    def monitor_queue(self) -> None:
        """Dispatch messages until the stop message."""
        while True:
            try:
                with self._queue.get(block=True, timeout=0.1) as (header, _payload):
                    topic = header.get("topic")
                    if topic == self.STOP:
                        return
                    for callback in self._subscriptions.get(topic, ()):
                        callback(topic, header.get("message", {}))
            except WorkerQueueEmpty:
                continue


__all__ = [
    "STOP_TOPIC",
    "CommsDispatcher",
    "NoopCommHandler",
    "SubscriptionManager",
    "TaskCommHandler",
    "WorkerContext",
]
