"""Built-in UDFs against numpy: SumUDF, SumSigUDF, ApplyMasksUDF, StdDevUDF, LogsumUDF,
PickUDF, AutoUDF and Context.map."""

import functools

import numpy as np
import pytest
import scipy.sparse
import sparse

from libertem.udf.logsum import LogsumUDF
from libertem.udf.masks import ApplyMasksUDF
from libertem.udf.raw import PickUDF
from libertem.udf.stddev import StdDevUDF
from libertem.udf.sum import SumUDF
from libertem.udf.sumsigudf import SumSigUDF
from utils import (
    DTYPES,
    SHAPES,
    assert_close,
    load_mem,
    make_data,
    make_roi,
    ref_input,
    shape_id,
)


def _setup(ctx, shape, dtype, use_roi, num_partitions=3, seed=60, tileshape=None):
    full_shape, sig_dims = shape
    nav_shape = full_shape[: len(full_shape) - sig_dims]
    data = make_data(full_shape, dtype, seed=seed)
    roi = make_roi(nav_shape, seed=seed + 1) if use_roi else None
    ds = load_mem(ctx, data, sig_dims=sig_dims, num_partitions=num_partitions, tileshape=tileshape)
    sel = np.ones(nav_shape, bool) if roi is None else roi
    return data, ds, roi, sel


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("use_roi", [False, True], ids=["noroi", "roi"])
def test_sum_dtypes(ctx, dtype, use_roi):
    data, ds, roi, sel = _setup(ctx, ((4, 6, 5, 4), 2), dtype, use_roi)
    res = ctx.run_udf(dataset=ds, udf=SumUDF(), roi=roi)
    ref = ref_input(data)
    assert set(res) == {"intensity"}
    assert res["intensity"].data.shape == (5, 4)
    assert_close(res["intensity"].data, ref[sel].sum(axis=0), ref.dtype)


@pytest.mark.parametrize("shape", SHAPES, ids=shape_id)
@pytest.mark.parametrize("use_roi", [False, True], ids=["noroi", "roi"])
@pytest.mark.parametrize("num_partitions", [1, 4])
def test_sum_sumsig_shapes(ctx, shape, use_roi, num_partitions):
    data, ds, roi, sel = _setup(ctx, shape, "float32", use_roi, num_partitions)
    full_shape, sig_dims = shape
    nav_dims = len(full_shape) - sig_dims
    res_sum, res_sumsig = ctx.run_udf(dataset=ds, udf=[SumUDF(), SumSigUDF()], roi=roi)
    assert_close(res_sum["intensity"].data, data[sel].sum(axis=0))
    sumsig = data.sum(axis=tuple(range(nav_dims, data.ndim)))
    assert res_sumsig["intensity"].data.shape == full_shape[:nav_dims]
    assert_close(res_sumsig["intensity"].data[sel], sumsig[sel])
    assert_close(res_sumsig["intensity"].raw_data, sumsig[sel])
    if roi is not None:
        assert np.isnan(res_sumsig["intensity"].data[~sel]).all()


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("use_roi", [False, True], ids=["noroi", "roi"])
def test_sumsig_dtypes(ctx, dtype, use_roi):
    data, ds, roi, sel = _setup(ctx, ((4, 6, 5, 4), 2), dtype, use_roi)
    res = ctx.run_udf(dataset=ds, udf=SumSigUDF(), roi=roi)
    ref = ref_input(data)
    assert_close(res["intensity"].data[sel], ref.sum(axis=(2, 3))[sel], ref.dtype)


def test_sum_large_tiled(ctx):
    data, ds, roi, sel = _setup(
        ctx, ((8, 16, 32, 32), 2), "uint16", True, num_partitions=3, tileshape=(4, 8, 32)
    )
    res = ctx.run_udf(dataset=ds, udf=[SumUDF(), SumSigUDF()], roi=roi)
    assert_close(res[0]["intensity"].data, data[sel].sum(axis=0).astype(np.float64))
    assert_close(res[1]["intensity"].raw_data, data[sel].sum(axis=(1, 2)).astype(np.float64))


# --- ApplyMasksUDF --------------------------------------------------------------------------


