"""The built-in UDF library against numpy: sparse input, the stddev kernels, logsum, pick,
FEM, crystallinity, NoOpUDF, ApplyMasksUDF's shifts and backends."""

from __future__ import annotations

import types

import dask.array as da
import numpy as np
import pytest
import scipy.sparse
import sparse

from libertem.common.udf import UDFMethod
from libertem.masks import circular, ring
from libertem.udf.base import UDF
from libertem.udf.crystallinity import CrystallinityUDF, run_analysis_crystall
from libertem.udf.FEM import FEMUDF, run_fem
from libertem.udf.logsum import LogsumUDF, run_logsum
from libertem.udf.masks import ApplyMasksEngine, ApplyMasksUDF, rmatmul
from libertem.udf.raw import PickUDF
from libertem.udf.stddev import (
    StdDevUDF,
    consolidate_result,
    merge,
    merge_ndarray,
    merge_single,
    process_tile,
    process_tile_ndarray,
    run_stddev,
)
from libertem.udf.sum import SumUDF
from libertem.udf.sumsigudf import SumSigUDF, run_sumsig

NAV, SIG = (4, 5), (8, 9)


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(21)
    return (rng.random((*NAV, *SIG)) * 10).astype(np.float32)


@pytest.fixture
def ds(ctx, data):
    return ctx.load("memory", data=data, num_partitions=3)


def _roi(use_roi):
    if not use_roi:
        return None, np.ones(NAV, dtype=bool)
    roi = np.zeros(NAV, dtype=bool)
    roi[1:3, 1:] = True
    roi[0, 0] = True
    return roi, roi


# --- sums on sparse input ---------------------------------------------------------


def _sparse_data(kind):
    rng = np.random.default_rng(22)
    dense = ((rng.random((*NAV, *SIG)) > 0.7) * rng.integers(1, 9, (*NAV, *SIG))).astype(
        np.float32
    )
    flat = dense.reshape((NAV[0] * NAV[1], -1))
    made = {
        "coo": lambda: sparse.COO.from_numpy(dense),
        "gcxs": lambda: sparse.GCXS.from_numpy(flat),
        "csr": lambda: scipy.sparse.csr_matrix(flat),
        "csc": lambda: scipy.sparse.csc_matrix(flat),
    }[kind]()
    return dense, made


@pytest.mark.parametrize("kind", ["coo", "gcxs", "csr", "csc"])
@pytest.mark.parametrize("use_roi", [False, True])
def test_sums_and_masks_on_sparse_input(ctx, kind, use_roi):
    dense, data = _sparse_data(kind)
    kw = {} if kind == "coo" else dict(nav_shape=NAV, sig_shape=SIG)
    ds = ctx.load("memory", data=data, num_partitions=2, **kw)
    roi, sel = _roi(use_roi)
    masks = [lambda: np.arange(72.0).reshape(SIG), lambda: sparse.COO.from_numpy(np.eye(*SIG))]
    udfs = [SumUDF(), SumSigUDF(), ApplyMasksUDF(masks), LogsumUDF()]
    res = ctx.run_udf(ds, udfs, roi=roi)
    assert np.allclose(res[0]["intensity"].data, dense[sel].sum(axis=0))
    assert np.allclose(res[1]["intensity"].data[sel], dense[sel].sum(axis=(1, 2)))
    weights = np.stack([np.arange(72.0).reshape(SIG), np.eye(*SIG)])
    expected = np.einsum("nyx,myx->nm", dense[sel], weights)
    assert np.allclose(res[2]["intensity"].data[sel], expected, rtol=1e-5)
    frames = dense[sel]
    logs = np.log1p(frames - frames.min(axis=(1, 2), keepdims=True)).sum(axis=0)
    assert np.allclose(res[3]["logsum"].data, logs, rtol=1e-5)


def test_declared_backends():
    sparse_backends = {"sparse.COO", "sparse.GCXS", "scipy.sparse.csr_matrix"}
    for udf in (SumUDF(), SumSigUDF(), ApplyMasksUDF([lambda: np.ones(SIG)])):
        backends = set(udf.get_backends())
        assert {"numpy", "cupy"} <= backends
        assert sparse_backends <= backends
    assert set(StdDevUDF().get_backends()) == {"numpy", "cupy"}
    assert list(LogsumUDF().get_backends()) == ["cupy", "numpy", "sparse.COO", "sparse.GCXS"]


