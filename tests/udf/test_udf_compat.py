"""LiberTEM 0.16's UDF interface on our engine: the members beyond the basics."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from libertem.common.buffers import (
    ArrayWithMask,
    AuxBufferWrapper,
    InvalidMaskError,
    PlaceholderBufferWrapper,
)
from libertem.common.udf import TileDepthEnum, TileSizeEnum, UDFMethod, UDFProtocol
from libertem.udf import UDF, check_cast
from libertem.udf.auto import AutoUDF
from libertem.udf.base import (
    MergeAttrMapping,
    UDFBase,
    UDFData,
    UDFKwargsWrapper,
    UDFMeta,
    UDFParams,
    UDFPartRunner,
    UDFResults,
    UDFRunner,
    UDFTask,
)
from libertem.udf.sum import SumUDF

NAV, SIG = (6, 4), (8, 8)


@pytest.fixture(scope="module")
def data():
    return np.random.default_rng(2).random(NAV + SIG).astype(np.float32)


class FrameSumUDF(UDF):
    def get_result_buffers(self):
        return {"s": self.buffer(kind="nav", dtype="float64")}

    def process_frame(self, frame):
        self.results.s[:] = frame.sum()


class MaskedUDF(UDF):
    """Frame sums, marking frames above a threshold invalid via ``with_mask``."""

    def get_result_buffers(self):
        return {"s": self.buffer(kind="nav", dtype="float64")}

    def process_frame(self, frame):
        self.results.s[:] = frame.sum()

    def get_results(self):
        s = self.results.s
        return {"s": self.with_mask(s, s < self.params.limit)}


def test_protocol_and_enums():
    udf = FrameSumUDF()
    assert isinstance(udf, UDFBase) and isinstance(udf, UDFProtocol)
    assert udf.get_method() is UDFMethod.FRAME
    assert UDF.TILE_SIZE_BEST_FIT is TileSizeEnum.BEST_FIT
    assert UDF.TILE_DEPTH_DEFAULT is TileDepthEnum.DEFAULT
    assert UDF.TILE_DEPTH_MAX == UDF.TILE_SIZE_MAX == float("inf")
    assert SumUDF().get_method() is UDFMethod.TILE


def test_with_mask_sets_valid_mask(ctx, data):
    ds = ctx.load("memory", data=data, sig_dims=2, num_partitions=2)
    limit = float(np.median(data.sum(axis=(2, 3))))
    res = ctx.run_udf(dataset=ds, udf=MaskedUDF(limit=limit))
    sums = data.sum(axis=(2, 3))
    assert np.allclose(res["s"].data, sums)
    assert np.array_equal(res["s"].valid_mask, sums < limit)
    masked = res["s"].masked_data
    assert np.array_equal(masked.mask, ~(sums < limit))
    assert np.isclose(masked.sum(), sums[sums < limit].sum())
    assert np.array_equal(res["s"].raw_masked_data.mask.reshape(NAV), ~(sums < limit))
    assert isinstance(UDF.with_mask(np.ones(3), True), ArrayWithMask)


def test_bad_mask_is_an_error(ctx, data):
    class Bad(MaskedUDF):
        def get_results(self):
            return {"s": self.with_mask(self.results.s, np.ones(5, dtype=bool))}

    ds = ctx.load("memory", data=data, sig_dims=2)
    with pytest.raises(InvalidMaskError, match="must have compatible shapes"):
        ctx.run_udf(dataset=ds, udf=Bad(limit=0))


def test_default_valid_masks_with_roi_and_partial_results(inline_ctx, data):
    ds = inline_ctx.load("memory", data=data, sig_dims=2, num_partitions=3)
    roi = np.zeros(NAV, dtype=bool)
    roi[1:, ::2] = True
    seen_valid = []

    class Rec(FrameSumUDF):
        def get_result_buffers(self):
            return {**super().get_result_buffers(), "sig": self.buffer(kind="sig")}

        def merge(self, dest, src):
            dest.s[:] = src.s
            dest.sig[:] += src.sig

        def get_results(self):
            seen_valid.append(self.meta.get_valid_nav_mask(full_nav=True).copy())
            return super().get_results()

    items = list(inline_ctx.run_udf_iter(dataset=ds, udf=Rec(), roi=roi))
    assert len(items) >= 2
    first = items[0].buffers[0]
    done = items[0].damage.data
    assert np.array_equal(first["s"].valid_mask, done & roi)
    assert first["sig"].valid_mask.all()
    assert not np.array_equal(done & roi, roi)  # partial indeed
    assert np.array_equal(items[-1].buffers[0]["s"].valid_mask, roi)
    assert np.array_equal(seen_valid[0].reshape(NAV), done & roi)
    # the inner slice of complete rows, the bounding box of valid ones
    final = items[-1].buffers[0]["s"]
    assert final.valid_slice_bounding == (slice(1, 6), slice(0, 3))
    assert final.get_valid_slice_inner(axis=1) == (slice(None), slice(0, 0))


def test_copy_for_partition_and_aux(ctx, data):
    ds = ctx.load("memory", data=data, sig_dims=2, num_partitions=3)
    weights = np.arange(np.prod(NAV), dtype=np.float32)
    aux = UDF.aux_data(weights, kind="nav")
    assert isinstance(aux, AuxBufferWrapper)

    class Weighted(UDF):
        def __init__(self, w):
            super().__init__(w=w)

        def get_result_buffers(self):
            return {"s": self.buffer(kind="nav")}

        def process_frame(self, frame):
            self.results.s[:] = frame.sum() * self.params.w

    udf = Weighted(w=aux)
    partition = list(ds.get_partitions())[1]
    copy = udf.copy_for_partition(partition, None)
    assert np.array_equal(
        copy.params._data["w"].raw_data, weights[partition.start : partition.stop]
    )
    roi = np.zeros(NAV, dtype=bool)
    roi.flat[partition.start + 1] = True
    copy = Weighted.new_for_partition(udf._kwargs, partition, roi)
    assert np.array_equal(copy.params._data["w"].raw_data, weights[[partition.start + 1]])
    res = ctx.run_udf(dataset=ds, udf=udf)
    assert np.allclose(res["s"].data.reshape(-1), data.sum(axis=(2, 3)).reshape(-1) * weights)


def test_requires_custom_merge():
    udf = FrameSumUDF()
    udf.meta = UDFMeta(None, _shape(), None, "float32", "float32")
    assert not udf.requires_custom_merge and not udf.requires_custom_merge_all
    sums = SumUDF()
    sums.meta = udf.meta
    assert sums.requires_custom_merge and sums.requires_custom_merge_all


def _shape():
    from libertem.common.shape import Shape

    return Shape(NAV + SIG, sig_dims=2)


def test_udfdata_and_merge_mapping():
    from libertem.common.buffers import BufferWrapper

    buf = BufferWrapper("nav", dtype="float32")
    buf.set_shape(4, SIG)
    buf.allocate()
    d = UDFData({"a": buf, "x": 3})
    assert d.get("x") == 3 and d.get("missing", "dflt") == "dflt"
    assert list(d.keys()) == ["a", "x"] and len(list(d.values())) == 2
    assert d.as_dict()["a"] is buf
    d.set_buffer("y", 5)
    assert d.y == 5
    proxy = d.get_proxy()
    assert isinstance(proxy, MergeAttrMapping) and proxy.x == 3 and proxy.a.shape == (4,)
    # assignment writes into the arrays (LiberTEM 0.16), it does not rebind
    proxy.a = 1
    assert np.all(buf.raw_data == 1)
    d.a = 2
    assert np.all(buf.raw_data == 2)
    with pytest.raises(KeyError):
        proxy.missing = 1
    with pytest.raises(AttributeError):
        d.missing = 1
    kw = UDFKwargsWrapper({"k": UDF.aux_data(np.arange(24, dtype=np.float32), kind="nav")})
    assert isinstance(kw, UDFData)


def test_views_api_on_partition(data, inline_ctx):
    """Drive buffers by hand with LiberTEM's view methods: same as the engine does."""
    from libertem.io.dataset.base import TilingScheme

    ds = inline_ctx.load("memory", data=data, sig_dims=2, num_partitions=2)
    partition = list(ds.get_partitions())[1]
    udf = SumUDF()
    udf.set_meta(UDFMeta(partition.slice, ds.shape, None, ds.dtype, np.float32))
    udf.init_result_buffers()
    udf.allocate_for_part(partition, None)
    udf.init_task_data()
    scheme = TilingScheme.make_for_shape((2, 4, 8), ds.shape)
    nav = FrameSumUDF()
    nav.set_meta(UDFMeta(partition.slice, ds.shape, None, ds.dtype, np.float32))
    nav.init_result_buffers()
    nav.allocate_for_part(partition, None)
    for tile in partition.get_tiles(scheme, np.float32):
        udf.set_views_for_tile(partition, tile)
        assert udf.meta.slice.origin[0] == partition.start + tile.slice.origin[0]
        udf.process_tile(tile.data)
        for k in range(tile.slice.shape[0]):
            nav.set_views_for_frame(partition, tile, k)
            nav.results.s[:] += tile.data[k].sum()
        nav.flush()
    udf.clear_views()
    nav.clear_views()
    udf.export_results()
    frames = data.reshape((-1, *SIG))[partition.start : partition.stop]
    assert np.allclose(udf.results.intensity, frames.sum(axis=0))
    assert np.allclose(nav.results.s, frames.sum(axis=(1, 2)))


