"""The rest of ``libertem.masks``, ``libertem.utils`` and ``libertem.utils.generate``."""

import numpy as np
import pytest
import scipy.sparse
import sparse
from hypothesis import given
from hypothesis import strategies as st
from scipy.ndimage import gaussian_filter

from libertem import masks
from libertem.common.shape import Shape
from libertem.utils import (
    calc_coords,
    frame_peaks,
    make_cartesian,
    make_polar,
    regularize_indices,
    rotate_deg,
    rotate_precalc,
    rotate_rad,
    within_frame,
)
from libertem.utils.generate import (
    cbed_frame,
    exclude_pixels,
    gradient_data,
    hologram_frame,
    prod,
)


def _dist(cx, cy, sx, sy):
    y, x = np.mgrid[0:sy, 0:sx]
    return np.hypot(x - cx, y - cy)


@pytest.mark.parametrize(
    "x, y, w, h", [(2, 3, 4, 5), (6, 8, -4, -5), (6, 3, -4, 5), (2, 8, 4, -5), (-2, -3, 5, 6)]
)
def test_rectangular_matches_slicing(x, y, w, h):
    m = masks.rectangular(x, y, w, h, 10, 12)
    assert m.dtype == bool and m.shape == (12, 10)
    expected = np.zeros((12, 10), dtype=bool)
    x0, x1 = sorted((x, x + w))
    y0, y1 = sorted((y, y + h))
    expected[max(y0, 0) : y1 + 1, max(x0, 0) : x1 + 1] = True  # both ends included
    assert np.array_equal(m, expected)


def test_rectangular_empty_and_outside():
    assert masks.rectangular(3, 3, 0, 4, 8, 8).sum() == 0
    assert masks.rectangular(20, 3, 4, 4, 8, 8).sum() == 0
    assert masks.rectangular(-9, -9, 4, 4, 8, 8).sum() == 0


def test_circular_and_ring_dtypes():
    assert masks.circular(4, 4, 9, 9, 2).dtype == bool
    assert masks.ring(4, 4, 9, 9, 3, 1).dtype == bool
    assert masks.circular(4, 4, 9, 9, 2, antialiased=True).dtype == np.float64


def test_radial_bins_partition_of_unity():
    cx, cy, sx, sy = 20.3, 15.7, 41, 33
    bins = masks.radial_bins(cx, cy, sx, sy, radius=14, radius_inner=0, n_bins=7)
    assert bins.shape == (7, sy, sx)
    total = masks.to_dense(bins).sum(axis=0)
    d = _dist(cx, cy, sx, sy)
    # inside the outer radius (less its half-pixel ramp) the bins add up to one
    assert np.allclose(total[d < 13.5], 1)
    assert np.all(total[d > 14.5] == 0)
    # bin i holds the pixels whose distance lies in its range
    width = 2.0
    for i in range(7):
        inside = (d > i * width + 0.5) & (d < (i + 1) * width - 0.5)
        assert np.allclose(masks.to_dense(bins)[i][inside], 1)


@pytest.mark.parametrize("use_sparse", [True, False])
def test_radial_bins_sparse_dense_normalize(use_sparse):
    args = (16, 16, 32, 32)
    dense = masks.radial_bins(*args, radius=12, radius_inner=3, n_bins=3, use_sparse=False)
    got = masks.radial_bins(
        *args, radius=12, radius_inner=3, n_bins=3, use_sparse=use_sparse, normalize=True
    )
    assert isinstance(got, sparse.COO) == use_sparse
    got = masks.to_dense(got)
    assert np.allclose(got.sum(axis=(1, 2)), 1)
    assert np.allclose(got * dense.sum(axis=(1, 2), keepdims=True), dense)


def test_radial_bins_defaults_cover_frame():
    bins = masks.radial_bins(5, 6, 12, 10, use_sparse=False, dtype=np.float32)
    assert bins.dtype == np.float32
    r = masks.bounding_radius(5, 6, 12, 10)
    assert bins.shape[0] == r
    assert np.allclose(bins.sum(axis=0), 1)