def test_run_helpers(ctx, ds, data):
    sumsig = run_sumsig(ctx, ds)
    assert np.allclose(sumsig["intensity"].data, data.sum(axis=(2, 3)), rtol=1e-5)
    roi, sel = _roi(True)
    logsum = run_logsum(ctx, ds, roi=roi)
    frames = data[sel].astype(np.float64)
    ref = np.log(frames - frames.min(axis=(1, 2), keepdims=True) + 1).sum(axis=0)
    assert np.allclose(logsum["logsum"].data, ref, rtol=1e-5)
    udf = SumSigUDF(dtype=np.float64)
    assert udf.get_preferred_input_dtype() is UDF.USE_NATIVE_DTYPE
    assert udf.copy().params.dtype == np.float64


@pytest.mark.parametrize(
    ("data_dtype", "sum_dtype", "expected"),
    [
        ("uint16", "float32", "float32"),
        (">u2", "float32", "float32"),
        ("int32", "float32", "float64"),
        ("float16", "float32", "float32"),
        ("bool", "float32", "float32"),
        ("uint8", "int64", "int64"),
        (">f8", "float32", "float64"),
        ("complex64", "float32", "complex64"),
    ],
)
def test_streaming_sums_cast_native_tiles(ctx, data_dtype, sum_dtype, expected):
    """Tiles arrive in the dataset's dtype; the sums add up in result_type(dtype, data)."""
    rng = np.random.default_rng(7)
    data = (rng.random((*NAV, *SIG)) * 50).astype(data_dtype)
    ds_native = ctx.load("memory", data=data, num_partitions=2)
    seen = []

    class Probe(UDF):
        def get_preferred_input_dtype(self):
            return self.USE_NATIVE_DTYPE

        def get_result_buffers(self):
            return {"n": self.buffer(kind="nav", dtype=np.int64)}

        def process_tile(self, tile):
            seen.append(tile.dtype)

    roi = np.zeros(NAV, dtype=bool)
    roi[1:3] = True
    for r in (None, roi):
        sel = np.ones(NAV, dtype=bool) if r is None else r
        res = ctx.run_udf(
            ds_native, [SumUDF(dtype=sum_dtype), SumSigUDF(dtype=sum_dtype), Probe()], roi=r
        )
        ref = data.astype(np.complex128)
        intensity = res[0]["intensity"].data
        assert intensity.dtype == np.dtype(expected)
        assert np.allclose(intensity, ref[sel].sum(axis=0), rtol=1e-5)
        sums = res[1]["intensity"]
        assert sums.data.dtype == np.dtype(expected)
        assert np.allclose(sums.raw_data, ref[sel].sum(axis=(1, 2)), rtol=1e-5)
    native = np.dtype(data_dtype).newbyteorder("=")
    assert {np.dtype(d).newbyteorder("=") for d in seen} == {native}


def test_merge_all_functions():
    parts = {i: types.SimpleNamespace(intensity=np.full((2, 3), i + 1.0)) for i in range(3)}
    assert np.array_equal(SumUDF().merge_all(parts)["intensity"], np.full((2, 3), 6.0))
    logs = {i: types.SimpleNamespace(logsum=np.full(4, 2.0**i)) for i in range(3)}
    assert np.array_equal(LogsumUDF().merge_all(logs)["logsum"], np.full(4, 7.0))
    # PickUDF: each partition holds only its own frames (a private nav buffer)
    picks = {
        0: types.SimpleNamespace(frames=np.array([[1, 2]])),
        1: types.SimpleNamespace(frames=np.array([[3, 4], [5, 6]])),
    }
    assert np.array_equal(PickUDF().merge_all(picks)["frames"], [[1, 2], [3, 4], [5, 6]])
    lazy = {k: types.SimpleNamespace(frames=da.from_array(v.frames)) for k, v in picks.items()}
    merged = PickUDF().merge_all(lazy)["frames"]
    assert isinstance(merged, da.Array) and np.array_equal(
        merged.compute(), [[1, 2], [3, 4], [5, 6]]
    )
    dest = types.SimpleNamespace(frames=np.zeros((2, 2), dtype=int))
    PickUDF().merge(dest, picks[1])
    assert np.array_equal(dest.frames, [[3, 4], [5, 6]])


