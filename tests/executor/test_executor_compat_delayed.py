"""LiberTEM's DelayedJobExecutor members and the Dask buffer classes: lazy task results,
the graph-building helpers, DelayedUDFRunner, DaskInplaceWrapper / DaskBufferWrapper /
DaskResultBufferWrapper, and make_dask_array with other array backends."""

from __future__ import annotations

import dask
import dask.array as da
import numpy as np
import pytest
import sparse
from hypothesis import example, given
from hypothesis import strategies as st

from libertem.api import Context
from libertem.common.buffers import BufferWrapper
from libertem.common.shape import Shape
from libertem.common.slice import Slice
from libertem.contrib.daskadapter import make_dask_array
from libertem.executor.delayed import (
    DelayedJobExecutor,
    DelayedUDFRunner,
    delayed_to_buffer_wrappers,
    make_copy,
    merge_wrap,
    structure_from_task,
    task_wrap,
)
from libertem.executor.inline import InlineJobExecutor
from libertem.executor.utils.dask_buffer import (
    DaskBufferWrapper,
    DaskInplaceWrapper,
    DaskPreallocBufferWrapper,
    DaskResultBufferWrapper,
)
from libertem.udf import UDF
from libertem.udf.runner import UDFRunner
from libertem.udf.sum import SumUDF
from libertem.udf.sumsigudf import SumSigUDF
from utils import make_roi

SHAPE = (8, 8, 6, 6)


@pytest.fixture(scope="module")
def data():
    return np.random.default_rng(21).integers(0, 50, size=SHAPE).astype(np.float32)


@pytest.fixture(scope="module")
def delayed_ctx():
    return Context(executor=DelayedJobExecutor())


class SumMergeUDF(UDF):
    def get_result_buffers(self):
        return {
            "total": self.buffer(kind="sig", dtype="float64"),
            "maxes": self.buffer(kind="nav", dtype="float64"),
        }

    def process_frame(self, frame):
        self.results.total[:] += frame
        self.results.maxes[:] = frame.max()

    def merge(self, dest, src):
        dest.total[:] += src.total
        dest.maxes[:] = src.maxes


def _plan(ds, udfs, roi=None):
    return UDFRunner(udfs).plan(ds, InlineJobExecutor(), roi)


def test_run_tasks_yields_lazy_results(delayed_ctx, data):
    ds = delayed_ctx.load("memory", data=data, sig_dims=2, num_partitions=4)
    roi = make_roi(SHAPE[:2], seed=3)
    udfs = [SumMergeUDF(), SumSigUDF()]
    plan = _plan(ds, udfs, roi)
    executor = DelayedJobExecutor()
    with pytest.raises(RuntimeError, match="register_master_udfs"):
        next(executor.run_tasks(plan.tasks, plan.params, "d", None))
    executor.register_master_udfs(plan.udfs)
    with dask.config.set(scheduler="synchronous"):
        lazy = list(executor.run_tasks(plan.tasks, plan.params, "d", None))
    eager = list(InlineJobExecutor().run_tasks(plan.tasks, plan.params, "e", None))
    plan.release()
    assert len(lazy) == len(eager) == len(plan.tasks)
    for (lazy_res, _task), (eager_res, _) in zip(lazy, eager):
        assert len(lazy_res) == 2
        for lazy_udf, eager_udf in zip(lazy_res, eager_res):
            assert set(lazy_udf) == set(eager_udf)
            for name, buf in lazy_udf.items():
                assert isinstance(buf, DaskPreallocBufferWrapper)
                assert isinstance(buf.raw_data, da.Array)
                np.testing.assert_allclose(buf.raw_data.compute(), eager_udf[name])


def test_structure_task_wrap_and_buffers(data):
    ctx = Context(executor=InlineJobExecutor())
    ds = ctx.load("memory", data=data, sig_dims=2, num_partitions=2)
    plan = _plan(ds, [SumMergeUDF(), SumUDF()])
    task = plan.tasks[1]
    structure = structure_from_task(plan.udfs, task)
    assert [(s.udf_index, s.name, s.kind, s.shape) for s in structure] == [
        (0, "total", "sig", (6, 6)),
        (0, "maxes", "nav", (32,)),
        (1, "intensity", "sig", (6, 6)),
    ]
    flat = task_wrap(task, plan.params, None)
    assert [a.shape for a in flat] == [s.shape for s in structure]
    part = data.reshape(64, 6, 6)[32:]
    np.testing.assert_allclose(flat[0], part.sum(axis=0))
    np.testing.assert_allclose(flat[1], part.max(axis=(1, 2)))
    delayed = [dask.delayed(a) for a in flat]
    arrays = delayed_to_buffer_wrappers(delayed, structure, task.partition, as_buffer=False)
    assert isinstance(arrays[0]["total"], da.Array)
    np.testing.assert_allclose(arrays[1]["intensity"].compute(), part.sum(axis=0))
    bufs = delayed_to_buffer_wrappers(delayed, structure, task.partition)
    assert bufs[0]["maxes"].kind == "nav" and bufs[0]["maxes"].shape == (32,)
    plan.release()


