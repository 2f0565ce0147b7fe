"""CoMUDF: centre of mass against numpy, known shifts, corrections, divergence and curl."""

from __future__ import annotations

import warnings

import matplotlib
import numpy as np
import pytest

from libertem.common.exceptions import UDFException
from libertem.masks import circular
from libertem.udf.com import CoMUDF, apply_correction, curl, divergence

matplotlib.use("Agg")

SIG = (24, 26)
CY, CX = 11.0, 12.0


def shifted_disks(shifts_y: np.ndarray, shifts_x: np.ndarray, radius=3) -> np.ndarray:
    """Frames with a uniform disk centred at ``(CY + dy, CX + dx)`` (integer shifts)."""
    nav = shifts_y.shape
    out = np.zeros((*nav, *SIG), dtype=np.float32)
    for idx in np.ndindex(nav):
        out[idx] = circular(CX + shifts_x[idx], CY + shifts_y[idx], SIG[1], SIG[0], radius)
    return out


def numpy_com(data, cy, cx, r):
    sy, sx = data.shape[-2:]
    mask = np.ones((sy, sx)) if r is None else circular(cx, cy, sx, sy, r)
    ys, xs = np.mgrid[0:sy, 0:sx]
    d = data.astype(np.float64) * mask
    total = d.sum(axis=(-1, -2))
    return (d * ys).sum(axis=(-1, -2)) / total - cy, (d * xs).sum(axis=(-1, -2)) / total - cx


class SmallTileCoM(CoMUDF):
    """Forces tiles that cut frames into pieces."""

    def get_tiling_preferences(self):
        return {"depth": 3, "total_size": 3 * 256}


def test_known_shifts_divergence(ctx):
    iy, ix = np.mgrid[-2:3, -2:3]
    data = shifted_disks(iy, ix)
    ds = ctx.load("memory", data=data, num_partitions=3)
    res = ctx.run_udf(ds, CoMUDF(cx=CX, cy=CY, r=9))
    assert np.allclose(res["raw_com"].data[..., 0], iy, atol=1e-5)
    assert np.allclose(res["raw_com"].data[..., 1], ix, atol=1e-5)
    assert np.allclose(res["field_y"].data, iy, atol=1e-5)
    assert np.allclose(res["magnitude"].data, np.hypot(iy, ix), atol=1e-5)
    # field (y, x) = (iy, ix): divergence 2, curl 0
    assert np.allclose(res["divergence"].data, 2.0, atol=1e-4)
    assert np.allclose(res["curl"].data, 0.0, atol=1e-4)
    assert np.allclose(res["raw_mask_sum"].data, data[0, 0].sum())


def test_known_rotational_field(inline_ctx):
    iy, ix = np.mgrid[-2:3, -2:3]
    # field_y = -ix, field_x = iy: curl = d(fx)/dy - d(fy)/dx = 2, divergence 0
    data = shifted_disks(-ix, iy)
    ds = inline_ctx.load("memory", data=data, num_partitions=2)
    res = inline_ctx.run_udf(ds, CoMUDF(cx=CX, cy=CY, r=9))
    assert np.allclose(res["curl"].data, 2.0, atol=1e-4)
    assert np.allclose(res["divergence"].data, 0.0, atol=1e-4)


@pytest.mark.parametrize("r", [None, 6.5])
def test_matches_numpy_random_tiled(ctx, r):
    rng = np.random.default_rng(3)
    data = rng.random((5, 7, 16, 16)).astype(np.float32)
    ds = ctx.load("memory", data=data, num_partitions=4)
    res = ctx.run_udf(ds, SmallTileCoM(cx=7.25, cy=8.5, r=r))
    ref_y, ref_x = numpy_com(data, 8.5, 7.25, r)
    assert np.allclose(res["raw_com"].data[..., 0], ref_y, rtol=1e-4, atol=1e-5)
    assert np.allclose(res["raw_com"].data[..., 1], ref_x, rtol=1e-4, atol=1e-5)


def test_default_center_and_whole_frame(inline_ctx):
    rng = np.random.default_rng(4)
    data = rng.random((3, 4, 9, 12)).astype(np.float32)
    ds = inline_ctx.load("memory", data=data)
    res = inline_ctx.run_udf(ds, CoMUDF())
    ref_y, ref_x = numpy_com(data, 4.0, 5.5, None)
    assert np.allclose(res["raw_com"].data[..., 0], ref_y, rtol=1e-4, atol=1e-5)
    assert np.allclose(res["raw_com"].data[..., 1], ref_x, rtol=1e-4, atol=1e-5)


