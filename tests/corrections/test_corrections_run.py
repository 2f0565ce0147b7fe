"""run_udf(..., corrections=...) on every in-process executor, against numpy."""

import numpy as np
import pytest
import sparse

from corrections_ref import ref_correct
from dask_shared import acquire_cluster, release_cluster
from libertem.api import Context
from libertem.corrections import CorrectionSet
from libertem.io.corrections.detector import CorrectError, RepairValueError
from libertem.udf import UDF
from libertem.udf.raw import PickUDF
from libertem.udf.sum import SumUDF

NAV, SIG = (4, 6), (16, 16)


class TileCopyUDF(UDF):
    """Copies every tile into a nav-shaped result; small tiles that cut the frame."""

    def get_result_buffers(self):
        return {"frames": self.buffer(kind="nav", extra_shape=SIG, dtype=np.float64)}

    def get_tiling_preferences(self):
        return {"depth": 3, "total_size": 3 * 4 * 8 * 4}

    def process_tile(self, tile):
        sig = self.meta.slice.get(sig_only=True)
        self.results.frames[(slice(None), *sig)] = tile
        assert tile.shape[1:] != SIG  # tiles really cut the frame


class NativeDtypeUDF(UDF):
    """Prefers the native dtype; with corrections it still gets floats."""

    def get_preferred_input_dtype(self):
        return self.USE_NATIVE_DTYPE

    def get_result_buffers(self):
        return {"dtype_ok": self.buffer(kind="nav", dtype=bool)}

    def process_frame(self, frame):
        self.results.dtype_ok[:] = np.issubdtype(frame.dtype, np.floating)


def setup(seed=0):
    rng = np.random.default_rng(seed)
    data = rng.integers(0, 3000, size=(*NAV, *SIG)).astype(np.uint16)
    dark = (rng.random(SIG) * 40).astype(np.float32)
    gain = (rng.random(SIG) + 0.5).astype(np.float32)
    excluded = np.zeros(SIG, dtype=bool)
    # frame corners and edges, a pair, and pixels next to the borders of 4x8 tiles; at
    # most 5 distinct rows, else the tiles would span whole columns (a third of 16)
    for pos in [(0, 0), (15, 15), (0, 9), (3, 7), (4, 8), (7, 7), (7, 8), (15, 0)]:
        excluded[pos] = True
    cs = CorrectionSet(dark=dark, gain=gain, excluded_pixels=sparse.COO.from_numpy(excluded))
    ref = ref_correct(data.reshape((-1, *SIG)), dark, gain, excluded).reshape(data.shape)
    return data, cs, ref


@pytest.mark.parametrize("with_roi", [False, True])
def test_sum_and_pick(ctx, with_roi):
    data, cs, ref = setup()
    ds = ctx.load("memory", data=data, sig_dims=2, num_partitions=3)
    roi = None
    expected = ref.reshape((-1, *SIG))
    if with_roi:
        roi = np.random.default_rng(3).random(NAV) > 0.5
        expected = expected[roi.reshape(-1)]
    pick_roi = np.ones(NAV, dtype=bool) if roi is None else roi
    s, p = ctx.run_udf(dataset=ds, udf=[SumUDF(), PickUDF()], roi=pick_roi, corrections=cs)
    np.testing.assert_allclose(p["intensity"].raw_data, expected, rtol=1e-5, atol=1e-2)
    np.testing.assert_allclose(s["intensity"].data, expected.sum(axis=0), rtol=1e-5)


@pytest.mark.parametrize("with_roi", [False, True])
def test_tiles_cutting_the_frame(ctx, tmp_path, with_roi):
    data, cs, ref = setup(seed=1)
    path = tmp_path / "d.raw"
    data.tofile(path)
    ds = ctx.load(
        "raw", path=str(path), nav_shape=NAV, sig_shape=SIG, dtype="uint16", num_partitions=2
    )
    roi = np.random.default_rng(5).random(NAV) > 0.4 if with_roi else None
    res = ctx.run_udf(dataset=ds, udf=TileCopyUDF(), roi=roi, corrections=cs)
    got = res["frames"].data
    if roi is None:
        np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-2)
    else:
        np.testing.assert_allclose(got[roi], ref[roi], rtol=1e-5, atol=1e-2)


def test_run_udf_iter(ctx):
    data, cs, ref = setup()
    ds = ctx.load("memory", data=data, sig_dims=2, num_partitions=2)
    parts = list(ctx.run_udf_iter(dataset=ds, udf=SumUDF(), corrections=cs))
    assert len(parts) >= 2
    last = parts[-1]
    np.testing.assert_allclose(last.buffers[0]["intensity"].data, ref.sum(axis=(0, 1)), rtol=1e-5)


def test_float_input_for_native_dtype_udf(ctx):
    data, cs, _ = setup()
    ds = ctx.load("memory", data=data, sig_dims=2)
    res = ctx.run_udf(dataset=ds, udf=NativeDtypeUDF(), corrections=cs)
    assert res["dtype_ok"].data.all()
    res = ctx.run_udf(dataset=ds, udf=NativeDtypeUDF())
    assert not res["dtype_ok"].data.any()