def _masks(sig_shape, n=3, seed=61, dtype=np.float32, density=0.3):
    rng = np.random.default_rng(seed)
    m = rng.random((n, *sig_shape)) * (rng.random((n, *sig_shape)) < density)
    if np.dtype(dtype).kind == "c":
        m = m + 1j * rng.random((n, *sig_shape)) * (m != 0)
    return m.astype(dtype)


def _expected_masks(data, masks, sel):
    frames = ref_input(data)[sel]
    dtype = np.result_type(frames.dtype, masks.dtype, np.float64)
    return np.einsum("nyx,myx->nm", frames.astype(dtype), masks.astype(dtype))


@pytest.mark.parametrize(
    "factory_kind,use_sparse",
    [
        ("dense", None),
        ("dense", False),
        ("dense", True),
        ("dense", "scipy.sparse"),
        ("dense", "scipy.sparse.csc"),
        ("dense", "sparse.pydata"),
        ("scipy", None),
        ("scipy", True),
        ("scipy", "scipy.sparse"),
        ("scipy", "sparse.pydata"),
        ("pydata", None),
        ("pydata", True),
        ("pydata", "sparse.pydata"),
        ("pydata", "scipy.sparse"),
    ],
)
@pytest.mark.parametrize("use_roi", [False, True], ids=["noroi", "roi"])
def test_apply_masks(ctx, factory_kind, use_sparse, use_roi):
    data, ds, roi, sel = _setup(ctx, ((4, 6, 8, 10), 2), "float32", use_roi, tileshape=(3, 4, 10))
    masks = _masks((8, 10))

    def factory(i):
        if factory_kind == "scipy":
            return scipy.sparse.csr_matrix(masks[i])
        if factory_kind == "pydata":
            return sparse.COO.from_numpy(masks[i])
        return masks[i]

    factories = [functools.partial(factory, i) for i in range(len(masks))]
    udf = ApplyMasksUDF(mask_factories=factories, use_sparse=use_sparse)
    res = ctx.run_udf(dataset=ds, udf=udf, roi=roi)
    intensity = res["intensity"]
    assert intensity.data.shape == (4, 6, 3)
    assert intensity.raw_data.shape == (np.count_nonzero(sel), 3)
    expected = _expected_masks(data, masks, sel)
    assert_close(intensity.raw_data, expected, np.float32)
    assert_close(intensity.data[sel], expected, np.float32)
    if roi is not None:
        assert np.isnan(intensity.data[~sel]).all()


@pytest.mark.parametrize("dtype", DTYPES)
def test_apply_masks_dtypes(ctx, dtype):
    data, ds, roi, sel = _setup(ctx, ((4, 6, 8, 10), 2), dtype, False)
    masks = _masks((8, 10), n=2)
    udf = ApplyMasksUDF(mask_factories=[lambda: masks[0], lambda: masks[1]])
    res = ctx.run_udf(dataset=ds, udf=udf)
    expected = _expected_masks(data, masks, sel)
    assert_close(res["intensity"].raw_data, expected, np.float32)


def test_apply_masks_single_factory_with_mask_count(ctx):
    data, ds, roi, sel = _setup(ctx, ((4, 6, 8, 10), 2), "float32", True)
    masks = _masks((8, 10), n=4)
    udf = ApplyMasksUDF(mask_factories=lambda: masks, mask_count=4)
    res = ctx.run_udf(dataset=ds, udf=udf, roi=roi)
    assert res["intensity"].data.shape == (4, 6, 4)
    assert_close(res["intensity"].raw_data, _expected_masks(data, masks, sel), np.float32)


@pytest.mark.parametrize("use_sparse", [None, "scipy.sparse", "sparse.pydata"])
def test_apply_masks_sparse_stack_factory(ctx, use_sparse):
    data, ds, roi, sel = _setup(ctx, ((4, 6, 8, 10), 2), "float32", False)
    masks = _masks((8, 10), n=3)
    udf = ApplyMasksUDF(
        mask_factories=lambda: sparse.COO.from_numpy(masks), mask_count=3, use_sparse=use_sparse
    )
    res = ctx.run_udf(dataset=ds, udf=udf)
    assert_close(res["intensity"].raw_data, _expected_masks(data, masks, sel), np.float32)