def test_antialiased_masks_follow_radial_bins():
    args = (9.4, 8.2, 20, 18)
    disk = masks.circular(*args, 6.5, antialiased=True)
    assert np.array_equal(disk, masks.radial_bins(*args, radius=6.5, n_bins=1)[0])
    d = _dist(*args[:2], *args[2:])
    assert np.all(disk[(d > 0.6) & (d < 6)] == 1)
    assert np.all(disk[d > 7] == 0)
    ring = masks.ring(*args, 6.5, 2.5, antialiased=True)
    assert np.all(ring[(d > 3) & (d < 6)] == 1)
    assert np.all(ring[d < 2] == 0)


def test_bounding_radius_covers_corners():
    for cx, cy, sx, sy in [(0, 0, 10, 10), (3.5, 7, 9, 20), (-5, 4, 8, 8)]:
        r = masks.bounding_radius(cx, cy, sx, sy)
        assert masks.circular(cx, cy, sx, sy, r).all()


def test_polar_map():
    r, phi = masks.polar_map(4, 3, 9, 7)
    y, x = np.mgrid[0:7, 0:9]
    assert np.allclose(r, np.hypot(y - 3, x - 4))
    assert np.allclose(phi, np.arctan2(y - 3, x - 4))
    # an ellipse stretched by 2 along y maps to a circle
    r2, _ = masks.polar_map(10, 10, 21, 21, stretchY=2.0)
    assert np.isclose(r2[10, 14], r2[18, 10])
    # with angle=pi/2 the stretch acts along x
    r3, _ = masks.polar_map(10, 10, 21, 21, stretchY=2.0, angle=np.pi / 2)
    assert np.isclose(r3[10, 18], r3[14, 10])


def test_radial_gradient_background_subtraction():
    r = np.array([0.0, 2.0, 4.6, 5.0, 5.4, 6.0, 8.0, 9.0])
    t = masks.radial_gradient_background_subtraction(r, r0=5, r_outer=8, delta=1)
    assert np.allclose(t, [0, 0.4, 0.8, 0, -0.8, -1, -1, 0])
    aa = masks.radial_gradient(5, 5, 11, 11, 4, antialiased=True)
    plain = masks.radial_gradient(5, 5, 11, 11, 4)
    d = _dist(5, 5, 11, 11)
    assert np.allclose(aa[d < 3.5], plain[d < 3.5])
    assert np.all(aa[d > 4.5] == 0)


def test_background_subtraction_sums_to_zero():
    m = masks.background_subtraction(16, 16, 32, 32, radius=10, radius_inner=4)
    assert np.isclose(m.sum(), 0)
    d = _dist(16, 16, 32, 32)
    assert np.all(m[d <= 4] == 1)
    assert np.all(m[(d > 4) & (d <= 10)] < 0)
    # a uniform frame gives zero, a peak in the disk gives its intensity
    assert np.isclose((m * 7.0).sum(), 0)
    frame = np.ones((32, 32))
    frame[16, 16] += 5
    assert np.isclose((m * frame).sum(), 5)


def test_balance():
    t = np.array([[2.0, -1.0], [3.0, -4.0]])
    b = masks.balance(t)
    assert np.isclose(b.sum(), 0)
    assert np.array_equal(b[t > 0], t[t > 0])
    assert np.allclose(b[t < 0], t[t < 0] * 5 / 5)
    assert np.isclose(masks.balance(np.array([1.0, -4.0]))[1], -1)
    with pytest.raises(ValueError, match="negative"):
        masks.balance(np.ones(3))


def test_sparse_circular_multi_stack():
    cx, cy = [3.7, 10, 20], [4, 9.9, 30]
    stack = masks.sparse_circular_multi_stack([0, 1, 2], cx, cy, 24, 32, 3)
    assert isinstance(stack, sparse.COO) and stack.shape == (3, 32, 24)
    for i in range(3):
        expected = masks.circular(int(cx[i]), int(cy[i]), 24, 32, 3)
        assert np.array_equal(stack[i].todense(), expected)


