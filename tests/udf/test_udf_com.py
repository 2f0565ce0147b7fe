"""CoMUDF: centre of mass against numpy, known shifts, corrections, regression,
divergence and curl; and the helpers of libertem.udf.com."""

from __future__ import annotations

import warnings

import matplotlib
import numpy as np
import pytest

from libertem.masks import circular
from libertem.udf.com import (
    CoMParams,
    CoMUDF,
    GuessResult,
    RegressionOptions,
    apply_correction,
    center_shifts,
    com_masks_factory,
    com_masks_generic,
    coordinate_check,
    curl_2d,
    divergence,
    guess_corrections,
    magnitude,
)
from libertem.udf.masks import ApplyMasksUDF

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


def numpy_com(data, cy, cx, r, ri=0):
    sy, sx = data.shape[-2:]
    d_ = np.hypot(*np.mgrid[0:sy, 0:sx] - np.array([cy, cx])[:, None, None])
    mask = (d_ <= r) & (d_ > ri) if ri else d_ <= r
    ys, xs = np.mgrid[0:sy, 0:sx]
    d = data.astype(np.float64) * mask
    total = d.sum(axis=(-1, -2))
    return (d * ys).sum(axis=(-1, -2)) / total - cy, (d * xs).sum(axis=(-1, -2)) / total - cx


def rotate(y, x, degrees):
    """LiberTEM's scan rotation: clockwise on screen, y' = y cos + x sin."""
    phi = np.deg2rad(degrees)
    return y * np.cos(phi) + x * np.sin(phi), -y * np.sin(phi) + x * np.cos(phi)


class SmallTileCoM(CoMUDF):
    """Forces tiles that cut frames into pieces."""

    def get_tiling_preferences(self):
        return {"depth": 3, "total_size": 3 * 256}


def test_known_shifts_divergence(ctx):
    iy, ix = np.mgrid[-2:3, -2:3]
    data = shifted_disks(iy, ix)
    ds = ctx.load("memory", data=data, num_partitions=3)
    res = ctx.run_udf(ds, CoMUDF.with_params(cx=CX, cy=CY, r=9))
    assert np.allclose(res["raw_shifts"].data[..., 0], iy, atol=1e-5)
    assert np.allclose(res["raw_shifts"].data[..., 1], ix, atol=1e-5)
    assert np.allclose(res["raw_com"].data[..., 0], iy + CY, atol=1e-4)
    assert np.allclose(res["raw_com"].data[..., 1], ix + CX, atol=1e-4)
    assert np.allclose(res["field_y"].data, iy, atol=1e-5)
    assert np.allclose(res["field"].data[..., 1], ix, atol=1e-5)
    assert np.allclose(res["magnitude"].data, np.hypot(iy, ix), atol=1e-5)
    # field (y, x) = (iy, ix): divergence 2, curl 0
    assert np.allclose(res["divergence"].data, 2.0, atol=1e-4)
    assert np.allclose(res["curl"].data, 0.0, atol=1e-4)
    assert np.array_equal(res["regression"].data, np.zeros((3, 2)))


def test_known_rotational_field(inline_ctx):
    iy, ix = np.mgrid[-2:3, -2:3]
    # field_y = -ix, field_x = iy: curl = d(fy)/dx - d(fx)/dy = -2, divergence 0
    data = shifted_disks(-ix, iy)
    ds = inline_ctx.load("memory", data=data, num_partitions=2)
    res = inline_ctx.run_udf(ds, CoMUDF.with_params(cx=CX, cy=CY, r=9))
    assert np.allclose(res["curl"].data, -2.0, atol=1e-4)
    assert np.allclose(res["divergence"].data, 0.0, atol=1e-4)


@pytest.mark.parametrize("r", [np.inf, 6.5])
def test_matches_numpy_random_tiled(ctx, r):
    rng = np.random.default_rng(3)
    data = rng.random((5, 7, 16, 16)).astype(np.float32)
    ds = ctx.load("memory", data=data, num_partitions=4)
    res = ctx.run_udf(ds, SmallTileCoM(CoMParams(cx=7.25, cy=8.5, r=r)))
    ref_y, ref_x = numpy_com(data, 8.5, 7.25, r)
    assert np.allclose(res["raw_shifts"].data[..., 0], ref_y, rtol=1e-4, atol=1e-5)
    assert np.allclose(res["raw_shifts"].data[..., 1], ref_x, rtol=1e-4, atol=1e-5)


