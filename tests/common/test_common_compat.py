"""The helpers of ``libertem.common`` that LiberTEM 0.16 documents, checked against numpy."""

from __future__ import annotations

import asyncio
import contextvars
import warnings

import numpy as np
import pytest
import scipy.sparse
import sparse
from hypothesis import given
from hypothesis import strategies as st

from libertem.common import Shape, Slice, SliceUsageError
from libertem.common.async_utils import (
    async_generator,
    async_generator_eager,
    run_agen_get_last,
    run_gen_get_last,
)
from libertem.common.buffers import (
    BufferPool,
    BufferWrapper,
    PreallocBufferWrapper,
    batched,
    bytes_aligned,
    disjoint,
    empty_aligned,
    get_bbox,
    get_bbox_2d,
    get_bbox_slice,
    get_inner_slice,
    reshaped_view,
    to_numpy,
    zeros_aligned,
)
from libertem.common.container import MaskContainer
from libertem.common.math import count_nonzero, flat_nonzero, make_2D_square, ndenumerate, prod
from libertem.common.shape import NavOnlyShape, SigOnlyShape
from libertem.common.sparse import assert_sparse, is_sparse, sparse_to_coo, to_dense, to_sparse
from libertem.common.tracing import TracedThreadPoolExecutor, attach_to_parent
from libertem.warnings import UseDiscouragedWarning

ARRAY = np.array([[0, 3, 0], [1, 0, 0], [0, 0, 7]])
FORMS = [
    np.asarray,
    sparse.COO.from_numpy,
    sparse.GCXS.from_numpy,
    scipy.sparse.csr_matrix,
    scipy.sparse.csc_array,
]


def test_prod():
    assert prod([2, 3, np.int64(4), True]) == 24 and prod([]) == 1
    assert prod([2**40, 2**40]) == 2**80  # exact, no overflow
    with pytest.raises(ValueError):  # LiberTEM 0.16: ValueError with an empty message
        prod([2, 1.5])


@pytest.mark.parametrize("form", FORMS)
def test_nonzero_helpers(form):
    arr = form(ARRAY)
    assert count_nonzero(arr) == 3
    assert list(flat_nonzero(arr)) == [1, 3, 8]
    assert np.array_equal(to_dense(arr), ARRAY)
    assert np.array_equal(to_sparse(arr).todense(), ARRAY)
    assert is_sparse(arr) == (form is not np.asarray)
    assert dict(ndenumerate(arr)) == dict(np.ndenumerate(ARRAY))


def test_sparse_conversions():
    coo = sparse_to_coo(scipy.sparse.csr_matrix(ARRAY), shape=(9,))
    assert coo.shape == (9,) and np.array_equal(coo.todense(), ARRAY.reshape(-1))
    assert to_sparse(ARRAY, shape=Shape((1, 9), sig_dims=1)).shape == (1, 9)
    assert assert_sparse(coo) is coo
    with pytest.raises(TypeError):
        assert_sparse(ARRAY)
    with pytest.raises(TypeError):
        sparse_to_coo(ARRAY)


def test_make_2d_square():
    assert make_2D_square((16,)) == (4, 4)
    assert make_2D_square((15,)) == (15,)
    assert make_2D_square((4, 5)) == (4, 5)


def test_shapes():
    s = Shape((2, 3, 4, 5), sig_dims=2)
    assert isinstance(s.nav, NavOnlyShape) and isinstance(s.sig, SigOnlyShape)
    assert s.nav == Shape((2, 3), sig_dims=0) and s.sig.sig_dims == 2
    assert NavOnlyShape((7, 8)).sig_dims == 0 and SigOnlyShape((7, 8)).nav_dims == 0
    assert tuple(SigOnlyShape((7, 8)).flatten_nav()) == (7, 8)
    assert tuple(Shape(s, sig_dims=2)) == (2, 3, 4, 5)


