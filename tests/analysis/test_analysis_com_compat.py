"""The COM analysis as in LiberTEM 0.16: ``field.raw_data`` is ``(x, y)``, complex data
gives ``x_real``/``y_real``/``x_imag``/``y_imag``, empty frames have shift 0, scans
with an axis of length 1 have no divergence/curl, argument checks of
``create_com_analysis``; ``center_shifts``, ``coordinate_check``, ``guess_corrections``."""

from __future__ import annotations

import numpy as np
import pytest

from libertem.analysis.com import center_shifts, coordinate_check, guess_corrections
from libertem.udf.com import CoMUDF, apply_correction


def numpy_com(data, cy, cx):
    """Whole-frame centre of mass minus the reference, 0 for frames without intensity."""
    sy, sx = data.shape[-2:]
    ys, xs = np.mgrid[0:sy, 0:sx]
    total = data.sum(axis=(-1, -2))
    safe = np.where(total == 0, 1, total)
    y = np.where(total == 0, cy, (data * ys).sum(axis=(-1, -2)) / safe) - cy
    x = np.where(total == 0, cx, (data * xs).sum(axis=(-1, -2)) / safe) - cx
    return y, x


@pytest.fixture(scope="module")
def frames():
    rng = np.random.default_rng(7)
    data = rng.random((4, 5, 6, 7)).astype(np.float32)
    data[2, 3] = 0  # an empty frame
    return data


