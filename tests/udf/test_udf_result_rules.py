"""What the results of a run hold: get_results completion, result_only / private rules,
valid masks, fill values, merge context.

LiberTEM 0.16 behaviours B-udf-5, 6, 8, 13, 23 and B-context-5, 12, 23, on the inline
and thread-pool executors (and the delayed executor where results are assembled there).
"""

from __future__ import annotations

import numpy as np
import pytest

from libertem.api import Context
from libertem.common.buffers import BufferWrapper, InvalidMaskError
from libertem.common.exceptions import UDFException
from libertem.common.shape import Shape
from libertem.udf import UDF
from utils import assert_close, load_mem, make_data, make_roi

NAV, SIG = (3, 4), (4, 4)


@pytest.fixture(scope="module")
def delayed_ctx():
    return Context.make_with("delayed")


def _sel(roi):
    return np.ones(NAV, dtype=bool) if roi is None else roi


class Visibility(UDF):
    def get_result_buffers(self):
        return {
            "plain": self.buffer(kind="nav", dtype=np.float32),
            "hidden": self.buffer(kind="nav", dtype=np.float32, use="private"),
            "late": self.buffer(kind="nav", dtype=np.float32, use="result_only"),
            "total": self.buffer(kind="single", dtype=np.float32, use="result_only"),
        }

    def process_frame(self, frame):
        self.results.plain[:] = frame.sum()
        self.results.hidden[:] = 2 * frame.sum()


class OnlyLate(Visibility):
    def get_results(self):
        return {"late": self.results.hidden / 4}


@pytest.mark.parametrize("use_roi", [False, True])
def test_get_results_is_completed_with_plain_buffers(ctx, use_roi):
    data = make_data((*NAV, *SIG), "float32", seed=1)
    roi = make_roi(NAV, seed=2) if use_roi else None
    ds = load_mem(ctx, data, num_partitions=2)
    res = ctx.run_udf(dataset=ds, udf=OnlyLate(), roi=roi)
    # private never, result_only only when returned
    assert sorted(res.keys()) == ["late", "plain"]
    sums = data[_sel(roi)].sum(axis=(1, 2))
    assert_close(res["plain"].raw_data, sums)
    assert_close(res["late"].raw_data, sums / 2)


def test_get_results_completed_with_delayed(delayed_ctx):
    data = make_data((*NAV, *SIG), "float32", seed=3)
    ds = load_mem(delayed_ctx, data, num_partitions=2)
    res = delayed_ctx.run_udf(dataset=ds, udf=OnlyLate())
    assert {"late", "plain"} <= set(res.keys()) and "hidden" not in res
    assert_close(res["plain"].data, data.sum(axis=(2, 3)))
    assert_close(res["late"].data, data.sum(axis=(2, 3)) / 2)


class PeekResultOnly(Visibility):
    seen: list = []

    def process_frame(self, frame):
        super().process_frame(frame)
        PeekResultOnly.seen.append((self.results.late, "late" in self.results))

    def merge(self, dest, src):
        PeekResultOnly.seen.append(("merge", "late" in dest, "plain" in dest))
        dest.plain[:] = src.plain
        dest.hidden[:] = src.hidden

    def get_results(self):
        return {"late": self.results.plain, "total": np.array([self.results.plain.sum()])}


def test_result_only_reads_none_while_processing(ctx):
    PeekResultOnly.seen = []
    data = make_data((*NAV, *SIG), "float32", seed=4)
    ds = load_mem(ctx, data, num_partitions=2)
    res = ctx.run_udf(dataset=ds, udf=PeekResultOnly())
    assert sorted(res.keys()) == ["late", "plain", "total"]
    frames = [s for s in PeekResultOnly.seen if s[0] != "merge"]
    merges = [s for s in PeekResultOnly.seen if s[0] == "merge"]
    assert len(frames) == NAV[0] * NAV[1] and all(s == (None, True) for s in frames)
    assert merges == [("merge", False, True)] * 2
    assert_close(res["total"].data, [data.sum()])


class ReadsLateInPostprocess(OnlyLate):
    def postprocess(self):
        self.results.late


class ReadsLateInGetResults(Visibility):
    def get_results(self):
        self.results.late
        return {}


class NoGetResults(Visibility):
    pass


class ReturnsPrivate(Visibility):
    def get_results(self):
        return {"late": self.results.plain, "hidden": self.results.hidden}


class ReturnsUndeclared(Visibility):
    def get_results(self):
        return {"late": self.results.plain, "nope": np.zeros(3)}