def test_no_corrections_is_raw(ctx):
    data, _, _ = setup()
    ds = ctx.load("memory", data=data, sig_dims=2)
    for cs in (None, CorrectionSet()):
        res = ctx.run_udf(dataset=ds, udf=SumUDF(), corrections=cs)
        np.testing.assert_allclose(res["intensity"].data, data.sum(axis=(0, 1)))


class CountingUDF(UDF):
    calls = 0

    def get_result_buffers(self):
        return {"n": self.buffer(kind="nav")}

    def process_frame(self, frame):
        type(self).calls += 1


def test_errors_before_work(inline_ctx):
    data, _, _ = setup()
    ds = inline_ctx.load("memory", data=data, sig_dims=2)
    CountingUDF.calls = 0
    with pytest.raises(CorrectError, match=r"have shape \(8, 16\).*signal shape is \(16, 16\)"):
        inline_ctx.run_udf(
            dataset=ds, udf=CountingUDF(), corrections=CorrectionSet(dark=np.zeros((8, 16)))
        )
    blocked = np.zeros(SIG, dtype=bool)
    blocked[:2, :2] = True
    # the set itself refuses a pixel without a usable neighbour
    with pytest.raises(RepairValueError, match=r"Empty repair environments .* \[\[0\]\]"):
        CorrectionSet(excluded_pixels=blocked)
    assert CountingUDF.calls == 0
    res = inline_ctx.run_udf(
        dataset=ds,
        udf=PickUDF(),
        roi=np.ones(NAV, dtype=bool),
        corrections=CorrectionSet(excluded_pixels=blocked, allow_empty=True),
    )
    frames = res["intensity"].raw_data
    # with allow_empty, that pixel keeps its value
    np.testing.assert_array_equal(frames[:, 0, 0], data.reshape((-1, *SIG))[:, 0, 0])
    np.testing.assert_allclose(
        frames, ref_correct(data.reshape((-1, *SIG)), excluded=blocked), rtol=1e-6
    )


def test_without_adjustment_tiles_would_differ(inline_ctx, monkeypatch):
    """Negative control: the tile-shape adjustment is what keeps tiled results exact."""
    data, cs, ref = setup(seed=1)
    ds = inline_ctx.load("memory", data=data, sig_dims=2)
    monkeypatch.setattr(
        CorrectionSet, "adjust_tileshape", lambda self, tile, sig, base: tuple(tile)
    )
    cs = CorrectionSet(
        dark=cs.get_dark_frame(),
        gain=cs.get_gain_map(),
        excluded_pixels=cs.get_excluded_pixels(),
        allow_empty=True,
    )
    got = inline_ctx.run_udf(dataset=ds, udf=TileCopyUDF(), corrections=cs)["frames"].data
    assert not np.allclose(got, ref, rtol=1e-5, atol=1e-2)


@pytest.fixture(scope="module")
def corrections_dask_ctx():
    executor = acquire_cluster()
    yield Context(executor=executor)
    release_cluster()


def test_dask_workers(corrections_dask_ctx, tmp_path):
    """Corrections travel to worker processes; tiles cut the frame, with a ROI."""
    data, cs, ref = setup(seed=2)
    path = tmp_path / "d.raw"
    data.tofile(path)
    ctx = corrections_dask_ctx
    ds = ctx.load(
        "raw", path=str(path), nav_shape=NAV, sig_shape=SIG, dtype="uint16", num_partitions=3
    )
    roi = np.random.default_rng(6).random(NAV) > 0.3
    tiles, total = ctx.run_udf(dataset=ds, udf=[TileCopyUDF(), SumUDF()], roi=roi, corrections=cs)
    np.testing.assert_allclose(tiles["frames"].data[roi], ref[roi], rtol=1e-5, atol=1e-2)
    np.testing.assert_allclose(total["intensity"].data, ref[roi].sum(axis=0), rtol=1e-5)


class MetaCorrectionsUDF(UDF):
    def get_result_buffers(self):
        return {"seen": self.buffer(kind="nav", dtype=bool)}

    def process_frame(self, frame):
        cs = self.meta.corrections
        self.results.seen[:] = cs is not None and cs.have_corrections()


def test_meta_corrections_and_one_sig_dim(ctx):
    rng = np.random.default_rng(7)
    data = rng.integers(0, 100, size=(6, 40)).astype(np.uint8)
    excluded = np.zeros(40, dtype=bool)
    excluded[[0, 5, 6, 39]] = True
    dark = rng.random(40).astype(np.float32)
    cs = CorrectionSet(dark=dark, excluded_pixels=excluded)
    ds = ctx.load("memory", data=data, sig_dims=1, num_partitions=2)
    seen, picked = ctx.run_udf(
        dataset=ds, udf=[MetaCorrectionsUDF(), PickUDF()], roi=np.ones(6, bool), corrections=cs
    )
    assert seen["seen"].data.all()
    np.testing.assert_allclose(
        picked["intensity"].raw_data, ref_correct(data, dark, None, excluded), rtol=1e-6
    )