def test_is_sparse_and_to_sparse_shape():
    a = np.eye(4)
    assert not masks.is_sparse(a)
    assert masks.is_sparse(sparse.COO.from_numpy(a))
    assert masks.is_sparse(scipy.sparse.csr_matrix(a))
    flat = scipy.sparse.csr_matrix(np.arange(32.0).reshape(2, 16))
    s = masks.to_sparse(flat, shape=(2, 4, 4))
    assert s.shape == (2, 4, 4)
    assert np.array_equal(s.todense(), np.arange(32.0).reshape(2, 4, 4))
    s2 = masks.to_sparse(np.arange(16.0), shape=Shape((4, 4), sig_dims=2))
    assert s2.shape == (4, 4)
    with pytest.raises(ValueError, match="reshape"):
        masks.to_sparse(a, shape=(3, 3))


def test_polar_cartesian_roundtrip():
    cart = np.array([[0.0, 1.0], [1.0, 0.0], [-2.0, -2.0], [3.0, -1.0]])
    polar = make_polar(cart)
    assert np.allclose(polar[:, 0], np.hypot(cart[:, 0], cart[:, 1]))
    assert np.allclose(polar[1], (1, np.pi / 2))
    assert np.allclose(make_cartesian(polar), cart)
    assert masks.make_polar is make_polar


@given(y=st.floats(-100, 100), x=st.floats(-100, 100), deg=st.floats(-720, 720, allow_nan=False))
def test_rotation_adds_to_polar_angle(y, x, deg):
    ry, rx = rotate_deg(y, x, deg)
    assert np.isclose(np.hypot(ry, rx), np.hypot(y, x), atol=1e-9)
    expected = make_cartesian(make_polar(np.array([y, x])) + (0, np.deg2rad(deg)))
    assert np.allclose((ry, rx), expected, atol=1e-7)
    assert np.allclose(rotate_rad(y, x, np.deg2rad(deg)), (ry, rx))
    c, s = np.cos(np.deg2rad(deg)), np.sin(np.deg2rad(deg))
    assert np.allclose(rotate_precalc(y, x, c, s), (ry, rx))


def test_rotation_clockwise_on_screen():
    # x axis (pointing right) turns towards y (pointing down)
    assert np.allclose(rotate_deg(0, 1, 90), (1, 0))


def test_lattice_helpers():
    grid = np.mgrid[-1:2, -1:2]
    idx = regularize_indices(grid)
    assert idx.shape == (9, 2)
    assert {tuple(i) for i in idx} == {(i, j) for i in (-1, 0, 1) for j in (-1, 0, 1)}
    pairs = np.array([[0, 0], [1, 2]])
    assert regularize_indices(pairs) is pairs
    with pytest.raises(ValueError, match="expected"):
        regularize_indices(np.zeros((3, 3)))
    coords = calc_coords((10, 20), (1, 0), (0, 2), pairs)
    assert np.array_equal(coords, [[10, 20], [11, 24]])
    peaks = np.array([[1, 1], [5, 5], [9, 2], [3, 9]])
    assert np.array_equal(within_frame(peaks, 2, 10, 10), [False, True, False, False])
    fidx, fpeaks = frame_peaks(16, 16, (8, 8), (4, 0), (0, 4), 2, grid)
    assert len(fidx) == 9 and np.all((fpeaks >= 2) & (fpeaks < 14))


