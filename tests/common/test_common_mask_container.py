import cloudpickle
import numpy as np
import pytest
import scipy.sparse
import sparse
from hypothesis import given, settings
from hypothesis import strategies as st

from libertem import masks
from libertem.common.container import MaskContainer
from libertem.common.shape import Shape
from libertem.common.slice import Slice

SIG = (12, 10)
USE_SPARSE = [None, False, True, "scipy.sparse", "scipy.sparse.csc", "sparse.pydata"]
EXPECTED_TYPE = {
    False: np.ndarray,
    "scipy.sparse": scipy.sparse.csr_array,
    "scipy.sparse.csc": scipy.sparse.csc_array,
    "sparse.pydata": sparse.COO,
}


def _stack(n=5, sig=SIG, seed=0):
    rng = np.random.default_rng(seed)
    a = rng.random((n, *sig))
    a[a < 0.6] = 0  # make it worth storing sparsely
    return a


def _tile(origin, shape, nav=(3, 7)):
    """A tile slice with one flat nav axis at ``nav[0]`` of extent ``nav[1]``."""
    return Slice((nav[0], *origin), Shape((nav[1], *shape), sig_dims=len(shape)))


def _expected(stack, origin, shape, transpose):
    index = tuple(slice(o, o + s) for o, s in zip(origin, shape))
    ref = stack[(slice(None), *index)].reshape((stack.shape[0], -1))
    return ref.T if transpose else ref


SLICES = [((0, 0), SIG), ((0, 0), (4, 10)), ((4, 0), (4, 10)), ((3, 2), (5, 7)), ((11, 9), (1, 1))]


@pytest.mark.parametrize("use_sparse", USE_SPARSE)
@pytest.mark.parametrize("transpose", [True, False])
@pytest.mark.parametrize("kind", ["dense", "coo", "list_dense", "list_coo", "list_scipy"])
def test_get_matches_numpy(use_sparse, transpose, kind):
    stack = _stack()
    if kind == "dense":
        factories = lambda: stack  # noqa: E731
    elif kind == "coo":
        factories = lambda: sparse.COO.from_numpy(stack)  # noqa: E731
    else:
        convert = {
            "list_dense": np.array,
            "list_coo": sparse.COO.from_numpy,
            "list_scipy": scipy.sparse.csr_matrix,
        }[kind]
        factories = [lambda m=m: convert(m) for m in stack]
    mc = MaskContainer(factories, use_sparse=use_sparse)
    auto_sparse = kind in ("coo", "list_coo", "list_scipy")
    resolved = {None: "scipy.sparse" if auto_sparse else False, True: "scipy.sparse"}.get(
        use_sparse, use_sparse
    )
    assert mc.use_sparse == resolved
    assert len(mc) == mc.mask_count == 5
    assert mc.dtype == np.float64
    computed_type = sparse.COO if resolved in ("scipy.sparse", "scipy.sparse.csc") else None
    assert isinstance(mc.computed_masks, computed_type or EXPECTED_TYPE[resolved])
    assert np.array_equal(masks.to_dense(mc.computed_masks), stack)
    for origin, shape in SLICES:
        result = mc.get(_tile(origin, shape), transpose=transpose)
        assert isinstance(result, EXPECTED_TYPE[resolved])
        expected = _expected(stack, origin, shape, transpose)
        assert result.shape == expected.shape
        assert np.array_equal(masks.to_dense(result), expected)


def test_get_caches_per_sig_slice_ignoring_nav():
    mc = MaskContainer(lambda: _stack(), use_sparse="scipy.sparse.csc")
    a = mc.get(_tile((2, 3), (4, 4), nav=(0, 5)))
    b = mc.get(_tile((2, 3), (4, 4), nav=(40, 2)))
    assert a is b
    assert mc.get(_tile((2, 3), (4, 4)), transpose=False) is not a
    sig_only = Slice((2, 3), Shape((4, 4), sig_dims=2))
    assert mc.get_for_sig_slice(sig_only) is a


def test_factories_called_once():
    calls = []

    def factory():
        calls.append(1)
        return _stack()

    mc = MaskContainer(factory, count=5)
    assert len(mc) == 5
    assert not calls  # count known without computing
    for origin, shape in SLICES:
        mc.get(_tile(origin, shape))
    mc.get(_tile((0, 0), SIG))
    assert len(calls) == 1