class WrongKind(Visibility):
    def get_results(self):
        return {"late": self.results.plain.astype(np.int64)}


@pytest.mark.parametrize(
    "cls, exc, message",
    [
        (ReadsLateInPostprocess, ValueError, "doesn't have a value associated with it"),
        (ReadsLateInGetResults, ValueError, "doesn't have a value associated with it"),
        (
            NoGetResults,
            UDFException,
            "don't know how to set use='result_only' buffer 'late'; "
            "please implement `get_results`",
        ),
        (ReturnsPrivate, UDFException, "Don't return `use='private'` buffers from `get_results`"),
        (ReturnsUndeclared, KeyError, "nope"),
        (
            WrongKind,
            UDFException,
            "the returned ndarray 'late' has a different dtype kind (int64) "
            "than declared (float32)",
        ),
    ],
)
def test_get_results_rules(ctx, cls, exc, message):
    ds = load_mem(ctx, make_data((*NAV, *SIG), "float32"), num_partitions=2)
    with pytest.raises(exc) as e:
        ctx.run_udf(dataset=ds, udf=cls())
    assert message in str(e.value)


class FullNavResult(Visibility):
    def get_results(self):
        full = np.full(tuple(self.meta.dataset_shape.nav), -1, dtype=np.float32)
        full[self.meta.roi] = self.results.plain
        return {"late": full}


def test_full_nav_shaped_result_with_roi(ctx):
    data = make_data((*NAV, *SIG), "float32", seed=5)
    roi = make_roi(NAV, seed=6)
    ds = load_mem(ctx, data, num_partitions=2)
    res = ctx.run_udf(dataset=ds, udf=FullNavResult(), roi=roi)
    expected = np.full(NAV, -1, dtype=np.float32)
    expected[roi] = data[roi].sum(axis=(1, 2))
    # shown as returned: values outside the ROI are kept, not replaced by NaN
    assert_close(res["late"].data, expected)
    assert np.isnan(res["plain"].data[~roi]).all()


class SigSumNoMerge(UDF):
    def get_result_buffers(self):
        return {
            "per_frame": self.buffer(kind="nav", dtype="float32"),
            "total": self.buffer(kind="sig", dtype="float32"),
        }

    def process_frame(self, frame):
        self.results.per_frame[:] = frame.sum()
        self.results.total[:] += frame


class NavPlusResultOnlySingle(UDF):
    def get_result_buffers(self):
        return {
            "per_frame": self.buffer(kind="nav", dtype="float32"),
            "grand_total": self.buffer(kind="single", dtype="float32", use="result_only"),
        }

    def process_frame(self, frame):
        self.results.per_frame[:] = frame.sum()

    def get_results(self):
        return {"grand_total": np.array([self.results.per_frame.sum()], dtype="float32")}


def test_default_merge_only_for_nav(ctx):
    data = make_data((*NAV, *SIG), "float32", seed=7)
    ds = load_mem(ctx, data, num_partitions=2)
    with pytest.raises(NotImplementedError) as e:
        ctx.run_udf(dataset=ds, udf=SigSumNoMerge())
    assert str(e.value) == (
        "Default merging only works for kind='nav' buffers. "
        "Please implement a suitable custom merge function."
    )
    res = ctx.run_udf(dataset=ds, udf=NavPlusResultOnlySingle())
    assert sorted(res.keys()) == ["grand_total", "per_frame"]
    assert_close(res["grand_total"].data, [data.sum()])
    assert_close(res["per_frame"].data, data.sum(axis=(2, 3)))


class Masked(UDF):
    def __init__(self, mask):
        super().__init__(mask=mask)

    def get_result_buffers(self):
        return {"img": self.buffer(kind="single", dtype="float32", extra_shape=(8, 8, 3))}

    def process_frame(self, frame):
        pass

    def merge(self, dest, src):
        pass

    def get_results(self):
        return {"img": self.with_mask(np.zeros((8, 8, 3), np.float32), mask=self.params.mask)}


