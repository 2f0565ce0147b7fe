"""ptychography40 0.1.0, unchanged, on our engine: SSB against a direct numpy evaluation.

The single side band method integrates each frame over a stack of "trotter" masks
and Fourier-transforms the result over the scan. Here the same formula is
evaluated with plain numpy on a small dataset and compared with ``SSB_UDF``, on
the inline and thread executors (``ctx``) and on a Dask cluster, with both of the
UDF's code paths (numba loop for many threads per worker, sparse dot product for
few).
"""

from __future__ import annotations

import numpy as np
import pytest
from ptychography40.reconstruction.common import wavelength
from ptychography40.reconstruction.ssb import SSB_UDF, generate_masks

from libertem.api import Context
from libertem.common.container import MaskContainer
from libertem.executor.inline import InlineJobExecutor

NAV = (8, 6)
SIG = (16, 16)
PARAMS = {"lamb": wavelength(300), "dpix": 0.5e-10, "semiconv": 25e-3, "semiconv_pix": 4}


@pytest.fixture(scope="module")
def data():
    return np.random.default_rng(3).random(NAV + SIG).astype(np.float32)


def ssb_numpy(data: np.ndarray, dtype=np.float64) -> np.ndarray:
    """The SSB 'fourier' result, straight from the definition."""
    nav, sig = data.shape[:2], data.shape[2:]
    masks = generate_masks(reconstruct_shape=nav, mask_shape=sig, dtype=dtype, **PARAMS)
    masks = masks.todense().reshape((masks.shape[0], -1))
    half_y = nav[0] // 2 + 1
    dots = (data.reshape((-1, masks.shape[1])) @ masks.T).reshape(nav + (half_y, nav[1]))
    y, x = np.mgrid[: nav[0], : nav[1]]
    q, p = np.arange(half_y), np.arange(nav[1])
    phase = np.exp(
        -2j
        * np.pi
        * (
            y[..., None, None] * q[None, None, :, None] / nav[0]
            + x[..., None, None] * p[None, None, None, :] / nav[1]
        )
    )
    fourier = np.zeros(nav, dtype=complex)
    fourier[:half_y] = (dots * phase).sum(axis=(0, 1))
    # the other half follows from the symmetry of the transform of a real function
    extracted = fourier[1 : nav[0] // 2 + nav[0] % 2]
    fourier[half_y:] = -np.conj(np.roll(np.flip(extracted, (0, 1)), 1, axis=1))
    return fourier


def check(res, data):
    expected = ssb_numpy(data)
    assert res["fourier"].data.shape == NAV
    # dtype=np.float64: LiberTEM's result dtypes are complex128 / float64
    assert res["fourier"].data.dtype == np.complex128
    assert res["complex"].data.dtype == np.complex128
    assert res["amplitude"].data.dtype == res["phase"].data.dtype == np.float64
    assert np.allclose(res["fourier"].data, expected, atol=1e-9 * np.abs(expected).max())
    inverse = np.fft.ifft2(expected)
    assert np.allclose(res["amplitude"].data, np.sqrt(np.abs(inverse)))
    assert np.allclose(res["phase"].data, np.angle(inverse))
    assert np.allclose(res["complex"].data, res["amplitude"].data * np.exp(1j * res["phase"].data))


def test_ssb_matches_numpy(ctx, data):
    ds = ctx.load("memory", data=data, sig_dims=2, num_partitions=3)
    res = ctx.run_udf(dataset=ds, udf=SSB_UDF(**PARAMS, dtype=np.float64))
    check(res, data)


def test_ssb_default_float32(ctx, data):
    """The default dtype float32 computes in single precision: complex64 results."""
    ds = ctx.load("memory", data=data, sig_dims=2, num_partitions=3)
    res = ctx.run_udf(dataset=ds, udf=SSB_UDF(**PARAMS))
    assert res["fourier"].data.dtype == np.complex64
    assert res["amplitude"].data.dtype == np.float32
    expected = ssb_numpy(data)
    assert np.allclose(res["fourier"].data, expected, atol=1e-5 * np.abs(expected).max())


def test_ssb_sees_threads_per_worker(ctx, data):
    """The thread executor offers one thread per task; the UDF takes its dot-product path."""

    class Recording(SSB_UDF):
        seen = []

        def get_task_data(self):
            type(self).seen.append(self.meta.threads_per_worker)
            return super().get_task_data()

    ds = ctx.load("memory", data=data, sig_dims=2, num_partitions=2)
    Recording.seen.clear()
    res = ctx.run_udf(dataset=ds, udf=Recording(**PARAMS, dtype=np.float64))
    check(res, data)
    assert Recording.seen and all(isinstance(t, int) and t >= 1 for t in Recording.seen)


@pytest.mark.parametrize("threads", [1, 4])
def test_ssb_both_code_paths(data, threads):
    """Many threads per worker: whole partitions and the numba loop; few: small tiles."""

    class Executor(InlineJobExecutor):
        threads_per_worker = threads

    ctx = Context(executor=Executor())
    ds = ctx.load("memory", data=data, sig_dims=2, num_partitions=2)

    class Recording(SSB_UDF):
        seen = []

        def process_tile(self, tile):
            type(self).seen.append((tile.shape[0], self.meta.threads_per_worker))
            super().process_tile(tile)

    Recording.seen.clear()
    res = ctx.run_udf(dataset=ds, udf=Recording(**PARAMS, dtype=np.float64))
    check(res, data)
    assert {t for _, t in Recording.seen} == {threads}
    if threads >= SSB_UDF.EFFICIENT_THREADS:
        # TILE_DEPTH_MAX and TILE_SIZE_MAX: one tile per partition
        assert [d for d, _ in Recording.seen] == [NAV[0] * NAV[1] // 2] * 2


def test_ssb_with_roi(ctx, data):
    roi = np.zeros(NAV, dtype=bool)
    roi[2:6, 1:5] = True
    ds = ctx.load("memory", data=data, sig_dims=2)
    res = ctx.run_udf(dataset=ds, udf=SSB_UDF(**PARAMS, dtype=np.float64), roi=roi)
    # frames outside the ROI contribute nothing: same as zeroed frames
    check(res, np.where(roi[..., None, None], data, 0))


def test_ssb_external_mask_container(ctx, data):
    masks = generate_masks(reconstruct_shape=NAV, mask_shape=SIG, dtype=np.float64, **PARAMS)
    container = MaskContainer(
        mask_factories=lambda: masks, dtype=masks.dtype, use_sparse="scipy.sparse.csr"
    )
    ds = ctx.load("memory", data=data, sig_dims=2)
    udf = SSB_UDF(**PARAMS, dtype=np.float64, mask_container=container)
    check(ctx.run_udf(dataset=ds, udf=udf), data)


def test_ssb_on_dask_cluster(data):
    from dask_shared import acquire_cluster, release_cluster

    ctx = Context(executor=acquire_cluster())
    try:
        ds = ctx.load("memory", data=data, sig_dims=2, num_partitions=3)
        check(ctx.run_udf(dataset=ds, udf=SSB_UDF(**PARAMS, dtype=np.float64)), data)
    finally:
        release_cluster()
