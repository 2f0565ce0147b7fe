"""LiberTEM's dataset model on our machinery: DataSet, Partition, TilingScheme, DataTile,
Negotiator, DataSetMeta, coordinates, PartitionStructure, WritablePartition."""

import numpy as np
import pytest

from libertem.common.exceptions import DataSetException
from libertem.common.shape import Shape
from libertem.common.slice import Slice
from libertem.corrections import CorrectionSet
from libertem.io.dataset.base import (
    BufferedBackend,
    DataSet,
    DataSetMeta,
    DataTile,
    MMapBackend,
    Negotiator,
    Partition,
    PartitionStructure,
    TilingScheme,
    WritablePartition,
    _roi_to_nd_indices,
    get_coordinates,
)
from libertem.io.dataset.base.filesource import LayoutPartition
from libertem.io.dataset.base.layout import single_file_layout
from libertem.udf.base import UDF
from libertem.udf.sum import SumUDF
from libertem.udf.sumsigudf import SumSigUDF
from utils import make_roi

NAV, SIG = (4, 6), (8, 10)


@pytest.fixture
def raw(tmp_path):
    data = np.random.default_rng(0).integers(0, 1000, size=(*NAV, *SIG)).astype("<u2")
    path = tmp_path / "d.raw"
    data.tofile(path)
    return str(path), data


def _load(ctx, path, **kw):
    return ctx.load("raw", path=path, dtype="<u2", nav_shape=NAV, sig_shape=SIG, **kw)


def collect(partition, scheme, dtype="float64", roi=None, **kw):
    """A partition's tiles assembled into (selected frames, *sig), via ``tile.slice``."""
    n = partition.get_frame_count(roi)
    out = np.zeros((n, *SIG), dtype=dtype)
    for tile in partition.get_tiles(scheme, dtype, roi, **kw):
        out[tile.slice.get()] = np.asarray(tile.data)
    return out


# --- DataSet -------------------------------------------------------------------------------


def test_dataset_members(inline_ctx, raw):
    path, data = raw
    ds = _load(inline_ctx, path, num_partitions=3)
    assert DataSet.MAX_PARTITION_SIZE == 512 * 1024 * 1024
    assert isinstance(ds.get_io_backend(), MMapBackend)
    assert isinstance(ds.get_default_io_backend(), MMapBackend)
    assert ds.get_supported_io_backends() == ["mmap", "buffered", "direct"]
    assert "raw" in ds.get_supported_extensions()
    assert tuple(ds.array_backends) == ("numpy", "cupy")
    meta = ds.meta
    assert isinstance(meta, DataSetMeta) and meta.shape == ds.shape
    assert meta.raw_dtype == np.dtype("<u2") and meta.image_count == data.size // 80
    assert type(ds.roi).__name__ == "RoiHelper" and ds.roi[0].shape == tuple(ds.shape.nav)
    assert ds.get_base_shape(None) == (1, SIG[1])
    assert ds.adjust_tileshape((3, 2, 10), None) == (3, 2, 10)
    assert ds.get_min_sig_size() == 80  # a page of uint16 exceeds the 80-pixel frame
    assert ds.get_max_io_size() is None
    assert isinstance(ds.get_correction_data(), CorrectionSet)
    assert not ds.get_correction_data().have_corrections()
    assert ds.supports_correction() and ds.get_decoder() is None
    # diagnostics: get_diagnostics(), then how dataset frames map to stored frames
    own = ds.get_diagnostics()
    assert own and ds.diagnostics[: len(own)] == own
    assert {d["name"]: d["value"] for d in ds.diagnostics[len(own) :]} == {
        "Number of frames skipped at the beginning": 0,
        "Number of frames ignored at the end": 0,
        "Number of blank frames inserted at the beginning": 0,
        "Number of blank frames inserted at the end": 0,
    }
    assert ds.get_task_comm_handler() is not None
    assert isinstance(ds.get_cache_key(), str) and path in ds.get_cache_key()
    assert ds.get_msg_converter().__name__ == "RAWDatasetParams"
    assert ds.get_num_partitions() == 3
    slices = list(ds.get_slices())
    assert [(s.origin[0], s.shape[0], a, b) for s, a, b in slices] == [
        (0, 8, 0, 8),
        (8, 8, 8, 16),
        (16, 8, 16, 24),
    ]


