"""How a run goes: processing methods, partial results, laziness, cancellation, inputs.

LiberTEM 0.16 behaviours B-udf-7, 16, 21, 22 and B-context-11, 17, 22, 28, on the
inline and the thread-pool executor.
"""

from __future__ import annotations

import asyncio
import inspect
import warnings

import numpy as np
import pytest

from libertem.common.exceptions import UDFException, UDFRunCancelled
from libertem.common.executor import JobCancelledError, TaskCommHandler
from libertem.common.udf import UDFMethod
from libertem.io.dataset.memory import MemoryDataSet
from libertem.udf import UDF
from libertem.udf.base import NoOpUDF
from libertem.udf.sum import SumUDF
from utils import assert_close, assert_ctx_works, load_mem, make_data, make_roi

NAV, SIG = (3, 4), (4, 4)


class Chooser(UDF):
    def get_result_buffers(self):
        return {"which": self.buffer(kind="nav", dtype=int)}

    def process_tile(self, tile):
        self.results.which[:] = 1

    def process_frame(self, frame):
        self.results.which[:] = 2

    def process_partition(self, partition):
        self.results.which[:] = 3

    def get_method(self):
        return self.params.method


class Claims(UDF):
    def get_result_buffers(self):
        return {}

    def get_method(self):
        return self.params.method


class FrameOnly(UDF):
    def get_result_buffers(self):
        return {}

    def process_frame(self, frame):
        pass


def test_udf_method_enum_and_default():
    assert UDF.UDF_METHOD is UDFMethod and UDF.UDF_METHOD.FRAME is UDFMethod.FRAME
    assert [(m.name, m.value) for m in UDFMethod] == [
        ("TILE", "tile"),
        ("FRAME", "frame"),
        ("PARTITION", "partition"),
    ]
    assert FrameOnly().get_method() is UDFMethod.FRAME
    # the default prefers process_tile, then process_frame, then process_partition
    assert UDF.get_method(Chooser(method=None)) is UDFMethod.TILE

    class Nothing(UDF):
        pass

    udf = Nothing()  # constructing is fine, asking for the method is not
    with pytest.raises(TypeError, match=r"UDF should implement one of the `process_\*` methods"):
        udf.get_method()


@pytest.mark.parametrize(
    "method, which", [(UDFMethod.TILE, 1), (UDFMethod.FRAME, 2), (UDFMethod.PARTITION, 3)]
)
def test_get_method_chooses(ctx, method, which):
    ds = load_mem(ctx, np.ones((*NAV, *SIG)), num_partitions=2)
    res = ctx.run_udf(dataset=ds, udf=Chooser(method=method))
    assert (res["which"].data == which).all()


@pytest.mark.parametrize(
    "method, message",
    [
        (UDFMethod.TILE, "UDF declared method tile but does not implement process_tile."),
        (UDFMethod.FRAME, "UDF declared method frame but does not implement process_frame."),
        (
            UDFMethod.PARTITION,
            "UDF declared method partition but does not implement process_partition.",
        ),
        (42, "UDF.get_method() returned unrecognized value"),
        ("tile", "UDF.get_method() returned unrecognized value"),
    ],
)
def test_get_method_checked(ctx, method, message):
    ds = load_mem(ctx, np.ones((*NAV, *SIG)), num_partitions=2)
    with pytest.raises(UDFException) as e:
        ctx.run_udf(dataset=ds, udf=Claims(method=method))
    assert str(e.value) == message
    assert_ctx_works(ctx)


class UsesSchemeIdx(NoOpUDF):
    def process_tile(self, tile):
        tile.scheme_idx


class UsesTileSlice(NoOpUDF):
    def process_tile(self, tile):
        tile.tile_slice


class OtherAttributeError(NoOpUDF):
    def process_tile(self, tile):
        tile.no_such_thing


@pytest.mark.parametrize(
    "cls, message",
    [
        (
            UsesSchemeIdx,
            "Attribute scheme_idx for input tiles was removed. "
            "Please use self.meta.tiling_scheme_idx instead.",
        ),
        (
            UsesTileSlice,
            "Attribute tile_slice for input tiles was removed. "
            "Please use self.meta.slice instead.",
        ),
        (OtherAttributeError, "'numpy.ndarray' object has no attribute 'no_such_thing'"),
    ],
)
def test_removed_tile_attributes(ctx, cls, message):
    ds = load_mem(ctx, np.ones((*NAV, *SIG)), num_partitions=2)
    with pytest.raises(AttributeError) as e:
        ctx.run_udf(dataset=ds, udf=cls())
    assert str(e.value) == message
    assert_ctx_works(ctx)


