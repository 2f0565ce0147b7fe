"""Property-based tests: Slice arithmetic, tiling coverage and merging over random setups."""

from math import prod

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from libertem.common.shape import Shape
from libertem.common.slice import Slice
from libertem.udf import UDF
from libertem.udf.sum import SumUDF
from libertem.udf.sumsigudf import SumSigUDF
from utils import SUM_UDFS, as_list, check_sums, make_data

# --- Slice -------------------------------------------------------------------------------------


@st.composite
def slice_in_array(draw, min_dims=1, max_dims=4):
    """(array shape, sig_dims, Slice inside that array)."""
    ndim = draw(st.integers(min_dims, max_dims))
    shape = tuple(draw(st.integers(1, 6)) for _ in range(ndim))
    sig_dims = draw(st.integers(0, ndim))
    origin = tuple(draw(st.integers(0, s - 1)) for s in shape)
    extent = tuple(draw(st.integers(0, s - o)) for s, o in zip(shape, origin))
    return shape, sig_dims, Slice(origin, Shape(extent, sig_dims=sig_dims))


@given(slice_in_array())
def test_slice_get(args):
    shape, sig_dims, sl = args
    arr = np.arange(prod(shape)).reshape(shape)
    index = sl.get()
    assert len(index) == len(shape)
    manual = arr[tuple(slice(o, o + e) for o, e in zip(sl.origin, sl.shape))]
    np.testing.assert_array_equal(arr[index], manual)
    np.testing.assert_array_equal(sl.get(arr), manual)
    assert arr[index].shape == tuple(sl.shape)
    nav_dims = len(shape) - sig_dims
    assert sl.get(sig_only=True) == index[nav_dims:]
    assert sl.get(nav_only=True) == index[:nav_dims]
    assert sl.is_null() == (manual.size == 0)


@given(slice_in_array(min_dims=2), st.data())
def test_slice_shift(args, data):
    shape, sig_dims, outer = args
    # an inner slice contained in ``outer``
    origin = tuple(
        o + data.draw(st.integers(0, max(0, e - 1))) if e else o
        for o, e in zip(outer.origin, outer.shape)
    )
    extent = tuple(
        data.draw(st.integers(0, oo + e - io))
        for io, oo, e in zip(origin, outer.origin, outer.shape)
    )
    inner = Slice(origin, Shape(extent, sig_dims=sig_dims))
    shifted = inner.shift(outer)
    assert shifted.origin == tuple(a - b for a, b in zip(inner.origin, outer.origin))
    assert tuple(shifted.shape) == tuple(inner.shape)
    assert shifted.shape.sig_dims == sig_dims
    arr = np.arange(prod(shape)).reshape(shape)
    np.testing.assert_array_equal(arr[inner.get()], arr[outer.get()][shifted.get()])
    # shifting by a slice at the origin changes nothing
    zero = Slice((0,) * len(shape), Shape(shape, sig_dims=sig_dims))
    assert inner.shift(zero) == inner


def _mask(shape, sl):
    m = np.zeros(shape, bool)
    m[sl.get()] = True
    return m


@given(st.data())
def test_slice_intersection(data):
    shape, sig_dims, a = data.draw(slice_in_array())
    ndim = len(shape)
    origin = tuple(data.draw(st.integers(0, s - 1)) for s in shape)
    extent = tuple(data.draw(st.integers(0, s - o)) for s, o in zip(shape, origin))
    b = Slice(origin, Shape(extent, sig_dims=sig_dims))
    ab = a.intersection_with(b)
    ba = b.intersection_with(a)
    assert len(ab.origin) == ndim
    assert ab.is_null() == ba.is_null()
    both = _mask(shape, a) & _mask(shape, b)
    np.testing.assert_array_equal(_mask(shape, ab), both)
    np.testing.assert_array_equal(_mask(shape, ba), both)
    assert ab.is_null() == (not both.any())
    if not ab.is_null():
        assert ab == ba
    assert a.intersection_with(a) == a
    assert prod(ab.shape) == np.count_nonzero(both)


@given(slice_in_array(min_dims=2))
def test_slice_discard_nav(args):
    shape, sig_dims, sl = args
    sig = sl.discard_nav()
    nav_dims = len(shape) - sig_dims
    assert sig.origin == sl.origin[nav_dims:]
    assert tuple(sig.shape) == tuple(sl.shape)[nav_dims:]
    assert sig.get() == sl.get(sig_only=True)


