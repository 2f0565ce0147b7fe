"""Detector corrections (libertem.io.corrections, libertem.corrections) against numpy."""

import pickle

import numpy as np
import pytest
import scipy.sparse
import sparse
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

import libertem.corrections.detector as short_detector
from corrections_ref import neighbours, ref_correct
from libertem.common.shape import Shape
from libertem.common.slice import Slice
from libertem.corrections import CorrectionSet
from libertem.io import corrections as io_corrections
from libertem.io.corrections import corrset, detector
from libertem.io.corrections.detector import (
    CorrectError,
    RepairDescriptor,
    RepairValueError,
    correct,
    correct_dot_masks,
    environments,
    flatten_filter,
    numba_ravel_multi_index_multi,
    numba_unravel_index_multi,
)

SIG = (16, 16)


def make(n=5, sig=SIG, seed=0):
    rng = np.random.default_rng(seed)
    data = rng.integers(0, 1000, size=(n, *sig)).astype(np.uint16)
    dark = rng.random(sig).astype(np.float32) * 10
    gain = (rng.random(sig) + 0.5).astype(np.float32)
    return data, dark, gain


def mask_of(sig, *coords):
    m = np.zeros(sig, dtype=bool)
    for c in coords:
        m[c] = True
    return m


def test_same_objects_everywhere():
    assert io_corrections.CorrectionSet is CorrectionSet is corrset.CorrectionSet
    assert short_detector.correct is detector.correct
    assert corrset.correct is detector.correct
    assert corrset.RepairDescriptor is RepairDescriptor
    assert corrset.Slice is Slice
    # as in LiberTEM: CorrectError derives directly from Exception, RepairValueError
    # is a ValueError (and here also a CorrectError)
    assert CorrectError.__mro__[1] is Exception and not issubclass(CorrectError, ValueError)
    assert issubclass(RepairValueError, ValueError) and issubclass(RepairValueError, CorrectError)


# correct() -------------------------------------------------------------------------
@pytest.mark.parametrize("parts", ["dark", "gain", "both", "none"])
def test_dark_gain(parts):
    data, dark, gain = make()
    d = dark if parts in ("dark", "both") else None
    g = gain if parts in ("gain", "both") else None
    out = correct(data, dark_image=d, gain_map=g, sig_shape=SIG)
    assert out.dtype == np.float32 and out.shape == data.shape
    np.testing.assert_allclose(out, ref_correct(data, d, g), rtol=1e-6)
    assert data.dtype == np.uint16  # not touched


def test_excluded_mean_and_borders():
    data, dark, gain = make()
    # corners, edges, a pair of neighbours, a cluster
    excluded = mask_of(SIG, (0, 0), (15, 15), (0, 7), (7, 0), (5, 5), (5, 6), (10, 10), (11, 11))
    coords = np.array(np.nonzero(excluded))
    ref = ref_correct(data, dark, gain, excluded)
    for given_as in (coords, excluded, sparse.COO.from_numpy(excluded)):
        out = correct(data, dark, gain, excluded_pixels=given_as)
        np.testing.assert_allclose(out, ref, rtol=1e-5, atol=1e-4)
    # non-excluded pixels are only dark/gain-corrected
    plain = ref_correct(data, dark, gain)
    np.testing.assert_allclose(out[:, ~excluded], plain[:, ~excluded], rtol=1e-6)


def test_inplace_and_dtypes():
    data, dark, gain = make()
    buf = data.astype(np.float64)
    res = correct(buf, dark, gain, np.array([[3], [4]]), inplace=True)
    assert res is buf
    np.testing.assert_allclose(buf, ref_correct(data, dark, gain, mask_of(SIG, (3, 4))))
    with pytest.raises(TypeError, match="In-place correction only supported for floating point"):
        correct(data, dark, inplace=True)
    assert correct(data.astype(np.int32), dark).dtype == np.float64


