"""Context API: run_udf with lists, run_udf_iter, async execution, progress bars,
context management and executor choices."""

import asyncio

import numpy as np
import pytest

from libertem.api import Context
from libertem.common.buffers import BufferWrapper
from libertem.udf.stddev import StdDevUDF
from libertem.udf.sum import SumUDF
from libertem.udf.sumsigudf import SumSigUDF
from utils import (
    SUM_UDFS,
    assert_close,
    assert_ctx_works,
    check_sums,
    load_mem,
    make_data,
    make_roi,
)


def _ds(ctx, seed=90, num_partitions=4, shape=(4, 6, 8, 10)):
    data = make_data(shape, "float32", seed=seed)
    return data, load_mem(ctx, data, num_partitions=num_partitions)


@pytest.mark.parametrize("container", [list, tuple])
@pytest.mark.parametrize("use_roi", [False, True], ids=["noroi", "roi"])
def test_run_udf_list_returns_tuple(ctx, container, use_roi):
    data, ds = _ds(ctx)
    roi = make_roi((4, 6), seed=91) if use_roi else None
    udfs = container([SUM_UDFS["frame"](), SumUDF(), SumSigUDF(), SUM_UDFS["tile"]()])
    res = ctx.run_udf(dataset=ds, udf=udfs, roi=roi)
    assert isinstance(res, tuple)
    assert len(res) == 4
    check_sums(res[0], data, 2, roi)
    check_sums(res[3], data, 2, roi)
    sel = np.ones((4, 6), bool) if roi is None else roi
    assert_close(res[1]["intensity"].data, data[sel].sum(axis=0))
    assert_close(res[2]["intensity"].raw_data, data[sel].sum(axis=(1, 2)))


def test_run_udf_single_in_list(ctx):
    data, ds = _ds(ctx)
    res = ctx.run_udf(dataset=ds, udf=[SumUDF()])
    assert isinstance(res, tuple) and len(res) == 1
    assert_close(res[0]["intensity"].data, data.sum(axis=(0, 1)))
    res = ctx.run_udf(dataset=ds, udf=SumUDF())
    assert isinstance(res, dict)
    assert isinstance(res["intensity"], BufferWrapper)


@pytest.mark.parametrize("use_roi", [False, True], ids=["noroi", "roi"])
@pytest.mark.parametrize("num_partitions", [1, 5])
def test_run_udf_iter(ctx, use_roi, num_partitions):
    data, ds = _ds(ctx, num_partitions=num_partitions)
    roi = make_roi((4, 6), seed=92) if use_roi else None
    sel = np.ones((4, 6), bool) if roi is None else roi
    sumsig = data.sum(axis=(2, 3))
    items = []
    prev_done = -1
    for item in ctx.run_udf_iter(dataset=ds, udf=[SumSigUDF(), SumUDF()], roi=roi):
        assert isinstance(item.buffers, tuple)
        assert len(item.buffers) == 2
        assert isinstance(item.buffers[0], dict)
        damage = item.damage
        assert isinstance(damage, BufferWrapper)
        dmg = np.asarray(damage.data)
        assert dmg.shape == (4, 6)
        assert dmg.dtype == np.bool_
        done = dmg & sel
        n_done = int(np.count_nonzero(done))
        assert n_done >= prev_done
        prev_done = n_done
        # partial results are right for the frames done so far
        partial = item.buffers[0]["intensity"].data
        assert_close(partial[done], sumsig[done])
        items.append(item)
    assert len(items) >= 1
    if num_partitions > 1:
        assert len(items) >= 2
    last = items[-1]
    assert (np.asarray(last.damage.data)[sel]).all()
    final = ctx.run_udf(dataset=ds, udf=[SumSigUDF(), SumUDF()], roi=roi)
    for a, b in zip(last.buffers, final):
        assert set(a) == set(b)
        for k in a:
            np.testing.assert_allclose(a[k].data, b[k].data, rtol=1e-6)
    assert_close(last.buffers[1]["intensity"].data, data[sel].sum(axis=0))


def test_run_udf_iter_single_udf(ctx):
    data, ds = _ds(ctx)
    items = list(ctx.run_udf_iter(dataset=ds, udf=SumUDF()))
    assert isinstance(items[-1].buffers, tuple) and len(items[-1].buffers) == 1
    assert_close(np.sum(items[-1].buffers[0]["intensity"].data), data.sum())
    assert_close(items[-1].buffers[0]["intensity"].data, data.sum(axis=(0, 1)))


