"""DaskDataSet re-chunks like LiberTEM 0.16 (chunks only merged: signal axes, axis order,
contiguous runs of frames, min_size), has one partition per chunk, and checks its arguments
in the constructor."""

import logging

import dask.array as da
import numpy as np
import pytest

from libertem.common.exceptions import DataSetException
from libertem.io.dataset.dask import DaskDataSet
from libertem.io.dataset.dask_chunks import min_with_min_neighbor, size_merged_chunking
from libertem.udf.sum import SumUDF
from libertem.udf.sumsigudf import SumSigUDF

F = 16 * 16 * 4  # bytes of one float32 16x16 frame

CASES = [
    # shape, chunks, keyword arguments, expected chunks, expected dataset shape
    ((5, 25, 16, 16), (1, -1, 8, 8), dict(min_size=0), ((1,) * 5, (25,), (16,), (16,)), None),
    ((5, 16, 16), (1, 8, 8), dict(min_size=0), ((1,) * 5, (16,), (16,)), None),
    ((5, 25, 16, 16), (2, 5, -1, -1), dict(min_size=0), ((2, 2, 1), (25,), (16,), (16,)), None),
    (
        (8, 4, 5, 16, 16),
        (4, 2, 1, 8, 8),
        dict(min_size=0),
        ((4, 4), (4,), (5,), (16,), (16,)),
        None,
    ),
    (
        (5, 25, 16, 16),
        (5, 1, -1, -1),
        dict(min_size=0, preserve_dimensions=False),
        ((1,) * 25, (5,), (16,), (16,)),
        (25, 5, 16, 16),
    ),
    (
        (4, 6, 16, 16),
        (2, 3, -1, -1),
        dict(min_size=0, preserve_dimensions=False),
        ((3, 3), (4,), (16,), (16,)),
        (6, 4, 16, 16),
    ),
    (
        (12, 25, 16, 16),
        (1, 2, -1, -1),
        dict(min_size=4 * F),
        ((1,) * 12, (6, 4, 4, 4, 7), (16,), (16,)),
        None,
    ),
    (
        (8, 12, 25, 16, 16),
        (1, 1, 2, -1, -1),
        dict(min_size=25 * 4 * F),
        ((1,) * 8, (4, 4, 4), (25,), (16,), (16,)),
        None,
    ),
    ((10, 16, 16), (1, -1, -1), dict(min_size=3 * F), ((6, 4), (16,), (16,)), None),
    ((6, 10, 16, 16), (1, -1, -1, -1), dict(min_size=np.inf), ((6,), (10,), (16,), (16,)), None),
    ((5, 25, 16, 16), (1, -1, -1, -1), dict(), ((5,), (25,), (16,), (16,)), None),
    ((2, 10, 16, 16), (1, 5, -1, -1), dict(min_size=0), ((1, 1), (5, 5), (16,), (16,)), None),
]


@pytest.mark.parametrize("shape, chunks, kw, expected, ds_shape", CASES)
def test_rechunking(inline_ctx, caplog, shape, chunks, kw, expected, ds_shape):
    data = np.random.default_rng(len(shape)).random(shape).astype(np.float32)
    arr = da.from_array(data, chunks=chunks)
    with caplog.at_level(logging.ERROR):
        ds = inline_ctx.load("dask", arr, sig_dims=2, **kw)
    assert ds.array.chunks == expected
    assert tuple(ds.shape) == (ds_shape or shape)
    parts = list(ds.get_partitions())
    assert ds.get_num_partitions() == len(parts) == int(np.prod([len(c) for c in expected]))
    # one partition per chunk, in C order, each a contiguous run of frames
    assert parts[0].start == 0 and parts[-1].stop == int(np.prod(ds.shape.nav))
    assert all(a.stop == b.start for a, b in zip(parts, parts[1:]))
    # the data as the dataset presents it (axes reordered for preserve_dimensions=False)
    # (axes with more chunks first: a stable sort by chunk count, reversed)
    order = list(reversed(sorted(range(len(shape) - 2), key=lambda i: len(arr.chunks[i]))))
    view = data if ds_shape is None else data.transpose(*order, len(shape) - 2, len(shape) - 1)
    res = inline_ctx.run_udf(dataset=ds, udf=[SumUDF(), SumSigUDF()])
    np.testing.assert_allclose(
        res[0]["intensity"].data, view.sum(axis=tuple(range(len(shape) - 2))), rtol=1e-4
    )
    np.testing.assert_allclose(res[1]["intensity"].data, view.sum(axis=(-1, -2)), rtol=1e-5)


def test_sig_dims_other_than_two(inline_ctx):
    arr = da.zeros((5, 36, 50, 16), chunks=(1, 6, 10, 8), dtype=np.float32)
    ds1 = inline_ctx.load("dask", arr, sig_dims=1, min_size=0)
    assert (
        ds1.array.chunks == ((1,) * 5, (6,) * 6, (50,), (16,)) and ds1.get_num_partitions() == 30
    )
    ds3 = inline_ctx.load("dask", arr, sig_dims=3, min_size=0)
    assert ds3.array.chunks == ((1,) * 5, (36,), (50,), (16,)) and ds3.get_num_partitions() == 5


def test_merge_pair_choice():
    # the smallest chunk, merged with its smaller neighbour (left on a tie); among equal
    # pairs the right-most
    assert min_with_min_neighbor([1] * 10) == (9, 8)
    assert min_with_min_neighbor([2, 2, 2, 4]) == (2, 1)
    assert min_with_min_neighbor([2, 4, 4]) == (0, 1)
    assert min_with_min_neighbor([3, 1, 2]) == (1, 2)
    steps = [((1,) * 10,)]
    chunking = ((1,) * 10,)
    assert size_merged_chunking(chunking, 1024, 3 * 1024) == ((6, 4),)
    assert size_merged_chunking(steps[0], 1024, np.inf) == ((10,),)


@pytest.mark.parametrize(
    "make, kw",
    [
        (lambda a: a, dict(sig_dims=3.0)),
        (lambda a: a, dict(sig_dims=2.0)),
        (lambda a: a[a.sum(axis=(1, 2, 3)) >= 0], dict(sig_dims=2)),
        (lambda a: a, dict(sig_dims=4)),
        (lambda a: a.compute(), dict(sig_dims=2)),
        (lambda a: a, dict(sig_dims=2, io_backend=True)),
    ],
    ids=["float-3", "float-2", "unknown-chunks", "sig-dims-ndim", "numpy", "io_backend"],
)
def test_constructor_checks(inline_ctx, make, kw):
    arr = make(da.zeros((5, 25, 16, 16), chunks=-1))
    with pytest.raises(DataSetException):
        DaskDataSet(arr, **kw)
    with pytest.raises(DataSetException):
        inline_ctx.load("dask", arr, **kw)
    assert tuple(inline_ctx.load("dask", da.zeros((5, 25, 16, 16)), sig_dims=2).shape) == (
        5,
        25,
        16,
        16,
    )
