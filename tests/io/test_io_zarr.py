"""Zarr datasets: stores of format 2 and 3 written by zarr and by dask, every frame
against numpy, chunk-aligned partitions, each chunk read once."""

import os

import dask.array as da
import numpy as np
import pytest
import zarr
from hypothesis import given
from hypothesis import strategies as st
from zarr.codecs import BloscCodec, BytesCodec, GzipCodec, ZstdCodec

import libertem.io.dataset.zarr as zarr_ds
from libertem.corrections import CorrectionSet
from libertem.exceptions import DataSetException
from libertem.io.dataset import detect
from libertem.io.dataset.base.chunked import FlatChunkGrid, flat_slabs
from libertem.udf.raw import PickUDF
from libertem.udf.sum import SumUDF
from libertem.udf.sumsigudf import SumSigUDF

NAV, SIG = (3, 5), (16, 16)
LAYOUTS = {
    "v3-frames": dict(zarr_format=3, chunks=(1, 1, 16, 16), compressors=None),
    "v3-rows-zstd": dict(zarr_format=3, chunks=(1, 5, 16, 16), compressors=ZstdCodec(level=1)),
    "v3-odd-blosc": dict(zarr_format=3, chunks=(1, 2, 8, 16), compressors=BloscCodec()),
    "v3-blocks-gzip": dict(zarr_format=3, chunks=(2, 3, 16, 8), compressors=GzipCodec()),
    "v3-sharded": dict(zarr_format=3, chunks=(1, 1, 8, 8), shards=(1, 5, 16, 16)),
    "v3-big-endian": dict(
        zarr_format=3, chunks=(1, 4, 16, 16), serializer=BytesCodec(endian="big")
    ),
    "v2-frames": dict(zarr_format=2, chunks=(1, 2, 16, 16)),
    "v2-uncompressed": dict(zarr_format=2, chunks=(2, 5, 4, 16), compressors=None),
    "v2-big-endian": dict(zarr_format=2, chunks=(1, 3, 16, 16), dtype=">u2"),
}


def write(path, layout, seed=0, nav=NAV, sig=SIG):
    kw = dict(LAYOUTS[layout])
    dtype = kw.pop("dtype", "uint16")
    data = np.random.default_rng(seed).integers(0, 4000, size=(*nav, *sig)).astype(dtype)
    arr = zarr.create_array(store=str(path), shape=data.shape, dtype=data.dtype, **kw)
    arr[...] = data
    return data


def shifted(flat, offset):
    out = np.zeros_like(flat)
    idx = np.arange(flat.shape[0]) + offset
    ok = (idx >= 0) & (idx < flat.shape[0])
    out[ok] = flat[idx[ok]]
    return out


def check_dataset(ctx, ds, ref):
    """PickUDF with full and random ROI, SumUDF and SumSigUDF, against numpy."""
    nav = tuple(ds.shape.nav)
    flat = ref.reshape(-1, *tuple(ds.shape.sig))
    full = np.ones(nav, dtype=bool)
    got = ctx.run_udf(dataset=ds, udf=PickUDF(), roi=full)["intensity"].raw_data
    np.testing.assert_array_equal(got, flat)
    roi = np.random.default_rng(2).random(nav) > 0.5
    got = ctx.run_udf(dataset=ds, udf=PickUDF(), roi=roi)["intensity"].raw_data
    np.testing.assert_array_equal(got, flat[roi.ravel()])
    s, ss = ctx.run_udf(dataset=ds, udf=[SumUDF(), SumSigUDF()])
    np.testing.assert_allclose(s["intensity"].raw_data, flat.sum(axis=0), rtol=1e-5)
    np.testing.assert_allclose(ss["intensity"].raw_data, flat.sum(axis=(1, 2)), rtol=1e-5)
    s = ctx.run_udf(dataset=ds, udf=SumUDF(), roi=roi)
    np.testing.assert_allclose(s["intensity"].raw_data, flat[roi.ravel()].sum(axis=0), rtol=1e-5)


@pytest.mark.parametrize("layout", list(LAYOUTS))
def test_every_frame(tmp_path, ctx, layout):
    path = tmp_path / "d.zarr"
    ref = write(path, layout)
    ds = ctx.load("zarr", path=str(path), num_partitions=2)
    assert tuple(ds.shape) == (*NAV, *SIG) and ds.dtype == np.dtype("uint16")
    assert ds.array_path == ""
    check_dataset(ctx, ds, ref)