def test_cbed_frame():
    data, indices, peaks = cbed_frame(fy=64, fx=64, radius=3)
    assert data.shape == (1, 64, 64) and data.dtype == np.float32
    assert len(indices) == len(peaks)
    for py, px in peaks:
        assert data[0, int(py), int(px)] > 0
    assert np.all(within_frame(peaks, 3, 64, 64))
    # the zero-order disk is the brightest
    zero = np.argmin(np.linalg.norm(peaks - (32, 32), axis=1))
    assert data[0, 32, 32] == data[0].max() or np.allclose(peaks[zero], (32, 32))
    equal, _, epeaks = cbed_frame(fy=64, fx=64, radius=3, all_equal=True)
    assert np.isclose(equal.max(), 1)
    assert np.isclose(equal.sum(), len(epeaks) * masks.circular(10, 10, 21, 21, 3, True).sum())


def test_exclude_pixels_reconstructible():
    coords = exclude_pixels((16, 20), 12, rng=3)
    assert coords.shape == (2, 12)
    assert np.all(coords >= 1) and np.all(coords[0] < 15) and np.all(coords[1] < 19)
    pts = coords.T
    for i in range(len(pts)):
        for j in range(i + 1, len(pts)):
            assert np.max(np.abs(pts[i] - pts[j])) >= 2
    data = gradient_data((2, 3), (16, 20))
    excluded = sparse.COO(coords, data=True, shape=(16, 20))
    for y, x in pts:
        neighbours = (data[..., y - 1, x] + data[..., y + 1, x]) / 2
        assert np.allclose(data[..., y, x], neighbours)
    assert excluded.nnz == 12
    with pytest.raises(ValueError, match="fit"):
        exclude_pixels((4, 4), 10)


def test_gradient_data_is_linear():
    data = gradient_data((3,), (5, 7))
    assert data.shape == (3, 5, 7) and data.dtype == np.float32
    assert np.allclose(np.diff(data, 2, axis=1), 0, atol=1e-5)
    assert np.allclose(np.diff(data, 2, axis=2), 0, atol=1e-5)
    assert data.min() >= 1


def test_hologram_frame():
    amp = np.ones((32, 32))
    phi = np.zeros((32, 32))
    holo = hologram_frame(amp, phi, counts=100, sampling=4, f_angle=0)
    # f_angle=0: fringes along y (rows) with period 4, full contrast: 0 ... 2 * counts
    assert np.allclose(holo[0], 200) and np.allclose(holo[2], 0)
    assert np.allclose(holo[4], 200)
    across = hologram_frame(amp, phi, counts=100, sampling=4, f_angle=90)
    assert np.allclose(across[:, 0], 200) and np.allclose(across[:, 2], 0)
    shifted = hologram_frame(amp, np.full((32, 32), np.pi), counts=100, sampling=4, f_angle=0)
    assert np.allclose(shifted[0], 0)
    # the phase enters with a minus sign: a quarter period ahead of the carrier
    quarter = hologram_frame(amp, np.full((32, 32), np.pi / 2), counts=100, sampling=4, f_angle=0)
    assert np.allclose(quarter[1], 200)
    weak = hologram_frame(amp, phi, counts=100, visibility=0.5, sampling=4, f_angle=0)
    assert np.isclose(weak.max(), 150) and np.isclose(weak.min(), 50)
    np.random.seed(1)  # noqa: NPY002 (hologram_frame draws from the global state)
    noisy = hologram_frame(amp, phi, counts=100, poisson_noise=0.5)
    assert noisy.shape == (32, 32) and np.allclose(noisy / 50, np.round(noisy / 50))
    blurred = hologram_frame(amp, phi, counts=100, sampling=4, f_angle=0, gaussian_noise=1)
    assert np.allclose(blurred, gaussian_filter(holo, 1))
    with pytest.raises(ValueError, match="same shape"):
        hologram_frame(np.ones((3, 2)), np.ones((2, 3)))
    with pytest.raises(ValueError, match="gaussian_noise parameter should be float or int"):
        hologram_frame(amp, phi, gaussian_noise="a lot")
    with pytest.raises(ValueError, match="poisson_noise parameter should be float or int"):
        hologram_frame(amp, phi, poisson_noise="a bit")


def test_prod():
    assert prod([]) == 1
    assert prod((2, 3, 4)) == 24
    assert prod([2**40, 2**40]) == 2**80
