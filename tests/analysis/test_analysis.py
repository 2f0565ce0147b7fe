"""Analyses (Context.create_*_analysis + Context.run) and export_dataset against numpy."""

from __future__ import annotations

import matplotlib
import numpy as np
import pytest

from libertem.analysis import AnalysisResult, AnalysisResultSet
from libertem.analysis.radialfourier import radial_fourier_masks
from libertem.masks import circular, gradient_x, radial_bins, ring

matplotlib.use("Agg")

NAV, SIG = (6, 7), (16, 18)


@pytest.fixture(scope="module")
def data():
    return np.random.default_rng(11).random((*NAV, *SIG)).astype(np.float32)


@pytest.fixture
def ds(ctx, data):
    return ctx.load("memory", data=data, num_partitions=3)


def distances(cx, cy):
    ys, xs = np.mgrid[0 : SIG[0], 0 : SIG[1]]
    return np.hypot(ys - cy, xs - cx)


def test_disk_known_sum(inline_ctx):
    ones = np.ones((*NAV, *SIG), dtype=np.float32)
    ds = inline_ctx.load("memory", data=ones)
    res = inline_ctx.run(inline_ctx.create_disk_analysis(ds, cx=8, cy=7, r=4))
    n_inside = np.count_nonzero(distances(8, 7) <= 4)
    assert n_inside == 49
    assert np.allclose(res.intensity.raw_data, n_inside)


def test_ring_known_sum(inline_ctx):
    ones = np.ones((*NAV, *SIG), dtype=np.float32)
    ds = inline_ctx.load("memory", data=ones)
    res = inline_ctx.run(inline_ctx.create_ring_analysis(ds, cx=9, cy=8, ri=2, ro=5))
    d = distances(9, 8)
    expected = np.count_nonzero((d > 2) & (d <= 5))
    assert np.allclose(res["intensity"].raw_data, expected)


def test_disk_and_ring_match_numpy(ctx, ds, data):
    disk = ctx.run(ctx.create_disk_analysis(ds, cx=8.5, cy=6, r=5))
    ref = (data * circular(8.5, 6, SIG[1], SIG[0], 5)).sum(axis=(2, 3))
    assert disk.intensity.raw_data.shape == NAV
    assert np.allclose(disk.intensity.raw_data, ref, rtol=1e-5)
    rres = ctx.run(ctx.create_ring_analysis(ds, cx=8.5, cy=6, ri=2, ro=6))
    ref = (data * ring(8.5, 6, SIG[1], SIG[0], 6, 2)).sum(axis=(2, 3))
    assert np.allclose(rres.intensity.raw_data, ref, rtol=1e-5)


def test_mask_analysis(ctx, ds, data):
    def m0():
        return circular(5, 5, SIG[1], SIG[0], 3)

    def m1():
        return gradient_x(SIG[1], SIG[0])

    res = ctx.run(ctx.create_mask_analysis([m0, m1], ds))
    assert res.keys() == ["mask_0", "mask_1"]
    assert np.allclose(res.mask_0.raw_data, (data * m0()).sum(axis=(2, 3)), rtol=1e-5)
    assert np.allclose(res.mask_1.raw_data, (data * m1()).sum(axis=(2, 3)), rtol=1e-5)
    stack = ctx.run(ctx.create_mask_analysis(lambda: np.stack([m0(), m1()]), ds))
    assert np.allclose(stack.mask_1.raw_data, res.mask_1.raw_data)


def test_point(ctx, ds, data):
    res = ctx.run(ctx.create_point_analysis(ds, x=13, y=4))
    assert np.array_equal(res.intensity.raw_data, data[:, :, 4, 13])
    with pytest.raises(ValueError, match="outside"):
        ctx.create_point_analysis(ds, x=SIG[1], y=0)


def test_sum(ctx, ds, data):
    res = ctx.run(ctx.create_sum_analysis(ds))
    assert np.allclose(res.intensity.raw_data, data.sum(axis=(0, 1)), rtol=1e-5)
    vis = res.intensity.visualized
    # an RGBA image, as in LiberTEM
    assert vis.shape == (*SIG, 4) and vis.dtype == np.uint8