def test_slice_members():
    sl = Slice((1, 0, 2, 2), Shape((1, 3, 4, 4), sig_dims=2))
    flat = sl.flatten_nav((2, 3, 8, 8))
    assert flat.origin == (3, 2, 2) and tuple(flat.shape) == (3, 4, 4)
    with pytest.raises(SliceUsageError):
        Slice((0, 1, 0, 0), Shape((2, 1, 4, 4), sig_dims=2)).flatten_nav((2, 3, 8, 8))
    assert sl.nav.origin == (1, 0) and tuple(sl.sig.shape) == (4, 4)
    assert sl.shift_by((1, 1, 0, 0)).origin == (2, 1, 2, 2)
    clipped = Slice((0, 6, 6), Shape((2, 4, 4), sig_dims=2)).clip_to(Shape((1, 8, 8), sig_dims=2))
    assert clipped.origin == (0, 6, 6) and tuple(clipped.shape) == (1, 2, 2)
    whole = Slice.from_shape((4, 8, 8), sig_dims=2)
    assert whole.origin == (0, 0, 0)
    roi = np.array([1, 0, 1, 1, 0, 1, 1, 1], dtype=bool)
    adjusted = Slice((2, 0, 0), Shape((4, 8, 8), sig_dims=2)).adjust_for_roi(roi)
    assert adjusted.origin == (1, 0, 0) and adjusted.shape[0] == 3
    assert whole.adjust_for_roi(None) is whole


@given(
    shape=st.tuples(st.integers(1, 9), st.integers(1, 9)),
    sub=st.tuples(st.integers(1, 4), st.integers(1, 4)),
)
def test_subslices_cover_once(shape, sub):
    sl = Slice((2, 3), Shape(shape, sig_dims=1))
    counts = np.zeros((2 + shape[0], 3 + shape[1]), dtype=int)
    parts = list(sl.subslices(sub))
    for part in parts:
        assert all(e <= s for e, s in zip(part.shape, sub))
        counts[part.get()] += 1
    assert counts[sl.get()].min() == counts[sl.get()].max() == 1
    assert counts.sum() == prod(shape)
    assert disjoint(parts[0], parts[1:])


def test_bboxes():
    m = np.zeros((5, 6), dtype=bool)
    m[1:3, :] = True
    m[3, 1:4] = True
    assert get_bbox(m) == (1, 3, 0, 5)
    assert get_bbox_slice(m) == (slice(1, 4), slice(0, 6))
    assert get_inner_slice(m, axis=0) == (slice(1, 3), slice(None))
    arr = np.zeros((4, 4))
    arr[2, 1] = 1e-3
    assert get_bbox_2d(arr) == (2, 2, 1, 1)
    with pytest.raises(ValueError):
        get_bbox(np.zeros(3))


def test_aligned_memory_and_pool():
    buf = bytes_aligned(10_000)
    assert len(buf) == 10_000
    arr = empty_aligned((3, 5), np.float64)
    assert arr.shape == (3, 5) and arr.ctypes.data % 4096 == 0
    assert not zeros_aligned(100, np.uint8).any()
    pool = BufferPool()
    with pool.empty((4, 4), np.float32) as a:
        address = a.ctypes.data
        a[:] = 3
    with pool.zeros((4, 4), np.float32) as b:
        assert b.ctypes.data == address  # reused
        assert not b.any()
    with pool.bytes(64) as raw:
        assert len(raw) == 64
    assert list(batched(range(7), 3)) == [(0, 1, 2), (3, 4, 5), (6,)]
    view = reshaped_view(np.zeros((4, 6)), (2, 12))
    assert view.shape == (2, 12)
    with pytest.raises(AttributeError, match="Incompatible shape for in-place modification"):
        reshaped_view(np.zeros((4, 6)).T, (24,))


def test_buffer_wrapper_lifecycle():
    from libertem.common.shape import Shape as S

    ds_shape = S((4, 5, 3, 3), sig_dims=2)
    roi = np.zeros((4, 5), dtype=bool)
    roi[1, :] = True
    buf = BufferWrapper("nav", extra_shape=(2,), dtype="float32")
    buf.set_shape_ds(ds_shape, roi)
    assert not buf.has_data() and not buf.roi_is_zero
    buf.allocate()
    assert buf.raw_data.shape == (5, 2) and buf.shape == (4, 5, 2)
    buf.raw_data[:] = 1
    assert np.isnan(buf.data[0]).all() and (buf.data[1] == 1).all()
    with pytest.raises(ValueError, match="replace_array"):
        buf.replace_array(np.zeros((4, 2)))
    buf.replace_array(np.full((5, 2), 2.0))
    assert (buf.data[1] == 2).all()
    buf.export()
    assert buf.result_buffer_type() is BufferWrapper
    zero = BufferWrapper("nav")
    zero.set_shape_ds(ds_shape, np.zeros((4, 5), dtype=bool))
    assert zero.roi_is_zero
    pre = PreallocBufferWrapper(np.arange(6.0), "single", (6,))
    pre.allocate()
    assert pre.dtype == np.float64 and np.array_equal(pre.raw_data, np.arange(6.0))
    assert to_numpy(pre.raw_data) is pre.raw_data