@pytest.mark.parametrize("use_roi", [False, True])
def test_one_result_per_partition_and_compressed_damage(ctx, use_roi):
    data = make_data((*NAV, *SIG), "float32", seed=2)
    roi = make_roi(NAV, seed=3) if use_roi else None
    sel = np.ones(NAV, bool) if roi is None else roi
    ds = load_mem(ctx, data, num_partitions=3)
    parts = list(ctx.run_udf_iter(dataset=ds, udf=SumUDF(), roi=roi))
    non_empty = [p for p in range(NAV[0]) if sel[p].any()]
    assert len(parts) == len(non_empty)
    for part, p in zip(parts, non_empty):
        d = part.damage
        assert (d.kind, d.dtype) == ("nav", np.dtype(bool))
        expected = sel & (np.arange(NAV[0])[:, None] <= p)
        assert d.data.tolist() == expected.tolist()
        assert d.raw_data.tolist() == expected[sel].tolist()
    final = parts[-1].buffers[0]["intensity"].data
    assert_close(final, data[sel].sum(axis=0))


def test_empty_roi_still_gives_a_result(ctx):
    ds = load_mem(ctx, np.ones((*NAV, *SIG), np.float32), num_partitions=3)
    roi = np.zeros(NAV, dtype=bool)
    parts = list(ctx.run_udf_iter(dataset=ds, udf=SumUDF(), roi=roi))
    assert len(parts) == 1 and not parts[0].damage.data.any()
    assert (ctx.run_udf(dataset=ds, udf=SumUDF(), roi=roi)["intensity"].data == 0).all()


class CountingUDF(UDF):
    calls = 0

    def get_result_buffers(self):
        return {"per_frame": self.buffer(kind="nav", dtype="float32")}

    def process_frame(self, frame):
        self.results.per_frame[:] = frame.sum()

    def get_results(self):
        CountingUDF.calls += 1
        return {}


class FailingGetResults(CountingUDF):
    def get_results(self):
        raise RuntimeError("get_results failed")


def test_get_results_runs_lazily_once(ctx):
    ds = load_mem(ctx, np.ones((*NAV, *SIG), np.float32), num_partitions=3)
    CountingUDF.calls = 0
    for _part in ctx.run_udf_iter(dataset=ds, udf=CountingUDF()):
        pass
    assert CountingUDF.calls == 0
    for part in ctx.run_udf_iter(dataset=ds, udf=CountingUDF()):
        assert part.buffers is part.buffers
        assert (part.buffers[0]["per_frame"].raw_data == 16).sum() == part.damage.raw_data.sum()
    assert CountingUDF.calls == 3
    CountingUDF.calls = 0
    ctx.run_udf(dataset=ds, udf=CountingUDF())
    assert CountingUDF.calls == 1
    # an error in get_results shows only when the results are read
    parts = list(ctx.run_udf_iter(dataset=ds, udf=FailingGetResults()))
    with pytest.raises(RuntimeError, match="get_results failed"):
        parts[-1].buffers
    assert_ctx_works(ctx)


class Stamp(UDF):
    def __init__(self, stamp=0):
        super().__init__(stamp=stamp)

    def get_result_buffers(self):
        return {"stamp": self.buffer(kind="nav", dtype=int)}

    def process_partition(self, partition):
        self.results.stamp[:] = self.params.stamp


def test_async_update_parameters_is_a_coroutine(inline_ctx):
    ds = load_mem(inline_ctx, np.zeros((2, 3, *SIG)), num_partitions=2)

    async def main():
        it = inline_ctx.run_udf_iter(dataset=ds, udf=[Stamp(stamp=0)], sync=False)
        n, awaitables, last = 0, [], None
        async for part in it:
            r = it.update_parameters_experimental([{"stamp": n + 1}])
            awaitables.append(inspect.isawaitable(r))
            await r
            n += 1
            last = part
        return awaitables, last.buffers[0]["stamp"].data.tolist()

    awaitables, stamps = asyncio.run(main())
    assert awaitables == [True, True]
    assert stamps == [[0, 0, 0], [1, 1, 1]]
    # the synchronous iterator's method is a plain method
    it = inline_ctx.run_udf_iter(dataset=ds, udf=[Stamp(stamp=0)])
    next(it)
    assert it.update_parameters_experimental([{"stamp": 5}]) is None
    assert next(it).buffers[0]["stamp"].data.tolist() == [[0, 0, 0], [5, 5, 5]]


