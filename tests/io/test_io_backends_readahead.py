"""Reading ahead for the buffered and direct backends: plans of extents, the background
reader, and whole runs through it (results against numpy, with and without ROI)."""

import threading

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from libertem.exceptions import DataSetException
from libertem.io.dataset.base import (
    BufferedBackend,
    DirectBackend,
    FileFrameSource,
    FileSpan,
    FrameLayout,
    readahead,
    single_file_layout,
)
from libertem.io.dataset.base.readahead import (
    DIRECT_ALIGN,
    Extent,
    ExtentReader,
    ReadAhead,
    merge_runs,
    plan_extents,
)
from libertem.udf.raw import PickUDF
from libertem.udf.sum import SumUDF
from utils import make_roi

SIG = (16, 16)
FB = SIG[0] * SIG[1] * 2


def _reader_threads() -> set:
    return {t for t in threading.enumerate() if t.name == "libertem-readahead" and t.is_alive()}


@pytest.fixture
def readers_alive():
    """The number of read-ahead threads alive that the test started."""
    before = _reader_threads()
    return lambda: len(_reader_threads() - before)


@pytest.fixture
def frames():
    return np.random.default_rng(5).integers(0, 60000, size=(40, *SIG)).astype(np.uint16)


def headered_files(tmp_path, frames, splits, header=40, file_header=100):
    """The frames in several files, each frame behind ``header`` bytes; the layout."""
    spans = []
    for i, (a, b) in enumerate(zip(splits[:-1], splits[1:])):
        path = tmp_path / f"f{i}.bin"
        with open(path, "wb") as f:
            f.write(b"F" * file_header)
            for fr in frames[a:b]:
                f.write(b"H" * header + fr.tobytes())
        spans.append(FileSpan(str(path), file_header + header, header + FB, b - a))
    return FrameLayout(tuple(spans), FB, SIG, "<u2")


# -- plans ------------------------------------------------------------------------------
runs_strategy = st.lists(st.tuples(st.integers(0, 200), st.integers(1, 30)), max_size=12).map(
    lambda pairs: merge_runs(sorted((a, a + n) for a, n in pairs), 0)
)


@settings(max_examples=60, deadline=None)
@given(
    runs=runs_strategy,
    counts=st.lists(st.integers(1, 60), min_size=1, max_size=5),
    max_read=st.integers(1, 20 * FB),
    header=st.sampled_from([0, 4, 512]),
)
def test_plan_covers_runs_in_files(runs, counts, max_read, header):
    starts = list(np.cumsum([0, *counts]))
    spans = [FileSpan(f"f{i}", 7 + header, FB + header, c) for i, c in enumerate(counts)]
    runs = [(a, min(b, starts[-1])) for a, b in runs if a < starts[-1]]
    extents = plan_extents(runs, starts, spans, FB, max_read)
    covered = [f for e in extents for f in range(e.first, e.stop)]
    assert covered == [f for a, b in runs for f in range(a, b)]
    for e in extents:
        i = e.file_idx
        assert starts[i] <= e.first < e.stop <= starts[i + 1]  # never across files
        assert e.offset == 7 + header + (e.first - starts[i]) * (FB + header)
        assert e.nbytes == (e.stop - e.first - 1) * (FB + header) + FB
        assert e.nbytes <= max(max_read, FB)


def test_merge_runs_joins_small_gaps():
    assert merge_runs([(0, 2), (3, 5), (9, 10)], 1) == [(0, 5), (9, 10)]
    assert merge_runs([(0, 2), (3, 5), (9, 10)], 0) == [(0, 2), (3, 5), (9, 10)]
    assert merge_runs([], 3) == []