def test_buffer_views_for_partitions(inline_ctx):
    ds = inline_ctx.load("memory", data=np.zeros((4, 5, 3, 3), np.float32), num_partitions=2)
    roi = np.ones((4, 5), dtype=bool)
    roi[0, 0] = False
    parts = list(ds.get_partitions())
    buf = BufferWrapper("nav")
    buf.set_shape_ds(ds.shape, roi)
    buf.add_partitions(parts)
    buf.allocate()
    buf.raw_data[:] = np.arange(19)
    assert np.array_equal(buf.get_view_for_partition(parts[1]), np.arange(9, 19))
    part_buf = BufferWrapper("nav")
    part_buf.set_shape_partition(parts[0], roi)
    part_buf.allocate()
    assert part_buf.raw_data.shape == (9,)


def test_container_options():
    stack = np.zeros((3, 6, 6), dtype=np.float32)
    stack[0, :2] = 1
    stack[1, 2:4, 2:4] = 2
    stack[2, 5, 5] = 3
    sl = Slice((0, 0, 0), Shape((4, 6, 6), sig_dims=2))
    mc = MaskContainer(lambda: sparse.COO.from_numpy(stack), default_sparse="sparse.pydata")
    assert mc.use_sparse == "sparse.pydata"
    assert isinstance(mc.get(sl), sparse.COO)
    assert mc.computed_masks.shape == (3, 6, 6)
    csc = mc.get(sl, sparse_backend="scipy.sparse.csc", transpose=True)
    assert csc.format == "csc" and csc.shape == (36, 3)
    assert np.array_equal(csc.toarray(), stack.reshape((3, -1)).T)
    as64 = mc.get(sl, dtype=np.float64, transpose=False)
    assert as64.dtype == np.float64
    gcxs = MaskContainer(lambda: stack, use_sparse="sparse.pydata.GCXS")
    assert isinstance(gcxs.get(sl), sparse.GCXS)
    csr = MaskContainer(lambda: stack, use_sparse="scipy.sparse.csr").get(sl, transpose=False)
    assert csr.format == "csr"
    from libertem.io.dataset.base import TilingScheme

    scheme = TilingScheme.make_for_shape((2, 3, 6), Shape((4, 6, 6), sig_dims=2))
    part = mc.get_for_idx(scheme, 1, transpose=False)
    assert np.array_equal(part.todense(), stack[:, 3:].reshape((3, -1)))
    uncached = mc.get_masks_for_slice(scheme[1], transpose=False)
    assert np.array_equal(uncached.todense(), part.todense())
    mc.validate_mask_functions()
    with pytest.raises(ValueError):
        MaskContainer([lambda: np.ones((2, 2)), lambda: np.ones((3, 3))]).validate_mask_functions()
    with pytest.raises(ValueError, match="backend"):
        MaskContainer(lambda: stack, backend="tpu")


def test_tracing_keeps_context():
    var = contextvars.ContextVar("var", default="unset")
    var.set("caller")
    with TracedThreadPoolExecutor(None, max_workers=1) as pool:
        assert pool.submit(var.get).result() == "caller"
    with attach_to_parent(None):
        pass


def test_async_helpers():
    def gen():
        yield from range(4)

    def failing():
        yield 1
        raise KeyError("boom")

    async def main():
        items = [i async for i in async_generator(gen())]
        eager = [i async for i in async_generator_eager(gen())]
        last = await run_agen_get_last(async_generator(gen()))
        with pytest.raises(KeyError):
            async for _ in async_generator_eager(failing()):
                pass
        return items, eager, last

    items, eager, last = asyncio.run(main())
    assert items == eager == [0, 1, 2, 3] and last == 3
    assert run_gen_get_last(gen()) == 3
    with pytest.raises(ValueError):
        run_gen_get_last(iter(()))


def test_use_discouraged_warning():
    assert issubclass(UseDiscouragedWarning, Warning)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        warnings.warn("slow", UseDiscouragedWarning, stacklevel=1)
    assert caught[0].category is UseDiscouragedWarning
