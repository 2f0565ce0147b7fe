"""Bridges between blocking generators and asyncio."""

from __future__ import annotations

import asyncio
import functools
import queue as queue_mod
import threading
from collections.abc import AsyncGenerator, Callable, Generator
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")

_DONE = object()


async def async_generator(
    gen: Generator[T, None, None], pool: ThreadPoolExecutor | None = None
) -> AsyncGenerator[T, None]:
    """Drive a blocking generator from a thread, one item per step, as an async generator.

    Parameters
    ----------
    gen
        The generator; each ``next()`` runs in ``pool`` (or asyncio's default pool).
    pool
        Thread pool to use.

    Closing the async generator closes ``gen`` (in a thread as well).
    """
    loop = asyncio.get_running_loop()
    try:
        while True:
            item = await loop.run_in_executor(pool, next, gen, _DONE)
            if item is _DONE:
                return
            yield item
    finally:
        await loop.run_in_executor(pool, gen.close)


async def async_generator_eager(
    gen: Generator[T, None, None], pool: ThreadPoolExecutor | None = None
) -> AsyncGenerator[T, None]:
    """Like :func:`async_generator`, but ``gen`` runs ahead in its own thread.

    Items are produced without waiting for the consumer; they are handed over in
    order through a queue. An exception in ``gen`` is raised in the consumer.
    """
    items: queue_mod.Queue = queue_mod.Queue()
    stop = threading.Event()

    def produce():
        try:
            for item in gen:
                items.put((True, item))
                if stop.is_set():
                    break
        except BaseException as e:  # handed to the consumer
            items.put((False, e))
            return
        finally:
            gen.close()
        items.put((True, _DONE))

    loop = asyncio.get_running_loop()
    worker = threading.Thread(target=produce, name="libertem-eager-generator", daemon=True)
    worker.start()
    try:
        while True:
            ok, item = await loop.run_in_executor(pool, items.get)
            if not ok:
                raise item
            if item is _DONE:
                return
            yield item
    finally:
        stop.set()


def run_gen_get_last(gen: Generator[T, None, None]) -> T:
    """Exhaust ``gen`` and return its last item.

    Raises
    ------
    ValueError
        If ``gen`` yields nothing.
    """
    last = _DONE
    for item in gen:
        last = item
    if last is _DONE:
        raise ValueError("the generator yielded nothing")
    return last


async def run_agen_get_last(gen: AsyncGenerator[T, None]) -> T:
    """Exhaust the async generator ``gen`` and return its last item.

    Raises
    ------
    ValueError
        If ``gen`` yields nothing.
    """
    last = _DONE
    async for item in gen:
        last = item
    if last is _DONE:
        raise ValueError("the async generator yielded nothing")
    return last


async def sync_to_async(
    fn: Callable[..., T], pool: ThreadPoolExecutor | None = None, *args, **kwargs
) -> T:
    """Run the blocking ``fn(*args, **kwargs)`` in ``pool`` (default: the loop's) and await it."""
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(pool, functools.partial(fn, *args, **kwargs))


__all__ = [
    "async_generator",
    "async_generator_eager",
    "run_gen_get_last",
    "run_agen_get_last",
    "sync_to_async",
]