def test_dask_written_stores(tmp_path, ctx):
    data = np.random.default_rng(3).random((4, 6, 12, 10), dtype=np.float32)
    v3 = str(tmp_path / "v3.zarr")
    da.from_array(data, chunks=(1, 3, 12, 10)).to_zarr(v3)
    v2 = str(tmp_path / "v2.zarr")
    da.from_array(data, chunks=(2, 6, 6, 10)).to_zarr(v2, zarr_format=2)
    group = str(tmp_path / "group.zarr")
    zarr.open_group(group, mode="w")
    da.from_array(data, chunks=(4, 2, 12, 10)).to_zarr(group, component="scan/frames")
    for path, kw in ((v3, {}), (v2, {}), (group, {"array": "scan/frames"})):
        ds = ctx.load("zarr", path=path, **kw)
        assert ds.dtype == np.float32
        check_dataset(ctx, ds, data)
        auto = ctx.load("auto", path=path)
        assert type(auto).__name__ == "ZarrDataSet"
        assert auto.array_path == kw.get("array", "")


def test_groups_and_detection(tmp_path, inline_ctx):
    path = str(tmp_path / "store")  # no .zarr extension: found by its metadata
    root = zarr.open_group(path, mode="w")
    root.create_array("meta/small", shape=(2, 2, 2), dtype="f8")
    big = np.arange(5 * 4 * 6 * 7, dtype=np.int32).reshape(5, 4, 6, 7)
    root.create_array("entry/data", data=big, chunks=(1, 4, 6, 7))
    root.create_array("entry/label", shape=(3,), dtype="u1")
    found = detect(path)
    assert found == {"type": "zarr", "parameters": {"path": path, "array": "entry/data"}}
    for kw in ({}, {"array": "entry/data"}, {"ds_path": "/entry/data"}):
        ds = inline_ctx.load("zarr", path=path, **kw)
        assert ds.array_path == ds.ds_path == "entry/data"
        got = inline_ctx.run_udf(dataset=ds, udf=SumUDF())["intensity"].raw_data
        np.testing.assert_allclose(got, big.sum(axis=(0, 1)))
    small = inline_ctx.load("zarr", path=path, array="meta/small", sig_dims=1)
    assert tuple(small.shape) == (2, 2, 2) and tuple(small.shape.sig) == (2,)
    names = {d["name"]: d["value"] for d in ds.get_diagnostics()}
    assert names["zarr_format"] == "3" and names["chunks"] == "(1, 4, 6, 7)"


def test_3d_stack_reshape_and_offsets(tmp_path, threads_ctx):
    path = tmp_path / "d.zarr"
    ref = write(path, "v3-odd-blosc").reshape(-1, *SIG)
    for offset in (3, -4):
        ds = threads_ctx.load("zarr", path=str(path), sync_offset=offset, num_partitions=3)
        roi = np.ones(NAV, dtype=bool)
        got = threads_ctx.run_udf(dataset=ds, udf=PickUDF(), roi=roi)["intensity"].raw_data
        np.testing.assert_array_equal(got, shifted(ref, offset))
        info = ds.get_sync_offset_info()
        assert info["frames_skipped_start"] == max(0, offset)
    ds = threads_ctx.load("zarr", path=str(path), nav_shape=(2, 4), sig_shape=(8, 32))
    got = threads_ctx.run_udf(dataset=ds, udf=PickUDF(), roi=np.ones((2, 4), bool))
    np.testing.assert_array_equal(got["intensity"].raw_data, ref[:8].reshape(8, 8, 32))
    stack = tmp_path / "s.zarr"
    data = np.arange(7 * 4 * 6, dtype=np.float64).reshape(7, 4, 6)
    zarr.create_array(store=str(stack), data=data, chunks=(3, 4, 6))
    ds = threads_ctx.load("auto", path=str(stack))
    assert tuple(ds.shape) == (7, 4, 6)
    assert [(p.start, p.stop) for p in ds.get_partitions()][0][0] == 0
    check_dataset(threads_ctx, ds, data)


def test_corrections(tmp_path, ctx):
    path = tmp_path / "d.zarr"
    ref = write(path, "v2-frames").reshape(-1, *SIG).astype(np.float32)
    dark = np.random.default_rng(5).random(SIG).astype(np.float32) * 10
    ds = ctx.load("zarr", path=str(path))
    res = ctx.run_udf(dataset=ds, udf=SumUDF(), corrections=CorrectionSet(dark=dark))
    np.testing.assert_allclose(res["intensity"].raw_data, (ref - dark).sum(axis=0), rtol=1e-4)


def _partition_bounds(ds):
    return [(p.start, p.stop) for p in ds.get_partitions()]


