"""CrystallinityUDF / run_analysis_crystall as in LiberTEM 0.16: the frame with an
optional disk zeroed, the magnitudes of its rfft2 summed over a ring of frequencies."""

from __future__ import annotations

import numpy as np
import pytest

from libertem.udf.crystallinity import CrystallinityUDF, fourier_ring, run_analysis_crystall


def _reference(frames, rad_in, rad_out, real_center=None, real_rad=None):
    sy, sx = frames.shape[1:]
    yy, xx = np.mgrid[0:sy, 0:sx]
    keep = np.ones((sy, sx), dtype=bool)
    if real_center is not None and real_rad is not None:
        keep = ((yy - real_center[0]) ** 2 + (xx - real_center[1]) ** 2) > real_rad**2
    d2 = (yy - sy * 0.5) ** 2 + (xx - sx * 0.5) ** 2
    ring = np.fft.fftshift((d2 <= rad_out**2) & ~(d2 <= rad_in**2))[:, : sx // 2 + 1]
    return np.array(
        [np.sum(np.abs(np.fft.rfft2(f.astype(np.float64) * keep)) * ring) for f in frames]
    )


@pytest.mark.parametrize("shape", [(6, 6), (5, 8), (7, 9)])
@pytest.mark.parametrize(
    "rad_in, rad_out, real_center, real_rad",
    [(0, 2, (3, 3), 0), (1, 3, (2, 3), 1), (0, 2, None, None), (1, 3, (2, 2), None)],
)
def test_matches_numpy(ctx, shape, rad_in, rad_out, real_center, real_rad):
    data = np.random.default_rng(4).uniform(size=(2, 3, *shape)).astype(np.float32)
    ds = ctx.load("memory", data=data, num_partitions=2)
    res = run_analysis_crystall(
        ctx=ctx,
        dataset=ds,
        rad_in=rad_in,
        rad_out=rad_out,
        real_center=real_center,
        real_rad=real_rad,
    )
    out = res["intensity"].data
    assert out.dtype == np.float32 and out.shape == (2, 3)
    ref = _reference(data.reshape((-1, *shape)), rad_in, rad_out, real_center, real_rad)
    np.testing.assert_allclose(out.reshape(-1), ref, rtol=1e-5)


def test_zero_order_only_gives_zero_and_roi(ctx):
    flat = np.zeros((2, 3, 6, 6), dtype=np.float32)
    flat[..., 3, 3] = 7
    flat[1, 2, 0, ::2] = 1
    roi = np.zeros((2, 3), dtype=bool)
    roi[1, 1:] = True
    udf = CrystallinityUDF(rad_in=0, rad_out=3, real_center=(3, 3), real_rad=0)
    res = ctx.run_udf(dataset=ctx.load("memory", data=flat), udf=udf, roi=roi)
    values = res["intensity"].raw_data
    assert values[0] == 0 and values[1] > 0
    ref = _reference(flat[1, 2:], 0, 3, (3, 3), 0)
    np.testing.assert_allclose(values[1:], ref, rtol=1e-6)


def test_parameters_are_kept_unchecked():
    udf = CrystallinityUDF(rad_in=3, rad_out=1, real_center=[4, 1], real_rad=2)
    assert (udf.params.rad_in, udf.params.rad_out, udf.params.real_rad) == (3, 1, 2)
    assert tuple(udf.params.real_center) == (4, 1)
    assert CrystallinityUDF(rad_in=0, rad_out=1, real_center=None, real_rad=None)


def test_fourier_ring_shape():
    ring = fourier_ring((5, 8), 1, 3)
    assert ring.shape == (5, 5) and ring.dtype == bool
    assert not ring[0, 0]  # the zero frequency lies inside rad_in
