"""Assigning to buffer attributes writes into the buffers; dict-style access warns.

LiberTEM 0.16 behaviours B-udf-2, B-context-8 and B-udf-18, on the inline and the
thread-pool executor, with and without a ROI.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from libertem.common.buffers import BufferWrapper
from libertem.udf import UDF
from libertem.udf.data import MergeAttrMapping, UDFData
from libertem.warnings import UseDiscouragedWarning
from utils import assert_close, load_mem, make_data, make_roi

NAV, SIG = (3, 5), (4, 6)


def _selection(roi):
    return np.ones(NAV, dtype=bool) if roi is None else roi


class AssigningUDF(UDF):
    """Every buffer is written by plain and augmented attribute assignment."""

    def get_result_buffers(self):
        return {
            "total": self.buffer(kind="sig", dtype=np.float64),
            "count": self.buffer(kind="single", dtype=np.int64),
            "per_frame": self.buffer(kind="nav", dtype=np.float64),
            "pair": self.buffer(kind="nav", extra_shape=(2,), dtype=np.float64),
        }

    def process_frame(self, frame):
        self.results.total += frame
        self.results.count = self.results.count + 1
        self.results.per_frame = frame.sum()
        self.results.pair = (frame.min(), frame.max())

    def merge(self, dest, src):
        dest.total += src.total
        dest.count = dest.count + src.count
        dest.per_frame = src.per_frame
        dest.pair = src.pair


@pytest.mark.parametrize("use_roi", [False, True])
def test_attribute_assignment_in_process_and_merge(ctx, use_roi):
    data = make_data((*NAV, *SIG), "float64", seed=3)
    roi = make_roi(NAV, seed=4) if use_roi else None
    sel = _selection(roi)
    ds = load_mem(ctx, data, num_partitions=3)
    res = ctx.run_udf(dataset=ds, udf=AssigningUDF(), roi=roi)
    frames = data[sel]
    assert np.allclose(res["total"].data, frames.sum(axis=0))
    assert res["count"].data.tolist() == [int(sel.sum())]
    assert np.allclose(res["per_frame"].raw_data, frames.sum(axis=(1, 2)))
    assert np.allclose(res["pair"].raw_data[:, 0], frames.min(axis=(1, 2)))
    assert np.allclose(res["pair"].raw_data[:, 1], frames.max(axis=(1, 2)))
    assert res["per_frame"].data.shape == NAV
    if use_roi:
        assert np.isnan(res["per_frame"].data[~sel]).all()


class TileAssigningUDF(UDF):
    """Assignments in ``process_tile`` write into the views of the tile."""

    def get_result_buffers(self):
        return {
            "rows": self.buffer(kind="nav", dtype=np.float32),
            "pixels": self.buffer(kind="sig", dtype=np.float32),
        }

    def get_tiling_preferences(self):
        return {"depth": 2, "total_size": 2 * 2 * SIG[1] * 4}

    def process_tile(self, tile):
        self.results.rows += tile.sum(axis=(1, 2))
        self.results.pixels = self.results.pixels + tile.sum(axis=0)

    def merge(self, dest, src):
        dest.rows = src.rows
        dest.pixels += src.pixels


@pytest.mark.parametrize("use_roi", [False, True])
def test_attribute_assignment_in_process_tile(ctx, use_roi):
    data = make_data((*NAV, *SIG), "float32", seed=5)
    roi = make_roi(NAV, seed=6) if use_roi else None
    sel = _selection(roi)
    ds = load_mem(ctx, data, num_partitions=2)
    res = ctx.run_udf(dataset=ds, udf=TileAssigningUDF(), roi=roi)
    assert_close(res["rows"].raw_data, data[sel].sum(axis=(1, 2)))
    assert_close(res["pixels"].data, data[sel].sum(axis=0))


class ScalarTagUDF(UDF):
    """A scalar assigned to ``dest.<name>`` in merge fills the partition's frames."""

    def get_result_buffers(self):
        return {
            "value": self.buffer(kind="nav", dtype=int),
            "tag": self.buffer(kind="nav", dtype=int),
        }

    def process_frame(self, frame):
        self.results.value = 1

    def merge(self, dest, src):
        dest.value = src.value
        dest.tag = 7


def test_scalar_broadcast_into_dest(ctx):
    ds = load_mem(ctx, np.zeros((*NAV, *SIG), dtype=np.float32), num_partitions=2)
    res = ctx.run_udf(dataset=ds, udf=ScalarTagUDF())
    assert res["tag"].data.tolist() == np.full(NAV, 7).tolist()
    assert res["value"].data.tolist() == np.ones(NAV, dtype=int).tolist()