@pytest.mark.parametrize("mask_dtype", [np.float32, np.float64, np.complex64, np.complex128])
@pytest.mark.parametrize("use_sparse", [None, "scipy.sparse", "sparse.pydata"])
def test_apply_masks_mask_dtype(ctx, mask_dtype, use_sparse):
    data, ds, roi, sel = _setup(ctx, ((4, 6, 8, 10), 2), "float64", False)
    masks = _masks((8, 10), n=2, dtype=mask_dtype)
    udf = ApplyMasksUDF(
        mask_factories=[lambda: masks[0], lambda: masks[1]],
        mask_dtype=mask_dtype,
        use_sparse=use_sparse,
    )
    res = ctx.run_udf(dataset=ds, udf=udf)
    out = res["intensity"].data
    assert out.shape == (4, 6, 2)
    # the result keeps the mask's kind and precision
    assert np.result_type(out.dtype, mask_dtype) == out.dtype
    np.testing.assert_allclose(
        res["intensity"].raw_data, _expected_masks(data, masks, sel), rtol=1e-5, atol=1e-6
    )


def test_apply_masks_1d_sig(ctx):
    data, ds, roi, sel = _setup(ctx, ((4, 6, 30), 1), "float32", True)
    masks = _masks((30,), n=2)
    udf = ApplyMasksUDF(mask_factories=[lambda: masks[0], lambda: masks[1]])
    res = ctx.run_udf(dataset=ds, udf=udf, roi=roi)
    expected = data[sel].astype(np.float64) @ masks.T.astype(np.float64)
    assert_close(res["intensity"].raw_data, expected, np.float32)


# --- StdDevUDF, LogsumUDF, PickUDF ------------------------------------------------------------


@pytest.mark.parametrize(
    "dtype",
    [
        "uint8",
        "uint16",
        "int32",
        "float32",
        "float64",
        "complex64",
    ],
)
@pytest.mark.parametrize("use_roi", [False, True], ids=["noroi", "roi"])
@pytest.mark.parametrize("num_partitions", [1, 5])
def test_stddev(ctx, dtype, use_roi, num_partitions):
    data, ds, roi, sel = _setup(ctx, ((4, 6, 5, 4), 2), dtype, use_roi, num_partitions)
    res = ctx.run_udf(dataset=ds, udf=StdDevUDF(), roi=roi)
    frames = data[sel].astype(np.result_type(np.float64, data.dtype))
    for key, ref in [
        ("std", np.std(frames, axis=0)),
        ("var", np.var(frames, axis=0)),
        ("mean", np.mean(frames, axis=0)),
    ]:
        assert res[key].data.shape == (5, 4), key
        np.testing.assert_allclose(res[key].data, ref, rtol=1e-4, atol=1e-4, err_msg=key)
    assert np.all(np.asarray(res["num_frames"].data) == frames.shape[0])