@pytest.mark.parametrize(
    "mask_dtypes, dtype, expected",
    [
        # the masks' own dtype, as in LiberTEM (no promotion to a float type)
        ([np.uint8, np.bool_], None, np.uint8),
        ([np.bool_], None, np.bool_),
        ([np.float32, np.int16], None, np.float32),
        ([np.float32, np.float64], None, np.float64),
        ([np.int64], None, np.int64),
        ([np.complex64], None, np.complex64),
        ([np.float64], np.float32, np.float32),
        ([np.uint8], np.int32, np.int32),
    ],
)
@pytest.mark.parametrize("use_sparse", [False, "scipy.sparse", "sparse.pydata"])
def test_dtype(mask_dtypes, dtype, expected, use_sparse):
    factories = [lambda t=t: np.ones((4, 4), dtype=t) for t in mask_dtypes]
    mc = MaskContainer(factories, dtype=dtype, use_sparse=use_sparse)
    assert mc.dtype == expected
    assert mc.get(_tile((1, 1), (2, 2))).dtype == expected
    assert mc.computed_masks.dtype == expected


def test_real_mask_factories():
    sx, sy = 16, 14
    factories = [
        lambda: masks.circular(8, 7, sx, sy, 4),
        lambda: masks.ring(8, 7, sx, sy, 6, 3),
        lambda: masks.gradient_x(sx, sy),
    ]
    mc = MaskContainer(factories, dtype=np.float32)
    frames = np.random.default_rng(1).random((3, sy, sx)).astype(np.float32)
    expected = np.einsum("fyx,myx->fm", frames, np.stack([f() for f in factories]))
    # accumulate tile by tile, like a UDF's process_tile
    result = np.zeros((3, 3), dtype=np.float32)
    for y0 in range(0, sy, 4):
        tile_shape = (min(4, sy - y0), sx)
        tile = frames[:, y0 : y0 + tile_shape[0]].reshape((3, -1))
        result += tile @ mc.get(_tile((y0, 0), tile_shape, nav=(0, 3)))
    assert np.allclose(result, expected, rtol=1e-5)


def test_sparse_template_stack_with_csc():
    offsets = np.array([[0, 0], [3, -2], [8, 7]])
    stack = masks.sparse_template_multi_stack(
        range(3), offsets[:, 1], offsets[:, 0], np.ones((3, 3)), SIG[1], SIG[0]
    )
    mc = MaskContainer(lambda: stack, dtype=np.float32, use_sparse="scipy.sparse.csc")
    sl = mc.get(_tile((2, 0), (6, 10)), transpose=False)
    assert isinstance(sl, scipy.sparse.csc_array)
    assert np.array_equal(sl.toarray(), _expected(stack.todense(), (2, 0), (6, 10), False))


def test_flat_scipy_stack():
    stack = _stack()
    flat = scipy.sparse.csr_matrix(stack.reshape((5, -1)))
    mc = MaskContainer(lambda: flat)
    assert mc.use_sparse == "scipy.sparse"
    with pytest.raises(ValueError, match="sig_shape"):
        mc.get(_tile((2, 0), (3, 10)))
    # a whole-frame tile tells the frame shape; afterwards any tile works
    assert np.array_equal(mc.get(_tile((0, 0), SIG)).toarray(), stack.reshape((5, -1)).T)
    result = mc.get(_tile((3, 2), (5, 7)))
    assert np.array_equal(result.toarray(), _expected(stack, (3, 2), (5, 7), True))
    mc2 = MaskContainer(lambda: flat, sig_shape=SIG, use_sparse=False)
    assert np.array_equal(mc2.get(_tile((3, 2), (5, 7))), _expected(stack, (3, 2), (5, 7), True))


def test_one_dimensional_signal():
    stack = _stack(sig=(20,))
    mc = MaskContainer(lambda: stack)
    result = mc.get(_tile((5,), (10,)), transpose=False)
    assert np.array_equal(result, stack[:, 5:15])