def test_shapes_accepted():
    data, dark, gain = make(n=6)
    ref = ref_correct(data, dark, gain)
    nav2 = data.reshape((2, 3, *SIG))
    np.testing.assert_allclose(correct(nav2, dark, gain).reshape(ref.shape), ref, rtol=1e-6)
    flat = data.reshape((6, -1))
    out = correct(flat, dark, gain, sig_shape=SIG)
    assert out.shape == flat.shape
    np.testing.assert_allclose(out.reshape(ref.shape), ref, rtol=1e-6)
    np.testing.assert_allclose(correct(data[0], dark, gain), ref[0], rtol=1e-6)
    # a strided view: corrected into a C-contiguous copy, refused in place
    big = data.astype(np.float32)[:, ::2, 1::3]
    dark2 = np.ascontiguousarray(dark[::2, 1::3])
    out = correct(big, dark2)
    assert out.flags.c_contiguous and out.dtype == np.float32
    np.testing.assert_allclose(out, ref_correct(big, dark2, None), rtol=1e-6)
    before = big.copy()
    with pytest.raises(CorrectError, match="must be C-contiguous"):
        correct(big, dark2, inplace=True)
    np.testing.assert_array_equal(big, before)


@pytest.mark.parametrize("inplace", [False, True])
def test_fortran_order_is_refused(inplace):
    data, dark, _ = make()
    frame = np.asfortranarray(data[0].astype(np.float32))
    with pytest.raises(CorrectError, match="For in-place operation, the buffer given must be C"):
        correct(frame, dark, sig_shape=SIG, inplace=inplace)
    # a C-ordered copy of the same frame is fine
    out = correct(np.ascontiguousarray(frame), dark, sig_shape=SIG, inplace=inplace)
    np.testing.assert_allclose(out, ref_correct(data[:1], dark)[0], rtol=1e-6)


def test_one_and_three_sig_dims():
    rng = np.random.default_rng(3)
    for sig in ((20,), (4, 5, 6)):
        data = rng.random((3, *sig))
        excluded = np.zeros(sig, dtype=bool)
        excluded.reshape(-1)[[0, 7, 8, len(excluded.reshape(-1)) - 1]] = True
        dark = rng.random(sig)
        out = correct(data, dark_image=dark, excluded_pixels=excluded)
        np.testing.assert_allclose(out, ref_correct(data, dark, None, excluded))


def test_repair_descriptor_reuse_and_empty():
    data, dark, gain = make()
    excluded = mask_of(SIG, (2, 2), (9, 3))
    desc = RepairDescriptor(SIG, excluded)
    assert desc.n_excluded == 2
    assert sorted(desc.repair_counts) == [8, 8]
    out = correct(data, dark, gain, repair_descriptor=desc)
    np.testing.assert_allclose(out, ref_correct(data, dark, gain, excluded), rtol=1e-5)
    # a pixel whose neighbours are all excluded
    block = np.zeros((4, 4), dtype=bool)
    block[:2, :2] = True
    message = r"Empty repair environments for pixel\(s\) number \[\[0\]\]\."
    with pytest.raises(RepairValueError, match=message):
        RepairDescriptor((4, 4), block)
    desc = RepairDescriptor((4, 4), block, allow_empty=True)
    np.testing.assert_array_equal(desc.empty_repairs(), [[0], [0]])
    with pytest.raises(RepairValueError):
        desc.check_empty_repairs(False)
    desc.check_empty_repairs(True)
    frames = np.arange(32, dtype=np.float32).reshape((2, 4, 4)) + 1
    out = correct(frames, repair_descriptor=desc)
    np.testing.assert_allclose(out, ref_correct(frames, excluded=block))
    np.testing.assert_array_equal(out[:, 0, 0], frames[:, 0, 0])  # kept as it was
    with pytest.raises(RepairValueError):
        correct(frames, excluded_pixels=block)
    with pytest.raises(CorrectError, match="repair_descriptor is for signal shape"):
        correct(frames, repair_descriptor=RepairDescriptor((3, 3)), sig_shape=(4, 4))


