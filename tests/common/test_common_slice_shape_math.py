"""Shape, Slice and libertem.common.math behave as in LiberTEM 0.16 (B-udf-10, -11, -12)."""

import numpy as np
import pytest
import scipy.sparse
import sparse

from libertem.common import Shape, Slice, SliceUsageError
from libertem.common.math import count_nonzero, flat_nonzero, make_2D_square, prod

# --- Slice (B-udf-10) ---------------------------------------------------------------


def test_slice_usage_error_is_a_value_error():
    assert issubclass(SliceUsageError, ValueError)


def test_slice_needs_a_shape_instance():
    with pytest.raises(SliceUsageError, match="please use libertem.common.Shape instance"):
        Slice(origin=(0, 0), shape=(2, 2))


def test_slice_origin_and_shape_must_match():
    with pytest.raises(SliceUsageError) as info:
        Slice(origin=(1, 1, 1), shape=Shape((2, 2, 2, 2), sig_dims=2))
    assert str(info.value) == (
        "cannot build slice with dimensionality of shape/origin mismatch (3 vs 4); "
        "origin=(1, 1, 1), shape=(2, 2, 2, 2)"
    )


def test_intersection_refuses_other_dimensionality_and_sig_dims():
    a = Slice((1, 1, 1, 1), Shape((2, 2, 2, 2), sig_dims=2))
    b = Slice((1, 1, 1), Shape((2, 2, 2), sig_dims=2))
    c = Slice((1, 1, 1, 1), Shape((2, 2, 2, 2), sig_dims=1))
    with pytest.raises(SliceUsageError, match=r"different dimensionality \(4 vs 3\)"):
        a.intersection_with(b)
    with pytest.raises(SliceUsageError, match=r"different signal dimensionality \(2 vs 1\)"):
        a.intersection_with(c)
    # matching slices still intersect
    d = Slice((2, 0, 0, 0), Shape((4, 4, 4, 4), sig_dims=2))
    assert a.intersection_with(d) == Slice((2, 1, 1, 1), Shape((1, 2, 2, 2), sig_dims=2))


def test_shift_refuses_other_dimensionality():
    a = Slice((1, 1, 1, 1), Shape((2, 2, 2, 2), sig_dims=2))
    b = Slice((1, 1, 1), Shape((2, 2, 2), sig_dims=2))
    msg = r"cannot shift slices with different dimensionality \(\(1, 1, 1, 1\) vs \(1, 1, 1\)\)"
    with pytest.raises(SliceUsageError, match=msg):
        a.shift(b)
    with pytest.raises(SliceUsageError, match=msg):
        a.shift_by((1, 1, 1))
    assert a.shift_by((1, 0, 0, 2)).origin == (2, 1, 1, 3)


def test_get_sig_only_indexes_the_last_axes():
    s = Slice(origin=(0, 0, 1, 2), shape=Shape((1, 1, 2, 1), sig_dims=2))
    data = np.arange(4**4).reshape((4, 4, 4, 4))
    np.testing.assert_array_equal(s.get(data, sig_only=True), data[..., 1:3, 2:3])
    np.testing.assert_array_equal(s.get(data, nav_only=True), data[0:1, 0:1])
    # a frame-shaped array: the same as before
    frame = np.arange(16).reshape((4, 4))
    np.testing.assert_array_equal(s.get(frame, sig_only=True), frame[1:3, 2:3])
    assert s.get(sig_only=True) == (slice(1, 3), slice(2, 3))
    with pytest.raises(SliceUsageError):
        s.get(sig_only=True, nav_only=True)


# --- Shape (B-udf-11) ---------------------------------------------------------------


def test_shape_size_is_zero_without_axes():
    assert Shape((), sig_dims=0).size == 0
    assert Shape((64, 32), sig_dims=2).nav.size == 0
    assert Shape((4, 5), sig_dims=1).nav.size == 4
    assert Shape((4, 5), sig_dims=1).size == 20
    # flattening does not turn a missing nav part into zero frames
    assert tuple(Shape((64, 32), sig_dims=2).flatten_nav()) == (1, 64, 32)


def test_shape_repr_is_the_tuple():
    s = Shape((5, 6, 7, 8), sig_dims=2)
    assert repr(s) == str(s) == "(5, 6, 7, 8)"


def test_tuple_plus_shape_extends_nav_and_shape_plus_tuple_extends_sig():
    s = Shape((5, 6, 7, 8), sig_dims=2)
    left = (3, 4) + s
    assert isinstance(left, Shape)
    assert tuple(left) == (5, 6, 3, 4, 7, 8) and left.sig_dims == 2
    right = s + (3, 4)
    assert isinstance(right, Shape)
    assert tuple(right) == (5, 6, 7, 8, 3, 4) and right.sig_dims == 4
    with pytest.raises(NotImplementedError):
        s + Shape((3, 4), sig_dims=1)


# --- common.math (B-udf-12) ---------------------------------------------------------


@pytest.mark.parametrize(
    "values", [(1.0, 2, False), np.array([1, 1 + 2j]), [np.float32(2), 3], [2, 1.5]]
)
def test_prod_refuses_non_integers_with_value_error(values):
    with pytest.raises(ValueError) as info:
        prod(values)
    assert str(info.value) == ""


def test_prod_is_exact():
    result = prod((True, np.uint8(3), 2**40))
    assert result == 3 * 2**40 and type(result) is int
    assert prod([2**40, 2**40]) == 2**80
    assert prod([]) == 1


def test_make_2d_square():
    assert make_2D_square((16,)) == (4, 4)
    assert make_2D_square((15,)) == (15,)
    assert make_2D_square((3, 5)) == (3, 5)
    for bad in [(0.4,), (16.0,)]:
        with pytest.raises(ValueError):
            make_2D_square(bad)
    for bad in [(-20,), (0,)]:
        with pytest.raises(ValueError, match="Zero or negative shape.size"):
            make_2D_square(bad)


def _coo(data, fill_value, shape):
    return sparse.COO(np.array([[1], [2], [3]]), data=data, fill_value=fill_value, shape=shape)


@pytest.mark.parametrize(
    "data, fill, shape, expected",
    [
        ([True], True, (4, 4, 4), 64),
        ([False], True, (4, 4, 4), 63),
        ([True], False, (4, 4, 4), 1),
        ([True], True, (2**16, 2**16, 2**16), 2**48),
    ],
)
def test_count_nonzero_honours_the_fill_value(data, fill, shape, expected):
    arr = _coo(data, fill, shape)
    result = count_nonzero(arr)
    assert result == expected and type(result) is int
    if np.prod(shape) <= 64:
        assert result == np.count_nonzero(arr.todense())
        assert result == count_nonzero(sparse.GCXS(arr))


def test_count_nonzero_dense_and_scipy():
    dense = np.array([[0, 1], [2, 0]])
    assert count_nonzero(dense) == 2 and type(count_nonzero(dense)) is int
    csr = scipy.sparse.csr_matrix(dense)
    csr.data[0] = 0  # a stored zero does not count
    assert count_nonzero(csr) == 1
    assert count_nonzero(scipy.sparse.coo_array(dense)) == 2


def test_flat_nonzero_with_nonzero_fill_value():
    arr = _coo([False], True, (4, 4, 4))
    np.testing.assert_array_equal(flat_nonzero(arr), np.flatnonzero(arr.todense()))