def test_need_decode(inline_ctx, raw):
    path, _ = raw
    ds = _load(inline_ctx, path)
    assert not ds.need_decode("<u2", None, None)
    assert ds.need_decode("float32", None, None)
    assert ds.need_decode("<u2", np.array([True, False]), None)
    dark = CorrectionSet(dark=np.ones(SIG))
    assert ds.need_decode("<u2", None, dark)
    assert _load(inline_ctx, path, io_backend=BufferedBackend()).need_decode("<u2", None, None)


def test_sync_offset_info_and_partitioning(inline_ctx, raw):
    path, _ = raw
    ds = inline_ctx.load("raw", path, "<u2", nav_shape=(2, 10), sig_shape=SIG, sync_offset=6)
    assert ds.get_sync_offset_info() == {
        "frames_skipped_start": 6,
        "frames_ignored_end": 0,
        "frames_inserted_start": 0,
        "frames_inserted_end": 2,
    }
    ds = inline_ctx.load("raw", path, "<u2", nav_shape=(2, 5), sig_shape=SIG, sync_offset=-3)
    info = ds.get_sync_offset_info()
    assert info["frames_inserted_start"] == 3 and info["frames_ignored_end"] == 17
    ds.set_num_cores(5)
    assert ds.get_num_partitions() == 5


def test_partition_shape(inline_ctx, raw):
    path, _ = raw
    ds = _load(inline_ctx, path)
    frame = 80 * 4
    assert ds.partition_shape("float32", 7 * frame) == (1, 6, *SIG)
    assert ds.partition_shape("float32", 13 * frame) == (2, 6, *SIG)
    assert ds.partition_shape("float32", 10**9) == (*NAV, *SIG)
    assert ds.partition_shape("float32", 10**9, min_num_partitions=4) == (1, 6, *SIG)
    assert ds.partition_shape("float32", 3 * frame) == (1, 3, *SIG)


def test_bad_num_partitions_and_backend(raw):
    path, _ = raw
    with pytest.raises(DataSetException, match="num_partitions"):
        _Dummy(num_partitions=0)
    with pytest.raises(DataSetException, match="does not support io_backend 'mmap'"):
        _Dummy(io_backend="mmap")


class _Dummy(DataSet):
    """A dataset without files: it supports no I/O backend."""

    def initialize(self, executor):
        return self

    shape = Shape((2, 3, 4), sig_dims=2)
    dtype = np.dtype("f4")


# --- Partition ------------------------------------------------------------------------------


@pytest.mark.parametrize("backend", ["mmap", "buffered", "direct"])
def test_partition_tiles_with_dataset_and_partition_roi(inline_ctx, raw, backend):
    path, data = raw
    ds = _load(inline_ctx, path, num_partitions=2, io_backend=backend)
    flat = data.reshape(-1, *SIG)
    roi = make_roi(NAV, seed=4)
    scheme = TilingScheme.make_for_shape((3, 4, SIG[1]), ds.shape)
    for p in ds.get_partitions():
        part = flat[p.start : p.stop]
        np.testing.assert_array_equal(collect(p, scheme), part)
        sel = roi.reshape(-1)[p.start : p.stop]
        np.testing.assert_array_equal(collect(p, scheme, roi=roi), part[sel])
        np.testing.assert_array_equal(collect(p, scheme, roi=sel), part[sel])
        assert p.get_frame_count(roi) == sel.sum() and p.get_frame_count() == p.stop - p.start
        # with a ROI, tile_slice counts the selected frames over the whole dataset
        before = int(roi.reshape(-1)[: p.start].sum())
        for tile in p.get_tiles(scheme, "float32", roi):
            assert tile.tile_slice.origin[0] == before + tile.slice.origin[0]
            assert tile.scheme_idx in (0, 1) and tile.dtype == np.float32
        with pytest.raises(ValueError, match="roi of 5 frames"):
            next(iter(p.get_tiles(scheme, "float32", np.ones(5, bool))))


def test_partition_members(inline_ctx, raw):
    path, data = raw
    ds = _load(inline_ctx, path, num_partitions=2)
    p0, p1 = ds.get_partitions()
    assert p0.get_ident() != p1.get_ident() and p0.idx == 0 and p1.idx == 1
    assert p0.dtype == np.dtype("<u2") and tuple(p0.shape) == (12, *SIG)
    assert p0.get_locations() is None and isinstance(p0.get_io_backend(), MMapBackend)
    p0.set_io_backend(BufferedBackend())
    assert p0.io_backend == "buffered"
    p0.set_worker_context(object())
    tile = p1.get_macrotile(dest_dtype="float32", roi=make_roi(NAV, seed=2))
    sel = make_roi(NAV, seed=2).reshape(-1)[12:]
    np.testing.assert_array_equal(tile.data, data.reshape(-1, *SIG)[12:][sel])
    assert tile.tile_slice.origin[0] == make_roi(NAV, seed=2).reshape(-1)[:12].sum()
    bad = TilingScheme.make_for_shape((2, 4, 4), Shape((1, 4, 4), sig_dims=2))
    with pytest.raises(ValueError, match="does not fit this partition"):
        p0.validate_tiling_scheme(bad)
    with pytest.raises(ValueError):
        next(iter(p0.get_tiles(bad)))


