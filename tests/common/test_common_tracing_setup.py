"""Tracing of the pipelined workers: exporting is set up only where a collector is
configured and the SDK is installed (span attributes: test_common_threading_tracing.py)."""

from __future__ import annotations

import importlib.util

import pytest

from libertem.common.tracing import maybe_setup_tracing, setup_tracing

HAS_SDK = importlib.util.find_spec("opentelemetry.sdk") is not None


def test_no_collector_no_tracing(monkeypatch):
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_ENDPOINT", raising=False)
    assert maybe_setup_tracing("libertem-test") is False


@pytest.mark.skipif(HAS_SDK, reason="exports for real where the SDK is installed")
def test_without_the_sdk_nothing_is_set_up():
    assert maybe_setup_tracing("libertem-test", "w0", otlp_endpoint="localhost:4317") is False
    with pytest.raises(ImportError):
        setup_tracing("libertem-test", "w0", otlp_endpoint="localhost:4317")
