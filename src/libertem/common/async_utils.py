"""Bridges between blocking generators and asyncio."""

from __future__ import annotations

import asyncio
import functools
import queue as queue_mod
import sys
import threading
from collections.abc import AsyncGenerator, Callable, Generator
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from libertem.common.tracing import attach_to_parent

T = TypeVar("T")

_DONE = object()


def adjust_event_loop_policy() -> None:
    """Choose an asyncio event loop policy that Dask's networking supports.

    On Windows the selector event loop is used (the default proactor loop lacks
    what tornado needs); elsewhere nothing changes.
    """
    if sys.platform.startswith("win"):
        policy_cls = getattr(asyncio, "WindowsSelectorEventLoopPolicy", None)
        if policy_cls is not None and not isinstance(asyncio.get_event_loop_policy(), policy_cls):
            asyncio.set_event_loop_policy(policy_cls())


class MyStopIteration(Exception):
    """Put on the queue of a ``*GenToQueueThread`` after the generator's last item.

    (A :class:`StopIteration` cannot be handed across threads and coroutines.)
    """


class _GenToQueueThread(threading.Thread):
    """Common part of the generator-to-queue threads: stop flag, error, end marker."""

    def __init__(self, q: queue_mod.Queue, span_context, *args, **kwargs):
        kwargs.setdefault("daemon", True)
        super().__init__(*args, **kwargs)
        self._q = q
        self._span_context = span_context
        self._stop_event = threading.Event()
        self._exception: BaseException | None = None

    def get_exception(self) -> BaseException | None:
        """The exception the generator raised, or ``None``."""
        return self._exception

    def stop(self) -> None:
        """Ask the thread to stop after the current item (the generator is closed)."""
        self._stop_event.set()


class SyncGenToQueueThread(_GenToQueueThread):
    """A thread that runs the generator ``gen`` and puts each item into the queue ``q``.

    After the last item (or after :meth:`stop`, or an exception, which
    :meth:`get_exception` then returns) a :class:`MyStopIteration` instance follows.

    Parameters
    ----------
    gen
        The generator.
    q
        A :class:`queue.Queue`.
    span_context
        Tracing context to run ``gen`` in (``None``: none).
    *args, **kwargs
        For :class:`threading.Thread` (``daemon`` defaults to ``True``).
    """

    def __init__(self, gen: Generator, q: queue_mod.Queue, span_context, *args, **kwargs):
        super().__init__(q, span_context, *args, **kwargs)
        self._gen = gen

    def run(self) -> None:
        """Drive the generator into the queue."""
        try:
            with attach_to_parent(self._span_context):
                for item in self._gen:
                    self._q.put(item)
                    if self._stop_event.is_set():
                        break
        except BaseException as e:  # handed to the consumer via get_exception
            self._exception = e
        finally:
            self._gen.close()
            self._q.put(MyStopIteration())


class AsyncGenToQueueThread(_GenToQueueThread):
    """A thread with its own event loop that drives the async generator ``agen`` and
    puts each item into the queue ``q``, then a :class:`MyStopIteration`.

    Parameters
    ----------
    agen
        The async generator.
    q
        A :class:`queue.Queue`.
    span_context
        Tracing context to run ``agen`` in (``None``: none).
    *args, **kwargs
        For :class:`threading.Thread` (``daemon`` defaults to ``True``).
    """

    def __init__(self, agen: AsyncGenerator, q: queue_mod.Queue, span_context, *args, **kwargs):
        super().__init__(q, span_context, *args, **kwargs)
        self._agen = agen

    async def _drive(self) -> None:
        try:
            async for item in self._agen:
                self._q.put(item)
                if self._stop_event.is_set():
                    break
        finally:
            await self._agen.aclose()

    def run(self) -> None:
        """Run the async generator to its end (or :meth:`stop`) in a new event loop."""
        try:
            with attach_to_parent(self._span_context):
                asyncio.run(self._drive())
        except BaseException as e:  # handed to the consumer via get_exception
            self._exception = e
        finally:
            self._q.put(MyStopIteration())


def async_to_sync_generator(agen: AsyncGenerator, pool=None) -> Generator:
    """The items of the async generator ``agen`` as a blocking generator.

    ``agen`` runs in an event loop of its own, in a thread; an exception it raises is
    raised here. Closing this generator stops it. ``pool`` is accepted for
    compatibility (the thread is not taken from a pool).
    """
    q: queue_mod.Queue = queue_mod.Queue()
    thread = AsyncGenToQueueThread(agen, q, None, name="libertem-async-to-sync")
    thread.start()
    try:
        while True:
            item = q.get()
            if isinstance(item, MyStopIteration):
                exc = thread.get_exception()
                if exc is not None:
                    raise exc
                return
            yield item
    finally:
        thread.stop()


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
    "AsyncGenToQueueThread",
    "MyStopIteration",
    "SyncGenToQueueThread",
    "adjust_event_loop_policy",
    "async_generator",
    "async_to_sync_generator",
    "attach_to_parent",
    "async_generator_eager",
    "run_gen_get_last",
    "run_agen_get_last",
    "sync_to_async",
]
