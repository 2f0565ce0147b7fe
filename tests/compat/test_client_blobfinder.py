"""libertem-blobfinder 0.6.1, unchanged, on our engine: disks at known positions are found.

Synthetic frames hold anti-aliased disks at known sub-pixel positions; the
correlation UDFs must recover them, with dense and sparse input data, on the
inline and thread executors (``ctx``) and on a Dask cluster.
"""

from __future__ import annotations

import numpy as np
import pytest
import sparse
from libertem_blobfinder.base.correlation import evaluate_correlations
from libertem_blobfinder.common import gridmatching as grm
from libertem_blobfinder.common.patterns import (
    BackgroundSubtraction,
    Circular,
    RadialGradient,
    feature_vector,
)
from libertem_blobfinder.udf.correlation import (
    FastCorrelationUDF,
    FullFrameCorrelationUDF,
    SparseCorrelationUDF,
    run_blobfinder,
)
from libertem_blobfinder.udf.integration import IntegrationUDF
from libertem_blobfinder.udf.refinement import run_refine

from libertem.api import Context
from libertem.masks import circular
from libertem.udf.masks import ApplyMasksUDF

NAV = (3, 4)
SIG = (64, 64)
RADIUS = 4
PEAKS = np.array([(16, 16), (16, 48), (48, 16), (48, 48)])


def _disks(positions: np.ndarray) -> np.ndarray:
    """Frames of anti-aliased disks: ``positions`` has shape ``NAV + (n, 2)`` (y, x)."""
    data = np.zeros(NAV + SIG, dtype=np.float32)
    for idx in np.ndindex(NAV):
        for y, x in positions[idx]:
            data[idx] += circular(x, y, SIG[1], SIG[0], RADIUS, antialiased=True)
    return data


@pytest.fixture(scope="module")
def shifted():
    rng = np.random.default_rng(7)
    shifts = rng.uniform(-1.5, 1.5, size=NAV + (len(PEAKS), 2))
    positions = PEAKS + shifts
    return _disks(positions), positions


@pytest.fixture(scope="module")
def dask_ctx():
    from dask_shared import acquire_cluster, release_cluster

    executor = acquire_cluster()
    yield Context(executor=executor)
    release_cluster()


CORRELATIONS = [
    (FastCorrelationUDF, {}),
    (FullFrameCorrelationUDF, {}),
    (SparseCorrelationUDF, {"steps": 3}),
]


@pytest.mark.parametrize("cls, kwargs", CORRELATIONS, ids=lambda c: getattr(c, "__name__", ""))
def test_correlation_finds_shifted_disks(ctx, shifted, cls, kwargs):
    data, positions = shifted
    ds = ctx.load("memory", data=data, sig_dims=2, num_partitions=3)
    udf = cls(peaks=PEAKS, match_pattern=RadialGradient(radius=RADIUS), **kwargs)
    res = ctx.run_udf(dataset=ds, udf=udf)
    assert res["refineds"].data.shape == NAV + (len(PEAKS), 2)
    assert np.abs(res["refineds"].data - positions).max() < 0.25
    assert np.abs(res["centers"].data - positions).max() <= 1.6
    assert np.all(res["peak_elevations"].data > 0)


@pytest.mark.parametrize("cls, kwargs", CORRELATIONS, ids=lambda c: getattr(c, "__name__", ""))
def test_correlation_with_roi(ctx, shifted, cls, kwargs):
    data, positions = shifted
    ds = ctx.load("memory", data=data, sig_dims=2, num_partitions=2)
    roi = np.zeros(NAV, dtype=bool)
    roi[0, 1] = roi[2, :3] = True
    udf = cls(peaks=PEAKS, match_pattern=RadialGradient(radius=RADIUS), **kwargs)
    res = ctx.run_udf(dataset=ds, udf=udf, roi=roi)
    assert np.abs(res["refineds"].raw_data - positions[roi]).max() < 0.25
    assert np.all(np.isnan(res["refineds"].data[~roi]))


@pytest.mark.parametrize("fmt", ["COO", "GCXS"])
@pytest.mark.parametrize(
    "cls, kwargs",
    [(FastCorrelationUDF, {}), (SparseCorrelationUDF, {"steps": 3})],
    ids=lambda c: getattr(c, "__name__", ""),
)
def test_sparse_input_uses_sparse_backend(ctx, shifted, fmt, cls, kwargs):
    """Sparse data reaches the UDFs as sparse tiles, and the results equal the dense ones."""
    data, positions = shifted
    sparse_data = getattr(sparse, fmt).from_numpy(data)
    ds = ctx.load("memory", data=sparse_data, sig_dims=2, num_partitions=2)
    assert ds.array_backends == (f"sparse.{fmt}",)

    class Recording(cls):
        def get_result_buffers(self):
            return {**super().get_result_buffers(), "backend_ok": self.buffer(kind="nav")}

        def process_tile(self, tile):
            self.results.backend_ok[:] = isinstance(tile, sparse.SparseArray)
            super().process_tile(tile)

        def process_frame(self, frame):
            self.results.backend_ok[:] = isinstance(frame, sparse.SparseArray)
            super().process_frame(frame)

    if cls is SparseCorrelationUDF:
        del Recording.process_frame
    else:
        del Recording.process_tile
    udf = Recording(peaks=PEAKS, match_pattern=RadialGradient(radius=RADIUS), **kwargs)
    res = ctx.run_udf(dataset=ds, udf=udf)
    assert np.all(res["backend_ok"].data == 1)
    assert np.abs(res["refineds"].data - positions).max() < 0.25

    dense = ctx.run_udf(
        dataset=ctx.load("memory", data=data, sig_dims=2, num_partitions=2),
        udf=cls(peaks=PEAKS, match_pattern=RadialGradient(radius=RADIUS), **kwargs),
    )
    assert np.allclose(res["refineds"].data, dense["refineds"].data, atol=1e-4)