@pytest.mark.parametrize("use_roi", [False, True], ids=["noroi", "roi"])
def test_run_udf_async(ctx, use_roi):
    data, ds = _ds(ctx)
    roi = make_roi((4, 6), seed=93) if use_roi else None
    sel = np.ones((4, 6), bool) if roi is None else roi

    async def main():
        single = await ctx.run_udf(dataset=ds, udf=SumUDF(), roi=roi, sync=False)
        several = await ctx.run_udf(dataset=ds, udf=[SumUDF(), SumSigUDF()], roi=roi, sync=False)
        return single, several

    single, several = asyncio.run(main())
    assert_close(single["intensity"].data, data[sel].sum(axis=0))
    assert isinstance(several, tuple)
    assert_close(several[1]["intensity"].raw_data, data[sel].sum(axis=(1, 2)))


def test_run_udf_iter_async(ctx):
    data, ds = _ds(ctx, num_partitions=3)

    async def main():
        items = []
        async for item in ctx.run_udf_iter(dataset=ds, udf=[SumUDF(), SumSigUDF()], sync=False):
            items.append(item)
        return items

    items = asyncio.run(main())
    assert len(items) >= 2
    last = items[-1]
    assert np.asarray(last.damage.data).all()
    assert_close(last.buffers[0]["intensity"].data, data.sum(axis=(0, 1)))
    assert_close(last.buffers[1]["intensity"].data, data.sum(axis=(2, 3)))


def test_async_concurrent_runs(ctx):
    """Two awaitable runs in one event loop both give correct results."""
    data, ds = _ds(ctx)

    async def main():
        return await asyncio.gather(
            ctx.run_udf(dataset=ds, udf=SumUDF(), sync=False),
            ctx.run_udf(dataset=ds, udf=SumSigUDF(), sync=False),
        )

    a, b = asyncio.run(main())
    assert_close(a["intensity"].data, data.sum(axis=(0, 1)))
    assert_close(b["intensity"].data, data.sum(axis=(2, 3)))


@pytest.mark.parametrize("use_roi", [False, True], ids=["noroi", "roi"])
def test_progress(ctx, capsys, use_roi):
    data, ds = _ds(ctx, num_partitions=5)
    roi = make_roi((4, 6), seed=94) if use_roi else None
    sel = np.ones((4, 6), bool) if roi is None else roi
    res = ctx.run_udf(dataset=ds, udf=[SumUDF(), StdDevUDF()], roi=roi, progress=True)
    assert_close(res[0]["intensity"].data, data[sel].sum(axis=0))
    np.testing.assert_allclose(res[1]["var"].data, data[sel].var(axis=0), rtol=1e-4, atol=1e-5)
    err = capsys.readouterr().err
    assert "100%" in err, err


def test_progress_run_udf_iter(ctx, capsys):
    data, ds = _ds(ctx, num_partitions=3)
    items = list(ctx.run_udf_iter(dataset=ds, udf=SumUDF(), progress=True))
    assert_close(items[-1].buffers[0]["intensity"].data, data.sum(axis=(0, 1)))
    assert "100%" in capsys.readouterr().err


def test_map_with_progress(ctx, capsys):
    data, ds = _ds(ctx)
    res = ctx.map(dataset=ds, f=np.max, progress=True)
    np.testing.assert_allclose(res.data, data.max(axis=(2, 3)))
    assert "100%" in capsys.readouterr().err


@pytest.mark.parametrize("spec", ["inline", "synchronous", "threads"])
def test_make_with(spec):
    # LiberTEM: only 'threads', 'dask' and 'pipelined' take cpus=
    kwargs = (
        {} if spec in ("inline", "synchronous", "delayed", "dask-integration") else {"cpus": 2}
    )
    with Context.make_with(spec, **kwargs) as ctx:
        data, ds = _ds(ctx)
        res = ctx.run_udf(dataset=ds, udf=SumUDF())
        assert_close(res["intensity"].data, data.sum(axis=(0, 1)))


def test_make_with_unknown_spec():
    from libertem.common.exceptions import ExecutorSpecException

    with pytest.raises(ExecutorSpecException):
        Context.make_with("no-such-executor")


def test_context_manager_and_close():
    from libertem.executor.inline import InlineJobExecutor

    with Context(executor=InlineJobExecutor()) as ctx:
        assert_ctx_works(ctx)
    ctx2 = Context(executor=InlineJobExecutor())
    assert_ctx_works(ctx2)
    ctx2.close()