def test_default_center_and_whole_frame(inline_ctx):
    rng = np.random.default_rng(4)
    data = rng.random((3, 4, 9, 12)).astype(np.float32)
    ds = inline_ctx.load("memory", data=data)
    udf = CoMUDF()
    res = inline_ctx.run_udf(ds, udf)
    ref_y, ref_x = numpy_com(data, 4, 6, np.inf)
    assert np.allclose(res["raw_shifts"].data[..., 0], ref_y, rtol=1e-4, atol=1e-5)
    assert np.allclose(res["raw_shifts"].data[..., 1], ref_x, rtol=1e-4, atol=1e-5)
    # after the run, the parameters know the default reference: sig_shape // 2
    assert udf.get_params() == CoMParams(cy=4, cx=6)
    assert CoMUDF().get_params() == CoMParams()


def test_ring(inline_ctx):
    rng = np.random.default_rng(5)
    data = rng.random((2, 3, 16, 16)).astype(np.float32)
    ds = inline_ctx.load("memory", data=data)
    res = inline_ctx.run_udf(ds, CoMUDF.with_params(cx=8, cy=8, r=7, ri=3))
    ref_y, ref_x = numpy_com(data, 8, 8, 7, ri=3)
    assert np.allclose(res["raw_shifts"].data[..., 0], ref_y, rtol=1e-4, atol=1e-5)
    assert np.allclose(res["raw_shifts"].data[..., 1], ref_x, rtol=1e-4, atol=1e-5)
    assert "raw_mask_sum" not in res


@pytest.mark.parametrize("flip_y", [False, True])
@pytest.mark.parametrize("rotation", [0.0, 90.0, 33.0])
def test_corrections(inline_ctx, flip_y, rotation):
    iy, ix = np.mgrid[-2:3, -1:3]
    data = shifted_disks(iy, ix)
    ds = inline_ctx.load("memory", data=data, num_partitions=2)
    udf = CoMUDF.with_params(cx=CX, cy=CY, r=9, flip_y=flip_y, scan_rotation=rotation)
    res = inline_ctx.run_udf(ds, udf)
    exp_y, exp_x = rotate(-iy if flip_y else iy, ix, rotation)
    assert np.allclose(res["field"].data[..., 0], exp_y, atol=1e-4)
    assert np.allclose(res["field"].data[..., 1], exp_x, atol=1e-4)
    assert np.allclose(res["raw_shifts"].data[..., 0], iy, atol=1e-5)
    assert np.allclose(res["magnitude"].data, np.hypot(iy, ix), atol=1e-4)


def test_apply_correction_conventions():
    # the detector sees the deflection (-1, 0); with 90 degrees scan rotation that is (0, 1)
    fy, fx = apply_correction(np.array([-1.0]), np.array([0.0]), scan_rotation=90, flip_y=False)
    assert np.allclose([fy[0], fx[0]], [0.0, 1.0])
    fy, fx = apply_correction(np.array([1.0]), np.array([0.0]), scan_rotation=0, flip_y=True)
    assert np.allclose([fy[0], fx[0]], [-1.0, 0.0])
    # flip first, then rotate; and forward=False undoes it
    y, x = np.random.default_rng(1).normal(size=(2, 10))
    fy, fx = apply_correction(y, x, 30, True)
    assert np.allclose((fy, fx), rotate(-y, x, 30))
    by, bx = apply_correction(fy, fx, 30, True, forward=False)
    assert np.allclose((by, bx), (y, x))


def test_field_helpers():
    y, x = np.mgrid[0:6, 0:7].astype(float)
    assert np.allclose(divergence(3 * y, -x), 2.0)
    assert np.allclose(curl_2d(2 * x, 0 * y), 2.0)
    assert np.allclose(curl_2d(0 * x, y), -1.0)
    assert np.allclose(magnitude(np.array([3.0]), np.array([4.0])), 5)
    sy, sx = center_shifts(np.array([2.0, 0.0]), np.array([8.0, 0.0]), np.array([4.0, 0.0]), 3, 1)
    assert np.allclose(sy[0], 1) and np.allclose(sx[0], 1)
    # no intensity: the centre is the reference, shift exactly 0
    assert sy[1] == 0 and sx[1] == 0


def test_com_masks_with_apply_masks(inline_ctx):
    rng = np.random.default_rng(11)
    data = rng.random((3, 4, 16, 18)).astype(np.float32)
    ds = inline_ctx.load("memory", data=data)
    factories = com_masks_factory(16, 18, 7.5, 9, 6)
    assert len(factories) == 3
    res = inline_ctx.run_udf(ds, ApplyMasksUDF(mask_factories=factories))["intensity"].data
    shifts = center_shifts(res[..., 0], res[..., 1], res[..., 2], 7.5, 9)
    ref = numpy_com(data, 7.5, 9, 6)
    assert np.allclose(shifts, ref, rtol=1e-4, atol=1e-5)
    generic = com_masks_generic(16, 18, lambda: np.ones((16, 18)))
    assert np.array_equal(generic[2](), np.broadcast_to(np.arange(18.0), (16, 18)))