def test_correct_errors():
    data, dark, gain = make()
    with pytest.raises(CorrectError, match="dark_image has shape"):
        correct(data, dark_image=dark[:8], sig_shape=SIG)
    with pytest.raises(CorrectError, match="gain_map has shape"):
        correct(data, dark_image=dark, gain_map=gain[:, :8])
    with pytest.raises(CorrectError, match="does not hold frames"):
        correct(data[:, :8], dark_image=dark)
    with pytest.raises(CorrectError, match="outside the signal shape"):
        correct(data, dark, excluded_pixels=np.array([[16], [0]]))
    with pytest.raises(CorrectError, match=r"shape \(2, n\)"):
        correct(data, dark, excluded_pixels=np.array([1, 2, 3]))
    with pytest.raises(CorrectError, match="mask has shape"):
        correct(data, dark, excluded_pixels=np.zeros((4, 4), dtype=bool))
    with pytest.raises(CorrectError, match="real numbers"):
        correct(data, dark_image=dark.astype(np.complex64))


# helpers ---------------------------------------------------------------------------
def test_environments_and_flatten_filter():
    excluded = mask_of((5, 6), (0, 0), (0, 1), (2, 3))
    repairs, counts = environments(excluded, (5, 6))
    assert repairs.shape == (3, 8, 2)
    np.testing.assert_array_equal(counts, [3, 5, 8])
    for i in range(3):
        inside = {tuple(q) for q in repairs[i, : counts[i]]}
        assert all(0 <= q[0] < 5 and 0 <= q[1] < 6 for q in inside)
        assert len(inside) == counts[i]
    inout = counts.copy()
    ex, rep, cnt = flatten_filter(excluded, repairs, inout, (5, 6))
    np.testing.assert_array_equal(ex, [0, 1, 15])
    np.testing.assert_array_equal(cnt, inout)
    for i, pos in enumerate(zip(*np.nonzero(excluded))):
        expected = {np.ravel_multi_index(q, (5, 6)) for q in neighbours(pos, excluded)}
        assert set(rep[i, : cnt[i]]) == expected
        assert np.all(rep[i, cnt[i] :] == -1)


@given(
    st.lists(st.integers(1, 7), min_size=1, max_size=4).flatmap(
        lambda shape: st.tuples(
            st.just(tuple(shape)), st.lists(st.integers(0, int(np.prod(shape)) - 1), max_size=20)
        )
    )
)
def test_ravel_unravel_like_numpy(args):
    shape, flat = args
    flat = np.array(flat, dtype=np.int64)
    coords = numba_unravel_index_multi(flat, shape)
    np.testing.assert_array_equal(
        coords, np.array(np.unravel_index(flat, shape)).reshape(len(shape), -1)
    )
    np.testing.assert_array_equal(numba_ravel_multi_index_multi(coords, shape), flat)


@given(
    excluded=arrays(bool, (6, 7)),
    data=arrays(np.float64, (2, 6, 7), elements=st.floats(-100, 100, width=32)),
)
def test_random_excluded_sets(excluded, data):
    try:
        desc = RepairDescriptor((6, 7), excluded)
    except RepairValueError:
        assert any(not neighbours(p, excluded) for p in zip(*np.nonzero(excluded)))
        desc = RepairDescriptor((6, 7), excluded, allow_empty=True)
    out = correct(data, repair_descriptor=desc)
    np.testing.assert_allclose(out, ref_correct(data, excluded=excluded), atol=1e-12)


# correct_dot_masks -----------------------------------------------------------------
def _masks(sig, n=3, seed=5):
    return np.random.default_rng(seed).random((n, *sig))


def test_dot_masks_gain_and_mean_patching():
    data, dark, gain = make()
    excluded = mask_of(SIG, (0, 0), (4, 4), (4, 5), (15, 9))
    masks = _masks(SIG)
    folded = correct_dot_masks(masks, gain, excluded)
    assert folded.shape == masks.shape
    raw = data.astype(np.float64)
    mean_ref = ref_correct(raw, None, gain, excluded, stat=np.mean)
    np.testing.assert_allclose(
        np.einsum("kyx,nyx->nk", folded, raw), np.einsum("kyx,nyx->nk", masks, mean_ref)
    )
    folded_gain = correct_dot_masks(masks, gain)
    np.testing.assert_allclose(folded_gain, masks * gain)
    assert correct_dot_masks(masks, None) is masks