def test_merge_wrap_and_make_copy(data):
    ctx = Context(executor=InlineJobExecutor())
    ds = ctx.load("memory", data=data, sig_dims=2, num_partitions=2)
    plan = _plan(ds, [SumMergeUDF()])
    udf = plan.udfs[0]
    dest = {"total": np.ones((6, 6)), "maxes": np.zeros(64)}
    copied = make_copy(dest)
    assert copied["total"] is not dest["total"] and np.array_equal(copied["total"], dest["total"])
    udf.meta.slice = Slice((32,), Shape((32,), sig_dims=0))
    src = {"total": np.full((6, 6), 2.0), "maxes": np.arange(32.0)}
    damage = np.zeros(64, dtype=bool)
    damage[32:] = True
    merged = merge_wrap(udf, dest, src, damage)
    assert np.all(merged["total"] == 3) and np.all(dest["total"] == 1)
    assert np.array_equal(merged["maxes"][32:], np.arange(32.0))
    assert np.all(merged["maxes"][:32] == 0)
    plan.release()


def test_delayed_executor_members(delayed_ctx, data):
    ex = delayed_ctx.executor
    assert ex.run_function(lambda a: a + 1, 1) == 2
    assert ex.map(lambda x: 2 * x, [1, 2]) == [2, 4]
    assert ex.run_each_worker(lambda: 3) == {"delayed": 3}
    assert list(ex.run_each_host(lambda: 4).values()) == [4]
    assert ex.get_available_workers().names() == ["delayed"]
    assert ex.get_udf_runner() is DelayedUDFRunner
    node = ex.run_delayed(np.add, 1, 2, _delayed_kwargs={"pure": True})
    assert node.compute() == 3
    buf = BufferWrapper("sig", dtype="float32")
    buf.set_shape_ds(Shape(SHAPE, sig_dims=2))
    buf.allocate()
    buf.raw_data[:] = 5
    lazy = ex.modify_buffer_type(buf)
    assert isinstance(lazy, DaskBufferWrapper)
    assert isinstance(lazy.raw_data, da.Array) and np.all(lazy.raw_data.compute() == 5)
    ex.cancel("nothing-runs")  # accepted; there is nothing to stop


def test_unwrap_results(delayed_ctx, data):
    # LiberTEM: final results (DaskResultBufferWrapper) stay; the structure is kept
    ds = delayed_ctx.load("memory", data=data, sig_dims=2, num_partitions=4)
    res = delayed_ctx.run_udf(dataset=ds, udf=[SumUDF(), SumSigUDF()])
    unwrapped = DelayedJobExecutor.unwrap_results(res)
    assert isinstance(unwrapped, tuple) and len(unwrapped) == 2
    assert unwrapped[0]["intensity"] is res[0]["intensity"]
    lazy = DaskBufferWrapper("sig", dtype="float32")
    lazy.set_shape_ds(Shape(SHAPE, sig_dims=2))
    lazy.allocate()
    nest = {"a": [lazy, ("x", 1)], "b": res[1]["intensity"].delayed_data}
    out = DelayedJobExecutor.unwrap_results(nest)
    assert isinstance(out["a"][0], da.Array) and out["a"][1] == ("x", 1)
    assert out["b"] is nest["b"]
    total, sumsig = dask.compute(out["a"][0], res[1]["intensity"].delayed_data)
    assert np.array_equal(total, np.zeros(SHAPE[2:]))
    assert np.array_equal(sumsig, data.sum(axis=(2, 3)))


def test_delayed_udf_runner_results_for_dataset(delayed_ctx, data):
    ds = delayed_ctx.load("memory", data=data, sig_dims=2, num_partitions=2)
    runner = DelayedUDFRunner([SumSigUDF()])
    results, _handle, params = runner.results_for_dataset_sync(ds, delayed_ctx.executor, None)
    parts = [res[0]["intensity"].raw_data for res, _task in results]
    assert all(isinstance(p, da.Array) for p in parts)
    np.testing.assert_allclose(da.concatenate(parts).compute(), data.sum(axis=(2, 3)).ravel())
    final = runner.run_for_dataset(ds, delayed_ctx.executor)
    assert isinstance(final.buffers[0]["intensity"], DaskResultBufferWrapper)


# --- Dask buffers -------------------------------------------------------------------------------


def test_inplace_wrapper():
    base = np.arange(24.0).reshape(4, 6)
    w = DaskInplaceWrapper(da.from_array(base.copy(), chunks=2))
    assert w.shape == (4, 6) and w.dtype == base.dtype and w.ndim == 2 and w.size == 24
    w.set_slice((slice(1, 3), slice(None)))
    assert w.shape == (4, 6)  # LiberTEM: always the whole array's shape
    assert w.unwrap_sliced().shape == (2, 6)
    w[:] += 100
    w[0, 0] = -1
    assert w.flags.c_contiguous
    expected = base.copy()
    expected[1:3] += 100
    expected[1, 0] = -1
    np.testing.assert_array_equal(w.unwrap_sliced().compute(), expected[1:3])
    w.clear_slice()
    np.testing.assert_array_equal(w.data.compute(), expected)
    np.testing.assert_array_equal(np.asarray(w), expected)
    with pytest.raises(AssertionError):
        w.set_slice((slice(None), slice(None), 0))


