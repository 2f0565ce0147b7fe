"""CoMUDF as in LiberTEM 0.16: parameter and dataset checks and when they happen, the
default reference, the result names, and shift 0 (never NaN) for empty frames and for
frames that partial results have not processed yet."""

from __future__ import annotations

import numpy as np
import pytest

from dask_shared import acquire_cluster, release_cluster
from libertem.api import Context
from libertem.common.exceptions import UDFException
from libertem.udf.com import CoMParams, CoMUDF, RegressionOptions

RESULT_NAMES = {
    "raw_com",
    "raw_shifts",
    "field",
    "field_y",
    "field_x",
    "magnitude",
    "divergence",
    "curl",
    "regression",
}


def _one_pixel_frames(nav=(4, 3), pos=(1, 6), sig=(8, 8)) -> np.ndarray:
    data = np.zeros(nav + sig)
    data[(..., *pos)] = 1
    return data


@pytest.mark.parametrize("r, ri", [(5.0, 10.0), (5.0, 5.0), (0.0, 0.0)])
def test_inner_radius_checked_immediately(r, ri):
    with pytest.raises(ValueError, match="^Inner radius must be less than outer radius"):
        CoMUDF.with_params(r=r, ri=ri)


def test_regression_not_checked_at_construction():
    for option in (5, [[-2, 1], [0, 0], [0, 0]], np.zeros((2, 2)), "nonsense"):
        udf = CoMUDF.with_params(regression=option)
        assert udf.get_params().regression is option
    assert CoMUDF(CoMParams(regression=7)).get_params().regression == 7


def test_regression_checked_by_the_run(ctx):
    ds = ctx.load("memory", data=np.ones((4, 4, 8, 8)), num_partitions=2)
    with pytest.raises(ValueError, match="^Unrecognized regression option 5$"):
        ctx.run_udf(ds, CoMUDF.with_params(regression=5))
    message = "Regression parameter [[0. 0.]\n [0. 0.]] doesn't have required shape (3, 2)."
    with pytest.raises(ValueError) as info:
        ctx.run_udf(ds, CoMUDF.with_params(regression=np.zeros((2, 2))))
    assert str(info.value) == message
    res = ctx.run_udf(ds, CoMUDF.with_params(regression=[[1, 2], [0, 0], [0, 0]]))
    assert res["regression"].data.dtype == np.float64
    assert res["regression"].data.tolist() == [[1.0, 2.0], [0.0, 0.0], [0.0, 0.0]]
    # a frame of ones: centre of mass 3.5, reference 4, minus the given offset
    np.testing.assert_array_equal(res["field"].data, np.broadcast_to([-1.5, -2.5], (4, 4, 2)))


def test_regression_checked_when_partial_buffers_are_read(inline_ctx):
    ds = inline_ctx.load("memory", data=np.ones((4, 4, 8, 8)), num_partitions=2)
    results = inline_ctx.run_udf_iter(dataset=ds, udf=CoMUDF.with_params(regression=3))
    with pytest.raises(ValueError, match="^Unrecognized regression option 3$"):
        for part in results:
            part.buffers[0]["field"].data  # noqa: B018 (reading computes the results)
    # the Context stays usable
    assert inline_ctx.run_udf(ds, CoMUDF())["field"].data.shape == (4, 4, 2)


@pytest.mark.parametrize(
    "shape, sig_dims, message",
    [
        ((2, 2, 4, 4, 4), 3, "CoMUDF only works with 2D sig shape."),
        ((16, 64), 1, "CoMUDF only works with 2D sig shape."),
        ((2, 4, 4), 2, "CoMUDF only works with 2D nav shape."),
        ((2, 2, 2, 4, 4), 2, "CoMUDF only works with 2D nav shape."),
    ],
)
def test_dataset_shape_checks(ctx, shape, sig_dims, message):
    ds = ctx.load("memory", data=np.zeros(shape), sig_dims=sig_dims, num_partitions=1)
    with pytest.raises(ValueError) as info:
        ctx.run_udf(ds, CoMUDF())
    assert str(info.value) == message
    assert not isinstance(info.value, UDFException)


def test_default_reference_and_names(ctx):
    odd = np.zeros((2, 2, 7, 9), dtype=np.float32)
    odd[..., 3, 4] = 1
    odd[1, 1] = 0
    odd[1, 1, 5, 1] = 2
    udf = CoMUDF()
    r = ctx.run_udf(ctx.load("memory", data=odd, num_partitions=2), udf)
    assert set(r.keys()) == RESULT_NAMES
    assert udf.get_params().cy == 3 and udf.get_params().cx == 4
    assert r["raw_com"].data[0, 0].tolist() == [3.0, 4.0]
    assert r["raw_shifts"].data[0, 0].tolist() == [0.0, 0.0]
    assert r["raw_shifts"].data[1, 1].tolist() == [2.0, -3.0]
    assert r["raw_com"].data.dtype == np.float32