def test_contiguous_views_flush():
    from libertem.common.buffers import BufferWrapper
    from libertem.common.shape import Shape
    from libertem.common.slice import Slice
    from libertem.io.dataset.base import DataTile

    buf = BufferWrapper("sig", dtype="float64")
    buf.set_shape(3, (4, 6))
    buf.allocate()
    tile = DataTile(np.ones((3, 4, 2)), Slice((0, 0, 2), Shape((3, 4, 2), sig_dims=2)), 1)
    view = buf.get_contiguous_view_for_tile(None, tile)
    assert view.flags.c_contiguous and not np.shares_memory(view, buf.raw_data)
    view[:] = 7
    assert not buf.raw_data.any()
    buf.flush()
    assert np.all(buf.raw_data[:, 2:4] == 7) and buf.raw_data.sum() == 7 * 8


def test_placeholder_for_result_only(ctx, data):
    class ResultOnly(FrameSumUDF):
        def get_result_buffers(self):
            return {
                **super().get_result_buffers(),
                "r": self.buffer(kind="single", use="result_only"),
            }

        def process_frame(self, frame):
            assert isinstance(self.results.get_buffer("r"), PlaceholderBufferWrapper)
            assert self.results.r is None  # result_only: no value while processing
            super().process_frame(frame)

        def get_results(self):
            return {"s": self.results.s, "r": np.array([self.results.s.sum()])}

    ds = ctx.load("memory", data=data, sig_dims=2)
    res = ctx.run_udf(dataset=ds, udf=ResultOnly())
    assert np.isclose(res["r"].data[0], data.sum(dtype=np.float64))