def test_sum_with_roi(ctx, ds, data):
    roi = np.zeros(NAV, dtype=bool)
    roi[1:3, 2:6] = True
    res = ctx.run(ctx.create_sum_analysis(ds), roi=roi)
    assert np.allclose(res.intensity.raw_data, data[roi].sum(axis=0), rtol=1e-5)
    disk = ctx.run(ctx.create_disk_analysis(ds, 8, 8, 3), roi=roi)
    assert np.all(np.isnan(disk.intensity.raw_data[~roi]))
    assert np.all(np.isfinite(disk.intensity.raw_data[roi]))


@pytest.mark.parametrize("nav", [(5,), (3, 4), (2, 3, 2)])
def test_pick(inline_ctx, nav):
    data = np.arange(np.prod(nav) * 12, dtype=np.uint16).reshape((*nav, 3, 4))
    ds = inline_ctx.load("memory", data=data)
    coords = {1: dict(x=3), 2: dict(x=2, y=1), 3: dict(x=1, y=2, z=1)}[len(nav)]
    res = inline_ctx.run(inline_ctx.create_pick_analysis(ds, **coords))
    index = {1: (3,), 2: (1, 2), 3: (1, 2, 1)}[len(nav)]
    assert res.intensity.raw_data.dtype == np.uint16
    assert np.array_equal(res.intensity.raw_data, data[index])


def test_pick_errors(inline_ctx):
    ds = inline_ctx.load("memory", data=np.zeros((3, 4, 2, 2), dtype=np.float32))
    # created without complaint, checked when run (as in LiberTEM)
    with pytest.raises(ValueError, match="needs y, x"):
        inline_ctx.run(inline_ctx.create_pick_analysis(ds, x=1))
    with pytest.raises(ValueError, match="outside"):
        inline_ctx.run(inline_ctx.create_pick_analysis(ds, x=4, y=0))


def test_com_known_shift(ctx):
    sy, sx = 20, 22
    iy, ix = np.mgrid[-1:2, -2:2]
    data = np.zeros((*iy.shape, sy, sx), dtype=np.float32)
    for idx in np.ndindex(iy.shape):
        data[idx] = circular(10 + ix[idx], 9 + iy[idx], sx, sy, 3)
    ds = ctx.load("memory", data=data, num_partitions=2)
    res = ctx.run(ctx.create_com_analysis(ds, cx=10, cy=9, mask_radius=8))
    assert res.keys() == ["field", "magnitude", "divergence", "curl", "x", "y"]
    assert np.allclose(res.x.raw_data, ix, atol=1e-5)
    assert np.allclose(res.y.raw_data, iy, atol=1e-5)
    # field.raw_data is (x, y), x first
    assert np.allclose(np.stack(res.field.raw_data, axis=-1), np.stack([ix, iy], -1), atol=1e-5)
    assert not res.field.include_in_download
    assert np.allclose(res.magnitude.raw_data, np.hypot(iy, ix), atol=1e-5)
    assert np.allclose(res.divergence.raw_data, 2.0, atol=1e-4)
    assert np.allclose(res.curl.raw_data, 0.0, atol=1e-4)
    assert res.field.visualized.shape == (*iy.shape, 3)
    flipped = ctx.run(
        ctx.create_com_analysis(ds, cx=10, cy=9, mask_radius=8, flip_y=True, scan_rotation=90)
    )
    # flip: (y, x) -> (-y, x); then rotate 90 deg clockwise: (y, x) -> (x, -y)
    assert np.allclose(flipped.y.raw_data, ix, atol=1e-4)
    assert np.allclose(flipped.x.raw_data, iy, atol=1e-4)