def test_roi_nan_safe(ctx):
    iy, ix = np.mgrid[-2:3, -2:3]
    data = shifted_disks(iy, ix)
    ds = ctx.load("memory", data=data, num_partitions=3)
    roi = np.zeros((5, 5), dtype=bool)
    roi[1:4, :] = True
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        res = ctx.run_udf(ds, CoMUDF.with_params(cx=CX, cy=CY, r=9), roi=roi)
    div = res["divergence"].data
    assert np.all(np.isnan(div[~roi]))
    assert np.allclose(div[2], 2.0, atol=1e-4)
    assert res["divergence"].raw_data.shape == (15,)
    assert np.allclose(res["raw_shifts"].raw_data[:, 0], iy[roi], atol=1e-5)


def test_empty_frames_have_zero_shift(inline_ctx):
    data = np.zeros((2, 2, 8, 8), dtype=np.float32)
    data[0, 0, 5, 4] = 1
    ds = inline_ctx.load("memory", data=data)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        res = inline_ctx.run_udf(ds, CoMUDF.with_params(cx=4, cy=4, r=2))
    shifts = res["raw_shifts"].data
    assert np.array_equal(shifts[0, 0], [1.0, 0.0])
    assert np.array_equal(shifts[1, 1], [0.0, 0.0])
    assert np.array_equal(res["raw_com"].data[1, 1], [4.0, 4.0])
    assert np.array_equal(res["field"].data[1, 1], [0.0, 0.0])
    assert np.isfinite(res["divergence"].data).all() and np.isfinite(res["curl"].data).all()


def test_scan_with_a_line(inline_ctx):
    rng = np.random.default_rng(6)
    data = rng.random((1, 10, 12, 12)).astype(np.float32)
    ds = inline_ctx.load("memory", data=data, num_partitions=2)
    res = inline_ctx.run_udf(ds, CoMUDF.with_params(cx=6, cy=6, r=5))
    ref_y, ref_x = numpy_com(data, 6, 6, 5)
    assert np.allclose(res["field_x"].data, ref_x, rtol=1e-4, atol=1e-5)
    # no derivative across an axis of length 1: only d/dx contributes
    assert np.allclose(res["divergence"].data, np.gradient(ref_x, axis=1), atol=1e-4)
    assert np.allclose(res["curl"].data, np.gradient(ref_y, axis=1), atol=1e-4)


def test_partial_results(inline_ctx):
    iy, ix = np.mgrid[-2:3, -2:3]
    ds = inline_ctx.load("memory", data=shifted_disks(iy, ix), num_partitions=5)
    seen_partial = False
    for item in inline_ctx.run_udf_iter(ds, CoMUDF.with_params(cx=CX, cy=CY, r=9)):
        done = item.damage.data
        field_y = item.buffers[0]["field_y"].data
        assert np.allclose(field_y[done], iy[done], atol=1e-5)
        # not processed yet: shift 0, centre of mass at the reference
        assert np.all(field_y[~done] == 0)
        assert np.all(item.buffers[0]["raw_com"].data[~done] == [CY, CX])
        seen_partial |= 0 < done.sum() < done.size
    assert seen_partial
    assert np.allclose(item.buffers[0]["field_x"].data, ix, atol=1e-5)