def test_meta_members(ctx, data):
    seen = {}

    class MetaUDF(UDF):
        def get_result_buffers(self):
            return {"idx": self.buffer(kind="nav", dtype="int64")}

        def get_tiling_preferences(self):
            return {"depth": 2, "total_size": 2 * 4 * 8 * 4}

        def process_tile(self, tile):
            self.results.idx[:] += 10**self.meta.tiling_scheme_idx
            seen["tpw"] = self.meta.threads_per_worker
            seen["corrections"] = self.meta.corrections
            seen["valid"] = self.meta.get_valid_nav_mask()
            seen["sig_slice"] = self.meta.sig_slice

    ds = ctx.load("memory", data=data, sig_dims=2, tileshape=(2, 4, 8))
    res = ctx.run_udf(dataset=ds, udf=MetaUDF())
    assert np.all(res["idx"].data == 11)  # each frame in two tiles, index 0 and 1
    assert isinstance(seen["tpw"], int) and seen["tpw"] >= 1
    assert seen["valid"] is None
    assert not seen["corrections"].have_corrections()
    assert tuple(seen["sig_slice"].shape) == (4, 8)


def test_meta_signature():
    from libertem.common.slice import Slice

    shape = _shape()
    roi = np.zeros(NAV, dtype=bool)
    roi[0, :3] = True
    sl = Slice.from_shape((3, *SIG), sig_dims=2)
    meta = UDFMeta(sl, shape, roi, "uint16", "float32", threads_per_worker=3)
    assert meta.partition_shape == sl.shape and meta.array_backend == "numpy"
    assert meta.device_class == "cpu" and meta.threads_per_worker == 3
    assert np.array_equal(meta.coordinates, [[0, 0], [0, 1], [0, 2]])
    meta.set_valid_nav_mask(np.array([True, False, True]))
    assert np.array_equal(meta.get_valid_nav_mask(), [True, False, True])
    full = meta.get_valid_nav_mask(full_nav=True)
    assert full.shape == (24,) and list(np.flatnonzero(full)) == [0, 2]


