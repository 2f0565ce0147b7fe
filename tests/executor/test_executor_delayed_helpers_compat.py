"""Delayed executor helpers of LiberTEM 0.16: ``dask_inplace`` (in-place assignment into
Dask arrays through a region), ``delayed_unpack`` (flattening and rebuilding nests),
``DelayedJobExecutor._compute`` / ``unwrap_results``, ``merge_all`` and per-partition
chunks of ``kind='nav'`` results."""

from __future__ import annotations

import dask
import dask.array as da
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from libertem.api import Context
from libertem.executor.delayed import DelayedJobExecutor
from libertem.executor.utils.dask_buffer import DaskBufferWrapper
from libertem.executor.utils.dask_inplace import (
    DaskInplaceWrapper,
    combine_slices,
    combine_slices_multid,
)
from libertem.executor.utils.delayed_unpack import (
    IgnoreClass,
    StructDescriptor,
    build_mapping,
    find_tuples,
    flatten_nested,
    list_to_tuple,
    pairwise,
    rebuild_nested,
    set_as_tuple,
)
from libertem.udf.base import UDF
from libertem.udf.sum import SumUDF
from libertem.udf.sumsigudf import SumSigUDF

# --- combine_slices ---------------------------------------------------------------------------


@given(length=st.integers(0, 12), outer=st.slices(12), inner=st.slices(12))
def test_combine_slices_selects_like_numpy(length, outer, inner):
    x = np.arange(length)
    combined = combine_slices(outer, inner, length)
    assert np.array_equal(x[combined], x[outer][inner])


@given(length=st.integers(1, 12), outer=st.slices(12), data=st.data())
def test_combine_slice_with_int(length, outer, data):
    x = np.arange(length)
    n = len(x[outer])
    if n == 0:
        return
    k = data.draw(st.integers(-n, n - 1))
    assert x[combine_slices(outer, k, length)] == x[outer][k]


def test_combine_slices_rules():
    assert combine_slices(slice(2, 10, 2), slice(1, 3), 20) == slice(4, 8, 2)
    assert combine_slices(slice(2, 10, 2), 1, 20) == 4
    assert combine_slices(slice(5, 2), slice(None), 20) == slice(0, 0, 1)
    assert combine_slices(3, None, 10) == 3 and combine_slices(3, slice(None), 10) == 3
    with pytest.raises(AssertionError):
        combine_slices(3, slice(1, 2), 10)
    assert combine_slices(slice(None, None, -1), slice(None), 5) == slice(4, None, -1)


def test_combine_slices_multid():
    x = np.arange(40).reshape(10, 4)
    for outer, inner in (
        (np.s_[1:9, 2], np.s_[3:5]),
        (np.s_[...], np.s_[0, 1:3]),
        (np.s_[2:8, ...], np.s_[::2, 1]),
        (np.s_[3], np.s_[1:]),
        (np.s_[1:9], np.s_[2:4, ...]),
    ):
        combined = combine_slices_multid(outer, inner, x.shape)
        assert np.array_equal(x[combined], x[outer][inner])
    assert combine_slices_multid(np.s_[1:9, 2], np.s_[3:5], (10, 4)) == (slice(4, 6, 1), 2)
    assert combine_slices_multid(np.s_[2:3], np.s_[:], (10, 4)) == (slice(2, 3),)
    assert combine_slices_multid(np.s_[:, :], np.s_[1], (10, 4)) == (1,)
    with pytest.raises(IndexError, match="Ellipsis"):
        combine_slices_multid(np.s_[1:9], np.s_[..., 1], (10, 4))
    with pytest.raises(AssertionError):
        combine_slices_multid(np.s_[1, 2], np.s_[0], (10, 4))


# --- DaskInplaceWrapper ------------------------------------------------------------------------