def test_radial_fourier_matches_numpy(ctx, ds, data):
    job = ctx.create_radial_fourier_analysis(ds, cx=8, cy=7, ri=1, ro=7, n_bins=2, max_order=3)
    res = ctx.run(job)
    ys, xs = np.mgrid[0 : SIG[0], 0 : SIG[1]]
    phi = np.arctan2(ys - 7, xs - 8)
    bins = radial_bins(8, 7, SIG[1], SIG[0], radius=7, radius_inner=1, n_bins=2, use_sparse=False)
    for b in range(2):
        inside = bins[b]
        order0 = np.maximum(1, np.abs((data * inside).sum(axis=(2, 3))))
        for k in range(4):
            # exp(+1j k phi), and orders > 0 normalised by the order-0 magnitude (LiberTEM)
            ref = (data * inside * np.exp(1j * k * phi)).sum(axis=(2, 3))
            got = res[f"complex_{b}_{k}"].raw_data
            assert np.allclose(got, ref if k == 0 else ref / order0, rtol=1e-4, atol=1e-3)
            assert np.allclose(
                res[f"phase_{b}_{k}"].raw_data[np.abs(ref) > 1],
                np.angle(ref)[np.abs(ref) > 1],
                atol=1e-3,
            )
            assert np.allclose(
                res[f"absolute_{b}_{k}"].raw_data, np.abs(ref), rtol=1e-4, atol=1e-3
            )


def test_radial_fourier_dominant_order(inline_ctx):
    ys, xs = np.mgrid[0:32, 0:32]
    phi = np.arctan2(ys - 16, xs - 16)
    frame = (1 + np.cos(3 * phi)).astype(np.float32)
    data = np.broadcast_to(frame, (2, 3, 32, 32)).copy()
    ds = inline_ctx.load("memory", data=data)
    res = inline_ctx.run(inline_ctx.create_radial_fourier_analysis(ds, 16, 16, 5, 14))
    assert np.all(res.dominant_0.raw_data == 3)
    masks = radial_fourier_masks(16, 16, 32, 32, 5, 14, 1, 8)
    assert masks.shape == (9, 32, 32) and masks.dtype == np.complex64


def test_result_set_access(inline_ctx):
    ds = inline_ctx.load("memory", data=np.ones((2, 2, 4, 4), dtype=np.float32))
    res = inline_ctx.run(inline_ctx.create_sum_analysis(ds))
    assert isinstance(res, AnalysisResultSet) and len(res) == 2
    assert res.intensity is res["intensity"] is res[0]
    assert [r.key for r in res] == ["intensity", "intensity_lin"] and "intensity" in res
    assert isinstance(res.intensity, AnalysisResult)
    assert np.asarray(res.intensity).shape == (4, 4)
    assert res.intensity.title and res.intensity.desc
    assert res.raw_results["intensity"].kind == "sig"
    with pytest.raises(AttributeError, match="result with key 'nothing' not found"):
        res.nothing
    with pytest.raises(AttributeError, match="not found, have: intensity, intensity_lin"):
        res["nothing"]  # AttributeError for item access too, as in LiberTEM
    with pytest.raises(TypeError):
        inline_ctx.run("sum")


def test_export_npy_and_raw(ctx, ds, data, tmp_path):
    path = tmp_path / "out.npy"
    assert ctx.export_dataset(ds, path) == str(path)
    assert np.array_equal(np.load(path), data)
    with pytest.raises(FileExistsError):
        ctx.export_dataset(ds, path)
    roi = np.zeros(NAV, dtype=bool)
    roi[2, 1:5] = True
    roi[4, 6] = True
    ctx.export_dataset(ds, path, roi=roi, overwrite=True)
    assert np.array_equal(np.load(path), data[roi])
    raw = tmp_path / "out.raw"
    with pytest.raises(ValueError, match="Unrecognized file extension .raw only .npy"):
        ctx.export_dataset(ds, raw)
    assert not raw.exists()
    ctx.export_dataset(ds, raw, format="raw")
    assert np.array_equal(np.fromfile(raw, dtype=np.float32).reshape(data.shape), data)
    again = ctx.load("npy", path=ctx.export_dataset(ds, tmp_path / "again.npy"))
    res = ctx.run(ctx.create_sum_analysis(again))
    assert np.allclose(res.intensity.raw_data, data.sum(axis=(0, 1)), rtol=1e-5)


def test_export_integer_dtype(inline_ctx, tmp_path):
    data = np.arange(2 * 3 * 5 * 4, dtype=">u2").reshape((2, 3, 5, 4))
    ds = inline_ctx.load("memory", data=data)
    path = inline_ctx.export_dataset(ds, tmp_path / "x.bin", format="raw")
    back = np.fromfile(path, dtype=ds.dtype).reshape(data.shape)
    assert np.array_equal(back, data)
