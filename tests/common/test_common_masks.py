import numpy as np
import pytest
import scipy.sparse
import sparse
from hypothesis import given, settings
from hypothesis import strategies as st

from libertem import masks


def _dist(cx, cy, sx, sy):
    y, x = np.mgrid[0:sy, 0:sx]
    return np.hypot(x - cx, y - cy)


@pytest.mark.parametrize(
    "cx, cy, sx, sy, r",
    [(8, 8, 16, 16, 5), (3.5, 10.2, 20, 13, 4.3), (0, 0, 7, 9, 3), (30, 2, 32, 8, 10)],
)
def test_circular_matches_distance(cx, cy, sx, sy, r):
    m = masks.circular(cx, cy, sx, sy, r)
    assert m.shape == (sy, sx)
    expected = _dist(cx, cy, sx, sy) <= r
    assert np.array_equal(m, expected.astype(m.dtype))
    assert m.sum() == expected.sum()


def test_circular_xy_convention():
    m = masks.circular(centerX=10, centerY=2, imageSizeX=20, imageSizeY=6, radius=1)
    assert m.shape == (6, 20)
    assert m[2, 10] == 1
    assert m[2, 11] == 1 and m[3, 10] == 1
    assert m[2, 2] == 0 and m[0, 10] == 0
    assert m.sum() == 5


def test_circular_antialiased():
    cx, cy, r = 15.3, 16.7, 9.2
    m = masks.circular(cx, cy, 32, 32, r, antialiased=True)
    d = _dist(cx, cy, 32, 32)
    assert m.min() >= 0 and m.max() <= 1
    # far from the edge, pixels are fully in or out
    assert np.all(m[d < r - 1] == 1)
    assert np.all(m[d > r + 1] == 0)
    # some pixels are fractional and the total approximates the disk area
    assert np.any((m > 0) & (m < 1))
    assert abs(m.sum() - np.pi * r**2) < 0.01 * np.pi * r**2


def test_ring_is_disk_minus_inner_disk():
    args = (12.5, 9, 25, 20)
    ring = masks.ring(*args, radius=8, radius_inner=3)
    expected = masks.circular(*args, radius=8) & ~masks.circular(*args, radius=3)
    assert ring.dtype == bool
    assert np.array_equal(ring, expected)
    d = _dist(*args)
    assert np.array_equal(ring.astype(bool), (d > 3) & (d <= 8))
    ring_aa = masks.ring(*args, radius=8, radius_inner=3, antialiased=True)
    assert ring_aa.min() >= 0 and ring_aa.max() <= 1


def test_ring_rejects_inverted_radii():
    with pytest.raises(ValueError, match="radius_inner"):
        masks.ring(5, 5, 10, 10, radius=2, radius_inner=3)


def test_radial_gradient():
    cx, cy, r = 6, 7, 5
    m = masks.radial_gradient(cx, cy, 14, 12, r)
    d = _dist(cx, cy, 14, 12)
    expected = np.where(d <= r, d / r, 0)
    assert np.allclose(m, expected)
    assert m[cy, cx] == 0
    assert m[cy, cx + r] == 1
    with pytest.raises(ValueError):
        masks.radial_gradient(cx, cy, 14, 12, 0)


def test_gradients():
    gx = masks.gradient_x(5, 3)
    gy = masks.gradient_y(5, 3, dtype=np.int32)
    assert gx.shape == gy.shape == (3, 5)
    assert gx.dtype == np.float32 and gy.dtype == np.int32
    y, x = np.mgrid[0:3, 0:5]
    assert np.array_equal(gx, x) and np.array_equal(gy, y)
    gx[0, 0] = 42  # writable, independent copy
    assert masks.gradient_x(5, 3)[0, 0] == 0


def _naive_stack(index, offsetX, offsetY, template, sx, sy):
    th, tw = template.shape
    out = np.zeros((len(index), sy, sx), dtype=template.dtype)
    for i, ox, oy in zip(index, offsetX, offsetY):
        big = np.zeros((sy + 2 * th, sx + 2 * tw), dtype=template.dtype)
        # place into a padded canvas, then crop: an obviously-correct clipping
        if -th < oy < sy and -tw < ox < sx:
            big[oy + th : oy + 2 * th, ox + tw : ox + 2 * tw] = template
        out[i] += big[th : th + sy, tw : tw + sx]
    return out


