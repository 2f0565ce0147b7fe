"""Dask arrays as datasets (``ctx.load('dask', ...)``), lazy HyperSpy signals, and
datasets as Dask arrays (``make_dask_array``)."""

from __future__ import annotations

import dask
import dask.array as da
import numpy as np
import pytest

from dask_shared import acquire_cluster, release_cluster
from libertem.api import Context
from libertem.common.exceptions import DataSetException
from libertem.contrib.daskadapter import make_dask_array
from libertem.io.dataset.dask import DaskDataSet
from libertem.udf.masks import ApplyMasksUDF
from libertem.udf.stddev import StdDevUDF
from libertem.udf.sum import SumUDF
from libertem.udf.sumsigudf import SumSigUDF
from utils import make_roi


def _np_data(shape, seed=0):
    return np.random.default_rng(seed).integers(0, 200, size=shape).astype(np.float32)


def _bounds(ds):
    return [(p.start, p.stop) for p in ds.get_partitions()]


def _check_udfs(ctx, ds, data, sig_dims=2, roi=None):
    """SumUDF, SumSigUDF and StdDevUDF against numpy."""
    nav_dims = data.ndim - sig_dims
    nav_shape = data.shape[:nav_dims]
    sel = np.ones(nav_shape, bool) if roi is None else roi
    sig_axes = tuple(range(nav_dims, data.ndim))
    r_sum, r_sumsig, r_std = ctx.run_udf(
        dataset=ds, udf=[SumUDF(), SumSigUDF(), StdDevUDF()], roi=roi
    )
    assert np.array_equal(r_sum["intensity"].data, data[sel].sum(axis=0))
    assert np.array_equal(r_sumsig["intensity"].data[sel], data.sum(axis=sig_axes)[sel])
    np.testing.assert_allclose(r_std["std"].data, data[sel].std(axis=0), rtol=1e-4, atol=1e-4)


# --- partitions follow the chunks ----------------------------------------------------------


def test_is_dask_dataset(inline_ctx):
    arr = da.zeros((4, 4, 8, 8), chunks=(2, 4, 8, 8), dtype=np.uint16)
    ds = inline_ctx.load("dask", arr, sig_dims=2)
    assert isinstance(ds, DaskDataSet)
    assert tuple(ds.shape) == (4, 4, 8, 8)
    assert tuple(ds.shape.nav) == (4, 4)
    assert tuple(ds.shape.sig) == (8, 8)
    assert ds.dtype == np.uint16


def test_partitions_follow_chunks(inline_ctx):
    arr = da.from_array(_np_data((12, 5, 6, 7)), chunks=((3, 5, 4), 5, 6, 7))
    ds = inline_ctx.load("dask", arr, sig_dims=2, min_size=1)
    # one partition per chunk of the first nav axis, in flat frames (5 per row)
    assert _bounds(ds) == [(0, 15), (15, 40), (40, 60)]


def test_small_chunks_are_merged(inline_ctx):
    arr = da.from_array(_np_data((12, 5, 6, 7)), chunks=(1, 5, 6, 7))
    ds = inline_ctx.load("dask", arr, sig_dims=2)
    # 12 tiny chunks: merged into one partition, along chunk boundaries
    assert _bounds(ds) == [(0, 60)]
    # with a small target size, partitions still start and end on chunk edges
    row_bytes = 5 * 6 * 7 * 4
    ds = inline_ctx.load("dask", arr, sig_dims=2, min_size=3 * row_bytes)
    bounds = _bounds(ds)
    assert bounds[0][0] == 0 and bounds[-1][1] == 60
    assert all(start % 5 == 0 for start, _ in bounds)
    assert all((stop - start) >= 15 for start, stop in bounds[:-1])
    assert 1 < len(bounds) <= 4


def test_single_partition_results(ctx):
    data = _np_data((8, 6, 10, 12))
    arr = da.from_array(data, chunks=(2, 3, 5, 12))  # chunked along nav and sig axes
    ds = ctx.load("dask", arr, sig_dims=2)
    assert len(list(ds.get_partitions())) == 1
    _check_udfs(ctx, ds, data)
    _check_udfs(ctx, ds, data, roi=make_roi((8, 6), seed=2))