def test_empty_frame_counts_as_zero_shift(ctx):
    data = _one_pixel_frames()
    data[3, 2] = 0
    ds = ctx.load("memory", data=data, num_partitions=2)
    res = ctx.run_udf(ds, CoMUDF.with_params(cy=4, cx=4, regression=0))
    assert res["raw_shifts"].data[3, 2].tolist() == [0.0, 0.0]
    assert res["raw_com"].data[3, 2].tolist() == [4.0, 4.0]
    raw = np.zeros((4, 3, 2))
    raw[...] = [-3.0, 2.0]
    raw[3, 2] = 0
    mean = raw.reshape((-1, 2)).mean(axis=0)
    np.testing.assert_allclose(res["regression"].data[0], mean)
    np.testing.assert_allclose(res["field"].data, raw - mean)
    np.testing.assert_allclose(res["magnitude"].data, np.hypot(*np.moveaxis(raw - mean, -1, 0)))
    assert np.isfinite(res["divergence"].data).all() and np.isfinite(res["curl"].data).all()


def _check_partial(part, data_shifts, roi, cy, cx, option):
    """One partial result against numpy: valid = processed and selected."""
    b = part.buffers[0]
    nav = data_shifts.shape[:2]
    selected = np.ones(nav, dtype=bool) if roi is None else roi
    done = part.damage.data.reshape(nav) & selected
    raw = np.where(done[..., None], data_shifts, 0.0)
    if option == 0:
        coeffs = np.zeros((3, 2))
        if done.any():
            coeffs[0] = raw[done].mean(axis=0)
        field = raw.copy()
        field[done] -= coeffs[0]
    else:
        ys, xs = np.indices(nav)
        design = np.stack([np.ones(nav), ys, xs], axis=-1)
        coeffs, *_ = np.linalg.lstsq(design[done], raw[done], rcond=None)
        field = raw.copy()
        field[done] -= design[done] @ coeffs
    np.testing.assert_allclose(b["regression"].data, coeffs, atol=1e-12)
    np.testing.assert_allclose(b["field"].data[selected], field[selected], atol=1e-12)
    np.testing.assert_allclose(b["raw_shifts"].data[selected], raw[selected], atol=1e-12)
    com = b["raw_com"].data[selected & ~done]
    assert np.all(com == [cy, cx])
    for key in ("field", "field_y", "field_x", "raw_shifts", "magnitude", "raw_com"):
        assert not np.isnan(b[key].raw_data).any(), key
        assert np.isnan(b[key].data[~selected]).all(), key


@pytest.mark.parametrize("with_roi", [False, True])
@pytest.mark.parametrize("option", [RegressionOptions.SUBTRACT_MEAN, 1])
def test_partial_results_never_nan(ctx, with_roi, option):
    rng = np.random.default_rng(1)
    nav, sig, cy, cx = (5, 4), (9, 9), 4, 4
    pos = rng.integers(0, 9, size=nav + (2,))
    data = np.zeros(nav + sig)
    for idx in np.ndindex(nav):
        data[(*idx, *pos[idx])] = 1
    data[4, 1] = 0  # an empty frame
    shifts = (pos - [cy, cx]).astype(np.float64)
    shifts[4, 1] = 0
    roi = None
    if with_roi:
        roi = np.ones(nav, dtype=bool)
        roi[0, 1] = roi[2, 0] = roi[3, 3] = False
    ds = ctx.load("memory", data=data, num_partitions=3)
    udf = CoMUDF.with_params(cy=cy, cx=cx, regression=option)
    partial = 0
    for part in ctx.run_udf_iter(dataset=ds, udf=udf, roi=roi):
        _check_partial(part, shifts, roi, cy, cx, int(option))
        partial += not part.damage.data.all()
    # the inline executor yields after each of the 3 partitions; threads may combine them
    assert partial >= (2 if ctx.executor.__class__.__name__ == "InlineJobExecutor" else 0)


@pytest.fixture(scope="module")
def com_dask_ctx():
    executor = acquire_cluster()
    yield Context(executor=executor)
    release_cluster()


def test_empty_frames_and_roi_on_dask(com_dask_ctx):
    ctx = com_dask_ctx
    data = _one_pixel_frames(nav=(4, 5))
    data[1, 3] = 0
    roi = np.ones((4, 5), dtype=bool)
    roi[2, 2] = False
    ds = ctx.load("memory", data=data, num_partitions=3)
    res = ctx.run_udf(ds, CoMUDF.with_params(cy=4, cx=4, regression=1), roi=roi)
    raw = np.zeros((4, 5, 2))
    raw[...] = [-3.0, 2.0]
    raw[1, 3] = 0
    ys, xs = np.indices((4, 5))
    design = np.stack([np.ones((4, 5)), ys, xs], axis=-1)
    coeffs, *_ = np.linalg.lstsq(design[roi], raw[roi], rcond=None)
    np.testing.assert_allclose(res["regression"].data, coeffs, atol=1e-12)
    np.testing.assert_allclose(res["field"].raw_data, raw[roi] - design[roi] @ coeffs, atol=1e-12)
    assert np.isnan(res["field_y"].data[2, 2])
    with pytest.raises(ValueError, match="CoMUDF only works with 2D nav shape."):
        ctx.run_udf(ctx.load("memory", data=np.zeros((6, 4, 4))), CoMUDF())
