"""Dataset frames without stored data -- a ``nav_shape`` larger than the data, a positive
or negative ``sync_offset`` -- are never read and never reach a UDF, for every format of the
backend matrix and in memory, on every executor, with and without ROI; their results keep
the buffers' initial values (LiberTEM 0.16)."""

import h5py
import numpy as np
import pytest
from test_io_backend_matrix import FORMATS, NAV

from libertem.common import Shape
from libertem.io.dataset.base import TilingScheme
from libertem.udf.base import UDF
from libertem.udf.stddev import StdDevUDF
from libertem.udf.sumsigudf import SumSigUDF
from utils import make_roi

N = NAV[0] * NAV[1]


def hdf5_chunked(tmp):
    """HDF5 read through h5py in blocks: gzip-compressed chunks of two frames."""
    d = np.random.default_rng(4).random((*NAV, 16, 16)).astype("f4")
    with h5py.File(tmp / "c.h5", "w") as f:
        f.create_dataset("data", data=d, chunks=(1, 2, 16, 16), compression="gzip")
    return ("hdf5", str(tmp / "c.h5")), {}, d


FORMATS = [*FORMATS, hdf5_chunked]

#: (label, nav_shape, sync_offset): dataset frame i shows stored frame i + sync_offset
CASES = [
    ("more-frames", (N + 5,), 0),
    ("fewer-frames", (N - 4,), 0),
    ("positive-offset", NAV, 3),
    ("negative-offset", NAV, -3),
]


class VisitSum(UDF):
    """Per frame: marks the position as visited and stores the frame's sum."""

    def get_result_buffers(self):
        return {
            "visited": self.buffer(kind="nav", dtype="int32"),
            "total": self.buffer(kind="nav", dtype="float64"),
        }

    def process_frame(self, frame):
        self.results.visited[:] += 1
        self.results.total[:] = frame.sum()


def _expected(data, nav_shape, sync_offset):
    """Per dataset frame: has stored data, and the frame's sum (0 without data)."""
    flat = data.reshape(-1, *data.shape[2:]).astype(np.float64)
    n = int(np.prod(nav_shape))
    stored = np.arange(n) + sync_offset
    has = (stored >= 0) & (stored < flat.shape[0])
    sums = np.zeros(n)
    sums[has] = flat[stored[has]].sum(axis=(1, 2))
    return has, sums


def _load(ctx, fmt, tmp_path, nav_shape, sync_offset, num_partitions=3):
    (filetype, path), kwargs, data = fmt(tmp_path)
    kwargs = {**kwargs, "nav_shape": nav_shape, "sync_offset": sync_offset}
    ds = ctx.load(filetype, path, num_partitions=num_partitions, **kwargs)
    return ds, data


def _check_run(ctx, ds, data, nav_shape, sync_offset, roi):
    has, sums = _expected(data, nav_shape, sync_offset)
    sel = np.ones(has.size, bool) if roi is None else roi.reshape(-1)
    res, sumsig, std = ctx.run_udf(dataset=ds, udf=[VisitSum(), SumSigUDF(), StdDevUDF()], roi=roi)
    # positions without data were never processed: initial values (0)
    np.testing.assert_array_equal(res["visited"].raw_data, has[sel].astype(np.int32))
    np.testing.assert_allclose(res["total"].raw_data, sums[sel], rtol=1e-6)
    np.testing.assert_allclose(sumsig["intensity"].raw_data, sums[sel], rtol=1e-5)
    # StdDevUDF counts only frames that reached it
    assert int(np.asarray(std["num_frames"].data).ravel()[0]) == int((has & sel).sum())


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
@pytest.mark.parametrize("fmt", FORMATS, ids=[f.__name__ for f in FORMATS])
def test_missing_frames_never_delivered(tmp_path, ctx, fmt, case):
    _, nav_shape, sync_offset = case
    ds, data = _load(ctx, fmt, tmp_path, nav_shape, sync_offset)
    assert ds.meta.image_count == N
    assert tuple(ds.shape.nav) == tuple(nav_shape)
    roi = make_roi(tuple(nav_shape), seed=11)
    for r in (None, roi):
        _check_run(ctx, ds, data, nav_shape, sync_offset, r)


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_missing_frames_memory(ctx, case):
    _, nav_shape, sync_offset = case
    data = np.random.default_rng(3).random((*NAV, 5, 6)).astype(np.float32)
    ds = ctx.load(
        "memory",
        data=data,
        sig_dims=2,  # with a nav_shape alone, LiberTEM takes the remaining axes as signal
        nav_shape=nav_shape,
        sync_offset=sync_offset,
        num_partitions=3,
    )
    for r in (None, make_roi(tuple(nav_shape), seed=12)):
        _check_run(ctx, ds, data, nav_shape, sync_offset, r)