def test_inspect_and_dry_run(inline_ctx, data):
    ds = inline_ctx.load("memory", data=data, sig_dims=2)
    bufs = UDFRunner.inspect_udf(SumUDF(), ds)
    assert set(bufs) == {"intensity"} and bufs["intensity"].shape == SIG
    assert bufs["intensity"].kind == "sig"
    dry = UDFRunner.dry_run([FrameSumUDF(), SumUDF()], ds)
    assert isinstance(dry, UDFResults) and not dry.damage.data.any()
    assert dry.buffers[0]["s"].data.shape == NAV and not dry.buffers[0]["s"].valid_mask.any()
    assert UDFRunner.get_part_runner_cls() is UDFPartRunner


def test_runner_methods(ctx, data):
    ds = ctx.load("memory", data=data, sig_dims=2, num_partitions=3)
    runner = UDFRunner([FrameSumUDF()])
    res = runner.run_for_dataset(ds, ctx.executor)
    assert isinstance(res, UDFResults)
    assert np.allclose(res.buffers[0]["s"].data, data.sum(axis=(2, 3)))
    items = list(UDFRunner([FrameSumUDF()]).run_for_dataset_sync(ds, ctx.executor))
    assert 2 <= len(items) <= 4 and items[-1].damage.data.all()
    raw, handle, params = UDFRunner([FrameSumUDF()]).results_for_dataset_sync(ds, ctx.executor)
    assert isinstance(params, UDFParams)
    parts = sorted(raw, key=lambda pt: pt[1].task_id)
    assert all(isinstance(task, UDFTask) for _, task in parts)
    flat = np.concatenate([p[0]["s"] for p, _ in parts])
    assert np.allclose(flat, data.sum(axis=(2, 3)).reshape(-1))


def test_async_runs(ctx, data):
    ds = ctx.load("memory", data=data, sig_dims=2, num_partitions=2)

    async def main():
        items = []
        async for item in UDFRunner([FrameSumUDF()]).run_for_dataset_async(ds, ctx.executor, "x"):
            items.append(item)
        agen = ctx.run_udf_iter(dataset=ds, udf=FrameSumUDF(), sync=False)
        last = None
        async for item in agen:
            last = item
        return items, last

    items, last = asyncio.run(main())
    assert 2 <= len(items) <= 3 and items[-1].damage.data.all()
    assert np.allclose(last.buffers[0]["s"].data, data.sum(axis=(2, 3)))


def test_update_parameters_while_running(inline_ctx, data):
    class Scaled(UDF):
        def __init__(self, factor=1.0):
            super().__init__(factor=factor)

        def get_result_buffers(self):
            return {"s": self.buffer(kind="nav", dtype="float64")}

        def process_frame(self, frame):
            self.results.s[:] = frame.sum() * self.params.factor

    ds = inline_ctx.load("memory", data=data, sig_dims=2, num_partitions=3)
    gen = inline_ctx.run_udf_iter(dataset=ds, udf=Scaled())
    first = next(gen)
    gen.update_parameters_experimental([{"factor": 2.0}])
    items = [first, *gen]
    final = items[-1].buffers[0]["s"].raw_data
    sums = data.sum(axis=(2, 3)).reshape(-1)
    n = NAV[0] * NAV[1] // 3
    assert np.allclose(final[:n], sums[:n])
    assert np.allclose(final[n:], 2 * sums[n:])


def test_cleanup_is_called(ctx, data):
    calls = []

    class Clean(FrameSumUDF):
        def cleanup(self):
            calls.append(self.meta.partition_shape[0])

    ds = ctx.load("memory", data=data, sig_dims=2, num_partitions=3)
    ctx.run_udf(dataset=ds, udf=Clean())
    # once per partition (on the copies that processed data), once on the main node
    assert sorted(calls) == [8, 8, 8, 24]


def test_tiling_depth_max_gives_whole_partitions(ctx, data):
    depths = []

    class Whole(UDF):
        def get_result_buffers(self):
            return {"s": self.buffer(kind="nav")}

        def get_tiling_preferences(self):
            return {"depth": self.TILE_DEPTH_MAX, "total_size": self.TILE_SIZE_MAX}

        def process_tile(self, tile):
            depths.append(tile.shape[0])
            self.results.s[:] += tile.sum(axis=(1, 2))

    ds = ctx.load("memory", data=data, sig_dims=2, num_partitions=2)
    ctx.run_udf(dataset=ds, udf=Whole())
    assert sorted(depths) == [12, 12]


def test_check_cast():
    check_cast(np.arange(3, dtype=np.int16), np.zeros(3, dtype=np.float32))
    check_cast(np.array([1.0, 2.0]), np.zeros(2, dtype=np.int32))
    with pytest.raises(RuntimeError, match="unsafe cast"):
        check_cast(np.array([1.5]), np.zeros(1, dtype=np.int32))