# -- the background reader ---------------------------------------------------------------
@pytest.mark.parametrize("direct", [False, True])
def test_read_ahead_hands_out_extents_in_order(tmp_path, frames, direct, readers_alive):
    layout = headered_files(tmp_path, frames, [0, 40], header=12, file_header=3)
    span = layout.files[0]
    starts = [0, 40]
    extents = plan_extents([(0, 40)], starts, layout.files, FB, 5 * FB)
    import os

    fd = os.open(span.path, os.O_RDONLY | (os.O_DIRECT if direct else 0))
    try:
        ahead = ReadAhead(extents, ExtentReader({0: fd}, [span.path], direct), n_buffers=2)
        got = []
        while ahead.peek() is not None:
            ext, data = ahead.next()
            if direct:  # the read buffer is page-aligned; the frames start within it
                base = data.ctypes.data - (ext.offset % DIRECT_ALIGN)
                assert base % DIRECT_ALIGN == 0
            n = ext.stop - ext.first
            view = np.ndarray((n, FB), np.uint8, data, 0, (span.stride, 1))
            got.append(view.copy().view("<u2").reshape(n, *SIG))
        assert readers_alive() <= 1
        with pytest.raises(IndexError):
            ahead.next()
        ahead.close()
    finally:
        os.close(fd)
    np.testing.assert_array_equal(np.concatenate(got), frames)
    assert readers_alive() == 0


def test_single_extent_is_read_without_a_thread(tmp_path, frames):
    path = tmp_path / "a.raw"
    frames.tofile(path)
    src = FileFrameSource(single_file_layout(path, 0, 40, SIG, "u2"), "u2", 0, "buffered")
    src.plan(0, 40)
    before = threading.active_count()
    out = np.empty((40, *SIG), np.float32)
    src.read_into(0, 40, out)
    assert threading.active_count() == before
    src.close()
    np.testing.assert_array_equal(out, frames)


@pytest.mark.parametrize("backend", [BufferedBackend(3 * FB), DirectBackend(3 * FB)])
def test_planned_reads_leaving_the_plan(tmp_path, frames, backend, readers_alive):
    """Reads the plan does not foresee (going back, skipping, other frames) still read
    the right frames."""
    layout = headered_files(tmp_path, frames, [0, 13, 40])
    src = FileFrameSource(layout, "u2", 0, backend)
    src.plan(0, 40, np.arange(40) % 4 != 3)
    out = np.empty((40, *SIG), np.uint16)
    for a, b in [(0, 3), (4, 7), (2, 9), (30, 36), (10, 12), (36, 40), (12, 30)]:
        src.read_into(a, b, out[a:b])
        np.testing.assert_array_equal(out[a:b], frames[a:b])
    src.close()
    assert readers_alive() == 0


@pytest.mark.parametrize("backend", ["buffered", "direct"])
def test_truncated_file_raises_from_the_reader(tmp_path, frames, backend, readers_alive):
    path = tmp_path / "short.raw"
    frames[:30].tofile(path)
    layout = single_file_layout(path, 0, 40, SIG, "u2")  # claims 10 frames too many
    src = FileFrameSource(
        layout, "u2", 0, DirectBackend(4 * FB) if backend == "direct" else BufferedBackend(4 * FB)
    )
    src.plan(0, 40)
    out = np.empty((40, *SIG), np.uint16)
    with pytest.raises(DataSetException, match="truncated"):
        for a in range(0, 40, 5):
            src.read_into(a, a + 5, out[a : a + 5])
    np.testing.assert_array_equal(out[:28], frames[:28])
    src.close()
    assert readers_alive() == 0


def test_abandoned_tiles_stop_the_reader(tmp_path, frames, inline_ctx, readers_alive):
    path = tmp_path / "a.raw"
    frames.tofile(path)
    ds = inline_ctx.load(
        "raw",
        str(path),
        "u2",
        nav_shape=(40,),
        sig_shape=SIG,
        num_partitions=1,
        io_backend=BufferedBackend(2 * FB),
    )
    from libertem.io.dataset.base import TilingScheme

    (p,) = ds.get_partitions()
    tiles = p.get_tiles(TilingScheme.make_for_shape((2, *SIG), ds.shape), "float32")
    first = next(tiles)
    np.testing.assert_array_equal(first.data, frames[:2])
    assert readers_alive() == 1
    tiles.close()
    assert readers_alive() == 0


