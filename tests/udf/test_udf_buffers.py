"""Result buffers of every kind (nav/sig/single), with extra_shape, various and object dtypes,
private and result_only buffers and get_results, compared with numpy."""

import numpy as np
import pytest

from libertem.common.buffers import BufferWrapper
from libertem.udf import UDF
from utils import (
    SHAPES,
    assert_close,
    load_mem,
    make_data,
    make_roi,
    shape_id,
    sig_view,
)


class ExtraShapeBase(UDF):
    """nav (3,): sum/max/min per frame; sig (2,): sum/max over frames; single (2,): frames and
    total sum."""

    def get_result_buffers(self):
        return {
            "nav3": self.buffer(kind="nav", extra_shape=(3,), dtype="float64"),
            "sig2": self.buffer(kind="sig", extra_shape=(2,), dtype="float64"),
            "single2": self.buffer(kind="single", extra_shape=(2,), dtype="float64"),
            "single23": self.buffer(kind="single", extra_shape=(2, 3), dtype="int64"),
        }

    def preprocess(self):
        self.results.sig2[..., 1] = -np.inf
        self.results.nav3[:, 1] = -np.inf
        self.results.nav3[:, 2] = np.inf

    def merge(self, dest, src):
        dest.nav3[:] = src.nav3
        dest.sig2[..., 0] += src.sig2[..., 0]
        dest.sig2[..., 1] = np.maximum(dest.sig2[..., 1], src.sig2[..., 1])
        dest.single2[:] += src.single2
        dest.single23[:] += src.single23


class ExtraShapeFrame(ExtraShapeBase):
    def process_frame(self, frame):
        self.results.nav3[:] = [frame.sum(), frame.max(), frame.min()]
        self.results.sig2[..., 0] += frame
        self.results.sig2[..., 1] = np.maximum(self.results.sig2[..., 1], frame)
        self.results.single2[:] += [1, frame.sum()]
        self.results.single23[:] += np.arange(6).reshape(2, 3)


class ExtraShapeTile(ExtraShapeBase):
    def get_tiling_preferences(self):
        return {"depth": 3, "total_size": 64}

    def process_tile(self, tile):
        # nav: per-tile partial results; sum adds up, max/min combine
        axes = tuple(range(1, tile.ndim))
        nav = self.results.nav3
        first = tuple(self.meta.slice.origin[1:]) == (0,) * (tile.ndim - 1)
        nav[:, 0] += tile.sum(axis=axes)
        nav[:, 1] = np.maximum(nav[:, 1], tile.max(axis=axes))
        nav[:, 2] = np.minimum(nav[:, 2], tile.min(axis=axes))
        sig = sig_view(self, self.results.sig2, tile)
        sig[..., 0] += tile.sum(axis=0)
        sig[..., 1] = np.maximum(sig[..., 1], tile.max(axis=0))
        self.results.single2[:] += [0, tile.sum()]
        if first:
            self.results.single2[0] += tile.shape[0]
            self.results.single23[:] += tile.shape[0] * np.arange(6).reshape(2, 3)


