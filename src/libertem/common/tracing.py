"""Carrying the caller's context (tracing spans, context variables) into worker threads.

OpenTelemetry is optional: without it, spans are not recorded, but
:class:`TracedThreadPoolExecutor` still runs every task in a copy of the
submitting thread's :mod:`contextvars` context, which is where tracing
libraries keep the current span.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor


@contextlib.contextmanager
def attach_to_parent(span_context) -> Iterator[None]:
    """Make ``span_context`` the parent of spans started in the ``with`` block.

    Does nothing when ``span_context`` is ``None`` or OpenTelemetry is not installed.
    """
    if span_context is None:
        yield
        return
    try:
        from opentelemetry import context, trace
    except ImportError:
        yield
        return
    token = context.attach(trace.set_span_in_context(trace.NonRecordingSpan(span_context)))
    try:
        yield
    finally:
        context.detach(token)


class TracedThreadPoolExecutor(ThreadPoolExecutor):
    """A thread pool whose tasks run in the context of the thread that submitted them.

    Parameters
    ----------
    tracer
        The tracer the caller uses (kept for its spans; may be ``None``).
    *args, **kwargs
        As for :class:`concurrent.futures.ThreadPoolExecutor`.
    """

    def __init__(self, tracer, *args, **kwargs):
        self.tracer = tracer
        super().__init__(*args, **kwargs)

    def submit(self, __fn, *args, **kwargs) -> Future:
        """Run ``__fn(*args, **kwargs)`` in a copy of the caller's context."""
        ctx = contextvars.copy_context()
        return super().submit(ctx.run, __fn, *args, **kwargs)


__all__ = ["attach_to_parent", "TracedThreadPoolExecutor"]