@pytest.mark.parametrize("use_sparse", USE_SPARSE)
def test_cloudpickle_roundtrip(use_sparse):
    stack = _stack()
    offset = 0.5  # closure over a local, needs cloudpickle
    mc = MaskContainer([lambda m=m: m + offset for m in stack], use_sparse=use_sparse)
    key = _tile((3, 2), (5, 7))
    before = masks.to_dense(mc.get(key))
    clone = cloudpickle.loads(cloudpickle.dumps(mc))
    assert clone.mask_count == 5
    assert clone.use_sparse == mc.use_sparse
    assert np.array_equal(masks.to_dense(clone.get(key)), before)
    # lazily: an uncomputed container pickles too
    fresh = cloudpickle.loads(cloudpickle.dumps(MaskContainer(lambda: stack, count=5)))
    assert np.array_equal(fresh.get(key), _expected(stack, (3, 2), (5, 7), True))


def test_pickle_drops_computed_masks():
    mc = MaskContainer(lambda: np.ones((2, 100, 100)))
    mc.get(_tile((0, 0), (100, 100)))
    assert len(cloudpickle.dumps(mc)) < 10_000


def test_inconsistent_shapes():
    mc = MaskContainer([lambda: np.ones((4, 4)), lambda: np.ones((4, 5))])
    with pytest.raises(ValueError, match=r"mask factory 1 returned shape \(4, 5\)"):
        mc.get(_tile((0, 0), (4, 4)))


@pytest.mark.parametrize(
    "factories, match",
    [
        (lambda: np.ones(5), "at least 2 dimensions"),
        (lambda: None, "expected an array"),
        ([lambda: np.float32(1)], "scalar"),
        ([lambda: "nope"], "expected an array"),
    ],
)
def test_wrong_shapes(factories, match):
    mc = MaskContainer(factories)
    with pytest.raises(ValueError, match=match):
        mc.computed_masks


def test_count_mismatch():
    mc = MaskContainer(lambda: np.ones((3, 4, 4)), count=2)
    assert len(mc) == 2
    with pytest.raises(ValueError, match="count=2"):
        mc.computed_masks


def test_tile_outside_masks():
    mc = MaskContainer(lambda: np.ones((3, 4, 4)))
    with pytest.raises(ValueError, match="does not lie within"):
        mc.get(_tile((2, 2), (3, 2)))
    with pytest.raises(ValueError, match="does not lie within"):
        mc.get(_tile((0, 0, 0), (1, 4, 4)))


def test_bad_arguments():
    with pytest.raises(ValueError, match="use_sparse"):
        MaskContainer(lambda: None, use_sparse="csr")
    with pytest.raises(ValueError, match="backend"):
        MaskContainer(lambda: None, backend="tpu")
    with pytest.raises(ValueError, match="empty"):
        MaskContainer([])
    with pytest.raises(ValueError, match="callable"):
        MaskContainer([np.ones((2, 2))])


@st.composite
def stack_and_slice(draw):
    sy, sx = draw(st.integers(1, 9)), draw(st.integers(1, 9))
    n = draw(st.integers(1, 4))
    y0, x0 = draw(st.integers(0, sy - 1)), draw(st.integers(0, sx - 1))
    h, w = draw(st.integers(1, sy - y0)), draw(st.integers(1, sx - x0))
    seed = draw(st.integers(0, 2**16))
    return _stack(n, (sy, sx), seed), (y0, x0), (h, w)


@settings(max_examples=60, deadline=None)
@given(
    case=stack_and_slice(),
    use_sparse=st.sampled_from(USE_SPARSE),
    transpose=st.booleans(),
    as_list=st.booleans(),
)
def test_get_property(case, use_sparse, transpose, as_list):
    stack, origin, shape = case
    factories = [lambda m=m: m for m in stack] if as_list else (lambda: stack)
    mc = MaskContainer(factories, use_sparse=use_sparse, dtype=np.float32)
    result = mc.get(_tile(origin, shape), transpose=transpose)
    expected = _expected(stack, origin, shape, transpose).astype(np.float32)
    assert np.array_equal(masks.to_dense(result), expected)
    # a second, different tile on the same container
    full = mc.get(_tile((0, 0), stack.shape[1:]), transpose=transpose)
    expected_full = _expected(stack, (0, 0), stack.shape[1:], transpose).astype(np.float32)
    assert np.array_equal(masks.to_dense(full), expected_full)