def test_fullframe_densifies_sparse_input(ctx, shifted):
    """FullFrameCorrelationUDF supports only dense backends: sparse tiles are converted."""
    data, positions = shifted
    ds = ctx.load("memory", data=sparse.COO.from_numpy(data), sig_dims=2)
    udf = FullFrameCorrelationUDF(peaks=PEAKS, match_pattern=RadialGradient(radius=RADIUS))
    res = ctx.run_udf(dataset=ds, udf=udf)
    assert np.abs(res["refineds"].data - positions).max() < 0.25


def test_run_blobfinder_finds_peaks(ctx, shifted):
    data, _ = shifted
    same = _disks(np.broadcast_to(PEAKS, NAV + PEAKS.shape).astype(float))
    ds = ctx.load("memory", data=same, sig_dims=2)
    sum_result, centers, refineds, heights, elevations, peaks = run_blobfinder(
        ctx=ctx, dataset=ds, match_pattern=RadialGradient(radius=RADIUS), num_peaks=4
    )
    assert sum_result.shape == SIG
    found = sorted(map(tuple, np.asarray(peaks)))
    assert np.abs(np.array(found) - np.array(sorted(map(tuple, PEAKS)))).max() <= 1
    assert np.abs(refineds.data - np.asarray(peaks)).max() < 0.5


@pytest.mark.parametrize("correlation", ["fast", "sparse", "fullframe"])
def test_run_refine_recovers_lattice(ctx, correlation):
    zero = np.array((32.0, 32.0))
    a = np.array((0.0, 16.0))
    b = np.array((16.0, 0.0))
    rng = np.random.default_rng(3)
    zero_shift = rng.uniform(-1, 1, size=NAV + (2,))
    indices = np.mgrid[-1:2, -1:2].reshape(2, -1).T
    positions = np.zeros(NAV + (len(indices), 2))
    for idx in np.ndindex(NAV):
        positions[idx] = zero + zero_shift[idx] + indices[:, :1] * a + indices[:, 1:] * b
    ds = ctx.load("memory", data=_disks(positions), sig_dims=2, num_partitions=2)
    result, used = run_refine(
        ctx,
        ds,
        zero=zero,
        a=a,
        b=b,
        match_pattern=RadialGradient(radius=RADIUS),
        matcher=grm.Matcher(),
        correlation=correlation,
        indices=np.mgrid[-1:2, -1:2],
        steps=3,
    )
    assert np.abs(result["zero"].data - (zero + zero_shift)).max() < 0.3
    assert np.abs(result["a"].data - a).max() < 0.3
    assert np.abs(result["b"].data - b).max() < 0.3


def test_integration_udf_matches_numpy(ctx):
    rng = np.random.default_rng(11)
    data = rng.random(NAV + SIG).astype(np.float32)
    centers = rng.integers(8, 56, size=NAV + (3, 2))
    pattern = BackgroundSubtraction(radius=4, radius_outer=6)
    ds = ctx.load("memory", data=data, sig_dims=2, num_partitions=3)
    aux = IntegrationUDF.aux_data(data=centers, kind="nav", dtype=int, extra_shape=(3, 2))
    res = ctx.run_udf(dataset=ds, udf=IntegrationUDF(centers=aux, pattern=pattern))

    crop = pattern.get_crop_size()
    template = pattern.get_mask(sig_shape=(2 * crop, 2 * crop))
    padded = np.pad(data, ((0, 0), (0, 0), (crop, crop), (crop, crop)))
    expected = np.zeros(NAV + (3,))
    for idx in np.ndindex(NAV):
        for k, (y, x) in enumerate(centers[idx]):
            part = padded[idx][y : y + 2 * crop, x : x + 2 * crop]
            expected[idx + (k,)] = np.sum(part * template)
    assert np.allclose(res["integration"].data, expected, rtol=1e-4)