class UndeclaredNamesUDF(UDF):
    """Records what assigning undeclared names or unbroadcastable values raises."""

    seen: dict = {}

    def get_result_buffers(self):
        return {"total": self.buffer(kind="sig", dtype=np.float64)}

    def process_frame(self, frame):
        self.results.total[:] += frame
        try:
            self.results.unknown = 1
        except Exception as e:  # noqa: BLE001 - recorded for the test
            UndeclaredNamesUDF.seen["process"] = (type(e), str(e))
        self.results._private_note = "kept"  # underscore names: plain attributes
        UndeclaredNamesUDF.seen["note"] = self.results._private_note

    def merge(self, dest, src):
        dest.total[:] += src.total
        for key, fn in (
            ("dest_unknown", lambda: setattr(dest, "unknown", 1)),
            ("dest_shape", lambda: setattr(dest, "total", np.zeros((3, 3)))),
        ):
            try:
                fn()
            except Exception as e:  # noqa: BLE001 - recorded for the test
                UndeclaredNamesUDF.seen[key] = (type(e), str(e))


def test_undeclared_names_and_bad_shapes(inline_ctx):
    UndeclaredNamesUDF.seen = {}
    data = np.ones((1, 2, *SIG))
    ds = load_mem(inline_ctx, data, num_partitions=1)
    res = inline_ctx.run_udf(dataset=ds, udf=UndeclaredNamesUDF())
    seen = UndeclaredNamesUDF.seen
    assert seen["process"] == (AttributeError, "'unknown'")
    assert seen["dest_unknown"] == (KeyError, "'unknown'")
    assert seen["dest_shape"][0] is ValueError
    assert (
        "could not broadcast input array from shape (3,3) into shape (4,6)"
        in (seen["dest_shape"][1])
    )
    assert seen["note"] == "kept"
    assert np.allclose(res["total"].data, 2.0)


def test_containers_directly():
    buf = BufferWrapper("nav", extra_shape=(2,), dtype="float32")
    buf.set_shape(3, SIG)
    buf.allocate()
    data = UDFData({"a": buf, "plain": np.zeros(4)})
    data.a = 5
    assert np.all(buf.raw_data == 5)
    view = data.a
    view += 1
    data.a = view  # the view itself: nothing to copy, nothing changes
    assert np.all(buf.raw_data == 6)
    data.plain = 2  # non-buffer entries are written into as well
    assert np.all(data.plain == 2)
    mapping = MergeAttrMapping({"x": np.zeros(3)})
    mapping.x = [1, 2, 3]
    assert mapping.x.tolist() == [1, 2, 3]
    with pytest.raises(KeyError):
        mapping.y = 1
    with pytest.raises(ValueError, match="could not broadcast"):
        mapping.x = np.zeros(4)


class DictStyleUDF(UDF):
    """Dict-style access in every method: warns, and gives what LiberTEM gives."""

    types: dict = {}

    def get_result_buffers(self):
        return {"per_frame": self.buffer(kind="nav", dtype=np.float32)}

    def process_frame(self, frame):
        DictStyleUDF.types["process"] = type(self.results["per_frame"])
        self.results.per_frame[:] = frame.sum()

    def merge(self, dest, src):
        DictStyleUDF.types["merge"] = type(dest["per_frame"])
        dest["per_frame"][:] = src["per_frame"]

    def postprocess(self):
        DictStyleUDF.types["postprocess"] = type(self.results["per_frame"])


def test_dict_access_warns(ctx):
    DictStyleUDF.types = {}
    data = make_data((*NAV, *SIG), "float32", seed=8)
    ds = load_mem(ctx, data, num_partitions=1)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        res = ctx.run_udf(dataset=ds, udf=DictStyleUDF())
    assert_close(res["per_frame"].data, data.sum(axis=(2, 3)))
    messages = [str(w.message) for w in caught if w.category is UseDiscouragedWarning]
    long = (
        "dict-like access is discouraged, as it can be confusing vs. using attribute access. "
        "Please use `get_buffer` instead, if you really need the `BufferWrapper` and not "
        "the current view"
    )
    short = "dict-like access is discouraged, as it can be confusing vs. using attribute access"
    # one per access: per frame in process_frame, once in postprocess, three in merge
    assert messages.count(long) == data.shape[0] * data.shape[1] + 1
    assert messages.count(short) == 3
    types = DictStyleUDF.types
    assert types["process"] is BufferWrapper and types["postprocess"] is BufferWrapper
    assert types["merge"] is np.ndarray
    assert issubclass(UseDiscouragedWarning, FutureWarning)


def test_attribute_access_does_not_warn(ctx):
    data = make_data((*NAV, *SIG), "float64", seed=9)
    ds = load_mem(ctx, data, num_partitions=2)
    with warnings.catch_warnings():
        warnings.simplefilter("error", UseDiscouragedWarning)
        res = ctx.run_udf(dataset=ds, udf=AssigningUDF())
    assert np.allclose(res["total"].data, data.sum(axis=(0, 1)))