@given(
    start=st.integers(0, 9),
    length=st.integers(0, 10),
    inner=st.slices(10),
    value=st.floats(-10, 10, allow_nan=False),
    chunks=st.integers(1, 5),
)
@example(start=0, length=4, inner=slice(None, None, 4), value=1.0, chunks=3)
def test_inplace_wrapper_matches_numpy(start, length, inner, value, chunks):
    reference = np.arange(10.0)
    w = DaskInplaceWrapper(da.from_array(reference.copy(), chunks=chunks))
    region = slice(start, min(10, start + length))
    w.set_slice(region)
    view = reference[region]
    view[inner] += value
    w[inner] += value
    w.clear_slice()
    np.testing.assert_allclose(w.data.compute(), reference)


def test_dask_buffer_views_and_merge_style_writes():
    shape = Shape((4, 4, 3, 3), sig_dims=2)
    nav = DaskBufferWrapper("nav", extra_shape=(2,), dtype="float64")
    nav.set_shape_ds(shape)
    nav.allocate()
    nav.set_view_nav_range(4, 8)
    nav.view[:] = np.arange(8.0).reshape(4, 2)
    nav.set_view_frame(0)
    nav.view[:] = (-1, -2)
    nav.reset_view()
    expected = np.zeros((16, 2))
    expected[4:8] = np.arange(8.0).reshape(4, 2)
    expected[0] = (-1, -2)
    np.testing.assert_array_equal(nav.raw_data.compute(), expected)
    assert nav.data.shape == (4, 4, 2)
    sig = DaskBufferWrapper("sig", dtype="float32")
    sig.set_shape_ds(shape)
    sig.allocate()
    dest = sig.get_view_for_dataset(None)
    dest[:] += np.ones((3, 3), dtype=np.float32)
    sig.set_view_nav_range(0, 0, (slice(0, 1), slice(None)))
    sig.view[:] += 4
    np.testing.assert_array_equal(sig.raw_data.compute(), [[5, 5, 5], [1, 1, 1], [1, 1, 1]])
    copy = DaskBufferWrapper.from_buffer(sig)
    np.testing.assert_array_equal(copy.raw_data.compute(), sig.raw_data.compute())
    assert copy.kind == "sig" and sig.result_buffer_type() is DaskResultBufferWrapper
    pre = sig.new_as_prealloc(da.ones((3, 3)))
    assert isinstance(pre, DaskPreallocBufferWrapper) and pre.kind == "sig"
    pre.allocate()  # keeps the given array
    assert float(pre.raw_data.sum().compute()) == 9
    sig.export()
    sig.flush()
    with pytest.raises(RuntimeError, match="shape first"):
        DaskBufferWrapper("sig").allocate()


def test_result_buffer_with_roi():
    shape = Shape((3, 4, 2, 2), sig_dims=2)
    roi = np.zeros((3, 4), dtype=bool)
    roi[1] = True
    raw = da.from_array(np.arange(4.0))
    res = DaskResultBufferWrapper(raw, "nav", (), "float64")
    res.set_result_context(shape, roi)
    assert res.delayed_raw_data is raw or res.delayed_raw_data.shape == (4,)
    expected = np.full((3, 4), np.nan)
    expected[1] = np.arange(4.0)
    np.testing.assert_array_equal(res.delayed_data.compute(), expected)
    np.testing.assert_array_equal(res.data, expected)
    np.testing.assert_array_equal(res.raw_data, np.arange(4.0))
    buf = BufferWrapper("nav", dtype="float64")
    buf.set_shape_ds(shape, roi)
    buf.allocate()
    buf.raw_data[:] = 7
    wrapped = DaskResultBufferWrapper.from_buffer_wrapper(buf)
    assert isinstance(wrapped.delayed_data, da.Array)
    assert np.all(wrapped.data[1] == 7) and np.isnan(wrapped.data[0]).all()


# --- make_dask_array ----------------------------------------------------------------------------


def test_make_dask_array_sparse_backend(data):
    ctx = Context(executor=InlineJobExecutor())
    ds = ctx.load("memory", data=data, sig_dims=2, num_partitions=4)
    arr, workers = make_dask_array(ds, array_backend="sparse.COO")
    assert workers is None
    assert isinstance(arr._meta, sparse.COO)
    chunk = arr.blocks[0].compute()
    assert isinstance(chunk, sparse.COO)
    np.testing.assert_array_equal(arr.compute().todense(), data)
    dense, _ = make_dask_array(ds, array_backend="numpy")
    np.testing.assert_array_equal(dense.compute(), data)
    with pytest.raises(ValueError, match="two axes"):
        make_dask_array(ds, array_backend="scipy.sparse.csr_matrix")