def test_sparse_template_multi_stack_clipping():
    template = np.arange(1, 13, dtype=np.float32).reshape(3, 4)
    offsetX = np.array([0, -2, 6, 3, -10, 7, 100])
    offsetY = np.array([0, -1, 5, 2, 0, -2, 1])
    sx, sy = 8, 7
    stack = masks.sparse_template_multi_stack(
        range(len(offsetX)), offsetX, offsetY, template, sx, sy
    )
    assert isinstance(stack, sparse.COO)
    assert stack.shape == (7, sy, sx)
    assert stack.dtype == np.float32
    expected = _naive_stack(range(7), offsetX, offsetY, template, sx, sy)
    assert np.array_equal(stack.todense(), expected)
    assert stack[4].nnz == 0 and stack[6].nnz == 0  # fully outside
    assert np.array_equal(stack.todense()[0, :3, :4], template)


def test_sparse_template_multi_stack_index_permutation_and_sparse_template():
    template = np.zeros((5, 5))
    template[1:4, 2] = [1, 2, 3]
    index = [2, 0, 1]
    ox, oy = [1, 4, -3], [0, -2, 6]
    stack = masks.sparse_template_multi_stack(index, ox, oy, sparse.COO.from_numpy(template), 9, 8)
    assert np.array_equal(stack.todense(), _naive_stack(index, ox, oy, template, 9, 8))
    assert stack.nnz == np.count_nonzero(stack.todense())


@settings(max_examples=40, deadline=None)
@given(
    n=st.integers(0, 6),
    sx=st.integers(1, 12),
    sy=st.integers(1, 12),
    th=st.integers(1, 4),
    tw=st.integers(1, 4),
    data=st.data(),
)
def test_sparse_template_multi_stack_property(n, sx, sy, th, tw, data):
    offs = st.lists(st.integers(-6, 14), min_size=n, max_size=n)
    ox, oy = data.draw(offs), data.draw(offs)
    rng = np.random.default_rng(n * 1000 + sx * 13 + sy)
    template = rng.integers(0, 3, size=(th, tw)).astype(np.float64)
    stack = masks.sparse_template_multi_stack(range(n), ox, oy, template, sx, sy)
    assert np.array_equal(stack.todense(), _naive_stack(range(n), ox, oy, template, sx, sy))


def test_sparse_template_multi_stack_errors():
    with pytest.raises(ValueError, match="length"):
        masks.sparse_template_multi_stack(range(2), [0], [0, 1], np.ones((2, 2)), 4, 4)
    with pytest.raises(ValueError, match="mask_index"):
        masks.sparse_template_multi_stack([0, -1], [0, 0], [0, 0], np.ones((2, 2)), 4, 4)
    # gaps in the indices leave empty masks; the stack ends at the largest index
    stack = masks.sparse_template_multi_stack([0, 5], [0, 0], [0, 0], np.ones((2, 2)), 4, 4)
    assert stack.shape == (6, 4, 4) and stack[1:5].nnz == 0


def test_sparse_template_multi_stack_many_masks_is_fast():
    n = 20000
    rng = np.random.default_rng(0)
    ox, oy = rng.integers(-5, 260, size=(2, n))
    stack = masks.sparse_template_multi_stack(range(n), ox, oy, np.ones((11, 11)), 256, 256)
    assert stack.shape == (n, 256, 256)
    assert 0 < stack.nnz <= n * 121


def test_to_dense_and_to_sparse():
    a = np.arange(12.0).reshape(3, 4) % 5
    for obj in (
        a,
        sparse.COO.from_numpy(a),
        scipy.sparse.csr_matrix(a),
        scipy.sparse.csc_array(a),
    ):
        d = masks.to_dense(obj)
        assert isinstance(d, np.ndarray)
        assert np.array_equal(d, a)
        s = masks.to_sparse(obj)
        assert isinstance(s, sparse.COO)
        assert np.array_equal(s.todense(), a)
    coo = sparse.COO.from_numpy(a)
    assert masks.to_sparse(coo) is coo
    assert np.array_equal(masks.to_sparse(sparse.GCXS.from_numpy(a)).todense(), a)
    assert np.array_equal(masks.to_dense([[1, 2]]), np.array([[1, 2]]))
