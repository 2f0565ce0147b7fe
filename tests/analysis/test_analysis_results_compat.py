"""Result sets of the analyses as in LiberTEM 0.16: names and titles, where the pick
coordinates are checked, lookup errors, the radial Fourier coefficients, the analysis
type ids and the ROI of the analysis parameters."""

from __future__ import annotations

import numpy as np
import pytest

from libertem.analysis.base import Analysis, AnalysisResult, AnalysisResultSet
from libertem.analysis.getroi import get_roi
from libertem.analysis.raw import PickFrameAnalysis
from libertem.masks import circular, rectangular

NAV = (3, 4)
SIG = (8, 8)


@pytest.fixture(scope="module")
def data():
    return np.arange(np.prod(NAV + SIG), dtype=np.uint16).reshape(NAV + SIG)


@pytest.fixture
def ds(ctx, data):
    return ctx.load("memory", data=data, num_partitions=2)


def _create(ctx, ds, name):
    return {
        "sum": lambda: ctx.create_sum_analysis(dataset=ds),
        "pick": lambda: ctx.create_pick_analysis(dataset=ds, x=1, y=2),
        "disk": lambda: ctx.create_disk_analysis(dataset=ds, cx=4, cy=4, r=2),
        "ring": lambda: ctx.create_ring_analysis(dataset=ds, cx=4, cy=4, ri=1, ro=3),
        "point": lambda: ctx.create_point_analysis(dataset=ds, x=3, y=5),
    }[name]()


LOG_FIRST = [("intensity", "intensity [log]"), ("intensity_lin", "intensity [lin]")]
LIN_FIRST = [("intensity", "intensity [lin]"), ("intensity_log", "intensity [log]")]


@pytest.mark.parametrize(
    "name, keys, dtype",
    [
        ("sum", LOG_FIRST, np.float32),
        ("pick", LOG_FIRST, np.uint16),
        ("disk", LIN_FIRST, np.float32),
        ("ring", LIN_FIRST, np.float32),
        ("point", LIN_FIRST, np.float32),
    ],
)
def test_two_results_of_real_data(ctx, ds, data, name, keys, dtype):
    res = ctx.run(_create(ctx, ds, name))
    assert [(r.key, r.title) for r in res] == keys
    first, second = (np.asarray(r.raw_data) for r in res)
    assert first.dtype == dtype and np.array_equal(first, second)
    yy, xx = np.mgrid[0 : SIG[0], 0 : SIG[1]]
    d = np.hypot(yy - 4, xx - 4)
    expected = {
        "sum": lambda: data.sum(axis=(0, 1), dtype=np.float64),
        "pick": lambda: data[2, 1],
        "disk": lambda: (data * (d <= 2)).sum(axis=(2, 3)),
        "ring": lambda: (data * ((d > 1) & (d <= 3))).sum(axis=(2, 3)),
        "point": lambda: data[..., 5, 3],
    }[name]()
    np.testing.assert_allclose(first, expected, rtol=1e-6)
    lin_image = res[0 if keys is LIN_FIRST else 1].visualized
    log_image = res[1 if keys is LIN_FIRST else 0].visualized
    assert lin_image.shape == log_image.shape == (*first.shape, 4)
    assert not np.array_equal(lin_image, log_image)


def test_sum_with_roi(ctx, ds, data):
    roi = np.zeros(NAV, dtype=bool)
    roi[1, 1:3] = True
    res = ctx.run(ctx.create_sum_analysis(dataset=ds), roi=roi)
    np.testing.assert_allclose(res.intensity_lin.raw_data, data[roi].sum(axis=0), rtol=1e-6)


def _filled(nav):
    """Every frame of 2x2 pixels holds its flat index."""
    n = int(np.prod(nav))
    return np.arange(n, dtype=np.float32).reshape((*nav, 1, 1)) * np.ones((2, 2), np.float32)