def test_read_buffers_are_reused_and_bounded(tmp_path, frames, inline_ctx, monkeypatch):
    path = tmp_path / "a.raw"
    frames.tofile(path)
    ds = inline_ctx.load(
        "raw",
        str(path),
        "u2",
        nav_shape=(40,),
        sig_shape=SIG,
        num_partitions=5,  # 8 frames each: two page-aligned extents of 4 frames
        io_backend=DirectBackend(4 * FB),
    )
    pool = readahead._BufferPool(1 << 20)
    monkeypatch.setattr(readahead, "BUFFER_POOL", pool)
    res = inline_ctx.run_udf(dataset=ds, udf=SumUDF())
    np.testing.assert_array_equal(res["intensity"].data, frames.sum(axis=0))
    assert list(pool._free) == [(DIRECT_ALIGN, True)]
    assert len(pool._free[DIRECT_ALIGN, True]) == 2  # the partitions ran one after another
    first = {id(b) for v in pool._free.values() for b in v}
    inline_ctx.run_udf(dataset=ds, udf=SumUDF())
    assert {id(b) for v in pool._free.values() for b in v} == first  # taken and given back

    small = readahead._BufferPool(DIRECT_ALIGN)  # room for one buffer only
    monkeypatch.setattr(readahead, "BUFFER_POOL", small)
    inline_ctx.run_udf(dataset=ds, udf=SumUDF())
    assert sum(len(v) for v in small._free.values()) == 1
    assert small._kept == DIRECT_ALIGN


