"""Tracing helpers used by the pipelined workers: spans get partition attributes;
exporting is set up only where a collector is configured and the SDK is installed."""

from __future__ import annotations

import importlib.util

import pytest
from opentelemetry import trace

from libertem.common.shape import Shape
from libertem.common.tracing import add_partition_to_span, maybe_setup_tracing, setup_tracing
from libertem.io.dataset.base import DataSetMeta, Partition

HAS_SDK = importlib.util.find_spec("opentelemetry.sdk") is not None


class RecordingSpan:
    def __init__(self, recording=True):
        self.recording = recording
        self.attributes = {}

    def is_recording(self):
        return self.recording

    def set_attributes(self, attributes):
        self.attributes.update(attributes)


def _partition(start, stop):
    meta = DataSetMeta(shape=Shape((4, 5, 3, 3), sig_dims=2), raw_dtype="float32")
    return Partition(meta=meta, start=start, stop=stop)


@pytest.mark.parametrize("recording", [True, False])
def test_partition_attributes_on_the_current_span(monkeypatch, recording):
    span = RecordingSpan(recording)
    monkeypatch.setattr(trace, "get_current_span", lambda *args: span)
    add_partition_to_span(_partition(5, 12))
    expected = {"libertem.partition.start_idx": 5, "libertem.partition.end_idx": 12}
    assert span.attributes == (expected if recording else {})


def test_no_collector_no_tracing(monkeypatch):
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_ENDPOINT", raising=False)
    assert maybe_setup_tracing("libertem-test") is False


@pytest.mark.skipif(HAS_SDK, reason="exports for real where the SDK is installed")
def test_without_the_sdk_nothing_is_set_up():
    assert maybe_setup_tracing("libertem-test", "w0", otlp_endpoint="localhost:4317") is False
    with pytest.raises(ImportError):
        setup_tracing("libertem-test", "w0", otlp_endpoint="localhost:4317")