@pytest.mark.parametrize(
    "nav, params, value",
    [
        ((3, 4), {"x": 1, "y": 2}, 9.0),
        ((12,), {"x": 5}, 5.0),
        ((2, 3, 4), {"x": 1, "y": 2, "z": 1}, 21.0),
    ],
)
def test_pick_picks_the_frame(ctx, nav, params, value):
    ds = ctx.load("memory", data=_filled(nav), sig_dims=2)
    res = ctx.run(PickFrameAnalysis(dataset=ds, parameters=params))
    assert np.all(res.intensity.raw_data == value)


@pytest.mark.parametrize(
    "nav, params, match",
    [
        ((3, 4), {"x": 1}, "needs y, x"),
        ((3, 4), {"x": 1, "y": 2, "z": 0}, "no coordinate z"),
        ((3, 4), {"x": 4, "y": 0}, "outside"),
        ((3, 4), {"x": -1, "y": 0}, "outside"),
        ((12,), {}, "needs x"),
        ((12,), {"x": 1, "y": 0}, "no coordinate y"),
        ((2, 3, 4), {"x": 1, "y": 0}, "needs z, y, x"),
        ((2, 2, 2, 2), {"x": 0, "y": 0, "z": 0}, "1 to 3 scan dimensions"),
    ],
)
def test_pick_checks_when_run(ctx, nav, params, match):
    ds = ctx.load("memory", data=_filled(nav), sig_dims=2)
    an = PickFrameAnalysis(dataset=ds, parameters=params)  # never raises here
    with pytest.raises(ValueError, match=match):
        ctx.run(an)
    assert len(ctx.run(ctx.create_sum_analysis(dataset=ds))) == 2  # the Context still works


def test_create_pick_analysis_passes_given_coordinates(ctx, ds):
    an = ctx.create_pick_analysis(dataset=ds, x=3, y=1)
    assert {k: v for k, v in an.parameters.items() if k in ("x", "y", "z")} == {"x": 3, "y": 1}


def test_lookup_of_a_missing_key():
    a = AnalysisResult(raw_data=np.zeros(3), visualized=None, title="A", desc="a", key="a")
    b = AnalysisResult(raw_data=np.ones(3), visualized=None, title="B", desc="b", key="b")
    rs = AnalysisResultSet([a, b])
    message = "result with key 'c' not found, have: a, b"
    with pytest.raises(AttributeError) as info:
        rs.c
    assert str(info.value) == message
    with pytest.raises(AttributeError) as info:
        rs["c"]
    assert str(info.value) == message
    assert rs["b"] is b and rs.a is a and rs[1] is b and len(rs) == 2
    assert rs.keys() == ["a", "b"] and not hasattr(rs, "c")


def test_radial_fourier_sign_and_normalisation(ctx):
    data = np.zeros((1, 3, 9, 9), dtype=np.float32)
    data[0, 0, 6, 4] = 1  # below the centre: phi = +pi/2
    data[0, 1, 4, 6] = 1  # right of the centre: phi = 0
    data[0, 2, 6, 6] = 2
    data[0, 2, 4, 2] = 1
    ds = ctx.load("memory", data=data)
    res = ctx.run(
        ctx.create_radial_fourier_analysis(ds, cx=4, cy=4, ri=1, ro=3, n_bins=1, max_order=2)
    )
    c1 = res.complex_0_1.raw_data.ravel()
    np.testing.assert_allclose(c1[:2], [1j, 1], atol=1e-6)
    np.testing.assert_allclose(res.phase_0_1.raw_data.ravel()[:2], [np.pi / 2, 0], atol=1e-6)
    # frame 2, by hand: weights of the antialiased ring (width 2 around r = 2)
    yy, xx = np.mgrid[0:9, 0:9]
    r = np.hypot(yy - 4, xx - 4)
    phi = np.arctan2(yy - 4, xx - 4)
    ring = np.clip(1 + 0.5 - np.abs(r - 2), 0, 1)
    coeff = [np.sum(data[0, 2] * ring * np.exp(1j * n * phi)) for n in range(3)]
    absolute = [res[f"absolute_0_{n}"].raw_data.ravel()[2] for n in range(3)]
    np.testing.assert_allclose(absolute, np.abs(coeff), rtol=1e-5)
    np.testing.assert_allclose(res.complex_0_0.raw_data.ravel()[2], coeff[0], rtol=1e-5)
    for n in (1, 2):
        got = res[f"complex_0_{n}"].raw_data.ravel()[2]
        np.testing.assert_allclose(got, coeff[n] / max(1, abs(coeff[0])), rtol=1e-5)