def test_partition_array_backend(inline_ctx, raw):
    path, data = raw
    ds = _load(inline_ctx, path, num_partitions=1)
    (p,) = ds.get_partitions()
    scheme = TilingScheme.make_for_shape((5, *SIG), ds.shape)
    tiles = list(p.get_tiles(scheme, "float32", array_backend="sparse.COO"))
    import sparse

    assert all(isinstance(t.data, sparse.COO) for t in tiles)
    got = np.concatenate([t.data.todense() for t in tiles])
    np.testing.assert_array_equal(got, data.reshape(-1, *SIG))


def test_partition_from_meta_and_make_slices():
    shape = Shape((10, 4, 4), sig_dims=2)
    meta = DataSetMeta(shape=shape, raw_dtype="u2", image_count=12, metadata={"k": 1})
    assert meta["k"] == 1 and meta.dtype == np.dtype("u2")
    sl = Slice((2, 0, 0), Shape((3, 4, 4), sig_dims=2))
    p = Partition(meta, sl, None, None)
    assert (p.start, p.stop, p.dtype) == (2, 5, np.dtype("u2"))
    with pytest.raises(NotImplementedError):
        p.get_tiles(TilingScheme.make_for_shape((1, 4, 4), shape))
    parts = list(Partition.make_slices(shape, 3, sync_offset=2))
    assert [(s.origin[0], s.shape[0], a, b) for s, a, b in parts] == [
        (0, 3, 2, 5),
        (3, 3, 5, 8),
        (6, 4, 8, 12),
    ]
    with pytest.raises(TypeError, match="needs meta"):
        Partition()


# --- TilingScheme, Negotiator, DataTile --------------------------------------------------------


def test_tiling_scheme():
    ds_shape = Shape((5, 6, 7), sig_dims=2)
    scheme = TilingScheme.make_for_shape(Shape((3, 4, 7), sig_dims=2), ds_shape, intent="tile")
    assert scheme.depth == 3 and tuple(scheme.shape) == (3, 4, 7) and len(scheme) == 2
    assert scheme.intent == "tile" and scheme.dataset_shape == ds_shape
    np.testing.assert_array_equal(scheme.slices_array, [[[0, 0], [4, 7]], [[4, 0], [2, 7]]])
    assert scheme[1] == Slice((4, 0), Shape((2, 7), sig_dims=2))
    same = TilingScheme(scheme.slices, scheme.shape, ds_shape)
    assert same.slices == scheme.slices and same.intent is None

    class P:
        shape = Shape((2, 6, 7), sig_dims=2)

    assert scheme.adjust_for_partition(P()).depth == 2
    big = TilingScheme.make_for_shape((9, 6, 7), ds_shape, "partition")
    assert big.adjust_for_partition(P()).depth == 2
    with pytest.raises(ValueError, match="intent"):
        TilingScheme.make_for_shape((1, 6, 7), ds_shape, intent="row")
    with pytest.raises(ValueError, match="depth"):
        TilingScheme.make_for_shape((0, 6, 7), ds_shape)
    with pytest.raises(TypeError, match="tileshape must be a Shape"):
        TilingScheme([], (1, 6, 7), ds_shape)


class _TileUDF(UDF):
    def get_result_buffers(self):
        return {"s": self.buffer(kind="sig", dtype="float64")}

    def get_tiling_preferences(self):
        return {"total_size": 4096, "depth": 2}

    def process_tile(self, tile):
        self.results.s[:] += tile.sum(axis=0)

    def merge(self, dest, src):
        dest.s[:] += src.s


