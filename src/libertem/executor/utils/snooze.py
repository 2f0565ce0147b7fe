"""Snoozing idle clusters: the implementation is :mod:`libertem.common.snooze`."""

from libertem.common.snooze import (
    TOPIC_SNOOZE,
    TOPIC_UNSNOOZE,
    SnoozeManager,
    SnoozeMessage,
    keep_alive,
    keep_alive_context,
)

__all__ = [
    "SnoozeManager",
    "SnoozeMessage",
    "TOPIC_SNOOZE",
    "TOPIC_UNSNOOZE",
    "keep_alive",
    "keep_alive_context",
]