@pytest.mark.parametrize(
    "mask, message",
    [
        (np.zeros((8, 8), bool), "(arr.shape=(8, 8, 3) vs mask.shape=(8, 8))"),
        (np.zeros((8, 8, 4), bool), "(arr.shape=(8, 8, 3) vs mask.shape=(8, 8, 4))"),
        (np.zeros((1, 1, 1, 1), bool), "vs mask.shape=(1, 1, 1, 1))"),
        (np.zeros((8, 8, 1), int), "`mask` should have `dtype=bool` (have int64)"),
        (np.zeros((8, 8, 1), np.float32), "`mask` should have `dtype=bool` (have float32)"),
    ],
)
def test_with_mask_rejects(ctx, mask, message):
    ds = load_mem(ctx, make_data((2, 2, 4, 4), "float32"), num_partitions=1)
    with pytest.raises(InvalidMaskError) as e:
        ctx.run_udf(dataset=ds, udf=Masked(mask))
    assert message in str(e.value)
    assert not isinstance(e.value, UDFException) and InvalidMaskError.__bases__ == (Exception,)
    with pytest.raises(InvalidMaskError):
        UDF.with_mask(np.zeros((8, 8, 3)), mask)


@pytest.mark.parametrize("mask", [True, False, np.zeros((), bool), np.ones((8, 8, 1), bool)])
def test_with_mask_accepts(ctx, mask):
    ds = load_mem(ctx, make_data((2, 2, 4, 4), "float32"), num_partitions=1)
    res = ctx.run_udf(dataset=ds, udf=Masked(mask))
    valid = res["img"].valid_mask
    assert valid.shape == (8, 8, 3) and valid.dtype == bool
    assert np.array_equal(valid, np.broadcast_to(mask, (8, 8, 3)))
    assert UDF.with_mask(np.zeros((8, 8, 3)), mask).mask.shape == (8, 8, 3)


class Kinds(UDF):
    def get_result_buffers(self):
        return {
            "b": self.buffer(kind="nav", dtype="S2"),
            "u": self.buffer(kind="nav", dtype="U2"),
            "i": self.buffer(kind="nav", dtype=np.int16),
            "f": self.buffer(kind="nav", dtype=np.float32),
            "c": self.buffer(kind="nav", dtype=np.complex64),
            "q": self.buffer(kind="nav", dtype=bool),
            "t": self.buffer(kind="nav", dtype="datetime64[s]"),
            "o": self.buffer(kind="nav", dtype=object),
        }

    def process_frame(self, frame):
        r = self.results
        r.b[:] = b"ab"
        r.u[:] = "xy"
        r.i[:] = 3
        r.f[:] = 1.5
        r.c[:] = 1j
        r.q[:] = True
        r.t[:] = np.datetime64("2020-01-01T00:00:00")
        r.o[0] = "obj"


def _check_fill(res, roi):
    out = ~roi
    assert res["b"].data[out].tolist() == [b""] * out.sum()
    assert res["u"].data[out].tolist() == [""] * out.sum()
    assert (res["i"].data[out] == 0).all() and not res["q"].data[out].any()
    assert np.isnan(res["f"].data[out]).all()
    c = res["c"].data[out]
    assert np.isnan(c.real).all() and np.isnan(c.imag).all()
    assert np.isnat(res["t"].data[out]).all()
    assert all(v is None for v in res["o"].data[out])
    assert res["b"].data[roi].tolist() == [b"ab"] * roi.sum()
    assert (res["c"].data[roi] == 1j).all()


def test_fill_values_outside_roi(ctx):
    roi = make_roi(NAV, seed=8)
    ds = load_mem(ctx, np.ones((*NAV, *SIG), np.float32), num_partitions=2)
    _check_fill(ctx.run_udf(dataset=ds, udf=Kinds(), roi=roi), roi)


def test_fill_values_outside_roi_delayed(delayed_ctx):
    roi = make_roi(NAV, seed=8)
    ds = load_mem(delayed_ctx, np.ones((*NAV, *SIG), np.float32), num_partitions=2)
    res = delayed_ctx.run_udf(dataset=ds, udf=Kinds(), roi=roi)
    _check_fill({k: res[k] for k in "buifcq"} | {"t": res["t"], "o": res["o"]}, roi)


@pytest.mark.parametrize(
    "kind, valid, roi, shape, flat",
    [
        ("nav", [True, False, True], None, (3, 1, 2), [1, 1, 0, 0, 1, 1]),
        ("nav", [False, True], [True, False, True], (2, 1, 2), [0, 0, 1, 1]),
        ("sig", [True, True, False], None, (8, 8, 1, 2), None),
        ("single", [True, True, False], None, (1, 2), None),
    ],
)
def test_make_default_mask(kind, valid, roi, shape, flat):
    buf = BufferWrapper(kind=kind, extra_shape=(1, 2), dtype="float32")
    roi = None if roi is None else np.array(roi)
    mask = buf.make_default_mask(np.array(valid), Shape((3, 1, 8, 8), sig_dims=2), roi=roi)
    assert mask.shape == shape and mask.dtype == bool
    if flat is None:
        assert mask.all()
    else:
        assert mask.astype(int).reshape(-1).tolist() == flat
    single = BufferWrapper(kind="single", dtype="float32")
    assert single.make_default_mask(np.ones(3, bool), Shape((3, 8, 8), sig_dims=2)).shape == (1,)


