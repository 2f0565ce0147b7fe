"""Partitions and tiles as LiberTEM 0.16 hands them out: get_partitions() is a generator;
get_tiles/get_macrotile accept sparse and unchecked ROIs and count tile origins among the
selected frames of the whole dataset; HDF5 tiles stay within rows; forced MemoryDataSet
tile shapes; tiles moved outside their partition are refused."""

import types

import dask.array as da
import h5py
import numpy as np
import pytest
import sparse

from libertem.common import Shape, Slice
from libertem.common.executor import Environment
from libertem.executor.inline import InlineJobExecutor
from libertem.io.dataset.base import TilingScheme
from libertem.io.dataset.memory import MemoryDataSet
from libertem.udf.base import UDF, UDFParams, UDFPartRunner, UDFRunner
from libertem.udf.sum import SumUDF
from libertem.udf.sumsigudf import SumSigUDF

NAV, SIG = (5, 5), (4, 4)


@pytest.fixture
def data():
    # frame k holds k * 16 at pixel (0, 0)
    return np.arange(25 * 16, dtype=np.float32).reshape((*NAV, *SIG))


def _datasets(ctx, tmp_path, data):
    np.save(tmp_path / "d.npy", data)
    data.tofile(tmp_path / "d.raw")
    with h5py.File(tmp_path / "d.h5", "w") as f:
        f.create_dataset("data", data=data)
    return {
        "memory": ctx.load("memory", data=data, num_partitions=3),
        "npy": ctx.load("npy", path=str(tmp_path / "d.npy"), num_partitions=3),
        "raw": ctx.load(
            "raw",
            path=str(tmp_path / "d.raw"),
            dtype="float32",
            nav_shape=NAV,
            sig_shape=SIG,
            num_partitions=3,
        ),
        "hdf5": ctx.load(
            "hdf5", path=str(tmp_path / "d.h5"), ds_path="data", target_size=5 * 16 * 4
        ),
        "dask": ctx.load(
            "dask", da.from_array(data, chunks=(2, -1, -1, -1)), sig_dims=2, min_size=0
        ),
    }


def test_get_partitions_is_a_generator(inline_ctx, tmp_path, data):
    for name, ds in _datasets(inline_ctx, tmp_path, data).items():
        parts = ds.get_partitions()
        assert isinstance(parts, types.GeneratorType), name
        first = next(parts)
        rest = list(parts)
        again = list(ds.get_partitions())
        assert len(again) == 1 + len(rest) == ds.get_num_partitions(), name
        assert [p.idx for p in again] == list(range(len(again)))
        assert (first.start, first.stop) == (again[0].start, again[0].stop)
        # the partitions cover the frames once, in order
        assert [p.start for p in again[1:]] == [p.stop for p in again[:-1]]
        assert again[-1].stop == 25