@pytest.mark.parametrize("use_roi", [False, True])
def test_regression(ctx, use_roi):
    iy, ix = np.mgrid[0:5, 0:6]
    # descan-like error: offset plus linear in the scan position, plus a local bump
    sy_, sx_ = (1 + iy // 2 - ix // 3), (-2 + ix // 2)
    data = shifted_disks(sy_, sx_)
    ds = ctx.load("memory", data=data, num_partitions=3)
    roi = None
    sel = np.ones((5, 6), dtype=bool)
    if use_roi:
        roi = sel.copy()
        roi[0, :2] = False
        sel = roi
    params = dict(cx=CX, cy=CY, r=9, scan_rotation=20.0)
    field_y, field_x = rotate(sy_.astype(float), sx_.astype(float), 20.0)
    field = np.stack([field_y, field_x], -1)

    mean = ctx.run_udf(ds, CoMUDF.with_params(**params, regression=0), roi=roi)
    assert np.allclose(mean["regression"].data[0], field[sel].mean(axis=0), atol=1e-4)
    assert np.allclose(mean["field"].data[sel], field[sel] - field[sel].mean(axis=0), atol=1e-4)

    lin = ctx.run_udf(
        ds, CoMUDF.with_params(**params, regression=RegressionOptions.SUBTRACT_LINEAR), roi=roi
    )
    design = np.stack([np.ones(sel.sum()), iy[sel], ix[sel]], axis=1)
    coeffs, *_ = np.linalg.lstsq(design, field[sel], rcond=None)
    assert np.allclose(lin["regression"].data, coeffs, atol=1e-4)
    assert np.allclose(lin["field"].data[sel], field[sel] - design @ coeffs, atol=1e-4)
    assert np.allclose(lin["field_y"].data[sel], (field[sel] - design @ coeffs)[:, 0], atol=1e-4)

    given = np.array([[1.0, 2.0], [0.5, 0.0], [0.0, -0.25]])
    fixed = ctx.run_udf(ds, CoMUDF.with_params(**params, regression=given), roi=roi)
    expected = field - (given[0] + iy[..., None] * given[1] + ix[..., None] * given[2])
    assert np.allclose(fixed["field"].data[sel], expected[sel], atol=1e-4)
    assert np.array_equal(fixed["regression"].data, given)


def test_bad_parameters(inline_ctx):
    # the regression option is checked when the results are computed
    ds = inline_ctx.load("memory", data=np.ones((2, 2, 4, 4), dtype=np.float32))
    with pytest.raises(ValueError, match="^Unrecognized regression option 5$"):
        inline_ctx.run_udf(ds, CoMUDF.with_params(regression=5))
    with pytest.raises(ValueError, match=r"Regression parameter .* required shape \(3, 2\)\."):
        inline_ctx.run_udf(ds, CoMUDF.with_params(regression=np.zeros(3)))
    with pytest.raises(ValueError, match="Inner radius must be less than outer radius"):
        CoMUDF.with_params(r=3, ri=3)
    with pytest.raises(TypeError, match="cx"):
        CoMUDF(cx=3)
    with pytest.raises(TypeError, match="with_params"):
        CoMUDF({"cx": 3})
    ds = inline_ctx.load("memory", data=np.ones((4, 10), dtype=np.float32), sig_dims=1)
    with pytest.raises(ValueError, match="CoMUDF only works with 2D sig shape."):
        inline_ctx.run_udf(ds, CoMUDF())


def test_with_params_and_copy():
    udf = CoMUDF.with_params(cy=3, cx=4, r=2, flip_y=True)
    p = udf.get_params()
    assert isinstance(p, CoMParams)
    assert (p.cy, p.cx, p.r, p.ri, p.flip_y) == (3, 4, 2, 0.0, True)
    assert p.regression == RegressionOptions.NO_REGRESSION == -1
    assert udf.copy().get_params() == p
    assert [int(o) for o in RegressionOptions] == [-1, 0, 1]


def _rotated_field(angle, flip):
    """A curl-free, divergent field (a charge in the middle) seen on a rotated detector."""
    y, x = np.mgrid[-8:9, -8:9].astype(float)
    r2 = y**2 + x**2 + 4
    # the beam is pulled towards the charge: shifts point inwards
    phys_y, phys_x = -y / r2, -x / r2
    det_y, det_x = apply_correction(phys_y, phys_x, angle, flip, forward=False)
    return det_y, det_x


@pytest.mark.parametrize(
    "angle, expected", [(0, 0), (37, 37), (200, -160), (90, 90), (180, 180), (-100, -100)]
)
@pytest.mark.parametrize("flip", [False, True])
def test_guess_corrections(angle, expected, flip):
    det_y, det_x = _rotated_field(angle, flip)
    straight, flipped = coordinate_check(det_y + 0.3, det_x - 0.2)
    assert straight.shape == flipped.shape == (360,)
    best = flipped if flip else straight
    assert int(np.argmin(best)) % 180 == angle % 180
    guess = guess_corrections(det_y + 0.3, det_x - 0.2)
    assert isinstance(guess, GuessResult)
    assert type(guess.scan_rotation) is int and type(guess.flip_y) is bool
    # the offsets: means over the default ROI, all rows and columns but the last
    assert guess == GuessResult(
        scan_rotation=expected,
        flip_y=flip,
        cy=np.mean((det_y + 0.3)[:-1, :-1]),
        cx=np.mean((det_x - 0.2)[:-1, :-1]),
    )
    roi = np.zeros(det_y.shape, dtype=bool)
    roi[2:-2, 2:-2] = True
    by_mask = guess_corrections(det_y, det_x, roi=roi)
    assert by_mask[:2] == (expected, flip)
    assert np.isclose(by_mask.cy, det_y[roi].mean())
    sliced = guess_corrections(det_y, det_x, roi=(slice(1, -1), slice(1, -1)))
    assert sliced[:2] == (expected, flip)
