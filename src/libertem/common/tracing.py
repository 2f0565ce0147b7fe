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
from typing import TYPE_CHECKING


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


def add_partition_to_span(partition) -> None:
    """Record which frames ``partition`` covers on the current tracing span (if any)."""
    try:
        from opentelemetry import trace
    except ImportError:
        return
    span = trace.get_current_span()
    if not span.is_recording():
        return
    start = int(partition.slice.origin[0])
    span.set_attributes(
        {
            "libertem.partition.start_idx": start,
            "libertem.partition.end_idx": start + int(partition.slice.shape[0]),
        }
    )


_TRACING_SET_UP: dict[str, bool] = {"done": False}


def setup_tracing(
    service_name: str, service_id: str | None = None, otlp_endpoint: str | None = None
) -> None:
    """Export this process's spans to the OTLP collector at ``otlp_endpoint``.

    Parameters
    ----------
    service_name
        Name of this service in the traces (e.g. ``'libertem-worker'``).
    service_id
        Instance id of the service (e.g. the worker name).
    otlp_endpoint
        Address of the collector; by default ``OTEL_EXPORTER_OTLP_ENDPOINT`` (or the
        exporter's own default).

    Raises
    ------
    ImportError
        If the OpenTelemetry SDK or its OTLP exporter is not installed.
    """
    import os

    from opentelemetry import trace
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    endpoint = otlp_endpoint or os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")
    attributes = {"service.name": service_name}
    if service_id is not None:
        attributes["service.instance.id"] = service_id
    provider = TracerProvider(resource=Resource.create(attributes))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint)))
    trace.set_tracer_provider(provider)
    _TRACING_SET_UP["done"] = True


def maybe_setup_tracing(
    service_name: str, service_id: str | None = None, otlp_endpoint: str | None = None
) -> bool:
    """:func:`setup_tracing`, where a collector is configured and the SDK is installed.

    Parameters
    ----------
    service_name, service_id
        As for :func:`setup_tracing`.
    otlp_endpoint
        Address of the collector; by default ``OTEL_EXPORTER_OTLP_ENDPOINT``.

    Returns
    -------
    bool
        Whether spans are exported now. Without an endpoint, or without the
        OpenTelemetry SDK and its OTLP exporter, nothing is set up and spans stay
        no-ops. Only the first successful call in a process sets up tracing.
    """
    import os

    if _TRACING_SET_UP["done"]:
        return True
    endpoint = otlp_endpoint or os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")
    if not endpoint:
        return False
    try:
        setup_tracing(service_name, service_id, endpoint)
    except ImportError:
        return False
    return True


__all__ = [
    "TYPE_CHECKING",
    "add_partition_to_span",
    "attach_to_parent",
    "maybe_setup_tracing",
    "setup_tracing",
    "TracedThreadPoolExecutor",
]