def test_negotiator(inline_ctx, raw):
    path, _ = raw
    ds = _load(inline_ctx, path)
    n = Negotiator()
    scheme = n.get_scheme([_TileUDF()], ds, "float32", Shape((12, *SIG), sig_dims=2))
    assert scheme.depth == 2 and scheme.intent == "tile"
    assert scheme.shape[1] * SIG[1] * 4 * 2 <= 4096 and scheme.shape[2] == SIG[1]
    frame = n.get_scheme([SumSigUDF(), SumUDF()], ds, "float32", Shape((12, *SIG), 2))
    assert frame.sig_tile_shape == SIG
    small = _load(inline_ctx, path, io_backend=BufferedBackend(max_buffer_size=800))
    capped = n.get_scheme([SumUDF()], small, "float32", Shape((24, *SIG), 2))
    assert int(np.prod(tuple(capped.shape))) * 4 <= 800
    with pytest.raises(ValueError, match="base blocks"):
        n.validate((1, 4, 5), SIG, 80, None, 4, (1, 10), None)
    with pytest.raises(ValueError, match="I/O limit"):
        n.validate((4, 8, 10), SIG, 1280, 400, 4, (1, 10), None)
    with pytest.raises(ValueError, match="does not fit"):
        n.validate((1, 9, 10), SIG, 360, None, 4, (1, 10), None)


def test_datatile_behaves_as_array():
    data = np.arange(24, dtype=np.float32).reshape(2, 3, 4)
    sl = Slice((1, 0, 0), Shape((2, 3, 4), sig_dims=2))
    tile = DataTile(data, sl, 3, offset=10)
    assert tile.tile_slice.origin == (11, 0, 0) and tile.slice is sl and tile.scheme_idx == 3
    assert tile.shape == (2, 3, 4) and tile.size == 24 and tile.dtype == np.float32
    assert tile.c_contiguous and tile.flat_data.shape == (2, 12) and len(tile) == 2
    np.testing.assert_array_equal(tile * 2, data * 2)
    np.testing.assert_array_equal(np.sum(tile, axis=0), data.sum(axis=0))
    np.testing.assert_array_equal(np.asarray(tile), data)
    assert np.shares_memory(np.asarray(tile), data)
    assert not np.shares_memory(np.array(tile), data)
    assert np.asarray(tile, dtype="f8").dtype == np.float64
    np.testing.assert_array_equal(tile[1, 2], data[1, 2])
    np.testing.assert_array_equal(tile + tile, data * 2)
    assert not DataTile(data[:, :, ::2], sl).c_contiguous


# --- coordinates, structure, writable --------------------------------------------------------


def test_coordinates():
    ds_shape = Shape((3, 4, 5, 5), sig_dims=2)
    sl = Slice((5, 0, 0), Shape((3, 5, 5), sig_dims=2))
    np.testing.assert_array_equal(get_coordinates(sl, ds_shape), [[1, 1], [1, 2], [1, 3]])
    roi = np.zeros((3, 4), bool)
    roi[0, 1] = roi[2, 0] = roi[2, 3] = True
    sl = Slice((1, 0, 0), Shape((2, 5, 5), sig_dims=2))
    np.testing.assert_array_equal(get_coordinates(sl, ds_shape, roi), [[2, 0], [2, 3]])
    part = Slice((4, 0, 0), Shape((8, 5, 5), sig_dims=2))
    assert list(_roi_to_nd_indices(roi, part)) == [(2, 0), (2, 3)]


def test_partition_structure(inline_ctx, raw):
    path, _ = raw
    ds = _load(inline_ctx, path, num_partitions=3)
    ps = PartitionStructure.from_ds(ds)
    assert ps.slices == [(0, 8), (8, 16), (16, 24)] and ps.dtype == np.dtype("<u2")
    msg = ps.serialize()
    import json

    assert PartitionStructure.from_json(json.loads(json.dumps(msg))) == ps
    with pytest.raises(ValueError, match="follow each other"):
        PartitionStructure(ds.shape, [(0, 8), (9, 24)], "u2")
    with pytest.raises(ValueError, match="version"):
        PartitionStructure.from_json({**msg, "version": 7})


class _WritableRaw(WritablePartition, LayoutPartition):
    pass


def test_writable_partition(tmp_path):
    shape = Shape((6, 4, 4), sig_dims=2)
    target = tmp_path / "part.raw"
    layout = single_file_layout(str(target), 0, 3, (4, 4), "f4")
    p = _WritableRaw(layout, 0, 3, shape, "f4")
    with pytest.raises(ValueError, match="no write_path"):
        with p.get_write_handle():
            pass
    p.write_path = str(target)
    frames = np.random.default_rng(1).random((3, 4, 4)).astype("f4")
    with p.get_write_handle() as out:
        out[:] = frames
    scheme = TilingScheme.make_for_shape((3, 4, 4), shape)
    got = np.concatenate([np.asarray(t.data) for t in p.get_tiles(scheme, "f4")])
    np.testing.assert_array_equal(got, frames)
    p.delete()
    assert not target.exists()
