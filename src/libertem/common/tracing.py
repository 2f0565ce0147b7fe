"""Tracing with OpenTelemetry, and carrying the caller's context into worker threads.

OpenTelemetry is optional: without it, spans are not recorded, but
:class:`TracedThreadPoolExecutor` still runs every task in a copy of the
submitting thread's :mod:`contextvars` context, which is where tracing
libraries keep the current span. Exporting spans (:func:`setup_tracing`) needs
the OpenTelemetry SDK and its OTLP exporter.
"""

from __future__ import annotations

import contextlib
import contextvars
import os
import uuid
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from libertem.io.dataset.base.partition import Partition

#: environment variable naming the OTLP collector (the OpenTelemetry convention)
OTLP_ENDPOINT_ENV = "OTEL_EXPORTER_OTLP_ENDPOINT"


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


def add_partition_to_span(partition: Partition) -> None:
    """Record which partition the current span works on, as span attributes.

    Sets ``libertem.partition.start`` and ``libertem.partition.stop`` (flat frame
    range) and ``libertem.partition.idx`` (its index, if known). Does nothing when
    OpenTelemetry is not installed or no span is recording.
    """
    try:
        from opentelemetry import trace
    except ImportError:
        return
    span = trace.get_current_span()
    if not span.is_recording():
        return
    sl = partition.slice
    start = int(sl.origin[0])
    span.set_attribute("libertem.partition.start", start)
    span.set_attribute("libertem.partition.stop", start + int(sl.shape[0]))
    idx = getattr(partition, "idx", None)
    if idx is not None:
        span.set_attribute("libertem.partition.idx", int(idx))


def setup_tracing(
    service_name: str, service_id: str | None = None, otlp_endpoint: str | None = None
) -> None:
    """Export the spans of this process to an OTLP collector.

    Installs a tracer provider whose resource names the service, with a batching
    span processor sending to the collector (OTLP over gRPC).

    Parameters
    ----------
    service_name
        Name of the service, e.g. ``'libertem-worker'``.
    service_id
        Instance id of the service; a random one by default.
    otlp_endpoint
        Address of the collector; by default the OpenTelemetry environment
        variable ``OTEL_EXPORTER_OTLP_ENDPOINT`` (or the exporter's default).

    Raises
    ------
    ImportError
        If the OpenTelemetry SDK or its OTLP exporter is not installed.
    """
    try:
        from opentelemetry import trace
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
    except ImportError as e:
        raise ImportError(
            "exporting traces needs the packages opentelemetry-sdk and "
            f"opentelemetry-exporter-otlp ({e})"
        ) from e
    resource = Resource.create(
        {
            "service.name": service_name,
            "service.instance.id": service_id or str(uuid.uuid4()),
        }
    )
    provider = TracerProvider(resource=resource)
    exporter = OTLPSpanExporter(endpoint=otlp_endpoint) if otlp_endpoint else OTLPSpanExporter()
    provider.add_span_processor(BatchSpanProcessor(exporter))
    trace.set_tracer_provider(provider)


def maybe_setup_tracing(
    service_name: str, service_id: str | None = None, otlp_endpoint: str | None = None
) -> bool:
    """:func:`setup_tracing` if a collector is named and the SDK is installed.

    A collector is named by ``otlp_endpoint`` or by the environment variable
    ``OTEL_EXPORTER_OTLP_ENDPOINT``. Without one, or without the OpenTelemetry SDK,
    nothing happens.

    Returns
    -------
    bool
        Whether tracing was set up.
    """
    if not (otlp_endpoint or os.environ.get(OTLP_ENDPOINT_ENV)):
        return False
    try:
        setup_tracing(service_name, service_id, otlp_endpoint)
    except ImportError:
        return False
    return True


__all__ = [
    "attach_to_parent",
    "add_partition_to_span",
    "maybe_setup_tracing",
    "setup_tracing",
    "TracedThreadPoolExecutor",
]