def test_dot_masks_agree_with_correct_for_two_neighbours():
    """In 1D an inner pixel has two neighbours: mean == median, so both routes agree."""
    rng = np.random.default_rng(1)
    data = rng.random((4, 30))
    gain = rng.random(30) + 0.5
    excluded = np.zeros(30, dtype=bool)
    excluded[[3, 10, 20]] = True
    masks = rng.random((2, 30))
    corrected = correct(data, gain_map=gain, excluded_pixels=excluded)
    folded = correct_dot_masks(masks, gain, excluded)
    np.testing.assert_allclose(data @ folded.T, corrected @ masks.T)


@pytest.mark.parametrize("kind", ["coo", "gcxs", "scipy", "flat"])
def test_dot_masks_sparse_and_flat(kind):
    _, _, gain = make()
    excluded = mask_of(SIG, (3, 3), (8, 12))
    masks = _masks(SIG)
    masks[masks < 0.6] = 0
    ref = correct_dot_masks(masks, gain, excluded)
    flat = masks.reshape((3, -1))
    given_as = {
        "coo": sparse.COO.from_numpy(masks),
        "gcxs": sparse.GCXS.from_numpy(masks),
        "scipy": scipy.sparse.csr_matrix(flat),
        "flat": flat,
    }[kind]
    out = correct_dot_masks(given_as, gain, excluded)
    assert type(out) is type(given_as) or (kind == "gcxs" and isinstance(out, sparse.SparseArray))
    dense = out.todense() if hasattr(out, "todense") else out
    np.testing.assert_allclose(np.asarray(dense).reshape(ref.shape), ref)


def test_dot_masks_errors():
    _, _, gain = make()
    with pytest.raises(CorrectError, match="do not fit"):
        correct_dot_masks(np.ones((2, 8, 8)), gain)
    block = np.ones((3, 3), dtype=bool)
    with pytest.raises(RepairValueError):
        correct_dot_masks(np.ones((1, 3, 3)), None, block)
    # no pixel can be repaired: every one keeps its own weight
    out = correct_dot_masks(np.ones((1, 3, 3)), None, block, allow_empty=True)
    np.testing.assert_array_equal(out, 1)


# CorrectionSet ---------------------------------------------------------------------
def test_correction_set_getters():
    _, dark, gain = make()
    excluded = mask_of(SIG, (1, 1))
    cs = CorrectionSet(dark=dark, gain=gain, excluded_pixels=excluded, allow_empty=True)
    assert cs.get_dark_frame() is dark and cs.get_gain_map() is gain
    ex = cs.get_excluded_pixels()
    assert isinstance(ex, sparse.COO) and ex.nnz == 1
    np.testing.assert_array_equal(ex.todense(), excluded)
    assert cs.have_corrections() and cs.allow_empty and cs.sig_shape == SIG
    empty = CorrectionSet()
    assert not empty.have_corrections()
    assert empty.get_dark_frame() is None and empty.get_excluded_pixels() is None
    assert not CorrectionSet(excluded_pixels=sparse.zeros(SIG, dtype=bool)).have_corrections()
    assert "1 excluded pixels" in repr(cs)


def test_correction_set_errors():
    _, dark, gain = make()
    with pytest.raises(CorrectError, match="different shapes"):
        CorrectionSet(dark=dark, gain=gain[:8])
    with pytest.raises(ValueError, match="unsupported type"):
        CorrectionSet(excluded_pixels=[[0, 1], [1, 0]])
    block = np.zeros(SIG, dtype=bool)
    block[:2, :2] = True
    with pytest.raises(RepairValueError, match=r"Empty repair environments .* \[\[0\]\]\."):
        CorrectionSet(excluded_pixels=block)
    CorrectionSet(excluded_pixels=block, allow_empty=True)
    with pytest.raises(CorrectError, match="real numbers"):
        CorrectionSet(dark=np.array(["a", "b"]))
    cs = CorrectionSet(dark=dark)
    with pytest.raises(CorrectError, match=r"dark frame\) have shape \(16, 16\)"):
        cs.adjust_tileshape((4, 16), (8, 16), (1, 16))
    with pytest.raises(TypeError, match="float tile buffer"):
        cs.apply(np.zeros((1, *SIG), dtype=np.uint16), Slice.from_shape((1, *SIG), 2))
    with pytest.raises(CorrectError, match="does not fit"):
        cs.apply(np.zeros((1, 4, 4), dtype=np.float32), Slice.from_shape((1, *SIG), 2))