@pytest.mark.parametrize(
    "chunks",
    [(2, 6, 10, 12), ((3, 5), 6, 10, 12), (2, 3, 5, 4)],
    ids=["nav-rows", "uneven-rows", "nav-and-sig"],
)
def test_many_partitions_results(inline_ctx, chunks):
    data = _np_data((8, 6, 10, 12))
    arr = da.from_array(data, chunks=chunks)
    ds = inline_ctx.load("dask", arr, sig_dims=2, min_size=1)
    assert len(list(ds.get_partitions())) > 1
    _check_udfs(inline_ctx, ds, data)


@pytest.mark.parametrize(
    "shape, sig_dims, chunks",
    [
        ((24, 10, 12), 2, (24, 5, 12)),  # 1D nav, chunked signal
        ((2, 3, 4, 10, 12), 2, (2, 3, 2, 10, 6)),  # 3D nav
        ((6, 5, 40), 1, (6, 5, 20)),  # 1D signal
    ],
    ids=["nav1d", "nav3d", "sig1d"],
)
def test_other_dimensionalities(ctx, shape, sig_dims, chunks):
    data = _np_data(shape, seed=4)
    arr = da.from_array(data, chunks=chunks)
    ds = ctx.load("dask", arr, sig_dims=sig_dims)
    assert tuple(ds.shape.nav) == shape[: len(shape) - sig_dims]
    assert tuple(ds.shape.sig) == shape[len(shape) - sig_dims :]
    _check_udfs(ctx, ds, data, sig_dims=sig_dims)


def test_other_dimensionalities_many_partitions(inline_ctx):
    data = _np_data((2, 3, 4, 10, 12), seed=4)
    arr = da.from_array(data, chunks=(1, 3, 4, 10, 6))
    ds = inline_ctx.load("dask", arr, sig_dims=2, min_size=1)
    assert _bounds(ds) == [(0, 12), (12, 24)]
    _check_udfs(inline_ctx, ds, data)


def test_lazy_chunks_computed_in_tasks(inline_ctx):
    """Chunks made by functions are computed only when a partition is read."""
    calls = []

    def make_block(i):
        calls.append(i)
        return np.full((2, 4, 5, 5), i, dtype=np.float32)

    blocks = [
        da.from_delayed(dask.delayed(make_block)(i), shape=(2, 4, 5, 5), dtype=np.float32)
        for i in range(3)
    ]
    arr = da.concatenate(blocks, axis=0)
    ds = inline_ctx.load("dask", arr, sig_dims=2)
    assert calls == []
    res = inline_ctx.run_udf(dataset=ds, udf=SumSigUDF())
    expected = np.repeat(np.arange(3, dtype=np.float32), 2)[:, None] * 25 * np.ones((1, 4))
    assert np.array_equal(res["intensity"].data, expected)
    assert sorted(calls) == [0, 1, 2]


def test_masks_on_dask_dataset(ctx):
    data = _np_data((4, 4, 8, 8), seed=5)
    masks = np.random.default_rng(6).random((2, 8, 8)).astype(np.float32)
    ds = ctx.load("dask", da.from_array(data, chunks=(2, 4, 4, 8)), sig_dims=2)
    res = ctx.run_udf(dataset=ds, udf=ApplyMasksUDF(mask_factories=lambda: masks))
    np.testing.assert_allclose(
        res["intensity"].data, np.einsum("ijkl,mkl->ijm", data, masks), rtol=1e-5
    )


def test_spec_example_dask_integration():
    with dask.config.set(scheduler="threads"):
        ctx = Context.make_with("dask-integration")
        a = da.random.random((23, 42, 17, 19))
        ds = ctx.load("dask", a, sig_dims=2)
        res = ctx.run_udf(dataset=ds, udf=SumUDF())
        assert np.allclose(a.sum(axis=(0, 1)).compute(), res["intensity"].raw_data)
        ctx.close()


@pytest.fixture(scope="module")
def dataset_dask_ctx():
    executor = acquire_cluster()
    yield Context(executor=executor)
    release_cluster()