# -- whole runs ----------------------------------------------------------------------------
@pytest.mark.parametrize("backend", [BufferedBackend(5 * FB), DirectBackend(5 * FB)])
@pytest.mark.parametrize("roi_kind", [None, "random", "sparse", "blocks"])
@pytest.mark.parametrize("sync_offset", [0, 3, -5])
def test_sum_and_pick_through_read_ahead(tmp_path, ctx, frames, backend, roi_kind, sync_offset):
    path = tmp_path / "a.raw"
    frames.tofile(path)
    nav = (5, 8)
    ds = ctx.load(
        "raw",
        str(path),
        "u2",
        nav_shape=nav,
        sig_shape=SIG,
        num_partitions=3,
        io_backend=backend,
        sync_offset=sync_offset,
    )
    shifted = np.zeros((40, *SIG), np.uint16)  # dataset frame i is file frame i + offset
    lo, hi = max(0, -sync_offset), min(40, 40 - sync_offset)
    shifted[lo:hi] = frames[lo + sync_offset : hi + sync_offset]
    roi = {
        None: None,
        "random": make_roi(nav, seed=3),
        "sparse": np.arange(40).reshape(nav) % 9 == 0,
        "blocks": (np.arange(40).reshape(nav) // 6) % 2 == 0,
    }[roi_kind]
    sel = shifted if roi is None else shifted[roi.reshape(-1)]
    res = ctx.run_udf(
        dataset=ds, udf=[SumUDF(), PickUDF()] if roi is not None else SumUDF(), roi=roi
    )
    res = res if isinstance(res, (list, tuple)) else [res]
    np.testing.assert_allclose(res[0]["intensity"].data, sel.sum(axis=0, dtype=np.float64))
    if roi is not None:
        np.testing.assert_array_equal(res[1]["intensity"].raw_data, sel)


@pytest.mark.parametrize("backend", [BufferedBackend(4 * FB + 100), DirectBackend(4 * FB + 100)])
def test_headered_multi_file_tiles(tmp_path, frames, backend, readers_alive):
    """Frames behind headers, in files of unaligned sizes, read with small extents."""
    from libertem.common.shape import Shape
    from libertem.io.dataset.base import LayoutPartition, TilingScheme

    layout = headered_files(tmp_path, frames, [0, 7, 8, 33, 40], header=36, file_header=10)
    shape = Shape((40, *SIG), sig_dims=2)
    for roi in (None, make_roi((40,), seed=8)):
        p = LayoutPartition(layout, 0, 40, shape, np.uint16, io_backend=backend)
        scheme = TilingScheme.make_for_shape((3, 8, 16), shape)
        want = frames if roi is None else frames[roi]
        out = np.zeros(want.shape, np.float32)
        for tile in p.get_tiles(scheme, "float32", roi=roi):
            out[tile.slice.get()] = tile.data
        np.testing.assert_array_equal(out, want)
    assert readers_alive() == 0


def test_extent_reader_buffer_size_covers_alignment():
    reader = ExtentReader({}, [], direct=True)
    exts = [Extent(0, 0, 2, 4000, 2 * FB), Extent(0, 2, 3, 4000 + 2 * FB, FB)]
    lo, hi = readahead.direct_span(4000, 2 * FB)
    assert lo % DIRECT_ALIGN == 0 and hi % DIRECT_ALIGN == 0 and lo <= 4000
    assert reader.buffer_bytes(exts) == hi - lo
    assert ExtentReader({}, [], direct=False).buffer_bytes(exts) == 2 * FB


def test_mmap_hints_follow_the_plan(tmp_path, frames, monkeypatch):
    """Memory maps with readahead hints advise the planned extents, a bounded distance
    ahead of the frames being read, each once; the tiles are unchanged."""
    from libertem.common.shape import Shape
    from libertem.io.dataset.base import LayoutPartition, MMapBackend, TilingScheme, filesource

    monkeypatch.setattr(filesource, "HINT_BYTES", 4 * FB)
    advised = []
    read_upto = []
    real_advise, real_view = FileFrameSource._advise, FileFrameSource.view

    def advise(self, i, start, nbytes):
        advised.append((start, nbytes, read_upto[-1] if read_upto else 0))
        return real_advise(self, i, start, nbytes)

    def view(self, a, b):
        read_upto.append(b)
        return real_view(self, a, b)

    monkeypatch.setattr(FileFrameSource, "_advise", advise)
    monkeypatch.setattr(FileFrameSource, "view", view)
    path = tmp_path / "a.raw"
    frames.tofile(path)
    layout = single_file_layout(path, 0, 40, SIG, "u2")
    shape = Shape((40, *SIG), sig_dims=2)
    p = LayoutPartition(layout, 0, 40, shape, np.uint16, io_backend=MMapBackend(True))
    scheme = TilingScheme.make_for_shape((2, *SIG), shape)
    out = np.zeros((40, *SIG), np.uint16)
    for tile in p.get_tiles(scheme, "uint16"):
        out[tile.slice.get()] = tile.data
    np.testing.assert_array_equal(out, frames)
    starts = [s for s, _, _ in advised]
    assert starts == sorted(set(starts))  # each extent once, in order
    assert sum(n for _, n, _ in advised) == 40 * FB  # all frames, in extents of 4 frames
    assert all(n <= 4 * FB for _, n, _ in advised)
    # while the first tile is read, the kernel is already asked for frames 8..11
    assert max(start // FB for start, _, upto in advised if upto == 2) == 8
    for start, _, upto in advised:  # never more than 2 * HINT_BYTES ahead of the reads
        assert start // FB < upto + 8


@pytest.fixture(scope="module")
def readahead_dask_ctx():
    from dask_shared import acquire_cluster, release_cluster
    from libertem.api import Context

    executor = acquire_cluster()
    yield Context(executor=executor)
    release_cluster()


def test_read_ahead_in_dask_workers(tmp_path, readahead_dask_ctx):
    """Reader threads in the worker processes: several partitions, extents and a ROI."""
    data = np.random.default_rng(9).integers(0, 4000, size=(6, 20, *SIG)).astype(">u2")
    path = tmp_path / "be.raw"
    data.tofile(path)
    roi = make_roi((6, 20), seed=4)
    for backend in (BufferedBackend(7 * FB), DirectBackend(7 * FB)):
        ds = readahead_dask_ctx.load(
            "raw",
            str(path),
            ">u2",
            nav_shape=(6, 20),
            sig_shape=SIG,
            num_partitions=4,
            io_backend=backend,
        )
        for r in (None, roi):
            res = readahead_dask_ctx.run_udf(dataset=ds, udf=SumUDF(), roi=r)
            want = (data if r is None else data[r]).reshape(-1, *SIG).sum(axis=0, dtype="f8")
            np.testing.assert_allclose(res["intensity"].data, want)