@pytest.mark.parametrize("with_roi", [False, True])
def test_field_is_x_then_y(ctx, frames, with_roi):
    ds = ctx.load("memory", data=frames, num_partitions=2)
    roi = None
    if with_roi:
        roi = np.ones((4, 5), dtype=bool)
        roi[0, 0] = roi[3, 4] = False
    res = ctx.run(ctx.create_com_analysis(ds, cx=3, cy=2, scan_rotation=30.0), roi=roi)
    ref_y, ref_x = apply_correction(*numpy_com(frames.astype(np.float64), 2, 3), 30.0, False)
    assert res.keys() == ["field", "magnitude", "divergence", "curl", "x", "y"]
    x, y = res.field.raw_data
    sel = np.ones((4, 5), dtype=bool) if roi is None else roi
    np.testing.assert_allclose(x[sel], ref_x[sel], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(y[sel], ref_y[sel], rtol=1e-5, atol=1e-6)
    assert x is res.x.raw_data and y is res.y.raw_data
    assert res.x.raw_data.dtype == np.float64
    assert not res.field.include_in_download
    assert res.x.raw_data[2, 3] == 0 and res.y.raw_data[2, 3] == 0
    assert res.magnitude.raw_data[2, 3] == 0
    if roi is None:
        assert np.isfinite(res.divergence.raw_data).all() and np.isfinite(res.curl.raw_data).all()
        np.testing.assert_allclose(
            res.divergence.raw_data,
            np.gradient(ref_y, axis=0) + np.gradient(ref_x, axis=1),
            rtol=1e-5,
            atol=1e-6,
        )
    else:
        assert np.isnan(x[~sel]).all()


def test_analysis_field_matches_udf_field(inline_ctx, frames):
    ds = inline_ctx.load("memory", data=frames)
    res = inline_ctx.run(inline_ctx.create_com_analysis(ds, cx=3, cy=2, flip_y=True))
    udf_field = inline_ctx.run_udf(ds, CoMUDF.with_params(cx=3, cy=2, flip_y=True))["field"].data
    analysis_field = np.flip(np.moveaxis(np.asarray(res.field.raw_data), 0, -1), axis=-1)
    np.testing.assert_allclose(analysis_field, udf_field, rtol=1e-5, atol=1e-6)


def test_complex_data(ctx):
    rng = np.random.default_rng(3)
    data = (rng.random((3, 4, 5, 5)) + 1j * rng.random((3, 4, 5, 5))).astype(np.complex64)
    data[1, 2] = 0
    ds = ctx.load("memory", data=data, num_partitions=2)
    res = ctx.run(ctx.create_com_analysis(ds, cx=2, cy=1, scan_rotation=90.0))
    assert res.keys() == ["x_real", "y_real", "x_imag", "y_imag"]
    assert [r.title for r in res] == ["x [real]", "y [real]", "x [imag]", "y [imag]"]
    ref_y, ref_x = apply_correction(*numpy_com(data.astype(np.complex128), 1, 2), 90.0, False)
    for key, ref in (
        ("x_real", ref_x.real),
        ("y_real", ref_y.real),
        ("x_imag", ref_x.imag),
        ("y_imag", ref_y.imag),
    ):
        values = res[key].raw_data
        assert values.dtype == np.float64 and values.shape == (3, 4)
        np.testing.assert_allclose(values, ref, rtol=1e-5, atol=1e-6)
        assert values[1, 2] == 0
    for missing in ("field", "magnitude", "divergence", "curl", "x", "y"):
        assert not hasattr(res, missing)
    assert res.x_real.visualized.shape == (3, 4, 4)  # RGBA


@pytest.mark.parametrize("nav", [(1, 5), (5, 1), (1, 1), (2, 2)])
def test_scan_axes_of_length_one(inline_ctx, nav):
    data = np.random.default_rng(0).random(nav + (4, 4)).astype(np.float32)
    res = inline_ctx.run(inline_ctx.create_com_analysis(inline_ctx.load("memory", data=data)))
    if min(nav) > 1:
        assert res.keys() == ["field", "magnitude", "divergence", "curl", "x", "y"]
    else:
        assert res.keys() == ["field", "magnitude", "x", "y"]
    assert res.x.raw_data.shape == nav


def test_create_com_analysis_checks(inline_ctx):
    ctx = inline_ctx
    ds4 = ctx.load("memory", data=np.ones((4, 4, 8, 8), dtype=np.float32))
    ds3 = ctx.load("memory", data=np.ones((16, 8, 8), dtype=np.float32))
    ds_1dsig = ctx.load("memory", data=np.ones((4, 4, 64), dtype=np.float32), sig_dims=1)
    ds_both = ctx.load("memory", data=np.ones((16, 64), dtype=np.float32), sig_dims=1)
    nav_message = "^incompatible dataset: need two navigation dimensions$"
    with pytest.raises(ValueError, match=nav_message):
        ctx.create_com_analysis(dataset=ds3, cx=4, cy=4, mask_radius=3)
    with pytest.raises(ValueError, match=nav_message):  # the nav check comes first
        ctx.create_com_analysis(dataset=ds_both, mask_radius_inner=2)
    with pytest.raises(ValueError, match="^incompatible dataset: need two signal dimensions$"):
        ctx.create_com_analysis(dataset=ds_1dsig, mask_radius_inner=2)
    with pytest.raises(
        ValueError,
        match="^incompatible parameters: must pass both `mask_radius` and `mask_radius_inner`",
    ):
        ctx.create_com_analysis(dataset=ds4, cx=4, cy=4, mask_radius_inner=2)
    ring = ctx.create_com_analysis(dataset=ds4, cx=4, cy=4, mask_radius=3, mask_radius_inner=2)
    assert (ring.parameters["r"], ring.parameters["ri"]) == (3, 2)
    plain = ctx.create_com_analysis(dataset=ds4)
    assert (plain.parameters["r"], plain.parameters["ri"]) == (np.inf, 0.0)
    assert ctx.run(plain).keys()[0] == "field"


def test_center_shifts():
    ys, xs = center_shifts(
        np.array([2.0, 0.0]), np.array([4.0, 0.0]), np.array([6.0, 0.0]), 1.0, 1.0
    )
    assert ys.tolist() == [1.0, 0.0] and xs.tolist() == [2.0, 0.0]
    cy, cx = center_shifts(
        np.array([2.0 + 0j, 0j]), np.array([4 + 4j, 0j]), np.array([2 - 4j, 5j]), 0, 0
    )
    np.testing.assert_allclose(cy, [2 + 2j, 0])
    np.testing.assert_allclose(cx, [1 - 2j, 0])


def _inward_block():
    y = np.zeros((5, 5))
    x = np.zeros((5, 5))
    y[1, 1:4] = 1
    y[3, 1:4] = -1
    x[1:4, 1] = 1
    x[1:4, 3] = -1
    return y, x


def _rms_curl(y, x, angle, flip, roi):
    fy, fx = apply_correction(y, x, angle, flip)
    curl = np.gradient(fy, axis=1) - np.gradient(fx, axis=0)
    return np.sqrt(np.mean(curl[roi] ** 2))


def test_coordinate_check_whole_field_then_roi():
    y, x = _inward_block()
    straight, flipped = coordinate_check(y, x)
    assert straight.shape == flipped.shape == (360,)
    default = (slice(0, -1), slice(0, -1))
    for angle in (0, 45, 90, 271):
        assert np.isclose(straight[angle], _rms_curl(y, x, angle, False, default))
        assert np.isclose(flipped[angle], _rms_curl(y, x, angle, True, default))
    np.testing.assert_allclose(straight[[0, 45, 90]], [0.5, 0.75, 0.9354], atol=1e-4)
    roi = np.zeros((5, 5), dtype=bool)
    roi[1:4, 2:] = True
    s_roi, _ = coordinate_check(y, x, roi=roi)
    assert np.isclose(s_roi[30], _rms_curl(y, x, 30, False, roi))


def test_guess_corrections():
    y, x = _inward_block()
    g = guess_corrections(y, x)
    assert g == (0, False, 0.0, 0.0)
    assert type(g.scan_rotation) is int and type(g.flip_y) is bool
    assert isinstance(g.cy, np.float64) and isinstance(g.cx, np.float64)
    assert g._fields == ("scan_rotation", "flip_y", "cy", "cx")
    # pointing outwards: the divergence leans positive, so 180 degrees
    assert guess_corrections(-y, -x)[:2] == (180, False)
    yy, xx = np.mgrid[0:4, 0:4].astype(float)
    # the offsets are the means over the default ROI (all but the last row and column)
    assert guess_corrections(yy, xx + 1)[2:] == (1.0, 2.0)
    roi = np.zeros((4, 4), dtype=bool)
    roi[2:, 2:] = True
    assert guess_corrections(yy, xx + 1, roi=roi)[2:] == (2.5, 3.5)
    # a flipped detector is recognised, the angle lies in -179 ... 180
    det_y, det_x = apply_correction(y, x, -90, True, forward=False)
    guess = guess_corrections(det_y, det_x)
    assert guess[:2] == (-90, True)