# --- standard deviation -------------------------------------------------------------


def _stats(x):
    return len(x), x.sum(axis=0), ((x - x.mean(axis=0)) ** 2).sum(axis=0)


def test_stddev_kernels_match_numpy():
    rng = np.random.default_rng(23)
    a, b = rng.normal(5, 2, size=(7, 10)), rng.normal(-3, 1, size=(4, 10))
    n_a, s_a, v_a = _stats(a)
    n_b, s_b, v_b = _stats(b)
    n_all, s_all, v_all = _stats(np.concatenate([a, b]))
    got_s, got_v = merge_single(n_all, n_a, s_a[0], v_a[0], n_b, s_b[0], v_b[0], s_b[0] / n_b)
    assert np.isclose(got_s, s_all[0]) and np.isclose(got_v, v_all[0])
    assert merge_single(4, 0, 0.0, 0.0, 4, 8.0, 2.0, 2.0) == (8.0, 2.0)
    # merge: scalar counts in, the new count out (LiberTEM 0.16)
    dest_s, dest_v = s_a.copy(), v_a.copy()
    assert merge(n_a, dest_s, dest_v, n_b, s_b, v_b, s_b / n_b) == n_all
    assert np.allclose(dest_s, s_all) and np.allclose(dest_v, v_all)
    empty_s, empty_v = np.zeros(10), np.zeros(10)
    assert merge(0, empty_s, empty_v, n_a, s_a, v_a, s_a / n_a) == n_a
    assert np.array_equal(empty_s, s_a) and np.array_equal(empty_v, v_a)
    assert merge(n_a, empty_s, empty_v, 0, s_b, v_b, s_b) == n_a
    assert np.array_equal(empty_s, s_a) and np.array_equal(empty_v, v_a)
    dest_n = np.full(10, n_a, dtype=np.int64)
    dest_s, dest_v = s_a.copy(), v_a.copy()
    args = (dest_n, dest_s, dest_v, np.full(10, n_b, dtype=np.int64), s_b, v_b, s_b / n_b)
    merge_ndarray(*args, forbuf=dest_s)
    assert np.array_equal(dest_n, np.full(10, n_all))
    assert np.allclose(dest_s, s_all) and np.allclose(dest_v, v_all)
    s, v = s_a.copy(), v_a.copy()
    assert process_tile(b, n_a, s, v) == n_all
    assert np.allclose(s, s_all) and np.allclose(v, v_all)
    s, v = s_a.copy(), v_a.copy()
    process_tile_ndarray(b, n_a, s, v, forbuf=s)
    assert np.allclose(s, s_all) and np.allclose(v, v_all)
    for func in (process_tile, process_tile_ndarray):
        s0, v0 = np.zeros(10), np.zeros(10)
        func(a, 0, s0, v0) if func is process_tile else func(a, 0, s0, v0, forbuf=s0)
        assert np.allclose(s0, s_a) and np.allclose(v0, v_a)


class SmallTileStdDev(StdDevUDF):
    """Tiles narrower than the frame, so that the views are not contiguous."""

    def get_tiling_preferences(self):
        return {"depth": 3, "total_size": 3 * 4 * 8}


@pytest.mark.parametrize("use_numba", [True, False])
@pytest.mark.parametrize("use_roi", [False, True])
@pytest.mark.parametrize("cls", [StdDevUDF, SmallTileStdDev])
def test_stddev_udf(ctx, ds, data, use_numba, use_roi, cls):
    roi, sel = _roi(use_roi)
    res = ctx.run_udf(ds, cls(use_numba=use_numba), roi=roi)
    frames = data[sel].astype(np.float64)
    assert np.allclose(res["mean"].data, frames.mean(axis=0))
    assert np.allclose(res["var"].data, frames.var(axis=0))
    assert np.allclose(res["std"].data, frames.std(axis=0))
    assert np.allclose(res["sum"].data, frames.sum(axis=0))
    assert np.allclose(res["varsum"].data, frames.var(axis=0) * len(frames))
    assert np.array_equal(res["num_frames"].data, np.full(SIG, len(frames)))