class GiveUp(UDF):
    def get_result_buffers(self):
        return {"x": self.buffer(kind="nav", dtype="float32")}

    def process_frame(self, frame):
        if self.meta.coordinates[0, 0] >= self.params.row:
            raise JobCancelledError()
        self.results.x[:] = 1


@pytest.mark.parametrize("how", ["run_udf", "run_udf_iter"])
def test_cancellation_message(inline_ctx, how):
    ds = load_mem(inline_ctx, np.ones((*NAV, *SIG), np.float32), num_partitions=3)
    with pytest.raises(UDFRunCancelled) as e:
        if how == "run_udf":
            inline_ctx.run_udf(dataset=ds, udf=GiveUp(row=2))
        else:
            for _part in inline_ctx.run_udf_iter(dataset=ds, udf=GiveUp(row=2)):
                pass
    assert str(e.value) == "UDF run cancelled after 2 partitions"
    assert not isinstance(e.value, JobCancelledError)
    assert isinstance(e.value.__cause__, JobCancelledError)
    assert_ctx_works(inline_ctx)


def test_cancellation_on_threads(threads_ctx):
    ds = load_mem(threads_ctx, np.ones((*NAV, *SIG), np.float32), num_partitions=3)
    with pytest.raises(UDFRunCancelled, match=r"UDF run cancelled after \d partitions"):
        threads_ctx.run_udf(dataset=ds, udf=GiveUp(row=0))
    assert_ctx_works(threads_ctx)


class Recording(TaskCommHandler):
    def __init__(self, stop_after=None):
        self.seen = []
        self.stop_after = stop_after

    def handle_task(self, task, queue):
        self.seen.append("handle_task")
        if self.stop_after is not None and self.seen.count("handle_task") > self.stop_after:
            raise JobCancelledError()

    def start(self):
        self.seen.append("start")

    def done(self):
        self.seen.append("done")


class HandlerDataSet(MemoryDataSet):
    handler: Recording

    def get_task_comm_handler(self):
        return self.handler


@pytest.mark.parametrize("stop_after", [None, 2])
def test_dataset_task_comm_handler(inline_ctx, stop_after):
    data = np.ones((4, 4, *SIG), np.float32)
    ds = HandlerDataSet(data=data, num_partitions=4)
    ds.handler = Recording(stop_after)
    ds.initialize(inline_ctx.executor)
    if stop_after is None:
        res = inline_ctx.run_udf(dataset=ds, udf=SumUDF())
        assert (res["intensity"].data == 16).all()
        assert ds.handler.seen == ["start"] + ["handle_task"] * 4 + ["done"]
    else:
        with pytest.raises(UDFRunCancelled, match="UDF run cancelled after 2 partitions"):
            inline_ctx.run_udf(dataset=ds, udf=SumUDF())
        assert ds.handler.seen == ["start"] + ["handle_task"] * 3
    assert_ctx_works(inline_ctx)


def test_empty_udf_list(ctx):
    ds = load_mem(ctx, np.ones((*NAV, *SIG), np.float32))
    for call in (
        lambda: ctx.run_udf(dataset=ds, udf=[]),
        lambda: list(ctx.run_udf_iter(dataset=ds, udf=[])),
    ):
        with pytest.raises(ValueError) as e:
            call()
        assert str(e.value) == "empty list of UDFs - nothing to do!"


@pytest.mark.parametrize("dtype", [int, float, np.uint8, np.float32])
def test_non_boolean_roi_is_cast(ctx, dtype):
    data = make_data((*NAV, *SIG), "float32", seed=11)
    ds = load_mem(ctx, data, num_partitions=2)
    roi = np.zeros(NAV, dtype=dtype)
    roi[0, 1] = 1
    roi[2, 3] = 2
    before = roi.copy()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        res = ctx.run_udf(dataset=ds, udf=SumUDF(), roi=roi)
    msgs = [(w.category, str(w.message)) for w in caught if "ROI" in str(w.message)]
    assert msgs == [
        (UserWarning, f"ROI dtype is {np.dtype(dtype)}, expected bool. Attempting cast to bool.")
    ]
    assert roi.dtype == before.dtype and np.array_equal(roi, before)
    assert_close(res["intensity"].data, data[roi != 0].sum(axis=0))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ctx.run_udf(dataset=ds, udf=SumUDF(), roi=roi != 0)  # bool: no warning