def test_ring(inline_ctx):
    rng = np.random.default_rng(5)
    data = rng.random((2, 3, 16, 16)).astype(np.float32)
    ds = inline_ctx.load("memory", data=data)
    res = inline_ctx.run_udf(ds, CoMUDF(cx=8, cy=8, r=7, ri=3))
    mask = circular(8, 8, 16, 16, 7) - circular(8, 8, 16, 16, 3)
    ys, xs = np.mgrid[0:16, 0:16]
    d = data * mask
    ref_y = (d * ys).sum(axis=(2, 3)) / d.sum(axis=(2, 3)) - 8
    assert np.allclose(res["raw_com"].data[..., 0], ref_y, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("flip_y", [False, True])
@pytest.mark.parametrize("rotation", [0.0, 90.0, 33.0])
def test_corrections(inline_ctx, flip_y, rotation):
    iy, ix = np.mgrid[-2:3, -1:3]
    data = shifted_disks(iy, ix)
    ds = inline_ctx.load("memory", data=data, num_partitions=2)
    res = inline_ctx.run_udf(ds, CoMUDF(cx=CX, cy=CY, r=9, flip_y=flip_y, scan_rotation=rotation))
    y = -iy if flip_y else iy
    phi = np.deg2rad(rotation)
    exp_y = y * np.cos(phi) - ix * np.sin(phi)
    exp_x = y * np.sin(phi) + ix * np.cos(phi)
    assert np.allclose(res["field"].data[..., 0], exp_y, atol=1e-4)
    assert np.allclose(res["field"].data[..., 1], exp_x, atol=1e-4)
    assert np.allclose(res["raw_com"].data[..., 0], iy, atol=1e-5)
    assert np.allclose(res["magnitude"].data, np.hypot(iy, ix), atol=1e-4)


def test_rotation_90_maps_axes():
    fy, fx = apply_correction(np.array([1.0]), np.array([0.0]), scan_rotation=90)
    assert np.allclose([fy[0], fx[0]], [0.0, 1.0])
    fy, fx = apply_correction(np.array([1.0]), np.array([0.0]), flip_y=True)
    assert np.allclose([fy[0], fx[0]], [-1.0, 0.0])


def test_divergence_curl_helpers():
    y, x = np.mgrid[0:6, 0:7].astype(float)
    assert np.allclose(divergence(3 * y, -x), 2.0)
    assert np.allclose(curl(x, 2 * y), 1.0)


def test_roi_nan_safe(ctx):
    iy, ix = np.mgrid[-2:3, -2:3]
    data = shifted_disks(iy, ix)
    ds = ctx.load("memory", data=data, num_partitions=3)
    roi = np.zeros((5, 5), dtype=bool)
    roi[1:4, :] = True
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        res = ctx.run_udf(ds, CoMUDF(cx=CX, cy=CY, r=9), roi=roi)
    div = res["divergence"].data
    assert np.all(np.isnan(div[~roi]))
    assert np.allclose(div[2], 2.0, atol=1e-4)
    assert res["divergence"].raw_data.shape == (15,)
    assert np.allclose(res["raw_com"].raw_data[:, 0], iy[roi], atol=1e-5)


def test_empty_frames_are_nan(inline_ctx):
    data = np.zeros((2, 2, 8, 8), dtype=np.float32)
    data[0, 0, 4, 4] = 1
    ds = inline_ctx.load("memory", data=data)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        res = inline_ctx.run_udf(ds, CoMUDF(cx=4, cy=4, r=2))
    com = res["raw_com"].data
    assert np.allclose(com[0, 0], 0.0)
    assert np.all(np.isnan(com[1, 1]))


def test_one_dimensional_scan(inline_ctx):
    rng = np.random.default_rng(6)
    data = rng.random((10, 12, 12)).astype(np.float32)
    ds = inline_ctx.load("memory", data=data, num_partitions=2)
    res = inline_ctx.run_udf(ds, CoMUDF(cx=6, cy=6, r=5))
    assert "divergence" not in res and "curl" not in res
    ref_y, ref_x = numpy_com(data, 6, 6, 5)
    assert np.allclose(res["field_x"].data, ref_x, rtol=1e-4, atol=1e-5)


def test_partial_results(inline_ctx):
    iy, ix = np.mgrid[-2:3, -2:3]
    ds = inline_ctx.load("memory", data=shifted_disks(iy, ix), num_partitions=5)
    seen_partial = False
    for item in inline_ctx.run_udf_iter(ds, CoMUDF(cx=CX, cy=CY, r=9)):
        done = item.damage.data
        field_y = item.buffers[0]["field_y"].data
        assert np.allclose(field_y[done], iy[done], atol=1e-5)
        assert np.all(np.isnan(field_y[~done]))
        seen_partial |= 0 < done.sum() < done.size
    assert seen_partial
    assert np.allclose(item.buffers[0]["field_x"].data, ix, atol=1e-5)


def test_needs_2d_frames(inline_ctx):
    ds = inline_ctx.load("memory", data=np.ones((4, 10), dtype=np.float32), sig_dims=1)
    with pytest.raises(UDFException, match="2D frames"):
        inline_ctx.run_udf(ds, CoMUDF())


def test_with_params():
    udf = CoMUDF.with_params(cy=3, cx=4, r=2, flip_y=True)
    assert udf.params.cx == 4 and udf.params.flip_y is True