def test_stddev_complex_and_dtype(inline_ctx):
    rng = np.random.default_rng(24)
    data = (rng.normal(size=(3, 4, 5, 6)) + 1j * rng.normal(size=(3, 4, 5, 6))).astype(
        np.complex64
    )
    ds = inline_ctx.load("memory", data=data)
    res = inline_ctx.run_udf(ds, StdDevUDF())
    assert np.allclose(res["mean"].data, data.mean(axis=(0, 1)), atol=1e-6)
    assert np.allclose(res["var"].data, data.var(axis=(0, 1)), atol=1e-6)
    assert res["var"].data.dtype.kind == "f"
    real = inline_ctx.load("memory", data=data.real.copy())
    res32 = inline_ctx.run_udf(real, StdDevUDF(dtype=np.float32))
    assert res32["sum"].data.dtype == np.float64  # statistics in double precision
    assert np.allclose(res32["std"].data, data.real.std(axis=(0, 1)), rtol=1e-5)


def test_consolidate_and_run_stddev(ctx, ds, data):
    roi, sel = _roi(True)
    out = run_stddev(ctx, ds, roi=roi, use_numba=False)
    frames = data[sel].astype(np.float64)
    assert out["num_frames"] == len(frames) and isinstance(out["num_frames"], int)
    for key in ("mean", "var", "std", "sum", "varsum"):
        assert isinstance(out[key], np.ndarray)
    assert np.allclose(out["std"], frames.std(axis=0))
    # results of old runs without var/std/mean get them computed
    old = {k: out[k] for k in ("sum", "varsum")}
    old["num_frames"] = np.full(SIG, len(frames))
    again = consolidate_result(old)
    assert np.allclose(again["var"], frames.var(axis=0))
    assert np.allclose(again["mean"], frames.mean(axis=0))


def test_stddev_merge_all(data):
    frames = data.reshape((-1, *SIG)).astype(np.float64)
    parts = {}
    for i, chunk in enumerate(np.array_split(frames, 3)):
        n, s, v = _stats(chunk)
        parts[i] = types.SimpleNamespace(num_frames=np.full(SIG, n), sum=s, varsum=v)
    merged = StdDevUDF().merge_all(parts)
    n, s, v = _stats(frames)
    assert np.array_equal(merged["num_frames"], np.full(SIG, n))
    assert np.allclose(merged["sum"], s) and np.allclose(merged["varsum"], v)


def test_stddev_no_frames_is_nan(inline_ctx, ds):
    res = inline_ctx.run_udf(ds, StdDevUDF(), roi=np.zeros(NAV, dtype=bool))
    assert np.all(np.isnan(res["std"].data))


# --- FEM and crystallinity ---------------------------------------------------------


@pytest.mark.parametrize("use_roi", [False, True])
def test_fem(ctx, ds, data, use_roi):
    roi, sel = _roi(use_roi)
    res = run_fem(ctx, ds, center=(4, 5), rad_in=1, rad_out=3.5, roi=roi)
    mask = ring(5, 4, SIG[1], SIG[0], 3.5, 1)
    ref = np.array([frame[mask].std() for frame in data[sel]])
    assert np.allclose(res["intensity"].data[sel], ref, rtol=1e-5)
    if use_roi:
        assert np.all(np.isnan(res["intensity"].data[~sel]))
    with pytest.raises(ValueError, match="rad_in"):
        FEMUDF(center=(4, 5), rad_in=3, rad_out=2)
    with pytest.raises(ValueError, match="no pixel"):
        ctx.run_udf(ds, FEMUDF(center=(100, 100), rad_in=1, rad_out=2))