@pytest.mark.parametrize("fmt", FORMATS, ids=[f.__name__ for f in FORMATS])
@pytest.mark.parametrize("sync_offset", [-4, 4])
def test_tiles_cover_only_stored_frames(tmp_path, inline_ctx, fmt, sync_offset):
    """Each partition's tiles start at its first frame with data, advance by the depth
    (HDF5: within rows of the stored array) and stop at its last frame with data."""
    nav_shape = (N + 2,)
    ds, data = _load(inline_ctx, fmt, tmp_path, nav_shape, sync_offset, num_partitions=3)
    has, _ = _expected(data, nav_shape, sync_offset)
    scheme = TilingScheme.make_for_shape(Shape((2, *data.shape[2:]), sig_dims=2), ds.shape)
    seen = np.zeros(has.size, int)
    for p in ds.get_partitions():
        tiles = list(p.get_tiles(scheme, dest_dtype="float32"))
        with_data = np.flatnonzero(has[p.start : p.stop]) + p.start
        if not with_data.size:
            assert tiles == []
            continue
        assert int(tiles[0].tile_slice.origin[0]) == with_data[0]
        for t in tiles:
            a = int(t.tile_slice.origin[0])
            seen[a : a + t.data.shape[0]] += 1
            assert 1 <= t.data.shape[0] <= 2
    np.testing.assert_array_equal(seen, has.astype(int))


def test_diagnostics_frame_mapping(inline_ctx, tmp_path):
    data = np.zeros((5, 4, 4), np.float32)
    for kw, expected in [
        (dict(nav_shape=(3, 3), sync_offset=-2), (0, 0, 2, 2)),
        (dict(nav_shape=(2, 2), sync_offset=1), (1, 0, 0, 0)),
        (dict(nav_shape=(4,)), (0, 1, 0, 0)),
        (dict(nav_shape=(2, 2), sync_offset=4), (4, 0, 0, 3)),
    ]:
        ds = inline_ctx.load("memory", data=data, sig_dims=2, **kw)
        got = {d["name"]: d["value"] for d in ds.diagnostics if "frames" in d["name"]}
        assert got == dict(
            zip(
                [
                    "Number of frames skipped at the beginning",
                    "Number of frames ignored at the end",
                    "Number of blank frames inserted at the beginning",
                    "Number of blank frames inserted at the end",
                ],
                expected,
            )
        )


@pytest.mark.parametrize("sync_offset", [5, -5, 7])
def test_sync_offset_range_check(inline_ctx, tmp_path, sync_offset):
    data = np.zeros((5, 4, 4), np.float32)
    np.save(tmp_path / "d.npy", data)
    data.tofile(tmp_path / "d.raw")
    text = r"sync_offset should be in \(-5, 5\), which is \(-image_count, image_count\)"
    for load in (
        lambda: inline_ctx.load("memory", data=data, sync_offset=sync_offset),
        lambda: inline_ctx.load("npy", path=str(tmp_path / "d.npy"), sync_offset=sync_offset),
        lambda: inline_ctx.load(
            "raw",
            path=str(tmp_path / "d.raw"),
            dtype="float32",
            nav_shape=(5,),
            sig_shape=(4, 4),
            sync_offset=sync_offset,
        ),
    ):
        with pytest.raises(Exception, match=text) as e:
            load()
        assert type(e.value).__name__ == "DataSetException"
    # the largest valid offsets load
    assert inline_ctx.load("memory", data=data, sync_offset=4).sync_offset == 4
    assert inline_ctx.load("memory", data=data, sync_offset=-4).sync_offset == -4


class Spy(UDF):
    """Records the coordinates of each tile and adds up its frames' sums."""

    def get_result_buffers(self):
        return {
            "s": self.buffer(kind="nav", dtype="float32"),
            "coords": self.buffer(kind="single", dtype=object),
        }

    def preprocess(self):
        self.results.coords[0] = []

    def process_tile(self, tile):
        self.results.coords[0].append(self.meta.coordinates.tolist())
        self.results.s[:] += tile.sum(axis=(-1, -2))

    def merge(self, dest, src):
        dest.s[:] = src.s
        dest.coords[0] = list(dest.coords[0]) + list(src.coords[0])


@pytest.mark.parametrize("offset", [14, -14])
def test_udf_sees_only_frames_with_data(ctx, offset):
    # frame i holds the value i
    data = np.arange(16, dtype=np.float32).reshape((4, 4, 1, 1)) * np.ones(
        (1, 1, 2, 2), np.float32
    )
    ds = ctx.load(
        "memory", data=data, tileshape=(2, 2, 2), num_partitions=2, sig_dims=2, sync_offset=offset
    )
    res = ctx.run_udf(dataset=ds, udf=Spy())
    flat = np.zeros(16, np.float32)
    idx = np.arange(16)
    has = (idx + offset >= 0) & (idx + offset < 16)
    flat[has] = (idx[has] + offset) * 4
    np.testing.assert_array_equal(res["s"].data.reshape(-1), flat)
    coords = [tuple(c) for tile in res["coords"].data[0] for c in tile]
    assert sorted(coords) == [tuple(np.unravel_index(i, (4, 4))) for i in np.flatnonzero(has)]


@pytest.fixture(scope="module")
def dask_ctx():
    from dask_shared import acquire_cluster, release_cluster
    from libertem.api import Context

    yield Context(executor=acquire_cluster())
    release_cluster()


@pytest.mark.parametrize(
    "fmt", [f for f in FORMATS if f.__name__ in ("raw", "hdf5_chunked", "mib_u16")]
)
def test_missing_frames_on_dask(tmp_path, dask_ctx, fmt):
    for _, nav_shape, sync_offset in CASES[::2] + CASES[3:]:
        ds, data = _load(dask_ctx, fmt, tmp_path, nav_shape, sync_offset)
        for r in (None, make_roi(tuple(nav_shape), seed=13)):
            _check_run(dask_ctx, ds, data, nav_shape, sync_offset, r)