def test_dask_dataset_on_distributed_cluster(dataset_dask_ctx):
    data = _np_data((8, 6, 10, 12), seed=8)
    arr = da.from_array(data, chunks=(4, 6, 5, 12))
    ds = dataset_dask_ctx.load("dask", arr, sig_dims=2)
    _check_udfs(dataset_dask_ctx, ds, data)


@pytest.mark.parametrize(
    "make, sig_dims",
    [
        (lambda: np.zeros((4, 4, 8, 8)), 2),
        (lambda: da.zeros((4, 4, 8, 8)), 0),
        (lambda: da.zeros((4, 4, 8, 8)), 4),
        (lambda: da.zeros((4, 4, 8, 8)), 5),
    ],
    ids=["numpy-array", "sig0", "sig4", "sig5"],
)
def test_bad_input(inline_ctx, make, sig_dims):
    with pytest.raises(DataSetException):
        inline_ctx.load("dask", make(), sig_dims=sig_dims)


# --- HyperSpy lazy signals -----------------------------------------------------------------


def test_hyperspy_lazy_signal(ctx):
    hs = pytest.importorskip("hyperspy.api")
    data = _np_data((6, 7, 16, 16), seed=9)
    lazy = hs.signals.Signal2D(data).as_lazy()
    assert isinstance(lazy.data, da.Array)
    ds = ctx.load("dask", lazy.data, sig_dims=2)
    assert tuple(ds.shape) == data.shape
    _check_udfs(ctx, ds, data)
    eager = ctx.load("memory", data=data, sig_dims=2)
    a = ctx.run_udf(dataset=ds, udf=SumSigUDF())["intensity"].data
    b = ctx.run_udf(dataset=eager, udf=SumSigUDF())["intensity"].data
    assert np.array_equal(a, b)


def test_hyperspy_stacked_rechunked(inline_ctx):
    hs = pytest.importorskip("hyperspy.api")
    parts = [_np_data((3, 7, 16, 16), seed=s) for s in (10, 11)]
    stacked = hs.stack(
        [hs.signals.Signal2D(p).as_lazy() for p in parts], axis=1, lazy=True
    )  # navigation axis 1 of the signal = array axis 0
    stacked.rechunk(nav_chunks=(2, 7))
    arr = stacked.data
    assert isinstance(arr, da.Array)
    data = np.asarray(arr.compute())
    ds = inline_ctx.load("dask", arr, sig_dims=2)
    _check_udfs(inline_ctx, ds, data)


# --- make_dask_array -----------------------------------------------------------------------


def test_make_dask_array(inline_ctx):
    data = _np_data((8, 6, 10, 12), seed=12)
    ds = inline_ctx.load("memory", data=data, sig_dims=2, num_partitions=4)
    dask_array, workers = make_dask_array(ds)
    assert isinstance(dask_array, da.Array)
    assert dask_array.shape == data.shape
    assert dask_array.dtype == np.float32
    # one block per partition
    assert dask_array.numblocks[2:] == (1, 1)
    assert np.prod(dask_array.numblocks) == len(list(ds.get_partitions()))
    result = dask_array.sum(axis=(-1, -2)).compute(workers=workers)
    assert np.array_equal(result, data.sum(axis=(2, 3)))
    assert np.array_equal(dask_array.compute(), data)


def test_make_dask_array_roi_and_dtype(inline_ctx):
    data = _np_data((8, 6, 10, 12), seed=13).astype(np.uint16)
    ds = inline_ctx.load("memory", data=data, sig_dims=2, num_partitions=3)
    roi = make_roi((8, 6), seed=14)
    arr, workers = make_dask_array(ds, dtype="float64", roi=roi)
    assert arr.dtype == np.float64
    assert arr.shape == (np.count_nonzero(roi), 10, 12)
    assert np.array_equal(arr.compute(workers=workers), data[roi].astype(np.float64))


def test_round_trip_make_dask_array_then_load(inline_ctx):
    data = _np_data((8, 6, 10, 12), seed=15)
    ds = inline_ctx.load("memory", data=data, sig_dims=2, num_partitions=1)
    arr, _ = make_dask_array(ds)
    ds2 = inline_ctx.load("dask", arr, sig_dims=2)
    _check_udfs(inline_ctx, ds2, data)
