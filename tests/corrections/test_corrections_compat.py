"""Detector corrections and coordinate matrices as in LiberTEM 0.16: the search order of
``adjust_tileshape``, the memory-layout rules of ``correct``, what ``excluded_pixels`` may
be, unrepairable pixels, the mean of the good neighbours, ``scale_rotate_flip_y``."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse
import sparse

from corrections_ref import ref_correct
from dask_shared import acquire_cluster, release_cluster
from libertem.api import Context
from libertem.corrections import coordinates as c
from libertem.corrections.corrset import CorrectionSet as ShortPathCorrectionSet
from libertem.io.corrections import CorrectionSet
from libertem.io.corrections.detector import CorrectError, RepairValueError, correct
from libertem.io.dataset.base import Negotiator
from libertem.udf import UDF
from libertem.udf.raw import PickUDF
from libertem.udf.sum import SumUDF


# scale_rotate_flip_y -------------------------------------------------------------------
@pytest.mark.parametrize("factor", [0.5, 1.0, 3.0])
@pytest.mark.parametrize("degrees", [-170.0, -30.0, 0.0, 45.0, 179.0])
@pytest.mark.parametrize("flip", [False, True])
def test_scale_rotate_flip_y_round_trip(factor, degrees, flip):
    m = c.scale(factor) @ c.rotate_deg(degrees) @ (c.flip_y() if flip else c.identity())
    s, phi, f = c.scale_rotate_flip_y(m)
    assert isinstance(s, np.float64) and isinstance(phi, np.float64) and type(f) is bool
    assert np.isclose(s, factor) and f is flip
    assert np.isclose(np.degrees(phi), degrees)
    rebuilt = c.scale(s) @ c.rotate(phi) @ (c.flip_y() if f else c.identity())
    np.testing.assert_allclose(rebuilt, m, atol=1e-12)


def test_scale_rotate_flip_y_ambiguities_and_errors():
    # a negative scale is a rotation by 180 degrees; flip_x is rotate(pi) @ flip_y
    s, phi, f = c.scale_rotate_flip_y(c.scale(-3) @ c.rotate_deg(10))
    assert (round(float(s), 6), round(float(np.degrees(phi)), 6), f) == (3.0, -170.0, False)
    s, phi, f = c.scale_rotate_flip_y(c.flip_x())
    assert (s, f) == (1.0, True) and np.isclose(phi, np.pi)
    unequal = np.array([[2.0, 0.0], [0.0, 3.0]])
    with pytest.raises(ValueError, match=r"^y scale 2\.0 and x scale 3\.0 are different\.$"):
        c.scale_rotate_flip_y(unequal)
    sheared = np.array([[1.0, 0.6], [0.0, 0.8]])
    with pytest.raises(ValueError, match=r"^Contains shear: flip factor \(2D cross product\) is"):
        c.scale_rotate_flip_y(sheared)
    with pytest.raises(TypeError):
        c.scale_rotate_flip_y([[1.0, 0.0], [0.0, 1.0]])


# adjust_tileshape ----------------------------------------------------------------------
def _adjusted(excluded_yx, tile_shape, base_shape, sig_shape=(123, 456)):
    mask = np.zeros(sig_shape, dtype=bool)
    for pos in excluded_yx:
        mask[pos] = True
    cs = CorrectionSet(excluded_pixels=mask)
    return cs.adjust_tileshape(tile_shape=tile_shape, sig_shape=sig_shape, base_shape=base_shape)


@pytest.mark.parametrize(
    "excluded, tile, base, expected",
    [
        ([(17, 42)], (17, 42), (1, 1), (16, 41)),  # 16 is tried before 18
        ([(17, 42)], (16, 41), (3, 3), (15, 39)),  # 42 touches 42|43: 39 before 45
        ([(33, 42)], (17, 42), (1, 1), (16, 41)),  # 2 * 17 = 34 is a forbidden border
        ([(122, 23)], (17, 42), (1, 1), (17, 42)),  # a border at the frame end is none
        ([(5, 0)], (10, 8), (1, 1), (10, 8)),  # pixel at 0: size at least 2
        ([(5, 7)], (10, 8), (1, 4), (10, 12)),
        ([(y, 3) for y in range(0, 123, 2)], (10, 8), (1, 1), (123, 8)),  # > a third
        ([], (17, 42), (1, 1), (17, 42)),
    ],
)
def test_adjust_tileshape_search_order(excluded, tile, base, expected):
    out = _adjusted(excluded, tile, base)
    assert tuple(int(v) for v in out) == expected
    if excluded:
        assert all(isinstance(v, np.integer) for v in out)


def test_adjust_tileshape_unchanged_without_excluded_pixels():
    tile = (5, 7)
    assert CorrectionSet().adjust_tileshape(tile, (10, 10), (1, 1)) is tile
    empty = CorrectionSet(excluded_pixels=np.zeros((10, 10), dtype=bool))
    assert empty.adjust_tileshape(tile, (10, 10), (1, 1)) is tile


# correct(): memory layout and dtypes -----------------------------------------------------
def test_correct_layout_rules():
    f = np.ones((4, 6), dtype=np.float32, order="F")
    for inplace in (False, True):
        with pytest.raises(CorrectError, match="buffer given must be C-contiguous"):
            correct(buffer=f, sig_shape=f.shape, inplace=inplace)
    view = np.arange(2 * 8 * 8, dtype=np.float32).reshape((2, 8, 8))[:, :4, :4]
    with pytest.raises(CorrectError, match="buffer given must be C-contiguous"):
        correct(buffer=view, sig_shape=(4, 4), inplace=True)
    out = correct(buffer=view, sig_shape=(4, 4), dark_image=np.ones((4, 4)))
    assert out.flags.c_contiguous and out.dtype == np.float32
    np.testing.assert_array_equal(out, view - 1)
    ints = np.ones((2, 4, 4), dtype=np.int32)
    with pytest.raises(TypeError, match="^In-place correction only supported for floating point"):
        correct(buffer=ints, sig_shape=(4, 4), inplace=True)
    assert correct(buffer=ints, sig_shape=(4, 4)).dtype == np.float64
    assert CorrectError.__mro__[1] is Exception
    assert issubclass(RepairValueError, ValueError)


def test_correct_copies_unless_inplace():
    frames = np.arange(2 * 5 * 5, dtype=np.float32).reshape((2, 5, 5))
    before = frames.copy()
    out = correct(buffer=frames, excluded_pixels=np.array([[2], [2]]), sig_shape=(5, 5))
    np.testing.assert_array_equal(frames, before)
    assert out is not frames
    same = correct(buffer=frames, excluded_pixels=np.array([[2], [2]]), inplace=True)
    assert same is frames
    np.testing.assert_array_equal(frames, out)


# the repair: mean of the good neighbours ------------------------------------------------
def test_repair_is_the_mean_of_good_neighbours():
    frame = (np.arange(30, dtype=np.float32) ** 1.5).reshape((1, 5, 6))
    excluded = np.array([[0, 2, 2], [0, 2, 3]])
    out = correct(buffer=frame.copy(), excluded_pixels=excluded, sig_shape=(5, 6))
    assert out.dtype == np.float32
    f = frame[0].astype(np.float64)
    # corner: 3 neighbours; (2, 2) and (2, 3): 8 each, minus one excluded
    assert np.isclose(out[0, 0, 0], np.mean([f[0, 1], f[1, 0], f[1, 1]]), rtol=1e-6)
    n22 = [f[y, x] for y in (1, 2, 3) for x in (1, 2, 3) if (y, x) not in ((2, 2), (2, 3))]
    assert np.isclose(out[0, 2, 2], np.mean(n22), rtol=1e-6)
    n23 = [f[y, x] for y in (1, 2, 3) for x in (2, 3, 4) if (y, x) not in ((2, 2), (2, 3))]
    assert np.isclose(out[0, 2, 3], np.mean(n23), rtol=1e-6)
    others = np.ones((5, 6), dtype=bool)
    others[0, 0] = others[2, 2] = others[2, 3] = False
    np.testing.assert_array_equal(out[0][others], frame[0][others])
    vol = (np.arange(27, dtype=np.float64) ** 2).reshape((1, 3, 3, 3))
    out3 = correct(buffer=vol.copy(), excluded_pixels=np.array([[1], [1], [1]]))
    assert out3[0, 1, 1, 1] == np.delete(vol.reshape(-1), 13).mean()


# excluded_pixels: what CorrectionSet accepts ------------------------------------------------
@pytest.mark.parametrize(
    "make",
    [
        lambda m: m.astype(np.int64),
        lambda m: m.astype(np.float32),
        lambda m: m,
        lambda m: sparse.COO.from_numpy(m),
        lambda m: scipy.sparse.csr_matrix(m.astype(np.uint8)),
    ],
)
def test_excluded_pixels_forms(make):
    mask = np.zeros((4, 4), dtype=bool)
    mask[1, 2] = True
    cs = CorrectionSet(excluded_pixels=make(mask))
    ex = cs.get_excluded_pixels()
    assert isinstance(ex, sparse.COO) and ex.shape == (4, 4)
    assert ex.coords.tolist() == [[1], [2]]
    assert cs.have_corrections() and cs.sig_shape == (4, 4)
    assert ShortPathCorrectionSet is CorrectionSet


def test_excluded_pixels_keep_dtype_and_empty_array():
    mask = np.zeros((4, 4), dtype=np.int64)
    mask[1, 2] = 7
    assert CorrectionSet(excluded_pixels=mask).get_excluded_pixels().dtype == np.int64
    empty = CorrectionSet(excluded_pixels=np.empty((2, 0), dtype=np.int64), gain=np.ones((4, 4)))
    ex = empty.get_excluded_pixels()
    assert isinstance(ex, sparse.COO) and ex.shape == (2, 0) and ex.nnz == 0
    assert empty.sig_shape == (4, 4)
    assert empty.adjust_tileshape((2, 4), (4, 4), (1, 1)) == (2, 4)
    with pytest.raises(ValueError, match="unsupported type"):
        CorrectionSet(excluded_pixels=[[0, 1], [1, 0]])


def test_unrepairable_pixels_at_construction():
    excluded = np.zeros(8, dtype=bool)
    excluded[1:4] = True
    with pytest.raises(
        RepairValueError, match=r"^Empty repair environments for pixel\(s\) number \[\[1\]\]\.$"
    ):
        CorrectionSet(excluded_pixels=excluded)
    two = np.zeros((5, 5), dtype=bool)
    two[:2, :2] = True
    two[3:, 3:] = True
    # (0, 0) and (4, 4) are numbers 0 and 7 of the 8 excluded pixels, in C order
    with pytest.raises(RepairValueError, match=r"number \[\[0\]\s+\[7\]\]\."):
        CorrectionSet(excluded_pixels=two)
    CorrectionSet(excluded_pixels=two, allow_empty=True)


def _run_corrections(ctx, with_roi):
    excluded = np.zeros(8, dtype=bool)
    excluded[1:4] = True
    excluded[6] = True
    cs = CorrectionSet(excluded_pixels=excluded, dark=np.ones(8), allow_empty=True)
    data = np.arange(2 * 3 * 8, dtype=np.float64).reshape((2, 3, 8)) ** 1.5
    ds = ctx.load("memory", data=data, sig_dims=1, num_partitions=2)
    roi = None
    frames = data.reshape((-1, 8))
    if with_roi:
        roi = np.array([[True, False, True], [False, True, True]])
        frames = frames[roi.reshape(-1)]
    sums, picks = ctx.run_udf(
        dataset=ds,
        udf=[SumUDF(), PickUDF()],
        corrections=cs,
        roi=np.ones((2, 3), dtype=bool) if roi is None else roi,
    )
    expected = ref_correct(frames, dark=np.ones(8), excluded=excluded)
    # pixel 2 has no usable neighbour: it keeps its dark-corrected value
    np.testing.assert_allclose(expected[:, 2], frames[:, 2] - 1)
    np.testing.assert_allclose(picks["intensity"].raw_data, expected, rtol=1e-12)
    np.testing.assert_allclose(sums["intensity"].data, expected.sum(axis=0), rtol=1e-12)


@pytest.mark.parametrize("with_roi", [False, True])
def test_allow_empty_keeps_value_in_runs(ctx, with_roi):
    _run_corrections(ctx, with_roi)


@pytest.fixture(scope="module")
def corrections_compat_dask_ctx():
    executor = acquire_cluster()
    yield Context(executor=executor)
    release_cluster()


def test_integer_mask_and_allow_empty_on_dask(corrections_compat_dask_ctx):
    _run_corrections(corrections_compat_dask_ctx, with_roi=True)
    ctx = corrections_compat_dask_ctx
    mask = np.zeros((4, 4), dtype=np.int64)
    mask[1, 2] = 1
    data = np.arange(2 * 2 * 4 * 4, dtype=np.float32).reshape(2, 2, 4, 4)
    ds = ctx.load("memory", data=data, num_partitions=2)
    res = ctx.run_udf(dataset=ds, udf=SumUDF(), corrections=CorrectionSet(excluded_pixels=mask))
    total = data.sum(axis=(0, 1))
    expected = ref_correct(total[None], excluded=mask.astype(bool))[0]
    np.testing.assert_allclose(res["intensity"].data, expected, rtol=1e-6)


class _FrameSumUDF(UDF):
    """Sums each frame in process_frame, and records that it got whole frames."""

    def get_result_buffers(self):
        return {
            "total": self.buffer(kind="nav", dtype=np.float64),
            "whole": self.buffer(kind="nav", dtype=bool),
        }

    def process_frame(self, frame):
        self.results.whole[:] = frame.shape == (10, 10)
        self.results.total[:] = frame.sum()


def test_frame_udfs_get_whole_frames(ctx):
    """adjust_tileshape may propose smaller tiles than the frame when the base shape does
    not divide it; frame-by-frame processing still gets whole frames."""
    data = np.random.default_rng(0).random((2, 3, 10, 10))
    ds = ctx.load("memory", data=data, base_shape=(4, 4), num_partitions=2)
    mask = np.zeros((10, 10), dtype=bool)
    mask[5, 5] = True
    cs = CorrectionSet(excluded_pixels=mask)
    assert tuple(int(v) for v in cs.adjust_tileshape((10, 10), (10, 10), (4, 4))) == (8, 8)
    res = ctx.run_udf(ds, _FrameSumUDF(), corrections=cs)
    assert res["whole"].data.all()
    expected = ref_correct(data.reshape((-1, 10, 10)), excluded=mask).sum(axis=(1, 2))
    np.testing.assert_allclose(res["total"].data.reshape(-1), expected, rtol=1e-12)
    scheme = Negotiator().get_scheme(
        udfs=[_FrameSumUDF()],
        dataset=ds,
        read_dtype=np.float64,
        approx_partition_shape=(3, 10, 10),
        corrections=cs,
    )
    assert tuple(scheme.shape.sig) == (10, 10)