def _tile_slice(origin, shape):
    return Slice((0, *origin), Shape((1, *shape), sig_dims=len(shape)))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_apply_on_tiles_matches_frames(dtype):
    data, dark, gain = make()
    excluded = mask_of(SIG, (0, 0), (3, 9), (6, 8), (13, 4), (15, 15))
    cs = CorrectionSet(dark=dark, gain=gain, excluded_pixels=sparse.COO.from_numpy(excluded))
    tile = cs.adjust_tileshape((4, 8), SIG, (1, 1))
    rows, cols = tile
    assert (rows, cols) != (4, 8)
    out = data.astype(dtype)
    for y in range(0, 16, rows):
        for x in range(0, 16, cols):
            region = out[:, y : y + rows, x : x + cols]
            cs.apply(region, Slice((0, y, x), Shape((5, *region.shape[1:]), sig_dims=2)))
    rtol = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(out, ref_correct(data, dark, gain, excluded), rtol=rtol, atol=1e-3)


def test_apply_in_unadjusted_tile_uses_tile_neighbours():
    frames = np.arange(2 * 6 * 6, dtype=np.float64).reshape((2, 6, 6))
    cs = CorrectionSet(excluded_pixels=mask_of((6, 6), (2, 3)))
    left = frames[:, :, :3].copy()
    right = frames[:, :, 3:].copy()
    cs.apply(left, _tile_slice((0, 0), (6, 3)))
    cs.apply(right, _tile_slice((0, 3), (6, 3)))
    np.testing.assert_array_equal(left, frames[:, :, :3])
    expected = np.mean(frames[:, [1, 1, 2, 3, 3], [3, 4, 4, 3, 4]], axis=1)
    np.testing.assert_allclose(right[:, 2, 0], expected)


def test_pickle_and_cache():
    _, dark, gain = make()
    cs = CorrectionSet(dark=dark, excluded_pixels=mask_of(SIG, (3, 3)))
    buf = np.ones((2, *SIG), dtype=np.float32)
    cs.apply(buf, Slice.from_shape((2, *SIG), 2))
    assert cs._cache
    clone = pickle.loads(pickle.dumps(cs))
    assert clone._cache == {}
    buf2 = np.ones((2, *SIG), dtype=np.float32)
    clone.apply(buf2, Slice.from_shape((2, *SIG), 2))
    np.testing.assert_array_equal(buf, buf2)


def test_empty_set_apply_is_a_no_op():
    buf = np.arange(8.0).reshape((2, 2, 2))
    CorrectionSet().apply(buf, Slice.from_shape((2, 2, 2), 2))
    np.testing.assert_array_equal(buf, np.arange(8.0).reshape((2, 2, 2)))


# tile-shape adjustment -------------------------------------------------------------
def test_disjunct_multiplier():
    # borders may not lie at 3 or 4 (pixel 3 excluded): 4 and 3 fail, 5 is next
    assert corrset.disjunct_multiplier([3, 4], 16, 1, 4) == 5
    # the side away from the target first: 16 before 18 for target 17
    assert corrset.disjunct_multiplier([17, 18], 123, 1, 17) == 16
    # 15 (the nearest multiple of 3 to 16) is below 16, so 18 is tried before 12
    assert corrset.disjunct_multiplier([15, 16], 123, 3, 16) == 18
    # borders at multiples: 17 fails because 34 is forbidden
    assert corrset.disjunct_multiplier([33, 34], 123, 1, 17) == 16
    # a border at the frame's end is no border
    assert corrset.disjunct_multiplier([122, 123], 123, 1, 17) == 17
    # with a base of 4, 8 and 4 fail (8 is forbidden), 12 has no border up to 8
    assert corrset.disjunct_multiplier([7, 8], 16, 4, 8) == 12
    # nothing found within the tries: the next multiple of the base beyond them
    assert corrset.disjunct_multiplier([1, 2, 3, 4], 16, 1, 1) == 5