@pytest.mark.parametrize(
    "type_id, name",
    [
        ("SUM_FRAMES", "SumAnalysis"),
        ("PICK_FRAME", "PickFrameAnalysis"),
        ("FFTSUM_FRAMES", "SumfftAnalysis"),
        ("PICK_FFT_FRAME", "PickFFTFrameAnalysis"),
        ("SD_FRAMES", "SDAnalysis"),
        ("SUM_SIG", "SumSigAnalysis"),
        ("FEM", "FEMAnalysis"),
        ("APPLY_FFT_MASK", "ApplyFFTMask"),
        ("CLUST", "ClusterAnalysis"),
    ],
)
def test_analysis_type_ids(type_id, name):
    assert Analysis.get_analysis_by_type(type_id).__name__ == name


@pytest.mark.parametrize(
    "w, h, rows, cols",
    [
        (2, 1, (2, 3), (3, 5)),
        (-2, 1, (2, 3), (1, 3)),
        (2, -1, (1, 2), (3, 5)),
        (-2, -1, (1, 2), (1, 3)),
        (2.7, 1.2, (2, 3), (3, 5)),
        (5, 5, (2, 5), (3, 6)),
    ],
)
def test_rectangular_includes_both_ends(w, h, rows, cols):
    m = rectangular(X=3, Y=2, Width=w, Height=h, imageSizeX=7, imageSizeY=6)
    expected = np.zeros((6, 7), dtype=bool)
    expected[rows[0] : rows[1] + 1, cols[0] : cols[1] + 1] = True
    assert m.dtype == bool and np.array_equal(m, expected)
    assert not rectangular(3, 2, 0, 2, 7, 6).any() and not rectangular(3, 2, 2, 0, 7, 6).any()


def test_get_roi():
    assert get_roi({}, (3, 4)) is None and get_roi({"roi": {}}, (3, 4)) is None
    rect = {"roi": {"shape": "rect", "x": 1, "y": 0, "width": 1, "height": 1}}
    assert np.array_equal(get_roi(rect, (3, 4)), rectangular(1, 0, 1, 1, 4, 3))
    assert get_roi(rect, (3, 4)).sum() == 4
    disk = {"roi": {"shape": "disk", "cx": 1, "cy": 1, "r": 1}}
    assert np.array_equal(get_roi(disk, (3, 4)), circular(1, 1, 4, 3, 1))
    with pytest.raises(NotImplementedError):
        get_roi({"roi": {"shape": "star"}}, (3, 4))


def test_make_circular_mask_alias():
    from libertem.masks import _make_circular_mask

    assert np.array_equal(_make_circular_mask(2, 1, 5, 4, 1.5), circular(2, 1, 5, 4, 1.5))
    assert np.array_equal(
        _make_circular_mask(2, 1, 5, 4, 1.5, antialiased=True),
        circular(2, 1, 5, 4, 1.5, antialiased=True),
    )


def test_holography_is_removed():
    with pytest.raises(ImportError) as info:
        import libertem.udf.holography  # noqa: F401
    assert type(info.value) is ImportError
    message = str(info.value)
    assert message.startswith("The holography implementation is removed.")
    assert "LiberTEM-holo" in message and "0.14.1" in message
