"""Built-in UDFs and helpers as LiberTEM 0.16 has them: AutoUDF's monitor, LogsumUDF's
backends, the StdDev kernels, ``reshaped_view``.

LiberTEM 0.16 behaviours B-udf-17, 19, 26 and 27.
"""

from __future__ import annotations

import functools

import numba
import numpy as np
import pytest

from libertem.common.buffers import reshaped_view
from libertem.io.dataset.memory import MemoryDataSet
from libertem.udf import UDF
from libertem.udf.auto import AutoUDF
from libertem.udf.logsum import LogsumUDF
from libertem.udf.stddev import merge, process_tile
from utils import assert_close, load_mem, make_data, make_roi

NAV, SIG = (2, 3), (4, 5)


@pytest.mark.parametrize("use_roi", [False, True])
def test_auto_udf_monitor_is_f_of_last_valid_frame(ctx, use_roi):
    data = make_data((*NAV, *SIG), "float32", seed=1)
    roi = make_roi(NAV, seed=2) if use_roi else None
    sel = np.ones(NAV, bool) if roi is None else roi
    ds = load_mem(ctx, data, num_partitions=2)
    f = functools.partial(np.sum, axis=-1)
    udf = AutoUDF(f=f, monitor=True)
    flat = data.reshape((-1, *SIG))
    for part in ctx.run_udf_iter(dataset=ds, udf=udf, roi=roi):
        last = np.flatnonzero(part.damage.data.reshape(-1))[-1]
        monitor = part.buffers[0]["monitor"]
        assert (monitor.kind, monitor.data.shape) == ("single", (SIG[0],))
        assert_close(monitor.data, f(flat[last]))
    res = ctx.run_udf(dataset=ds, udf=udf, roi=roi)
    assert_close(res["monitor"].data, f(flat[np.flatnonzero(sel)[-1]]))
    assert_close(res["result"].raw_data, f(data[sel]))
    plain = ctx.run_udf(dataset=ds, udf=AutoUDF(f=f))
    assert sorted(plain.keys()) == ["result"]


def test_auto_udf_learns_from_a_frame_of_ones(inline_ctx):
    seen = []

    def f(frame):
        seen.append(frame.copy())
        return np.array([frame.sum()])

    ds = load_mem(inline_ctx, np.zeros((1, 1, *SIG), np.uint16), num_partitions=1)
    inline_ctx.run_udf(dataset=ds, udf=AutoUDF(f=f))
    assert seen[0].dtype == np.uint16 and (seen[0] == 1).all()


def test_backend_names():
    expected = {
        "cupy",
        "numpy",
        "sparse.COO",
        "sparse.GCXS",
        "scipy.sparse.coo_matrix",
        "scipy.sparse.csr_matrix",
        "scipy.sparse.csc_matrix",
        "scipy.sparse.coo_array",
        "scipy.sparse.csr_array",
        "scipy.sparse.csc_array",
        "cupyx.scipy.sparse.coo_matrix",
        "cupyx.scipy.sparse.csr_matrix",
        "cupyx.scipy.sparse.csc_matrix",
    }
    assert set(UDF.BACKEND_ALL) == expected and len(UDF.BACKEND_ALL) == 13
    assert list(LogsumUDF().get_backends()) == ["cupy", "numpy", "sparse.COO", "sparse.GCXS"]


# sparse.GCXS takes the same path as sparse.COO (``todense``); left out because its first
# use compiles numba code of pydata.sparse for many seconds
@pytest.mark.parametrize("backend, use_roi", [("numpy", True), ("sparse.COO", False)])
def test_logsum_on_each_backend(ctx, backend, use_roi):
    dense = np.zeros((*NAV, *SIG), dtype=np.float32)
    dense[0, 0, 1, 1] = 5
    dense[1, 2, 2, 3] = 3
    dense[1, 1] = -1
    roi = make_roi(NAV, seed=4) if use_roi else None
    sel = np.ones(NAV, bool) if roi is None else roi
    ds = MemoryDataSet(data=dense, num_partitions=2, sig_dims=2, array_backends=(backend,))
    ds.initialize(ctx.executor)
    res = ctx.run_udf(dataset=ds, udf=LogsumUDF(), roi=roi)
    frames = dense[sel]
    expected = np.log(frames - frames.min(axis=(1, 2), keepdims=True) + 1).sum(axis=0)
    assert res["logsum"].data.dtype == np.float32
    assert_close(res["logsum"].data, expected)


@numba.njit(cache=False)
def _chain(tile_a, tile_b, sums, varsums):
    """Both kernels called from numba code, with numba ints as counts."""
    n_a = process_tile(tile_a[1:], 1, sums[0], varsums[0])
    n_b = process_tile(tile_b[1:], 1, sums[1], varsums[1])
    return merge(n_a, sums[0], varsums[0], n_b, sums[1], varsums[1], sums[1] / n_b)


def test_stddev_kernels_from_python_and_numba():
    rng = np.random.default_rng(5)
    a = rng.normal(size=(4, 7))
    b = rng.normal(2, 3, size=(6, 7))
    sums = np.stack([a[0], b[0]]).copy()
    varsums = np.zeros_like(sums)
    n = _chain(a, b, sums, varsums)
    both = np.concatenate([a, b])
    assert n == 10
    assert np.allclose(sums[0], both.sum(axis=0))
    assert np.allclose(varsums[0], both.var(axis=0) * 10)
    # float32 accumulators, from Python
    s32, v32 = a[0].astype(np.float32), np.zeros(7, np.float32)
    assert process_tile(a[1:].astype(np.float32), 1, s32, v32) == 4
    assert np.allclose(s32, a.sum(axis=0), rtol=1e-5)
    dest_s, dest_v = np.zeros(7, np.float32), np.zeros(7, np.float32)
    assert merge(0, dest_s, dest_v, 4, s32, v32, s32 / 4) == 4
    assert np.array_equal(dest_s, s32) and np.array_equal(dest_v, v32)
    assert merge(4, dest_s, dest_v, 0, s32, v32, s32) == 4
    assert np.array_equal(dest_s, s32)


def test_reshaped_view():
    data = np.zeros((2, 5))
    with pytest.raises(AttributeError) as e:
        reshaped_view(data[:, :3], (-1,))
    assert str(e.value) == (
        "Incompatible shape for in-place modification. "
        "Use `.reshape()` to make a copy with the desired shape."
    )
    flat = reshaped_view(data, (-1,))
    flat[0] = 1
    assert flat.shape == (10,) and data[0, 0] == 1 and np.shares_memory(flat, data)