def test_stddev_tiled(ctx):
    data, ds, roi, sel = _setup(
        ctx, ((8, 16, 32, 32), 2), "float32", True, num_partitions=3, tileshape=(4, 8, 32)
    )
    res = ctx.run_udf(dataset=ds, udf=StdDevUDF(), roi=roi)
    frames = data[sel].astype(np.float64)
    np.testing.assert_allclose(res["var"].data, frames.var(axis=0), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(res["mean"].data, frames.mean(axis=0), rtol=1e-4, atol=1e-5)


def _logsum_ref(frames):
    # each frame shifted to start at zero, then log(x + 1)
    mins = frames.min(axis=tuple(range(1, frames.ndim)), keepdims=True)
    return np.sum(np.log1p(frames - mins), axis=0)


@pytest.mark.parametrize("dtype", ["uint8", "uint16", "float32"])
@pytest.mark.parametrize("use_roi", [False, True], ids=["noroi", "roi"])
def test_logsum(ctx, dtype, use_roi):
    data, ds, roi, sel = _setup(ctx, ((4, 6, 5, 4), 2), dtype, use_roi)
    res = ctx.run_udf(dataset=ds, udf=LogsumUDF(), roi=roi)
    frames = data[sel].astype(np.float64)
    assert res["logsum"].data.shape == (5, 4)
    np.testing.assert_allclose(res["logsum"].data, _logsum_ref(frames), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES, ids=shape_id)
def test_pick(ctx, dtype, shape):
    full_shape, sig_dims = shape
    nav_shape = full_shape[: len(full_shape) - sig_dims]
    data = make_data(full_shape, dtype, seed=62)
    ds = load_mem(ctx, data, sig_dims=sig_dims, num_partitions=3)
    roi = np.zeros(nav_shape, bool)
    flat = roi.reshape(-1)
    flat[[1, 7, 20]] = True
    res = ctx.run_udf(dataset=ds, udf=PickUDF(), roi=roi)
    raw = res["intensity"].raw_data
    assert raw.shape == data[roi].shape
    np.testing.assert_allclose(raw, data[roi])
    # a kind='single' buffer: the picked frames in flat navigation order
    np.testing.assert_allclose(res["intensity"].data, data[roi])


def test_pick_single_frame(ctx):
    data = make_data((4, 6, 5, 4), "uint16", seed=63)
    ds = load_mem(ctx, data, num_partitions=2)
    roi = np.zeros((4, 6), bool)
    roi[3, 2] = True
    res = ctx.run_udf(dataset=ds, udf=PickUDF(), roi=roi)
    np.testing.assert_array_equal(res["intensity"].raw_data[0], data[3, 2])


@pytest.mark.parametrize("use_roi", [False, True], ids=["noroi", "roi"])
def test_pick_partitions_send_only_their_frames(ctx, use_roi):
    """Each partition's partial result holds its own frames only (not a whole-result-
    sized buffer); the result is LiberTEM's 'single' buffer of the picked frames."""
    data = make_data((4, 6, 8, 10), "uint16", seed=64)
    ds = load_mem(ctx, data, num_partitions=4)
    roi = None
    if use_roi:
        roi = np.zeros((4, 6), bool)
        roi.reshape(-1)[[0, 5, 6, 11, 23]] = True
    sel = np.ones((4, 6), bool) if roi is None else roi
    merged = []

    class Spy(PickUDF):
        def merge(self, dest, src):
            merged.append(src.frames.shape)
            super().merge(dest, src)

    res = ctx.run_udf(dataset=ds, udf=Spy(), roi=roi)
    assert set(res) == {"intensity"}  # the private nav buffer stays inside
    assert res["intensity"].kind == "single" and res["intensity"].dtype == np.uint16
    np.testing.assert_array_equal(res["intensity"].data, data[sel])
    own = [
        int(sel.reshape(-1)[p.slice.origin[0] : p.slice.origin[0] + p.slice.shape[0]].sum())
        for p in ds.get_partitions()
    ]
    # (a partition without selected frames is not run at all)
    assert sorted(shape[0] for shape in merged) == sorted(n for n in own if n)
    assert all(shape[1:] == (8, 10) for shape in merged)


# --- AutoUDF and Context.map -----------------------------------------------------------------


@pytest.mark.parametrize("use_roi", [False, True], ids=["noroi", "roi"])
def test_map(ctx, use_roi):
    data, ds, roi, sel = _setup(ctx, ((4, 6, 8, 10), 2), "float32", use_roi)
    result = ctx.map(dataset=ds, f=functools.partial(np.sum, axis=-1), roi=roi)
    assert result.data.shape == (4, 6, 8)
    assert_close(result.data[sel], data.sum(axis=-1)[sel])
    assert_close(result.raw_data, data.sum(axis=-1)[sel])


def test_map_scalar_and_dtype(ctx):
    data, ds, roi, sel = _setup(ctx, ((4, 6, 8, 10), 2), "float32", False)
    result = ctx.map(dataset=ds, f=lambda frame: np.max(frame) > 2)
    assert result.data.shape == (4, 6)
    assert result.data.dtype == np.bool_
    np.testing.assert_array_equal(result.data, data.max(axis=(2, 3)) > 2)


@pytest.mark.parametrize("use_roi", [False, True], ids=["noroi", "roi"])
def test_auto_udf(ctx, use_roi):
    from libertem.udf import AutoUDF
    from libertem.udf.auto import AutoUDF as AutoUDF2

    assert AutoUDF is AutoUDF2
    data, ds, roi, sel = _setup(ctx, ((4, 6, 8, 10), 2), "float32", use_roi)
    udf = AutoUDF(f=functools.partial(np.sum, axis=-1))
    result = ctx.run_udf(dataset=ds, udf=udf, roi=roi)
    assert len(result) == 1
    (buf,) = result.values()
    assert buf.data.shape == (4, 6, 8)
    assert_close(buf.data[sel], data.sum(axis=-1)[sel])