@pytest.mark.parametrize("depth", [1, 3])
def test_tile_origins_with_roi(inline_ctx, tmp_path, data, depth):
    roi = np.zeros(NAV, dtype=bool)
    roi.flat[[3, 12, 13, 24]] = True
    flat_roi = roi.reshape(-1)
    for name, ds in _datasets(inline_ctx, tmp_path, data).items():
        scheme = TilingScheme.make_for_shape((depth, *SIG), ds.shape)
        frames, origins = [], []
        for p in ds.get_partitions():
            before = int(flat_roi[: p.start].sum())
            for t in p.get_tiles(tiling_scheme=scheme, roi=roi):
                # counted among the selected frames of the whole dataset
                assert t.tile_slice.origin[0] == before + t.slice.origin[0], name
                origins.append(int(t.tile_slice.origin[0]))
                frames.extend((np.asarray(t.data)[:, 0, 0] // 16).astype(int).tolist())
            mt = p.get_macrotile(roi=roi)
            n = int(flat_roi[p.start : p.stop].sum())
            assert mt.tile_slice.shape[0] == n == mt.data.shape[0], name
            # HDF5 keeps the partition's own start as the macrotile's origin
            assert mt.tile_slice.origin[0] == (p.start if name == "hdf5" else before), name
        assert frames == [3, 12, 13, 24], name
        assert origins == sorted(origins) and origins[0] == 0


def _roi_variants():
    roi = np.zeros((2, 4), dtype=bool)
    roi[0, 1] = roi[1, 2] = True
    return roi, {
        "nav-shaped": roi,
        "flat": roi.reshape(-1),
        "sparse.COO": sparse.COO.from_numpy(roi, fill_value=False),
    }


def test_sparse_and_oversized_roi(inline_ctx, tmp_path):
    np.arange(8 * 16, dtype=np.float32).tofile(tmp_path / "d.raw")
    ds = inline_ctx.load(
        "raw",
        path=str(tmp_path / "d.raw"),
        dtype="float32",
        nav_shape=(2, 4),
        sig_shape=SIG,
        num_partitions=2,
    )
    scheme = TilingScheme.make_for_shape(Shape((2, *SIG), sig_dims=2), dataset_shape=ds.shape)
    roi, variants = _roi_variants()
    for label, r in variants.items():
        tiles = [
            (int(t.tile_slice.origin[0]), (np.asarray(t.data)[:, 0, 0] // 16).tolist())
            for p in ds.get_partitions()
            for t in p.get_tiles(tiling_scheme=scheme, roi=r)
        ]
        assert tiles == [(0, [1.0]), (1, [6.0])], label
        shapes = [tuple(p.get_macrotile(roi=r).tile_slice.shape) for p in ds.get_partitions()]
        assert shapes == [(1, *SIG), (1, *SIG)], label
    # a larger array: only its flat prefix counts (here: all True)
    big = np.concatenate([np.ones((1, 4, 4), bool), np.zeros((7, 4, 4), bool)])
    tiles = [
        int(t.tile_slice.origin[0])
        for p in ds.get_partitions()
        for t in p.get_tiles(tiling_scheme=scheme, roi=big)
    ]
    assert tiles == [0, 2, 4, 6]
    # and a run with a sparse ROI gives the selected frames' sums
    res = inline_ctx.run_udf(dataset=ds, udf=SumSigUDF(), roi=variants["sparse.COO"])
    frames = np.arange(8 * 16, dtype=np.float64).reshape(8, 16)
    np.testing.assert_allclose(res["intensity"].raw_data, frames[roi.reshape(-1)].sum(axis=1))


@pytest.mark.parametrize("chunks", [None, (1, 5, 16, 16)])
@pytest.mark.parametrize("nav_shape", [None, (25,)])
def test_hdf5_tiles_within_rows(inline_ctx, tmp_path, chunks, nav_shape):
    data = np.random.default_rng(0).random((5, 5, 16, 16)).astype(np.float32)
    with h5py.File(tmp_path / "d.h5", "w") as f:
        f.create_dataset("data", data=data, chunks=chunks)
    ds = inline_ctx.load("hdf5", path=str(tmp_path / "d.h5"), ds_path="data", nav_shape=nav_shape)
    for depth, expected in [
        (26, [(r * 5, 5) for r in range(5)]),
        (3, [(r * 5 + o, n) for r in range(5) for o, n in ((0, 3), (3, 2))]),
    ]:
        scheme = TilingScheme.make_for_shape((depth, 16, 16), ds.shape)
        tiles = []
        out = np.zeros((25, 16, 16), np.float32)
        for p in ds.get_partitions():
            for t in p.get_tiles(tiling_scheme=scheme):
                a, n = int(t.tile_slice.origin[0]), int(t.tile_slice.shape[0])
                tiles.append((a, n))
                out[a : a + n] = t.data
        assert tiles == expected
        np.testing.assert_array_equal(out, data.reshape(25, 16, 16))
    # whole-partition UDFs see each row as a tile: results still complete
    res = inline_ctx.run_udf(dataset=ds, udf=[SumUDF(), SumSigUDF()])
    np.testing.assert_allclose(res[0]["intensity"].data, data.sum(axis=(0, 1)), rtol=1e-5)


def test_memory_forced_tileshape(inline_ctx):
    data = np.arange(4 * 4 * 10 * 10, dtype=np.float32).reshape((4, 4, 10, 10))
    ds = MemoryDataSet(data=data, tileshape=(3, 4, 4), num_partitions=2, sig_dims=2)
    seen, out = set(), np.zeros((16, 10, 10), np.float32)
    other = TilingScheme.make_for_shape((8, 10, 10), ds.shape)
    for p in ds.get_partitions():
        for scheme in (None, other):  # the forced shape wins over a scheme passed
            for tile in p.get_tiles() if scheme is None else p.get_tiles(scheme):
                seen.add(tuple(int(i) for i in tile.tile_slice.shape))
                out[tile.tile_slice.get()] = tile.data
    assert seen == {(d, a, b) for d in (2, 3) for a in (2, 4) for b in (2, 4)}
    np.testing.assert_array_equal(out.reshape(data.shape), data)

    class FrameSum(UDF):
        def get_result_buffers(self):
            return {"s": self.buffer(kind="nav", dtype=float)}

        def process_frame(self, frame):
            self.results.s[:] = frame.sum()

    small = np.ones((6, 3, 7), dtype=np.float32)
    bad = MemoryDataSet(data=small, tileshape=(3, 3, 5), num_partitions=2, sig_dims=2)
    message = (
        "The tileshape (3, 3, 5) is incompatible with base shape (1, 3, 7) and dataset "
        "shape (3, 7) in dimension 2."
    )
    with pytest.raises(ValueError) as e:
        inline_ctx.run_udf(dataset=bad, udf=FrameSum())
    assert str(e.value) == message
    good = MemoryDataSet(data=small, tileshape=(3, 3, 7), num_partitions=2, sig_dims=2)
    assert inline_ctx.run_udf(dataset=good, udf=FrameSum())["s"].data.tolist() == [21.0] * 6


def test_run_for_dataset_with_base_shape():
    data = np.random.default_rng(1).integers(0, 5, size=(6, 30, 64)).astype(np.float32)
    ds = MemoryDataSet(
        data=data, num_partitions=1, sig_dims=2, base_shape=(1, 15, 16), force_need_decode=True
    )
    res = UDFRunner(udfs=[SumSigUDF(), SumUDF()]).run_for_dataset(
        dataset=ds, executor=InlineJobExecutor()
    )
    sumsig, total = res.buffers
    np.testing.assert_allclose(sumsig["intensity"].data, data.sum(axis=(1, 2)))
    np.testing.assert_allclose(total["intensity"].data, data.sum(axis=0))


class _SigSum(UDF):
    def get_result_buffers(self):
        return {"total": self.buffer(kind="sig", dtype="float32")}

    def process_tile(self, tile):
        self.results.total[:] += tile.sum(axis=0)

    def merge(self, dest, src):
        dest.total[:] += src.total


class _NavSum(UDF):
    def get_result_buffers(self):
        return {"per_frame": self.buffer(kind="nav", dtype="float32")}

    def process_frame(self, frame):
        self.results.per_frame[:] = frame.sum()


def _moved(get_tiles, step):
    def inner(*args, **kwargs):
        for t in get_tiles(*args, **kwargs):
            sl = t.tile_slice
            t.tile_slice = Slice(origin=tuple(int(o) + step for o in sl.origin), shape=sl.shape)
            yield t

    return inner


@pytest.mark.parametrize("udf_cls, error", [(_SigSum, AssertionError), (_NavSum, IndexError)])
def test_misplaced_tiles_are_refused(ctx, udf_cls, error):
    data = np.ones((4, 4, 8, 8), dtype=np.float32)
    ds = ctx.load("memory", data=data, num_partitions=2)
    parts = list(ds.get_partitions())
    for p in parts:
        p.get_tiles = _moved(p.get_tiles, 1)
    ds.get_partitions = lambda: iter(parts)
    with pytest.raises(error):
        ctx.run_udf(dataset=ds, udf=udf_cls())
    # a tile moved by zero is where it was: results as usual
    ds2 = ctx.load("memory", data=data, num_partitions=2)
    parts2 = list(ds2.get_partitions())
    for p in parts2:
        p.get_tiles = _moved(p.get_tiles, 0)
    ds2.get_partitions = lambda: iter(parts2)
    res = ctx.run_udf(dataset=ds2, udf=_SigSum())
    np.testing.assert_allclose(res["total"].data, data.sum(axis=(0, 1)))


def test_run_for_partition_backend_choice():
    data = np.ones((4, 4, 8, 8), dtype=np.float32)
    ds = MemoryDataSet(data=data, num_partitions=2)
    partition = next(ds.get_partitions())
    udf = SumSigUDF()
    scheme = TilingScheme.make_for_shape(Shape((2, 8, 8), sig_dims=2), dataset_shape=ds.shape)
    params = UDFParams.from_udfs(udfs=[udf], roi=None, corrections=None, tiling_scheme=scheme)
    env = Environment(threads_per_worker=1, threaded_executor=False)
    for choice in (
        frozenset({"numpy", "cupy", "sparse.COO"}),
        {"numpy"},
        None,
        ("numpy",),
        "numpy",
    ):
        part_udf = udf.copy_for_partition(partition=partition, roi=None)
        out = UDFPartRunner([part_udf]).run_for_partition(
            partition=partition, params=params, env=env, backend_choice=choice
        )
        assert isinstance(out, tuple) and len(out) == 1
        np.testing.assert_allclose(np.asarray(out[0]["intensity"]), np.full(8, 64.0))


def test_roi_is_copied_at_run_time(ctx):
    ds = ctx.load("memory", data=np.ones((2, 3, 4, 4), dtype=np.float32), num_partitions=1)
    roi = np.zeros((2, 3), dtype=bool)
    roi[0, 0] = True
    res = ctx.run_udf(dataset=ds, udf=SumSigUDF(), roi=roi)
    roi[:] = True
    data = res["intensity"].data
    assert data[0, 0] == 16 and np.isnan(data.reshape(-1)[1:]).all()
    assert res["intensity"].raw_data.shape == (1,)


def test_private_partition_names(inline_ctx, tmp_path):
    data = np.arange(16 * 64, dtype=np.float32).reshape((4, 4, 8, 8))
    data.tofile(tmp_path / "r.raw")
    mem = inline_ctx.load("memory", data=data, num_partitions=2, sync_offset=-2)
    assert [(p._start_frame, p._num_frames) for p in mem.get_partitions()] == [(-2, 8), (6, 8)]
    raw = inline_ctx.load(
        "raw",
        path=str(tmp_path / "r.raw"),
        dtype="float32",
        nav_shape=(4, 4),
        sig_shape=(8, 8),
        num_partitions=2,
        sync_offset=-2,
    )
    p = list(raw.get_partitions())[1]
    assert (p._start_frame, p._num_frames) == (6, 8)
    scheme = TilingScheme.make_for_shape((2, 8, 8), raw.shape)
    roi = np.zeros((4, 4), bool)
    roi[2, 1] = roi[3, 3] = True
    plans = [p._get_read_ranges(scheme, roi=r) for r in (roi, sparse.COO.from_numpy(roi))]
    for a, b in zip(*plans):
        np.testing.assert_array_equal(a, b)
    slices, ranges, _ = plans[0]
    assert slices.shape[0] == len(scheme)  # both selected frames fit one tile of depth 2
