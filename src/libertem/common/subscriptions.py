"""A small publish/subscribe hub: callbacks subscribe to topics and get the messages sent there."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable
from typing import Any


class SubscriptionManager:
    """Deliver messages to the callbacks subscribed to their topic.

    Callbacks run in the thread that calls :meth:`send`, in the order they
    subscribed. Subscribing and unsubscribing are safe from any thread, also
    from within a callback.

    Examples
    --------
    >>> hub = SubscriptionManager()
    >>> got = []
    >>> key = hub.subscribe("progress", lambda topic, msg: got.append((topic, msg)))
    >>> hub.send("progress", {"done": 3})
    >>> hub.send("other", {"ignored": True})
    >>> got
    [('progress', {'done': 3})]
    >>> hub.unsubscribe(key), hub.unsubscribe(key)
    (True, False)
    """

    def __init__(self):
        self._lock = threading.Lock()
        self._subscriptions: dict[str, tuple[str, Callable[[str, dict], None]]] = {}

    def subscribe(self, topic: str, callback: Callable[[str, dict], None]) -> str:
        """Call ``callback(topic, msg_dict)`` for every message sent to ``topic``.

        Returns
        -------
        str
            The key that :meth:`unsubscribe` takes.
        """
        key = str(uuid.uuid4())
        with self._lock:
            self._subscriptions[key] = (topic, callback)
        return key

    def unsubscribe(self, key: str) -> bool:
        """Remove a subscription; ``False`` if ``key`` was not (or no longer) subscribed."""
        with self._lock:
            return self._subscriptions.pop(key, None) is not None

    def send(self, topic: str, msg_dict: dict[str, Any]) -> None:
        """Deliver ``msg_dict`` to the callbacks subscribed to ``topic``."""
        with self._lock:
            callbacks = [cb for t, cb in self._subscriptions.values() if t == topic]
        for callback in callbacks:
            callback(topic, msg_dict)


__all__ = ["SubscriptionManager"]