def test_auto_udf_monitor(ctx, data):
    ds = ctx.load("memory", data=data, sig_dims=2, num_partitions=2)
    res = ctx.run_udf(dataset=ds, udf=AutoUDF(f=lambda frame: frame.max(), monitor=True))
    assert np.allclose(res["result"].data, data.max(axis=(2, 3)))
    # the monitor is f of the last frame (LiberTEM 0.16), a 'single' buffer
    assert res["monitor"].data.shape == (1,)
    assert np.isclose(res["monitor"].data[0], data.reshape((-1, *SIG))[-1].max())
    udf = AutoUDF(f=np.sum)
    assert udf.auto_buffer(np.zeros((2, 3), dtype=np.int8)).extra_shape == (2, 3)
    mon = udf.auto_monitor_buffer(np.zeros(SIG, dtype=np.uint16))
    assert (mon.kind, mon.use, mon.extra_shape, mon.dtype) == (
        "single",
        "result_only",
        SIG,
        np.uint16,
    )


@pytest.mark.parametrize(
    "roi, selected",
    [
        ((2, 3), [11]),
        ([((0, 0), True), ((5, 1), True), ((0, 0), False)], [21]),
    ],
)
def test_roi_forms(ctx, data, roi, selected):
    import sparse

    ds = ctx.load("memory", data=data, sig_dims=2)
    res = ctx.run_udf(dataset=ds, udf=FrameSumUDF(), roi=roi)
    assert np.allclose(res["s"].raw_data, data.sum(axis=(2, 3)).reshape(-1)[selected])
    mask = np.zeros(NAV, dtype=bool)
    mask.flat[selected] = True
    res = ctx.run_udf(dataset=ds, udf=FrameSumUDF(), roi=sparse.COO.from_numpy(mask))
    assert np.allclose(res["s"].raw_data, data.sum(axis=(2, 3)).reshape(-1)[selected])
    with pytest.raises(ValueError, match="outside the navigation shape"):
        ctx.run_udf(dataset=ds, udf=FrameSumUDF(), roi=(9, 9))


def test_names_documented_in_udf_base(inline_ctx, data):
    import libertem.udf.base as base
    from libertem.corrections import CorrectionSet
    from libertem.executor.inline import InlineJobExecutor
    from libertem.io.dataset.base import DataSet, Partition

    assert base.CorrectionSet is CorrectionSet
    assert base.DataSet is DataSet and base.Partition is Partition
    assert base.InlineJobExecutor is InlineJobExecutor
    assert "UDFRunner" in dir(base)
    with pytest.raises(AttributeError):
        base.no_such_name  # noqa: B018
    ds = inline_ctx.load("memory", data=data, sig_dims=2, num_partitions=2)
    roi = np.zeros(NAV, dtype=bool)
    roi[3, 1] = True
    part = list(ds.get_partitions())[1]
    assert list(np.flatnonzero(base.roi_for_partition(roi, part))) == [13 - part.start]


def test_result_generators(inline_ctx, data):
    from libertem.api import (
        ResultAsyncGenerator,
        ResultGenerator,
        RunUDFAGenType,
        RunUDFGenType,
        run_agen_get_last,
        run_gen_get_last,
    )

    ds = inline_ctx.load("memory", data=data, sig_dims=2, num_partitions=3)
    gen = inline_ctx.run_udf_iter(dataset=ds, udf=FrameSumUDF())
    assert isinstance(gen, ResultGenerator) and RunUDFGenType is ResultGenerator
    first = next(gen)
    assert not first.damage.data.all()
    gen.close()
    with pytest.raises(StopIteration):
        next(gen)
    gen = inline_ctx.run_udf_iter(dataset=ds, udf=FrameSumUDF())
    next(gen)
    with pytest.raises(KeyError, match="stop"):
        gen.throw(KeyError("stop"))
    last = run_gen_get_last(inline_ctx.run_udf_iter(dataset=ds, udf=FrameSumUDF()))
    assert last.damage.data.all()

    async def main():
        agen = inline_ctx.run_udf_iter(dataset=ds, udf=FrameSumUDF(), sync=False)
        assert isinstance(agen, ResultAsyncGenerator) and RunUDFAGenType is ResultAsyncGenerator
        await agen.__anext__()
        await agen.aclose()
        agen = inline_ctx.run_udf_iter(dataset=ds, udf=FrameSumUDF(), sync=False)
        return await run_agen_get_last(agen)

    final = asyncio.run(main())
    assert np.allclose(final.buffers[0]["s"].data, data.sum(axis=(2, 3)))