def test_adjust_in_place():
    shape = [4, 8]
    corrset.adjust(shape, (16, 16), (1, 4), [np.array([3]), np.array([8])])
    assert shape == [5, 12]
    shape = [16, 8]
    corrset.adjust(shape, (16, 16), (1, 1), [np.array([3]), np.array([2])])
    assert shape == [16, 8]


def test_adjust_tileshape_with_depth():
    cs = CorrectionSet(excluded_pixels=mask_of(SIG, (3, 8)))
    assert cs.adjust_tileshape((7, 4, 8), SIG, (1, 1, 4)) == (7, 5, 12)
    assert CorrectionSet(dark=np.zeros(SIG)).adjust_tileshape((7, 4, 8), SIG, (1, 1, 4)) == (
        7,
        4,
        8,
    )


@given(
    excluded=arrays(bool, (12, 10)),
    tile=st.tuples(st.integers(1, 12), st.integers(1, 10)),
    base=st.tuples(st.integers(1, 3), st.integers(1, 3)),
)
def test_adjusted_tiles_match_whole_frames(excluded, tile, base):
    sig = (12, 10)
    data = np.random.default_rng(0).random((2, *sig))
    cs = CorrectionSet(excluded_pixels=excluded, allow_empty=True)
    tile = tuple(min(max(b, t - t % b), s) for t, b, s in zip(tile, base, sig))
    rows, cols = cs.adjust_tileshape(tile, sig, base)
    for size, length, b in zip((rows, cols), sig, base):
        assert size == length or size % b == 0
    out = data.copy()
    for y in range(0, 12, rows):
        for x in range(0, 10, cols):
            region = out[:, y : y + rows, x : x + cols]
            cs.apply(region, Slice((0, y, x), Shape((2, *region.shape[1:]), sig_dims=2)))
    np.testing.assert_allclose(out, ref_correct(data, excluded=excluded), atol=1e-12)


# coordinates -----------------------------------------------------------------------
def test_coordinates():
    from libertem.corrections import coordinates as c
    from libertem.udf.com import apply_correction

    np.testing.assert_array_equal(c.identity(), np.eye(2))
    # clockwise on screen (y down): right becomes down
    np.testing.assert_allclose(c.rotate(np.pi / 2) @ (0, 1), (1, 0), atol=1e-15)
    np.testing.assert_allclose(c.rotate_deg(90), c.rotate(np.pi / 2))
    np.testing.assert_allclose(c.rotate_deg(30) @ c.rotate_deg(-30), np.eye(2), atol=1e-15)
    np.testing.assert_array_equal(c.flip_y() @ (2, 3), (-2, 3))
    np.testing.assert_array_equal(c.flip_x() @ (2, 3), (2, -3))
    np.testing.assert_array_equal(c.scale(2.5) @ (2, 4), (5, 10))
    rng = np.random.default_rng(0)
    y, x = rng.normal(size=(2, 7))
    for flip in (False, True):
        m = c.rotate_deg(33) @ (c.flip_y() if flip else c.identity())
        ey, ex = m @ np.stack((y, x))
        ay, ax = apply_correction(y, x, 33, flip)
        np.testing.assert_allclose((ay, ax), (ey, ex))


@given(
    excluded=arrays(bool, (5, 6)),
    masks=arrays(np.float64, (2, 5, 6), elements=st.floats(-10, 10, width=32)),
)
def test_dot_masks_random_excluded_sets(excluded, masks):
    data = np.random.default_rng(2).random((3, 5, 6))
    gain = np.linspace(0.5, 1.5, 30).reshape((5, 6))
    folded = correct_dot_masks(masks, gain, excluded, allow_empty=True)
    mean_ref = ref_correct(data, None, gain, excluded, stat=np.mean)
    np.testing.assert_allclose(
        np.einsum("kyx,nyx->nk", folded, data),
        np.einsum("kyx,nyx->nk", masks, mean_ref),
        atol=1e-9,
    )