@pytest.mark.parametrize("cls", [ExtraShapeFrame, ExtraShapeTile], ids=["frame", "tile"])
@pytest.mark.parametrize("shape", SHAPES, ids=shape_id)
@pytest.mark.parametrize("use_roi", [False, True], ids=["noroi", "roi"])
def test_extra_shape(ctx, cls, shape, use_roi):
    full_shape, sig_dims = shape
    nav_shape = full_shape[: len(full_shape) - sig_dims]
    sig_shape = full_shape[len(full_shape) - sig_dims :]
    data = make_data(full_shape, "float64", seed=21)
    roi = make_roi(nav_shape, seed=22) if use_roi else None
    tileshape = (3, *sig_shape[:-1], max(1, sig_shape[-1] // 2)) if cls is ExtraShapeTile else None
    ds = load_mem(ctx, data, sig_dims=sig_dims, num_partitions=3, tileshape=tileshape)
    res = ctx.run_udf(dataset=ds, udf=cls(), roi=roi)

    sel = np.ones(nav_shape, bool) if roi is None else roi
    frames = data[sel]  # (n_sel, *sig)
    axes = tuple(range(1, frames.ndim))
    nav_expected = np.stack(
        [frames.sum(axis=axes), frames.max(axis=axes), frames.min(axis=axes)], 1
    )
    assert res["nav3"].data.shape == (*nav_shape, 3)
    assert res["nav3"].raw_data.shape == (frames.shape[0], 3)
    assert_close(res["nav3"].raw_data, nav_expected, np.float64)
    assert_close(res["nav3"].data[sel], nav_expected, np.float64)
    if roi is not None:
        assert np.isnan(res["nav3"].data[~sel]).all()

    assert res["sig2"].data.shape == (*sig_shape, 2)
    assert_close(res["sig2"].data[..., 0], frames.sum(axis=0), np.float64)
    assert_close(res["sig2"].data[..., 1], frames.max(axis=0), np.float64)

    assert res["single2"].data.shape == (2,)
    assert_close(res["single2"].data, [frames.shape[0], frames.sum()], np.float64)
    assert res["single23"].data.shape == (2, 3)
    np.testing.assert_array_equal(
        res["single23"].data, frames.shape[0] * np.arange(6).reshape(2, 3)
    )


class DtypeBuffers(UDF):
    """One nav and one sig buffer of a given dtype."""

    def get_result_buffers(self):
        dt = self.params.dtype
        return {
            "nav": self.buffer(kind="nav", dtype=dt),
            "sig": self.buffer(kind="sig", dtype=dt),
            "single": self.buffer(kind="single", dtype=dt),
        }

    def get_preferred_input_dtype(self):
        return self.USE_NATIVE_DTYPE

    def process_frame(self, frame):
        self.results.nav[:] = frame.ravel()[0]
        self.results.sig[:] += frame
        self.results.single[:] += frame.ravel()[-1]

    def merge(self, dest, src):
        dest.nav[:] = src.nav
        dest.sig[:] += src.sig
        dest.single[:] += src.single


@pytest.mark.parametrize(
    "dtype", ["uint8", "uint16", "uint32", "int16", "int64", "float32", "float64", "complex64"]
)
@pytest.mark.parametrize("use_roi", [False, True], ids=["noroi", "roi"])
def test_buffer_dtypes(ctx, dtype, use_roi):
    data = make_data((4, 6, 5, 4), dtype, seed=23)
    roi = make_roi((4, 6), seed=24) if use_roi else None
    ds = load_mem(ctx, data, num_partitions=3)
    res = ctx.run_udf(dataset=ds, udf=DtypeBuffers(dtype=dtype), roi=roi)
    sel = np.ones((4, 6), bool) if roi is None else roi
    for key in ("nav", "sig", "single"):
        assert res[key].data.dtype == np.dtype(dtype), key
        assert res[key].dtype == np.dtype(dtype), key
    frames = data[sel]
    np.testing.assert_array_equal(res["nav"].raw_data, frames[:, 0, 0])
    np.testing.assert_array_equal(res["nav"].data[sel], frames[:, 0, 0])
    expected_sig = frames.sum(axis=0, dtype=dtype)
    expected_single = frames[:, -1, -1].sum(dtype=dtype)
    if np.dtype(dtype).kind in "fc":
        assert_close(res["sig"].data, expected_sig, dtype)
        assert_close(res["single"].data, [expected_single], dtype)
        if roi is not None:
            assert np.isnan(res["nav"].data[~sel]).all()
    else:
        np.testing.assert_array_equal(res["sig"].data, expected_sig)
        np.testing.assert_array_equal(res["single"].data, [expected_single])


class ObjectBuffers(UDF):
    """Object dtype: a dict per frame (nav), a list of all frame sums (single)."""

    def get_result_buffers(self):
        return {
            "per_frame": self.buffer(kind="nav", dtype=object),
            "ragged": self.buffer(kind="nav", dtype=object),
            "collected": self.buffer(kind="single", dtype=object),
        }

    def preprocess(self):
        self.results.collected[0] = []

    def process_frame(self, frame):
        s = float(frame.sum())
        self.results.per_frame[:] = {"sum": s, "shape": frame.shape}
        # ragged: a 1D array whose length depends on the data
        n = int(abs(s)) % 4
        self.results.ragged[0] = np.arange(n)
        self.results.collected[0].append(s)

    def merge(self, dest, src):
        dest.per_frame[:] = src.per_frame
        dest.ragged[:] = src.ragged
        dest.collected[0] = list(dest.collected[0] or []) + list(src.collected[0])


@pytest.mark.parametrize("use_roi", [False, True], ids=["noroi", "roi"])
def test_object_buffers(ctx, use_roi):
    data = make_data((4, 6, 5, 4), "float64", seed=25)
    roi = make_roi((4, 6), seed=26) if use_roi else None
    ds = load_mem(ctx, data, num_partitions=3)
    res = ctx.run_udf(dataset=ds, udf=ObjectBuffers(), roi=roi)
    sel = np.ones((4, 6), bool) if roi is None else roi
    sums = data.sum(axis=(2, 3))
    per_frame = res["per_frame"].data
    assert per_frame.shape == (4, 6)
    assert per_frame.dtype == object
    for idx in zip(*np.nonzero(sel)):
        entry = per_frame[idx]
        assert entry["shape"] == (5, 4)
        assert np.isclose(entry["sum"], sums[idx])
        np.testing.assert_array_equal(
            res["ragged"].data[idx], np.arange(int(abs(entry["sum"])) % 4)
        )
    assert len(res["per_frame"].raw_data) == np.count_nonzero(sel)
    collected = res["collected"].data[0]
    assert sorted(collected) == pytest.approx(sorted(sums[sel].tolist()))


class NavOnlyDefaultMerge(UDF):
    """No merge(): the default merge assigns nav results by position."""

    def get_result_buffers(self):
        return {
            "idx": self.buffer(kind="nav", dtype="int64"),
            "mean": self.buffer(kind="nav", extra_shape=(2,), dtype="float32"),
        }

    def process_tile(self, tile):
        start = self.meta.slice.origin[0]
        self.results.idx[:] = np.arange(start, start + tile.shape[0])
        self.results.mean[:, 0] = tile.mean(axis=(1, 2))
        self.results.mean[:, 1] = tile.shape[0]


@pytest.mark.parametrize("num_partitions", [1, 2, 4, 7])
@pytest.mark.parametrize("use_roi", [False, True], ids=["noroi", "roi"])
def test_default_merge_nav_order(ctx, num_partitions, use_roi):
    data = make_data((4, 7, 8, 8), "float32", seed=27)
    roi = make_roi((4, 7), seed=28) if use_roi else None
    ds = load_mem(ctx, data, num_partitions=num_partitions, tileshape=(3, 8, 8))
    res = ctx.run_udf(dataset=ds, udf=NavOnlyDefaultMerge(), roi=roi)
    sel = np.ones((4, 7), bool) if roi is None else roi
    n_sel = np.count_nonzero(sel)
    # meta.slice is in ROI-compressed coordinates, so the recorded index counts 0..n_sel-1
    np.testing.assert_array_equal(res["idx"].raw_data, np.arange(n_sel))
    assert_close(res["mean"].data[sel][:, 0], data[sel].mean(axis=(1, 2)))
    assert (res["mean"].raw_data[:, 1] >= 1).all()


# --- private / result_only / get_results -----------------------------------------------------


class GetResultsUDF(UDF):
    def get_result_buffers(self):
        return {
            "sigsum": self.buffer(kind="sig", dtype="float64"),
            "navsum": self.buffer(kind="nav", dtype="float64"),
            "count": self.buffer(kind="single", dtype="int64", use="private"),
            "scratch": self.buffer(kind="nav", dtype="float64", use="private"),
            "mean": self.buffer(kind="sig", dtype="float64", use="result_only"),
            "double": self.buffer(kind="nav", dtype="float64", use="result_only"),
            "total": self.buffer(kind="single", dtype="float64", use="result_only"),
        }

    def process_frame(self, frame):
        self.results.scratch[:] = 1
        self.results.sigsum[:] += frame
        self.results.navsum[:] = frame.sum() * self.results.scratch
        self.results.count[:] += 1

    def merge(self, dest, src):
        dest.sigsum[:] += src.sigsum
        dest.navsum[:] = src.navsum
        dest.scratch[:] = src.scratch
        dest.count[:] += src.count

    def get_results(self):
        return {
            "sigsum": self.results.sigsum,
            "navsum": self.results.navsum,
            "mean": self.results.sigsum / self.results.count[0],
            "double": self.results.navsum * 2,
            "total": np.array([self.results.count[0] * 1.5]),
        }


@pytest.mark.parametrize("use_roi", [False, True], ids=["noroi", "roi"])
@pytest.mark.parametrize("num_partitions", [1, 3])
def test_get_results_private_result_only(ctx, use_roi, num_partitions):
    data = make_data((4, 6, 5, 4), "float32", seed=29)
    roi = make_roi((4, 6), seed=30) if use_roi else None
    ds = load_mem(ctx, data, num_partitions=num_partitions)
    res = ctx.run_udf(dataset=ds, udf=GetResultsUDF(), roi=roi)
    assert set(res) == {"sigsum", "navsum", "mean", "double", "total"}
    sel = np.ones((4, 6), bool) if roi is None else roi
    frames = data[sel].astype(np.float64)
    n = frames.shape[0]
    assert_close(res["sigsum"].data, frames.sum(axis=0), np.float32)
    assert_close(res["mean"].data, frames.mean(axis=0), np.float32)
    assert res["mean"].data.shape == (5, 4)
    assert res["double"].data.shape == (4, 6)
    assert_close(res["double"].data[sel], 2 * frames.sum(axis=(1, 2)), np.float32)
    assert_close(res["double"].raw_data, 2 * frames.sum(axis=(1, 2)), np.float32)
    if roi is not None:
        assert np.isnan(res["double"].data[~sel]).all()
    assert_close(res["total"].data, [1.5 * n], np.float64)


class DefaultGetResultsPrivate(UDF):
    def get_result_buffers(self):
        return {
            "visible": self.buffer(kind="nav", dtype="float32"),
            "hidden": self.buffer(kind="sig", dtype="float32", use="private"),
        }

    def process_frame(self, frame):
        self.results.visible[:] = frame.sum()
        self.results.hidden[:] += frame

    def merge(self, dest, src):
        dest.visible[:] = src.visible
        dest.hidden[:] += src.hidden


def test_private_not_returned_with_default_get_results(ctx):
    data = make_data((4, 6, 5, 4), "float32", seed=31)
    ds = load_mem(ctx, data, num_partitions=2)
    res = ctx.run_udf(dataset=ds, udf=DefaultGetResultsPrivate())
    assert set(res) == {"visible"}
    assert_close(res["visible"].data, data.sum(axis=(2, 3)))


def test_buffer_wrapper_interface(ctx):
    data = make_data((4, 6, 5, 4), "float32", seed=32)
    ds = load_mem(ctx, data, num_partitions=2)
    res = ctx.run_udf(dataset=ds, udf=ExtraShapeFrame())
    buf = res["nav3"]
    assert isinstance(buf, BufferWrapper)
    assert buf.kind == "nav"
    assert tuple(buf.extra_shape) == (3,)
    assert buf.dtype == np.float64
    arr = np.array(buf)
    assert arr.shape == (4, 6, 3)
    assert_close(arr[..., 0], data.sum(axis=(2, 3)))
    assert np.isclose(np.sum(res["sig2"].data[..., 0]), data.sum(), rtol=1e-5)
    assert res["sig2"].kind == "sig"
    assert res["single2"].kind == "single"
    assert np.isclose(np.sum(buf, axis=(0, 1))[0], data.sum(), rtol=1e-5)


def test_spec_declaring_buffers_example(ctx):
    """The buffer declaration example of the docs, on a (14, 14, 32, 32) dataset."""

    class TestUDF(UDF):
        def get_result_buffers(self):
            return {
                "nav_buffer": self.buffer(kind="nav", extra_shape=(3, 2), dtype="float32"),
                "sig_buffer": self.buffer(kind="sig", extra_shape=(2,), dtype="float32"),
                "single_buffer": self.buffer(kind="single", extra_shape=(16, 16), dtype="float32"),
            }

        def process_frame(self, frame):
            self.results.nav_buffer[:] = frame[:3, :2]
            self.results.sig_buffer[..., 1] += frame
            self.results.single_buffer[:] += frame[:16, :16]

        def merge(self, dest, src):
            dest.nav_buffer[:] = src.nav_buffer
            dest.sig_buffer[:] += src.sig_buffer
            dest.single_buffer[:] += src.single_buffer

    data = make_data((14, 14, 32, 32), "float32", seed=33)
    ds = load_mem(ctx, data, num_partitions=4)
    res = ctx.run_udf(dataset=ds, udf=TestUDF())
    assert res["nav_buffer"].data.shape == (14, 14, 3, 2)
    assert res["sig_buffer"].data.shape == (32, 32, 2)
    assert res["single_buffer"].data.shape == (16, 16)
    np.testing.assert_array_equal(res["nav_buffer"].data, data[:, :, :3, :2])
    assert_close(res["sig_buffer"].data[..., 1], data.sum(axis=(0, 1)))
    assert (res["sig_buffer"].data[..., 0] == 0).all()
    assert_close(res["single_buffer"].data, data[:, :, :16, :16].sum(axis=(0, 1)))