class MaskSpy(UDF):
    seen: list = []

    def get_result_buffers(self):
        return {"total": self.buffer(kind="sig", dtype=np.float32)}

    def process_frame(self, frame):
        MaskSpy.seen.append(("process", self.meta.get_valid_nav_mask()))
        self.results.total[:] += frame

    def merge(self, dest, src):
        m = self.meta
        MaskSpy.seen.append(("merge", m.get_valid_nav_mask(), m.get_valid_nav_mask(True)))
        dest.total[:] += src.total

    def get_results(self):
        m = self.meta
        MaskSpy.seen.append(("results", m.get_valid_nav_mask(), m.get_valid_nav_mask(True)))
        return {}


@pytest.mark.parametrize("use_roi", [False, True])
def test_valid_nav_mask_in_merge(ctx, use_roi):
    MaskSpy.seen = []
    roi = make_roi(NAV, seed=9) if use_roi else None
    sel = _sel(roi).reshape(-1)
    ds = load_mem(ctx, np.ones((*NAV, *SIG), np.float32), num_partitions=3)
    res = ctx.run_udf(dataset=ds, udf=MaskSpy(), roi=roi)
    assert res["total"].data[0, 0] == sel.sum()
    assert all(s[1] is None for s in MaskSpy.seen if s[0] == "process")
    merges = [s for s in MaskSpy.seen if s[0] == "merge"]
    # one merge per partition (a row) with selected frames
    partitions = [p for p in range(NAV[0]) if sel.reshape(NAV)[p].any()]
    assert len(merges) == len(partitions)
    rows = np.arange(sel.size) // NAV[1]
    for p, (_, compressed, full) in zip(partitions, merges):
        expected_full = sel & (rows < p)  # the partitions merged before this one
        assert full.tolist() == expected_full.tolist()
        assert compressed.tolist() == expected_full[sel].tolist()
    (_, compressed, full) = [s for s in MaskSpy.seen if s[0] == "results"][-1]
    assert full.tolist() == sel.tolist() and compressed.all() and compressed.size == sel.sum()


class AuxInMerge(UDF):
    def get_result_buffers(self):
        return {"copy": self.buffer(kind="nav", dtype=np.float32)}

    def process_frame(self, frame):
        pass

    def merge(self, dest, src):
        assert self.params.weights.shape == src.copy.shape
        dest.copy[:] = self.params.weights

    def get_results(self):
        # on the main node outside merge: the selected frames of the whole dataset
        assert self.params.weights.shape == self.results.copy.shape
        return {}


@pytest.mark.parametrize("use_roi", [False, True])
def test_aux_data_in_merge_is_the_partition_part(ctx, use_roi):
    roi = make_roi(NAV, seed=10) if use_roi else None
    ds = load_mem(ctx, np.zeros((*NAV, *SIG), np.float32), num_partitions=2)
    weights = np.arange(NAV[0] * NAV[1], dtype=np.float32)
    w = AuxInMerge.aux_data(data=weights, kind="nav", dtype=np.float32)
    res = ctx.run_udf(dataset=ds, udf=AuxInMerge(weights=w), roi=roi)
    assert res["copy"].raw_data.tolist() == weights[_sel(roi).reshape(-1)].tolist()


def test_aux_data_in_merge_after_parameter_update(inline_ctx):
    roi = make_roi(NAV, seed=12)
    sel = roi.reshape(-1)
    ds = load_mem(inline_ctx, np.zeros((*NAV, *SIG), np.float32), num_partitions=3)

    def aux(values):
        return AuxInMerge.aux_data(data=values, kind="nav", dtype=np.float32)

    new = np.arange(sel.size, dtype=np.float32) + 100
    it = inline_ctx.run_udf_iter(
        dataset=ds, udf=AuxInMerge(weights=aux(np.zeros(12, np.float32))), roi=roi
    )
    first = next(it)
    done_first = first.damage.data.reshape(-1)
    it.update_parameters_experimental([{"weights": aux(new)}])
    *_, last = it
    expected = np.where(done_first, 0, new)[sel]
    assert last.buffers[0]["copy"].raw_data.tolist() == expected.tolist()
