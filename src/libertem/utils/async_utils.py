"""Bridges between blocking generators and asyncio (implemented in
:mod:`libertem.common.async_utils`)."""

from libertem.common.async_utils import (
    AsyncGenToQueueThread,
    MyStopIteration,
    SyncGenToQueueThread,
    adjust_event_loop_policy,
    async_generator,
    async_generator_eager,
    async_to_sync_generator,
    run_agen_get_last,
    run_gen_get_last,
    sync_to_async,
)

__all__ = [
    "AsyncGenToQueueThread",
    "MyStopIteration",
    "SyncGenToQueueThread",
    "adjust_event_loop_policy",
    "async_generator",
    "async_generator_eager",
    "async_to_sync_generator",
    "run_agen_get_last",
    "run_gen_get_last",
    "sync_to_async",
]