def test_inplace_wrapper_whole_array_attributes_and_region_writes():
    reference = np.arange(24.0).reshape(4, 6)
    w = DaskInplaceWrapper(da.from_array(reference.copy(), chunks=(2, 3)))
    w.set_slice(np.s_[1:3, ::2])
    assert (w.shape, w.size, w.ndim, w.dtype) == ((4, 6), 24, 2, np.float64)
    assert w.flags.c_contiguous is True
    w[0, 1:] = -1.0
    w[:, 0] += 100
    reference[1:3, ::2][0, 1:] = -1.0
    reference[1:3, ::2][:, 0] += 100
    assert np.array_equal(w[:].compute(), reference[1:3, ::2])
    assert w.unwrap_sliced().shape == (2, 3)
    w.clear_slice()
    assert np.array_equal(w.data.compute(), reference)
    w[2] = np.array([7.0])  # one element: assigned as a scalar
    reference[2] = 7.0
    assert np.array_equal(np.asarray(w), reference)
    w[0:0] = np.zeros((0, 6))  # empty: nothing happens
    assert np.array_equal(w.data.compute(), reference)


def test_inplace_wrapper_rejects():
    with pytest.raises(AssertionError):
        DaskInplaceWrapper(np.zeros(3))
    w = DaskInplaceWrapper(da.zeros((2, 2)))
    for bad in (np.s_[[0, 1]], np.s_[0, 0, 0], (np.array([True, False]),)):
        with pytest.raises(AssertionError):
            w.set_slice(bad)


def test_buffer_views_keep_region_shapes():
    buf = DaskBufferWrapper("nav", dtype="float32")
    from libertem.common.shape import Shape

    buf.set_shape_ds(Shape((4, 2, 2), sig_dims=2))
    buf.allocate()
    buf.set_view_nav_range(1, 3)
    assert buf.view.shape == (2,)  # a view behaves like a numpy view
    buf.view[:] = 5
    assert np.array_equal(buf.raw_data.compute(), [0, 5, 5, 0])


# --- delayed_unpack ----------------------------------------------------------------------------


def test_flatten_and_rebuild_keep_structure_and_types():
    nest = ({"a": [1, (2, [3, ()])], "b": {}}, [], (5,), "x")
    flat = flatten_nested(nest)
    assert flat == [1, 2, 3, (), {}, [], 5, "x"]
    mapping = build_mapping(nest)
    assert mapping[0] == [(tuple, 0), (dict, "a"), (list, 0)]
    rebuilt = rebuild_nested([v * 2 if isinstance(v, int) else v for v in flat], mapping)
    assert rebuilt == ({"a": [2, (4, [6, ()])], "b": {}}, [], (10,), "x")
    assert type(rebuilt[0]["a"][1]) is tuple
    assert rebuild_nested([9], build_mapping(9)) == 9
    with pytest.raises(ValueError):
        rebuild_nested([1, 2], build_mapping([1]))


def test_unpack_options_and_small_helpers():
    class Leafy(dict):
        pass

    nest = {"keep": Leafy(a=1), "walk": {"b": 2}}
    assert flatten_nested(nest, ignore_types=(Leafy,)) == [Leafy(a=1), 2]
    assert flatten_nested(nest) == [1, 2]
    assert not isinstance(object(), IgnoreClass)
    assert list(pairwise("abc")) == [("a", "b"), ("b", "c")]
    mapping = build_mapping([(1, 2), [(3,)]])
    assert find_tuples(mapping) == [(2, 2), (0, 1)]
    assert list_to_tuple([[1, 2], [[3]]], mapping) == [(1, 2), [(3,)]]
    assert set_as_tuple([1, 2], []) == (1, 2)
    desc = StructDescriptor(dict, a=1)
    assert desc() == {"a": 1} and desc == StructDescriptor(dict, a=1)


# --- _compute and unwrap_results -----------------------------------------------------------


@pytest.fixture(scope="module")
def delayed():
    ex = DelayedJobExecutor()
    ctx = Context(executor=ex)
    data = np.arange(4 * 4 * 8 * 8, dtype=np.float32).reshape(4, 4, 8, 8)
    return ex, ctx, ctx.load("memory", data=data, num_partitions=2), data