@pytest.mark.parametrize(
    "nav, chunks, parts",
    [
        ((6, 10), (1, 4), 4),  # rows of 10 frames cut into chunks of 4, 4, 2
        ((6, 10), (2, 10), 5),  # chunks of two full rows
        ((8, 8), (3, 5), 3),  # chunks of three full rows
        ((40,), (7,), 4),
        ((6, 10), (1, 1), 7),
    ],
)
def test_partitions_follow_chunks(tmp_path, inline_ctx, monkeypatch, nav, chunks, parts):
    path = str(tmp_path / "d.zarr")
    data = np.random.default_rng(1).random((*nav, 4, 4)).astype(np.float32)
    zarr.create_array(store=path, data=data, chunks=(*chunks, 4, 4))
    grid = FlatChunkGrid(nav, chunks)
    ds = inline_ctx.load("zarr", path=path, num_partitions=parts)
    bounds = _partition_bounds(ds)
    assert bounds[0][0] == 0 and bounds[-1][1] == int(np.prod(nav))
    assert all(grid.floor(a) == a for a, _ in bounds)
    assert len(bounds) >= min(parts, 2)
    reads = []
    original = zarr_ds.read_selection

    def counting(array, selection, dest):
        reads.append(selection)
        original(array, selection, dest)

    monkeypatch.setattr(zarr_ds, "read_selection", counting)
    res = inline_ctx.run_udf(dataset=ds, udf=SumUDF())
    np.testing.assert_allclose(
        res["intensity"].raw_data, data.reshape(-1, 4, 4).sum(axis=0), rtol=1e-5
    )
    chunk_id = np.ravel_multi_index(
        np.indices(nav) // np.reshape(chunks, (-1,) + (1,) * len(nav)),
        [-(-n // c) for n, c in zip(nav, chunks)],
    )
    part_of = np.repeat(np.arange(len(bounds)), [b - a for a, b in bounds]).reshape(nav)
    seen = np.zeros(nav, dtype=int)
    decoded = {}
    for sel in reads:
        seen[sel] += 1
        assert len(np.unique(part_of[sel])) == 1, "a read stays within its partition"
        for cid in np.unique(chunk_id[sel]):
            decoded[cid] = decoded.get(cid, 0) + 1
    assert (seen == 1).all(), "every frame is read exactly once"
    assert sorted(decoded) == sorted(np.unique(chunk_id)) and set(decoded.values()) == {1}


def test_roi_reads_only_selected_chunks(tmp_path, inline_ctx, monkeypatch):
    path = str(tmp_path / "d.zarr")
    data = np.random.default_rng(1).random((16, 16, 4, 4)).astype(np.float32)
    zarr.create_array(store=path, data=data, chunks=(1, 8, 4, 4))
    ds = inline_ctx.load("zarr", path=path, num_partitions=1)
    roi = np.zeros((16, 16), dtype=bool)
    roi[3, 9] = roi[12, 0] = roi[12, 2] = True
    reads = []
    original = zarr_ds.read_selection
    monkeypatch.setattr(
        zarr_ds, "read_selection", lambda a, s, d: (reads.append(s), original(a, s, d))
    )
    got = inline_ctx.run_udf(dataset=ds, udf=PickUDF(), roi=roi)["intensity"].raw_data
    np.testing.assert_array_equal(got, data[roi])
    frames = sum(int(np.prod([s.stop - s.start for s in sel])) for sel in reads)
    assert frames == 16  # the two chunks of eight frames that hold selected frames


def test_store_left_unchanged(tmp_path, threads_ctx):
    path = tmp_path / "d.zarr"
    write(path, "v3-rows-zstd")
    before = {p: os.stat(p).st_mtime_ns for p in path.rglob("*")}
    ds = threads_ctx.load("zarr", path=str(path))
    threads_ctx.run_udf(dataset=ds, udf=SumUDF())
    assert {p: os.stat(p).st_mtime_ns for p in path.rglob("*")} == before
    node = zarr_ds.open_node(str(path))
    assert node.read_only and node.store.read_only


def test_errors(tmp_path, inline_ctx):
    def fails(match, **kw):
        with pytest.raises(DataSetException, match=match) as e:
            inline_ctx.load("zarr", **kw)
        return e

    e = fails("no such file or directory", path=str(tmp_path / "missing.zarr"))
    assert "missing.zarr" in str(e.value)
    afile = tmp_path / "file.zarr"
    afile.write_bytes(b"x")
    fails("not a directory", path=str(afile))
    (tmp_path / "empty").mkdir()
    fails("not a Zarr store", path=str(tmp_path / "empty"))
    path = tmp_path / "d.zarr"
    write(path, "v3-frames")
    # LiberTEM: nav_shape may ask for more frames than stored (never read)
    assert tuple(inline_ctx.load("zarr", path=str(path), nav_shape=(4, 5)).shape.nav) == (4, 5)
    fails("sig_shape", path=str(path), sig_shape=(3, 3))
    fails("sync_offset", path=str(path), sync_offset=15)
    fails("io_backend", path=str(path), io_backend="mmap")
    fails("no navigation axes", path=str(path), sig_dims=4)
    fails("disagree", path=str(path), array="a", ds_path="b")
    group = str(tmp_path / "g.zarr")
    root = zarr.open_group(group, mode="w")
    root.create_array("flat", shape=(4, 4), dtype="f4")
    root.create_array("text", shape=(2, 2, 2), dtype=str)
    fails("no Zarr array or group 'nope'", path=group, array="nope")
    root.create_group("sub")
    fails("is a group, not an array", path=group, array="sub")
    fails("no numeric array with at least 3 axes", path=group)
    fails("not numeric", path=group, array="text")
    with pytest.raises(DataSetException, match="could not determine"):
        inline_ctx.load("auto", path=group)
    with pytest.raises(DataSetException, match="could not determine"):
        inline_ctx.load("auto", path=str(tmp_path / "empty"))


@st.composite
def grids(draw):
    nav = tuple(draw(st.lists(st.integers(1, 7), min_size=1, max_size=3)))
    chunks = tuple(draw(st.integers(1, n + 1)) for n in nav)
    return nav, chunks


def _safe_cuts(nav, chunks):
    """Brute force: flat positions that no chunk spans."""
    ids = [tuple(i // c for i, c in zip(idx, chunks)) for idx in np.ndindex(*nav)]
    n = len(ids)
    return [f for f in range(n + 1) if not set(ids[:f]) & set(ids[f:])]


@given(grids(), st.data())
def test_flat_chunk_grid_matches_brute_force(grid_spec, data):
    nav, chunks = grid_spec
    grid = FlatChunkGrid(nav, chunks)
    cuts = _safe_cuts(nav, chunks)
    frame = data.draw(st.integers(0, grid.n_frames))
    lo, hi = grid.floor(frame), grid.ceil(frame)
    assert lo <= frame <= hi and lo in cuts and hi in cuts and grid.snap(frame) in (lo, hi)
    if all(n % c == 0 or c > n for n, c in zip(nav, chunks)):
        # without partial chunks at the ends of axes, these are the nearest cuts
        assert lo == max(c for c in cuts if c <= frame)
        assert hi == min(c for c in cuts if c >= frame)
    if frame < grid.n_frames:
        lo, hi = grid.chunk_range(frame)
        assert lo <= frame < hi and lo in cuts and hi in cuts


@given(st.lists(st.integers(1, 6), min_size=1, max_size=4), st.data())
def test_flat_slabs_cover_the_range(shape, data):
    n = int(np.prod(shape))
    a = data.draw(st.integers(0, n))
    b = data.draw(st.integers(a, n))
    marks = np.zeros(shape, dtype=int)
    pos = a
    for offset, sel in flat_slabs(a, b, shape):
        assert offset == pos
        block = marks[sel]
        assert block.size > 0
        marks[sel] += 1
        first = np.ravel_multi_index(tuple(s.start for s in sel), shape)
        assert first == offset
        pos += block.size
    assert pos == b
    expected = np.zeros(n, dtype=int)
    expected[a:b] = 1
    np.testing.assert_array_equal(marks.reshape(-1), expected)


def test_missing_chunks_read_as_fill_value(tmp_path, ctx):
    path = str(tmp_path / "sparse.zarr")
    arr = zarr.create_array(
        store=path, shape=(4, 4, 6, 6), dtype="int16", chunks=(1, 2, 6, 6), fill_value=7
    )
    arr[1:3, :2] = -3  # only four of the eight chunks exist
    expected = np.full((4, 4, 6, 6), 7, dtype=np.int16)
    expected[1:3, :2] = -3
    ds = ctx.load("zarr", path=path, num_partitions=3)
    assert ds.dtype == np.int16
    check_dataset(ctx, ds, expected)


def test_huge_chunk_rows_read_in_parts(tmp_path, ctx, monkeypatch):
    path = str(tmp_path / "d.zarr")
    data = np.random.default_rng(6).random((6, 7, 5, 5)).astype(np.float32)
    zarr.create_array(store=path, data=data, chunks=(6, 7, 5, 5))  # one chunk for all
    monkeypatch.setattr(zarr_ds, "MAX_BLOCK_BYTES", 1000)
    monkeypatch.setattr(zarr_ds, "BLOCK_BYTES", 400)  # four frames per block
    ds = ctx.load("zarr", path=path, num_partitions=3)
    assert ds._grid is None and len(list(ds.get_partitions())) == 3
    check_dataset(ctx, ds, data)
