"""libertem.common: threading limits, tracing helpers, subscriptions, revision, faces."""

import os
import re
import threading

import numba
import pytest

import libertem
from libertem.common import threading as lt_threading
from libertem.common.subscriptions import SubscriptionManager
from libertem.common.tracing import add_partition_to_span, maybe_setup_tracing, setup_tracing

# --- threading ---------------------------------------------------------------------


def test_set_num_threads_env_sets_and_restores(monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "7")
    monkeypatch.delenv("MKL_NUM_THREADS", raising=False)
    monkeypatch.delenv("NUMBA_NUM_THREADS", raising=False)
    with lt_threading.set_num_threads_env(n=2, set_numba=True):
        for name in lt_threading.THREAD_ENV_VARS + ("NUMBA_NUM_THREADS",):
            assert os.environ[name] == "2"
    assert os.environ["OMP_NUM_THREADS"] == "7"
    assert "MKL_NUM_THREADS" not in os.environ and "NUMBA_NUM_THREADS" not in os.environ


def test_set_num_threads_env_leaves_numba_alone_once_imported(monkeypatch):
    monkeypatch.delenv("NUMBA_NUM_THREADS", raising=False)
    with lt_threading.set_num_threads_env(n=1):  # numba is imported in this process
        assert "NUMBA_NUM_THREADS" not in os.environ
        assert os.environ["OPENBLAS_NUM_THREADS"] == "1"


def test_set_numba_threads_is_per_block():
    before = numba.get_num_threads()
    with lt_threading.set_numba_threads(1):
        assert numba.get_num_threads() == 1
    assert numba.get_num_threads() == before


def test_threadpool_wrapper_limits_blas_pools():
    pytest.importorskip("threadpoolctl")
    wrapper = lt_threading.ThreadpoolWrapper(repeats=2)
    libs = wrapper.controller.lib_controllers
    if not libs:
        pytest.skip("no BLAS/OpenMP thread pool loaded")
    before = [lib.num_threads for lib in libs]
    with wrapper(1):
        assert all(lib.num_threads == 1 for lib in wrapper.controller.lib_controllers)
    assert [lib.num_threads for lib in libs] == before


def test_optional_libraries_are_left_alone_when_missing():
    if lt_threading.detect_pyfftw() is None:
        with lt_threading.set_fftw_threads(3):
            pass
    if lt_threading.detect_pytorch() is None:
        with lt_threading.set_torch_threads(3):
            pass


def test_faces_give_the_executor_helpers():
    from libertem.common import executor
    from libertem.common.cupy import use_gpu

    assert lt_threading.set_num_threads is executor.set_num_threads
    assert lt_threading.mitigations is executor.mitigations
    assert use_gpu is executor.use_gpu
    with use_gpu(None):
        pass


# --- tracing -----------------------------------------------------------------------


def test_add_partition_to_span_records_the_frame_range():
    import numpy as np

    trace = pytest.importorskip("opentelemetry.trace")

    class _RecordingSpan(trace.NonRecordingSpan):
        def __init__(self):
            super().__init__(trace.INVALID_SPAN_CONTEXT)
            self.attributes = {}

        def is_recording(self):
            return True

        def set_attribute(self, key, value):
            self.attributes[key] = value

    from libertem.io.dataset.memory import MemoryDataSet

    ds = MemoryDataSet(data=np.zeros((4, 4, 2, 2), dtype=np.float32), num_partitions=2)
    part = list(ds.get_partitions())[1]
    span = _RecordingSpan()
    with trace.use_span(span):
        add_partition_to_span(part)
    assert span.attributes["libertem.partition.start"] == 8
    assert span.attributes["libertem.partition.stop"] == 16
    assert span.attributes["libertem.partition.idx"] == 1
    add_partition_to_span(part)  # no recording span: nothing happens


def test_setup_tracing_without_sdk(monkeypatch):
    try:
        import opentelemetry.sdk  # noqa: F401

        pytest.skip("the OpenTelemetry SDK is installed")
    except ImportError:
        pass
    with pytest.raises(ImportError, match="opentelemetry-sdk"):
        setup_tracing("libertem-test")
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_ENDPOINT", raising=False)
    assert maybe_setup_tracing("libertem-test") is False
    assert maybe_setup_tracing("libertem-test", otlp_endpoint="localhost:4317") is False


# --- subscriptions -----------------------------------------------------------------


def test_subscriptions_deliver_by_topic_in_order():
    hub = SubscriptionManager()
    got = []
    k1 = hub.subscribe("a", lambda t, m: got.append(("first", t, m)))
    hub.subscribe("a", lambda t, m: got.append(("second", t, m)))
    hub.subscribe("b", lambda t, m: got.append(("b", t, m)))
    hub.send("a", {"x": 1})
    assert got == [("first", "a", {"x": 1}), ("second", "a", {"x": 1})]
    assert hub.unsubscribe(k1) is True and hub.unsubscribe(k1) is False
    got.clear()
    hub.send("a", {"x": 2})
    assert got == [("second", "a", {"x": 2})]


def test_subscriptions_from_threads_and_callbacks():
    hub = SubscriptionManager()
    keys = []

    def once(topic, msg):
        keys.append(msg["n"])
        hub.unsubscribe(key)  # unsubscribing inside a callback is allowed

    key = hub.subscribe("t", once)
    hub.send("t", {"n": 1})
    hub.send("t", {"n": 2})
    assert keys == [1]
    threads = [threading.Thread(target=hub.subscribe, args=("u", print)) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(hub._subscriptions) == 8


# --- revision ----------------------------------------------------------------------


def test_revision_is_a_commit_hash_or_none():
    rev = libertem.revision
    assert rev is None or re.fullmatch(r"[0-9a-f]{40}", rev)
    with pytest.raises(AttributeError):
        libertem.no_such_name  # noqa: B018