# --- tiling ------------------------------------------------------------------------------------


class VisitUDF(UDF):
    """Counts visits of every (frame, pixel), copies the data, through the nav views and
    through meta.slice into ROI-compressed single buffers; records problems in ``errors``."""

    def get_preferred_input_dtype(self):
        return self.USE_NATIVE_DTYPE

    def get_tiling_preferences(self):
        if self.params.prefs is None:
            return super().get_tiling_preferences()
        return self.params.prefs

    def get_result_buffers(self):
        sig = tuple(self.meta.dataset_shape.sig)
        if self.meta.roi is not None:
            n_sel = int(np.count_nonzero(self.meta.roi))
        else:
            n_sel = prod(self.meta.dataset_shape.nav)
        dt = self.meta.input_dtype
        return {
            "visits": self.buffer(kind="nav", extra_shape=sig, dtype="int64"),
            "echo": self.buffer(kind="nav", extra_shape=sig, dtype=dt),
            "gvisits": self.buffer(kind="single", extra_shape=(n_sel, *sig), dtype="int64"),
            "gecho": self.buffer(kind="single", extra_shape=(n_sel, *sig), dtype=dt),
            "errors": self.buffer(kind="single", dtype=object),
        }

    def preprocess(self):
        self.results.errors[0] = []

    def _visit(self, data, nav_index):
        sl = self.meta.slice
        if tuple(sl.shape) != data.shape:
            self.results.errors[0].append(f"slice {sl!r} vs data {data.shape}")
        if data.dtype != self.meta.dataset_dtype:
            self.results.errors[0].append(f"dtype {data.dtype}")
        idx = (*nav_index, *sl.get(sig_only=True))
        self.results.visits[idx] += 1
        self.results.echo[idx] = data
        self.results.gvisits[sl.get()] += 1
        self.results.gecho[sl.get()] = data

    def merge(self, dest, src):
        dest.visits[:] = src.visits
        dest.echo[:] = src.echo
        dest.gvisits[:] += src.gvisits
        dest.gecho[:] += src.gecho
        dest.errors[0] = as_list(dest.errors[0]) + as_list(src.errors[0])


class VisitTile(VisitUDF):
    def process_tile(self, tile):
        self._visit(tile, (slice(None),))


class VisitFrame(VisitUDF):
    def process_frame(self, frame):
        self._visit(frame[np.newaxis], (np.newaxis,))


class VisitPartition(VisitUDF):
    def process_partition(self, partition):
        self._visit(partition, (slice(None),))


VISIT_UDFS = {"tile": VisitTile, "frame": VisitFrame, "partition": VisitPartition}


@st.composite
def setups(draw, max_frames=40):
    nav_dims = draw(st.integers(1, 3))
    sig_dims = draw(st.integers(1, 2))
    nav_shape = tuple(draw(st.integers(1, 5)) for _ in range(nav_dims))
    assume(prod(nav_shape) <= max_frames)
    sig_shape = tuple(draw(st.integers(1, 9)) for _ in range(sig_dims))
    n_frames = prod(nav_shape)
    num_partitions = draw(st.integers(1, min(n_frames, 6)))
    depth = draw(st.integers(1, n_frames + 1))
    tile_sig = tuple(draw(st.integers(1, s)) for s in sig_shape)
    roi = draw(st.none() | arrays(np.bool_, nav_shape))
    if roi is not None:
        assume(roi.any())
    prefs = draw(
        st.none()
        | st.fixed_dictionaries({"depth": st.integers(1, 12), "total_size": st.integers(1, 4096)})
    )
    dtype = draw(st.sampled_from(["uint8", "int16", "uint32", "float32", "float64", "complex64"]))
    seed = draw(st.integers(0, 2**16))
    return dict(
        shape=nav_shape + sig_shape,
        sig_dims=sig_dims,
        num_partitions=num_partitions,
        tileshape=(depth, *tile_sig),
        roi=roi,
        prefs=prefs,
        dtype=dtype,
        seed=seed,
    )