def test_zero_shift_as_aux_data(ctx, shifted):
    """FastCorrelationUDF reads a per-frame zero shift from auxiliary data."""
    data, positions = shifted
    ds = ctx.load("memory", data=data, sig_dims=2, num_partitions=3)
    # aux_data does not cast (as in LiberTEM): the data must have the given dtype
    shift = np.round(positions.mean(axis=2) - PEAKS.mean(axis=0)).astype(np.float32)
    aux = FastCorrelationUDF.aux_data(data=shift, kind="nav", extra_shape=(2,), dtype=np.float32)
    udf = FastCorrelationUDF(peaks=PEAKS, match_pattern=Circular(radius=RADIUS), zero_shift=aux)
    res = ctx.run_udf(dataset=ds, udf=udf)
    assert np.abs(res["refineds"].data - positions).max() < 0.5


def test_on_dask_cluster(dask_ctx, shifted):
    """One run on worker processes: two UDFs together, sparse input data."""
    data, positions = shifted
    ds = dask_ctx.load("memory", data=sparse.COO.from_numpy(data), sig_dims=2, num_partitions=3)
    udfs = [
        FastCorrelationUDF(peaks=PEAKS, match_pattern=RadialGradient(radius=RADIUS)),
        SparseCorrelationUDF(peaks=PEAKS, match_pattern=RadialGradient(radius=RADIUS), steps=3),
    ]
    fast, sparse_corr = dask_ctx.run_udf(dataset=ds, udf=udfs)
    assert np.abs(fast["refineds"].data - positions).max() < 0.25
    assert np.abs(sparse_corr["refineds"].data - positions).max() < 0.25


def _sparse_correlation_reference(frames: np.ndarray, pattern, steps: int) -> tuple:
    """SparseCorrelationUDF's correlation maps and refined positions, in float64 numpy:
    the log-scaled frame correlated with the template at every offset around each peak."""
    crop = pattern.get_crop_size()
    size = 2 * crop + 1
    template = np.asarray(pattern.get_mask((size, size)), dtype=np.float64)
    n = 2 * steps + 1
    corrs = np.zeros((len(frames), len(PEAKS), n, n))
    refineds = np.zeros((len(frames), len(PEAKS), 2))
    for f, frame in enumerate(frames):
        assert frame.min() == 0  # so the UDF's log scaling of each tile is log(1 + x)
        logged = np.log1p(frame.astype(np.float64))
        for i, (py, px) in enumerate(PEAKS):
            for a in range(n):
                for b in range(n):
                    y0, x0 = py + a - steps - crop, px + b - steps - crop
                    corrs[f, i, a, b] = np.sum(template * logged[y0 : y0 + size, x0 : x0 + size])
        evaluate_correlations(
            corrs=corrs[f],
            peaks=PEAKS,
            crop_size=steps,
            out_centers=np.zeros((len(PEAKS), 2)),
            out_refineds=refineds[f],
            out_heights=np.zeros(len(PEAKS)),
            out_elevations=np.zeros(len(PEAKS)),
        )
    return corrs, refineds


def test_sparse_correlation_equals_float64_reference(ctx, shifted):
    """The refined positions equal a float64 numpy evaluation; LiberTEM's buffer dtypes."""
    data, _ = shifted
    steps = 2
    pattern = RadialGradient(radius=RADIUS)
    ds = ctx.load("memory", data=data, sig_dims=2, num_partitions=3)
    res = ctx.run_udf(
        dataset=ds, udf=SparseCorrelationUDF(peaks=PEAKS, match_pattern=pattern, steps=steps)
    )
    corrs, refineds = _sparse_correlation_reference(data.reshape((-1, *SIG)), pattern, steps)
    assert res["corr"].data.dtype == np.float32
    assert res["refineds"].data.dtype == np.float32
    np.testing.assert_allclose(
        res["corr"].data.reshape(corrs.shape), corrs, rtol=1e-5, atol=1e-5 * np.abs(corrs).max()
    )
    np.testing.assert_allclose(res["refineds"].data.reshape(refineds.shape), refineds, rtol=1e-6)


@pytest.mark.parametrize("use_sparse", [None, False, "sparse.pydata"])
def test_feature_vector_is_float64(ctx, shifted, use_sparse):
    """feature_vector's float64 template stack gives float64 feature vectors (the masks keep
    their dtype, the result has result_type(float32 input, float64 masks))."""
    data, _ = shifted
    stack = feature_vector(SIG[1], SIG[0], PEAKS, Circular(radius=RADIUS))
    assert stack.dtype == np.float64
    ds = ctx.load("memory", data=data, sig_dims=2, num_partitions=3)
    udf = ApplyMasksUDF(mask_factories=lambda: stack, use_sparse=use_sparse)
    res = ctx.run_udf(dataset=ds, udf=udf)
    assert res["intensity"].data.dtype == np.float64
    assert udf.get_mask_dtype() == np.float64
    dense = np.asarray(stack.todense()).reshape((len(PEAKS), -1))
    expected = data.reshape((-1, dense.shape[1])).astype(np.float64) @ dense.T
    np.testing.assert_allclose(
        res["intensity"].data.reshape(expected.shape), expected, rtol=1e-6, atol=1e-12
    )
