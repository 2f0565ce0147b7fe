"""libertem-live 0.3.0, unchanged, on our engine, with its ``memory`` detector.

``LiveContext`` (a ``Context`` subclass) starts a pipelined executor by default and
wraps every run in ``_run_sync`` to start and end the acquisition, which calls
``Hooks.on_ready_for_data`` once per run. The package's UDFs (``SignalMonitorUDF``,
``PartitionMonitorUDF``, ``RecordUDF``) and ``SumUDF`` run on the inline, thread and
pipelined executors; results are checked against numpy.
"""

from __future__ import annotations

import asyncio
import os

import numpy as np
import psutil
import pytest
from libertem_live.api import Hooks, LiveContext
from libertem_live.udf.monitor import PartitionMonitorUDF, SignalMonitorUDF
from libertem_live.udf.record import RecordUDF

from libertem.api import Context
from libertem.executor.pipelined import PipelinedExecutor
from libertem.udf.sum import SumUDF
from libertem.udf.sumsigudf import SumSigUDF
from utils import make_roi

NAV = (4, 5)
SIG = (8, 9)
NUM_PARTITIONS = 4


class CountingHooks(Hooks):
    """Remembers the navigation shape each time the acquisition is ready for data."""

    def __init__(self):
        self.ready: list[tuple[int, ...]] = []

    def on_ready_for_data(self, env):
        self.ready.append(tuple(env.aq.shape.nav))


def _data(dtype="float32", seed=0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (rng.random(NAV + SIG) * 1000).astype(dtype)


def _acquisition(ctx, data, nav_shape=NAV, hooks=None):
    conn = ctx.make_connection("memory").open(
        data=data, extra_kwargs={"num_partitions": NUM_PARTITIONS}
    )
    return conn, ctx.make_acquisition(conn=conn, nav_shape=nav_shape, hooks=hooks)


@pytest.fixture(scope="module", params=["inline", "threads", "pipelined"])
def live_ctx(request):
    kwargs = {} if request.param == "inline" else {"cpus": 2}
    ctx = LiveContext.make_with(request.param, **kwargs)
    yield ctx
    ctx.close()


def test_default_executor_is_pipelined_and_stops_with_the_context():
    ctx = LiveContext()
    try:
        assert isinstance(ctx, Context)
        assert isinstance(ctx.executor, PipelinedExecutor)
        pids = list(ctx.executor.run_each_worker(os.getpid).values())
        assert pids and os.getpid() not in pids
        data = _data(seed=1)
        with ctx.make_connection("memory").open(data=data) as conn:
            aq = ctx.make_acquisition(conn=conn, nav_shape=NAV)
            res = ctx.run_udf(dataset=aq, udf=SumUDF())
        np.testing.assert_allclose(res["intensity"].data, data.sum(axis=(0, 1)), rtol=1e-5)
    finally:
        ctx.close()
    assert not any(psutil.pid_exists(p) and psutil.Process(p).status() != "zombie" for p in pids)


@pytest.mark.parametrize("nav_shape", [NAV, None], ids=["nav_shape", "from_data"])
def test_sum_and_monitors(live_ctx, nav_shape):
    data = _data(seed=2)
    hooks = CountingHooks()
    conn, aq = _acquisition(live_ctx, data, nav_shape, hooks)
    with conn:
        assert tuple(aq.shape) == NAV + SIG
        total, signal, partition = live_ctx.run_udf(
            dataset=aq, udf=[SumUDF(), SignalMonitorUDF(), PartitionMonitorUDF()]
        )
        parts = list(aq.get_partitions())
    assert hooks.ready == [NAV]
    flat = data.reshape((-1, *SIG))
    np.testing.assert_allclose(total["intensity"].data, flat.sum(axis=0), rtol=1e-5)
    # results are merged in partition order: the last partition comes last
    assert signal["intensity"].data.dtype == np.float32
    np.testing.assert_array_equal(signal["intensity"].data, flat[-1])
    last = parts[-1]
    assert len(parts) == NUM_PARTITIONS
    np.testing.assert_allclose(
        partition["intensity"].data, flat[last.start : last.stop].sum(axis=0), rtol=1e-5
    )


@pytest.mark.parametrize("use_roi", [False, True], ids=["noroi", "roi"])
def test_partial_results(live_ctx, use_roi):
    data = _data(seed=3)
    roi = make_roi(NAV, seed=4) if use_roi else None
    sel = np.ones(NAV, bool) if roi is None else roi
    hooks = CountingHooks()
    conn, aq = _acquisition(live_ctx, data, NAV, hooks)
    with conn:
        items = list(live_ctx.run_udf_iter(dataset=aq, udf=[SumUDF(), SumSigUDF()], roi=roi))
    assert hooks.ready == [NAV]
    assert 1 <= len(items) <= NUM_PARTITIONS + 1
    final = items[-1]
    np.testing.assert_array_equal(final.damage.data, sel)
    np.testing.assert_allclose(
        final.buffers[0]["intensity"].data, data[sel].sum(axis=0), rtol=1e-5
    )
    np.testing.assert_allclose(
        final.buffers[1]["intensity"].data[sel], data.sum(axis=(2, 3))[sel], rtol=1e-5
    )


def test_record_udf_writes_the_data(live_ctx, tmp_path):
    data = _data(dtype="uint16", seed=5)
    hooks = CountingHooks()
    conn, aq = _acquisition(live_ctx, data, NAV, hooks)
    path = tmp_path / "recorded.npy"
    with conn:
        res = live_ctx.run_udf(dataset=aq, udf=RecordUDF(str(path)))
        assert res == {}
        recorded = np.load(path)
        assert recorded.dtype == np.uint16
        np.testing.assert_array_equal(recorded, data)
        with pytest.raises(RuntimeError, match="ROI"):
            live_ctx.run_udf(dataset=aq, udf=RecordUDF(str(path)), roi=make_roi(NAV, seed=6))
        again = live_ctx.run_udf(dataset=aq, udf=SumUDF())
    np.testing.assert_allclose(
        again["intensity"].data, data.astype(np.float64).sum(axis=(0, 1)), rtol=1e-6
    )
    assert hooks.ready == [NAV] * 3


def test_async_runs_start_the_acquisition_once(live_ctx):
    data = _data(seed=7)
    hooks = CountingHooks()
    conn, aq = _acquisition(live_ctx, data, NAV, hooks)

    async def run():
        result = await live_ctx.run_udf(dataset=aq, udf=SumUDF(), sync=False)
        items = [item async for item in live_ctx.run_udf_iter(aq, SumUDF(), sync=False)]
        return result, items

    with conn:
        result, items = asyncio.run(run())
    expected = data.sum(axis=(0, 1))
    np.testing.assert_allclose(result["intensity"].data, expected, rtol=1e-5)
    np.testing.assert_allclose(items[-1].buffers[0]["intensity"].data, expected, rtol=1e-5)
    assert hooks.ready == [NAV, NAV]