def _load(ctx, s, whole_frames=False):
    """The data and a memory dataset of it with the setup's forced tileshape; with
    ``whole_frames``, widened to whole frames (LiberTEM refuses a forced tileshape
    without them for frame and partition UDFs)."""
    data = make_data(s["shape"], s["dtype"], seed=s["seed"])
    tileshape = s["tileshape"]
    if whole_frames:
        tileshape = (tileshape[0], *s["shape"][len(s["shape"]) - s["sig_dims"] :])
    ds = ctx.load(
        "memory",
        data=data,
        sig_dims=s["sig_dims"],
        num_partitions=s["num_partitions"],
        tileshape=tileshape,
    )
    return data, ds


@settings(max_examples=40)
@given(setups(), st.sampled_from(sorted(VISIT_UDFS)))
def test_tiling_visits_every_frame_and_pixel_once(ctx, s, method):
    sig_shape = s["shape"][len(s["shape"]) - s["sig_dims"] :]
    if method != "tile" and s["tileshape"][1:] != sig_shape:
        _, partial = _load(ctx, s)
        with pytest.raises(ValueError, match="incompatible with base shape"):
            ctx.run_udf(dataset=partial, udf=VISIT_UDFS[method](prefs=s["prefs"]))
    data, ds = _load(ctx, s, whole_frames=method != "tile")
    roi = s["roi"]
    nav_dims = len(s["shape"]) - s["sig_dims"]
    sel = np.ones(s["shape"][:nav_dims], bool) if roi is None else roi
    frames = data[sel]
    res = ctx.run_udf(dataset=ds, udf=VISIT_UDFS[method](prefs=s["prefs"]), roi=roi)
    assert res["errors"].data[0] == []
    assert (res["visits"].raw_data == 1).all()
    assert res["visits"].raw_data.shape == frames.shape
    np.testing.assert_array_equal(res["echo"].raw_data, frames)
    np.testing.assert_array_equal(res["echo"].data[sel], frames)
    # through meta.slice: ROI-compressed flat-nav coordinates
    assert (res["gvisits"].data == 1).all()
    np.testing.assert_array_equal(res["gecho"].data, frames)


@settings(max_examples=25)
@given(setups(), st.sampled_from(sorted(SUM_UDFS)))
def test_merge_sums_random_partitionings(ctx, s, method):
    data, ds = _load(ctx, s, whole_frames=method != "tile")
    roi = s["roi"]
    nav_dims = len(s["shape"]) - s["sig_dims"]
    sel = np.ones(s["shape"][:nav_dims], bool) if roi is None else roi
    res, res_sum, res_sumsig = ctx.run_udf(
        dataset=ds, udf=[SUM_UDFS[method](), SumUDF(), SumSigUDF()], roi=roi
    )
    check_sums(res, data, s["sig_dims"], roi)
    ref = data.astype(np.result_type(np.float32, data.dtype))
    frames = ref[sel]
    np.testing.assert_allclose(res_sum["intensity"].data, frames.sum(axis=0), rtol=1e-4, atol=1e-3)
    sig_axes = tuple(range(1, frames.ndim))
    np.testing.assert_allclose(
        res_sumsig["intensity"].raw_data, frames.sum(axis=sig_axes), rtol=1e-4, atol=1e-3
    )


class OrderUDF(UDF):
    """merge() sees every partition exactly once: collects the frame indices seen."""

    def get_result_buffers(self):
        return {
            "seen": self.buffer(kind="single", dtype=object),
            "merges": self.buffer(kind="single", dtype="int64"),
        }

    def preprocess(self):
        self.results.seen[0] = []

    def process_tile(self, tile):
        if self.meta.slice.origin[1:] == (0,) * (tile.ndim - 1):
            start = self.meta.slice.origin[0]
            self.results.seen[0].extend(range(start, start + tile.shape[0]))

    def merge(self, dest, src):
        dest.seen[0] = as_list(dest.seen[0]) + as_list(src.seen[0])
        dest.merges[:] += 1


@settings(max_examples=25)
@given(setups())
def test_merge_sees_each_partition_once(ctx, s):
    data, ds = _load(ctx, s)
    roi = s["roi"]
    res = ctx.run_udf(dataset=ds, udf=OrderUDF(), roi=roi)
    n_sel = data.size // prod(data.shape[len(data.shape) - s["sig_dims"] :])
    if roi is not None:
        n_sel = int(np.count_nonzero(roi))
    assert sorted(res["seen"].data[0]) == list(range(n_sel))
    assert 1 <= res["merges"].data[0] <= s["num_partitions"]