def test_compute_results_in_one_go(delayed):
    ex, ctx, ds, data = delayed
    res = ctx.run_udf(dataset=ds, udf=[SumUDF(), SumSigUDF()])
    out = ex._compute(res)
    assert type(out) is tuple and [type(d) for d in out] == [dict, dict]
    assert out[0]["intensity"] is res[0]["intensity"]
    assert np.array_equal(out[1]["intensity"].data, data.sum(axis=(2, 3)))
    text = object()
    nest = {"a": da.ones(3, chunks=1) * 2, "b": [da.zeros(2), text, (5, da.arange(2))]}
    computed = ex._compute(nest)
    assert np.array_equal(computed["a"], [2, 2, 2]) and computed["b"][1] is text
    assert isinstance(computed["b"][2], tuple) and np.array_equal(computed["b"][2][1], [0, 1])
    several = ex._compute([da.arange(3)], {"k": da.arange(2)})
    assert type(several) is tuple and np.array_equal(several[1]["k"], [0, 1])
    assert ex.unwrap_results({"x": [1, (2, "y")]}) == {"x": [1, (2, "y")]}


def test_compute_resources_from_udfs(delayed):
    ex, *_ = delayed
    assert ex._compute(da.arange(3) + 1, udfs=[SumUDF()]).tolist() == [1, 2, 3]
    with pytest.raises(ValueError):
        ex._compute(da.arange(3), udfs=[SumUDF()], resources={"CPU": 1})


class _StackSum(UDF):
    def get_result_buffers(self):
        return {"total": self.buffer(kind="sig", dtype=np.float64)}

    def process_frame(self, frame):
        self.results.total[:] += frame

    def merge_all(self, ordered_results):
        return {"total": sum(part.total for part in ordered_results.values())}


class _StackSumExtra(_StackSum):
    def merge_all(self, ordered_results):
        return {"total": sum(p.total for p in ordered_results.values()), "bogus": 1}


def test_merge_all_only_with_the_delayed_executor(ctx, delayed):
    ex, dctx, _ds, _data = delayed
    data = np.ones((2, 3, 4, 4), dtype=np.float32)
    ds = dctx.load("memory", data=data, num_partitions=2)
    assert np.array_equal(dctx.run_udf(ds, _StackSum())["total"].data, np.full((4, 4), 6.0))
    with pytest.raises(ValueError, match=r"\['total', 'bogus'\].*\['total'\]"):
        dctx.run_udf(ds, _StackSumExtra())
    ds = ctx.load("memory", data=data, num_partitions=2)
    with pytest.raises(NotImplementedError, match="Default merging only works for kind='nav'"):
        ctx.run_udf(ds, _StackSum())


class _FrameSum(UDF):
    def get_result_buffers(self):
        return {"s": self.buffer(kind="nav", dtype=np.float32)}

    def process_frame(self, frame):
        self.results.s[:] = frame.sum()

    def merge(self, dest, src):
        dest.s[:] = src.s


@pytest.mark.parametrize("udf", [_FrameSum(), SumSigUDF()], ids=["custom merge", "default"])
def test_nav_results_are_chunked_per_partition(delayed, udf):
    _ex, ctx, _ds, _data = delayed
    data = np.random.default_rng(1).random((8, 4, 2, 2)).astype(np.float32)
    ds = ctx.load("memory", data=data, num_partitions=4)
    name = "s" if isinstance(udf, _FrameSum) else "intensity"
    res = ctx.run_udf(dataset=ds, udf=udf)[name]
    assert res.delayed_raw_data.chunks == ((8, 8, 8, 8),)
    assert res.delayed_data.chunks == ((2, 2, 2, 2), (4,))
    assert np.allclose(res.data, data.sum(axis=(2, 3)))
    roi = np.zeros((8, 4), dtype=bool)
    roi[1:3] = True
    roi[6, 1] = True
    masked = ctx.run_udf(dataset=ds, udf=udf, roi=roi)[name]
    # one chunk per partition with selected frames
    assert masked.delayed_raw_data.chunks == ((4, 4, 1),)
    expected = np.where(roi, data.sum(axis=(2, 3)), np.nan)
    assert np.allclose(masked.data, expected, equal_nan=True)


def test_unwrap_lazy_buffers():
    from libertem.common.shape import Shape
    from libertem.udf.data import UDFData

    buf = DaskBufferWrapper("sig", dtype="float32")
    buf.set_shape_ds(Shape((2, 3, 3), sig_dims=2))
    buf.allocate()
    out = DelayedJobExecutor.unwrap_results([buf, {"u": UDFData({"b": buf})}])
    assert isinstance(out[0], da.Array) and isinstance(out[1]["u"]["b"], da.Array)
    assert dask.compute(out[0])[0].shape == (3, 3)