def test_threads_executor_runs_concurrently():
    """The thread pool of two runs two partitions at the same time."""
    import threading
    import time

    from libertem.executor.concurrent import ConcurrentJobExecutor
    from libertem.udf import UDF

    lock = threading.Lock()
    state = {"active": 0, "max": 0}

    class Slow(UDF):
        def get_result_buffers(self):
            return {"x": self.buffer(kind="nav")}

        def process_partition(self, partition):
            with lock:
                state["active"] += 1
                state["max"] = max(state["max"], state["active"])
            time.sleep(0.05)
            with lock:
                state["active"] -= 1
            self.results.x[:] = partition.sum(axis=(1, 2))

    with Context(executor=ConcurrentJobExecutor.make_local(n_threads=2)) as ctx:
        data, ds = _ds(ctx, num_partitions=4)
        res = ctx.run_udf(dataset=ds, udf=Slow())
    assert_close(res["x"].data, data.sum(axis=(2, 3)))
    assert state["max"] == 2


def test_inline_executor_runs_in_calling_thread(inline_ctx):
    import threading

    from libertem.udf import UDF

    main = threading.get_ident()

    class ThreadSpy(UDF):
        def get_result_buffers(self):
            return {"same": self.buffer(kind="nav", dtype="bool")}

        def process_frame(self, frame):
            self.results.same[:] = threading.get_ident() == main

    data, ds = _ds(inline_ctx)
    res = inline_ctx.run_udf(dataset=ds, udf=ThreadSpy())
    assert res["same"].data.all()


def test_dataset_reused_across_contexts(inline_ctx, threads_ctx):
    data, ds = _ds(inline_ctx)
    a = inline_ctx.run_udf(dataset=ds, udf=SumUDF())
    b = threads_ctx.run_udf(dataset=ds, udf=SumUDF())
    np.testing.assert_allclose(a["intensity"].data, b["intensity"].data, rtol=1e-6)
    assert_close(a["intensity"].data, data.sum(axis=(0, 1)))


@pytest.mark.parametrize("how", ["break", "close"])
def test_run_udf_iter_stopped_early(ctx, how):
    data, ds = _ds(ctx, num_partitions=4)
    if how == "break":
        for _ in ctx.run_udf_iter(dataset=ds, udf=SumUDF()):
            break
    else:
        gen = ctx.run_udf_iter(dataset=ds, udf=SumUDF())
        next(gen)
        gen.close()
    res = ctx.run_udf(dataset=ds, udf=[SumUDF(), SumSigUDF()])
    assert_close(res[0]["intensity"].data, data.sum(axis=(0, 1)))
    assert_close(res[1]["intensity"].data, data.sum(axis=(2, 3)))


def test_backends_numpy(ctx):
    data, ds = _ds(ctx)
    res = ctx.run_udf(dataset=ds, udf=SumUDF(), backends=("numpy",))
    assert_close(res["intensity"].data, data.sum(axis=(0, 1)))


@pytest.mark.parametrize("num_partitions", [12, 24, 48])
def test_threads_many_partitions(threads_ctx, num_partitions):
    data = make_data((6, 8, 16, 16), "float32", seed=95)
    ds = load_mem(threads_ctx, data, num_partitions=num_partitions, tileshape=(1, 16, 16))
    roi = make_roi((6, 8), seed=96, p=0.7)
    res = threads_ctx.run_udf(
        dataset=ds, udf=[SUM_UDFS["smalltile"](), SUM_UDFS["frame"](), StdDevUDF()], roi=roi
    )
    check_sums(res[0], data, 2, roi)
    check_sums(res[1], data, 2, roi)
    np.testing.assert_allclose(res[2]["var"].data, data[roi].var(axis=0), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("use_roi", [False, True], ids=["noroi", "roi"])
def test_run_udf_async_with_progress(ctx, capsys, use_roi):
    data, ds = _ds(ctx)
    roi = make_roi((4, 6), seed=97) if use_roi else None
    sel = np.ones((4, 6), bool) if roi is None else roi
    res = asyncio.run(
        _await(ctx.run_udf(dataset=ds, udf=SumUDF(), roi=roi, sync=False, progress=True))
    )
    assert_close(res["intensity"].data, data[sel].sum(axis=0))
    assert "100%" in capsys.readouterr().err


async def _await(awaitable):
    return await awaitable