def _crystallinity_ref(frame, rad_in, rad_out, real_center, real_rad):
    # LiberTEM's recipe: no rescaling; the ring is measured from (sy/2, sx/2) and
    # moved by fftshift onto the half spectrum
    sy, sx = frame.shape
    real = np.ones(frame.shape)
    if real_center is not None and real_rad is not None:
        real[circular(real_center[1], real_center[0], sx, sy, real_rad)] = 0
    yy, xx = np.mgrid[0:sy, 0:sx]
    d2 = (yy - sy / 2) ** 2 + (xx - sx / 2) ** 2
    ring = np.fft.fftshift((d2 <= rad_out**2) & ~(d2 <= rad_in**2))[:, : sx // 2 + 1]
    spectrum = np.abs(np.fft.rfft2(frame * real))
    return spectrum[ring].sum()


def test_crystallinity(ctx, ds, data):
    res = run_analysis_crystall(ctx, ds, rad_in=1, rad_out=3, real_center=(4, 4), real_rad=2)
    ref = [_crystallinity_ref(f, 1, 3, (4, 4), 2) for f in data.reshape((-1, *SIG))]
    assert np.allclose(res["intensity"].data.reshape(-1), ref, rtol=1e-4)
    roi, sel = _roi(True)
    plain = run_analysis_crystall(ctx, ds, rad_in=1, rad_out=3, roi=roi)
    ref = [_crystallinity_ref(f, 1, 3, None, None) for f in data[sel]]
    assert np.allclose(plain["intensity"].data[sel], ref, rtol=1e-4)


def test_crystallinity_prefers_periodic_frames(inline_ctx):
    # a crystal diffracts into a lattice of spots; an amorphous region into a smooth ring
    y, x = np.mgrid[0:32, 0:32]
    lattice = ((y % 4 == 0) & (x % 4 == 0)).astype(np.float32) * 10
    r = np.hypot(y - 16, x - 16)
    amorphous = np.exp(-((r - 8) ** 2) / 8).astype(np.float32)
    amorphous *= lattice.sum() / amorphous.sum()
    ds = inline_ctx.load("memory", data=np.stack([lattice, amorphous])[np.newaxis])
    udf = CrystallinityUDF(rad_in=6, rad_out=10, real_center=(16, 16), real_rad=0)
    res = inline_ctx.run_udf(ds, udf)["intensity"].data
    assert res[0, 0] > 2 * res[0, 1]


# --- NoOpUDF ----------------------------------------------------------------------


def test_noop_udf(ctx, ds):
    from libertem.udf.base import NoOpUDF

    seen = []

    class Counting(NoOpUDF):
        def process_tile(self, tile):
            seen.append((tile.shape[0], tile.dtype))
            super().process_tile(tile)

    res = ctx.run_udf(ds, Counting())
    assert res == {}
    assert sum(n for n, _ in seen) >= NAV[0] * NAV[1]
    assert all(dtype == np.float32 for _, dtype in seen)  # native: no conversion
    assert NoOpUDF().get_preferred_input_dtype() is bool
    assert NoOpUDF(preferred_input_dtype=np.float64).get_preferred_input_dtype() == np.float64


# --- ApplyMasksUDF ------------------------------------------------------------------


def _shifted_ref(frames, mask, shifts):
    out = []
    for frame, (dy, dx) in zip(frames, shifts):
        total = 0.0
        for (my, mx), w in np.ndenumerate(mask):
            fy, fx = my + dy, mx + dx
            if 0 <= fy < frame.shape[0] and 0 <= fx < frame.shape[1]:
                total += w * frame[fy, fx]
        out.append(total)
    return np.array(out)


# scipy.sparse masks are refused with shifts (B-analysis-21), True means sparse.pydata there
@pytest.mark.parametrize("use_sparse", [False, True, "sparse.pydata", None])
def test_apply_masks_shifts(ctx, ds, data, use_sparse):
    mask = circular(4, 3, SIG[1], SIG[0], 2.5).astype(np.float32)
    udf = ApplyMasksUDF([lambda: mask], shifts=(1, -2), use_sparse=use_sparse)
    assert udf.get_method() == UDFMethod.FRAME
    res = ctx.run_udf(ds, udf)
    frames = data.reshape((-1, *SIG))
    ref = _shifted_ref(frames, mask, [(1, -2)] * len(frames))
    assert np.allclose(res["intensity"].data.reshape(-1), ref, rtol=1e-5)
    rng = np.random.default_rng(26)
    per_frame = rng.integers(-3, 4, size=(*NAV, 2))
    aux = UDF.aux_data(per_frame, kind="nav", extra_shape=(2,), dtype=np.int64)
    roi, sel = _roi(True)
    res = ctx.run_udf(
        ds, ApplyMasksUDF([lambda: mask], shifts=aux, use_sparse=use_sparse), roi=roi
    )
    ref = _shifted_ref(data[sel], mask, per_frame[sel])
    assert np.allclose(res["intensity"].data[sel][:, 0], ref, rtol=1e-5)


def test_apply_masks_shift_out_of_frame(inline_ctx, ds):
    udf = ApplyMasksUDF([lambda: np.ones(SIG)], shifts=(SIG[0], 0))
    assert np.all(inline_ctx.run_udf(ds, udf)["intensity"].data == 0)


def test_apply_masks_backends_and_counts(inline_ctx, ds, data):
    factories = [lambda: np.ones(SIG, dtype=np.float64), lambda: np.eye(*SIG)]
    udf = ApplyMasksUDF(factories, backends=("numpy",), mask_dtype=np.float64, use_torch=False)
    assert udf.get_backends() == ("numpy",)
    assert udf.get_mask_count() == 2
    assert udf.get_mask_dtype() == np.float64
    assert udf.get_method() == UDFMethod.TILE
    res = inline_ctx.run_udf(ds, udf)
    assert res["intensity"].data.dtype == np.float64
    assert np.allclose(res["intensity"].data[..., 0], data.sum(axis=(2, 3)), rtol=1e-6)
    stack = ApplyMasksUDF(lambda: np.ones((3, *SIG)), mask_count=3, preferred_dtype=np.float64)
    assert stack.get_mask_count() == 3
    assert stack.get_preferred_input_dtype() == np.float64
    with pytest.raises(ValueError, match=r"No compatible backend found in \('cuda',\)"):
        ApplyMasksUDF(factories, backends=("cuda",))


def test_apply_masks_engine_and_masks_property(inline_ctx, ds, data):
    udf = ApplyMasksUDF([lambda: np.ones(SIG), lambda: np.eye(*SIG)])
    inline_ctx.run_udf(ds, udf)  # gives the UDF its meta data
    container = udf.masks
    assert len(container) == 2
    engine = ApplyMasksEngine(container, udf.meta, use_torch=True)
    frame = data[0, 0]
    got = engine.process_frame_shifted(frame, (0, 0))
    assert np.allclose(got, [frame.sum(), np.trace(frame)], rtol=1e-5)


def test_rmatmul():
    rng = np.random.default_rng(27)
    left = rng.random((5, 12))
    right = scipy.sparse.random(12, 3, density=0.4, format="csr", random_state=1)
    assert np.allclose(rmatmul(left, right), left @ right.toarray())
    assert np.allclose(rmatmul(left, right.tocsc()), left @ right.toarray())
    with pytest.raises(ValueError, match="dense"):
        rmatmul(right, right)
    with pytest.raises(ValueError, match="scipy.sparse"):
        rmatmul(left, left)


def test_crystallinity_takes_any_radii(inline_ctx, ds):
    # like LiberTEM 0.16, the radii are not checked (B-analysis-10): an empty ring,
    # or one outside the spectrum, selects nothing
    udf = CrystallinityUDF(rad_in=5, rad_out=5, real_center=(0, 0), real_rad=0)
    assert (udf.params.rad_in, udf.params.rad_out) == (5, 5)
    for rad_in, rad_out in ((5, 5), (90, 100)):
        udf = CrystallinityUDF(rad_in=rad_in, rad_out=rad_out, real_center=(0, 0), real_rad=0)
        assert not inline_ctx.run_udf(ds, udf)["intensity"].data.any()


@pytest.mark.parametrize("dtype", ["int8", "uint8", "int16", "uint16", "int32", "uint32"])
def test_sumsig_integer_kernel_is_exact_at_the_extremes(ctx, dtype):
    """Frame sums of integer data take an int64 accumulator: no overflow, no rounding."""
    info = np.iinfo(dtype)
    rng = np.random.default_rng(3)
    data = rng.choice(np.array([info.min, info.max, info.max - 1, 0], dtype=dtype), (*NAV, *SIG))
    ds_int = ctx.load("memory", data=data, num_partitions=2)
    res = ctx.run_udf(ds_int, SumSigUDF(dtype=np.float64))["intensity"].data
    exact = data.astype(np.int64).sum(axis=(2, 3))
    assert res.dtype == np.float64
    assert np.array_equal(res, exact.astype(np.float64))
