"""File, FileSet, FileTree, read ranges, decoders, BasePartition and the I/O backends,
checked against numpy on every executor, with and without ROI."""

import errno
import os

import numpy as np
import pytest

from libertem.common.exceptions import DataSetException
from libertem.common.shape import Shape
from libertem.common.slice import Slice
from libertem.io.dataset.base import (
    BasePartition,
    BufferedBackend,
    DataSetMeta,
    Decoder,
    DirectBackend,
    DtypeConversionDecoder,
    File,
    FileSet,
    FileTree,
    IOBackend,
    MMapBackend,
    OffsetsSizes,
    TilingScheme,
    decode_swap_2,
    decode_swap_4,
    default_get_read_ranges,
    make_get_read_ranges,
)
from libertem.io.dataset.base.backend_impl import (
    BufferedBackendImpl,
    DirectBackendImpl,
    MMapBackendImpl,
)
from libertem.io.dataset.base.readranges import _default_px_to_bytes
from libertem.udf.raw import PickUDF
from libertem.udf.sum import SumUDF
from libertem.udf.sumsigudf import SumSigUDF
from utils import make_roi

SIG = (6, 8)
BACKENDS = ["mmap", "buffered", "direct"]


def write_records(tmp_path, frames, splits, file_header=16, header=8, footer=4, dtype=">u2"):
    """Frames in several files, each ``file_header`` bytes then records of
    ``header`` bytes + frame + ``footer`` bytes; the matching File objects."""
    files, start = [], 0
    for i, n in enumerate(splits):
        path = tmp_path / f"rec{i}.bin"
        body = bytearray(b"F" * file_header)
        for fr in frames[start : start + n]:
            body += b"H" * header + fr.astype(dtype).tobytes() + b"T" * footer
        path.write_bytes(bytes(body))
        files.append(File(str(path), start, start + n, dtype, SIG, footer, header, file_header))
        start += n
    return files


@pytest.fixture
def frames():
    return np.random.default_rng(3).integers(0, 60000, size=(11, *SIG)).astype(np.uint16)


def test_file_and_offsets(tmp_path, frames):
    (f,) = write_records(tmp_path, frames, [11])
    assert (f.start_idx, f.end_idx, f.num_frames, f.file_header_bytes) == (0, 11, 11, 16)
    assert f.native_dtype == np.dtype(">u2") and f.sig_shape == SIG
    size = os.path.getsize(f.path)
    os_ = f.get_offsets_sizes(size + 10)
    assert os_ == OffsetsSizes(16, 10, 8, 96)
    arr = f.get_array_from_memview(memoryview(open(f.path, "rb").read()), os_)
    np.testing.assert_array_equal(arr, frames)
    np.testing.assert_array_equal(f.open(), frames)


def test_fileset_and_tree(tmp_path, frames):
    files = write_records(tmp_path, frames, [3, 5, 3])
    fs = FileSet(files[::-1])
    assert [f.start_idx for f in fs] == [0, 3, 8] and len(fs) == 3
    assert [f.start_idx for f in fs.files_from(4)] == [3, 8]
    assert [f.start_idx for f in fs.get_for_range(2, 3)] == [0, 3]
    np.testing.assert_array_equal(
        fs.get_as_arr(), [[0, 3, 16, 8, 4], [3, 8, 16, 8, 4], [8, 11, 16, 8, 4]]
    )
    tree = FileTree.make(files)
    for frame in range(11):
        idx, f = tree.search_start(frame)
        assert f.start_idx <= frame < f.end_idx and files[idx] is f
    assert tree.search_start(11) is None and "[3, 8)" in tree.to_string()
    with pytest.raises(ValueError, match="overlap"):
        FileSet([files[0], File(files[1].path, 2, 6, ">u2", SIG)])


def test_read_ranges_against_offsets(tmp_path, frames):
    files = write_records(tmp_path, frames, [4, 7])
    fs = FileSet(files)
    ds_shape = Shape((9, *SIG), sig_dims=2)
    scheme = TilingScheme.make_for_shape((3, 2, 8), ds_shape)
    roi = np.zeros(9, bool)
    roi[[0, 2, 3, 4, 8]] = True
    slices, ranges, idx = fs.get_read_ranges(1, 9, ">u2", scheme, sync_offset=2, roi=roi)
    sel = np.flatnonzero(roi[1:9]) + 1  # dataset frames 2, 3, 4, 8
    assert slices.shape == (2 * 3, 2, 3) and list(idx) == [0, 1, 2] * 2
    assert (
        list(slices[:, 0, 0]) == [1, 1, 1, 4, 4, 4] and list(slices[:, 1, 0]) == [3] * 3 + [1] * 3
    )
    for t in range(6):
        block, part = divmod(t, 3)
        for k in range(slices[t, 1, 0]):
            frame = sel[block * 3 + k] + 2  # file frame
            fi = 0 if frame < 4 else 1
            local = frame - files[fi].start_idx
            start = 16 + local * (8 + 96 + 4) + 8 + part * 2 * 8 * 2
            assert tuple(ranges[t, k]) == (fi, start, start + 32)
    # frames outside the files, and no ROI: the listed function directly
    out = default_get_read_ranges(
        0, 3, None, 2, scheme.slices_array, fs.get_as_arr(), SIG, 16, -1, None, 0, 0
    )
    assert out[1][0, 0, 0] == -1 and out[1][0, 1, 0] == 0
    with pytest.raises(ValueError, match="whole rows"):
        fs.get_read_ranges(0, 3, ">u2", TilingScheme.make_for_shape((1, 6, 4), ds_shape))


def test_custom_px_to_bytes(tmp_path, frames):
    import numba

    @numba.njit
    def whole_frame(bpp, frame, origin, shape, sig_shape, file_header, header, footer, extra):
        start, stop = _default_px_to_bytes(
            bpp, frame, origin * 0, sig_shape, sig_shape, file_header, header, footer, extra
        )
        return start, stop + extra

    fn = make_get_read_ranges(px_to_bytes=whole_frame)
    fs = FileSet(write_records(tmp_path, frames, [11]))
    scheme = TilingScheme.make_for_shape((2, 3, 8), Shape((11, *SIG), 2))
    _, ranges, _ = fn(0, 2, None, 2, scheme.slices_array, fs.get_as_arr(), SIG, 16, 0, 5, 0, 0)
    assert tuple(ranges[0, 0]) == (0, 24, 24 + 96 + 5) and tuple(ranges[1, 1]) == tuple(
        ranges[0, 1]
    )


def test_decode_functions():
    z = np.zeros(3, np.int64)
    out = np.zeros((2, 5), np.float32)
    vals = (np.arange(5) * 300).astype(">u2")
    decode_swap_2(np.frombuffer(vals.tobytes(), np.uint8), out, 1, np.dtype("u2"), z, z, z, z)
    np.testing.assert_array_equal(out[1], vals)
    vals = (np.arange(5) - 2.5).astype(">f4")
    decode_swap_4(np.frombuffer(vals.tobytes(), np.uint8), out, 0, np.dtype("f4"), z, z, z, z)
    np.testing.assert_array_equal(out[0], vals)
    dec = DtypeConversionDecoder()
    assert dec.get_decode(np.dtype(">u2"), np.float32) is decode_swap_2
    assert dec.get_native_dtype(">u4", "f4") == np.dtype(">u4") and not dec.do_clear()
    with pytest.raises(NotImplementedError):
        Decoder().get_decode("u2", "f4")


class _SwapOnlyDecoder(DtypeConversionDecoder):
    """A decoder without a block kernel: tiles go through the per-range decode path."""

    def layout_decoder(self, native_dtype):
        return None


def _partitions(files, n_frames, sync, backend, decoder, n_parts=2):
    shape = Shape((n_frames, *SIG), sig_dims=2)
    meta = DataSetMeta(shape=shape, raw_dtype="u2", image_count=11, sync_offset=sync)
    fs = FileSet(files)
    parts = []
    for sl, a, b in BasePartition.make_slices(shape, n_parts, sync):
        parts.append(BasePartition(meta, sl, fs, a, b - a, backend, decoder))
    return parts, shape


@pytest.mark.parametrize("backend", [MMapBackend(), BufferedBackend(200), DirectBackend(8192)])
@pytest.mark.parametrize("decoder", [None, DtypeConversionDecoder(), _SwapOnlyDecoder()])
@pytest.mark.parametrize("sync", [0, 2, -3])
def test_base_partition_paths(tmp_path, frames, backend, decoder, sync):
    files = write_records(tmp_path, frames, [4, 7])
    parts, shape = _partitions(files, 9, sync, backend, decoder)
    expected = np.zeros((9, *SIG), np.uint16)
    for i in range(9):
        if 0 <= i + sync < 11:
            expected[i] = frames[i + sync]
    roi = make_roi((9,), seed=sync + 5)
    for tiles_of in ("tile", "frame"):
        sig_tile = (2, 8) if tiles_of == "tile" else SIG
        scheme = TilingScheme.make_for_shape((2, *sig_tile), shape)
        for use_roi in (None, roi):
            got = []
            for p in parts:
                n = p.get_frame_count(use_roi)
                out = np.zeros((n, *SIG), np.float32)
                # with a ROI, tile_slice counts the selected frames over the whole dataset
                before = p.start if use_roi is None else int(use_roi[: p.start].sum())
                for t in p.get_tiles(scheme, "float32", use_roi):
                    out[t.slice.get()] = t.data
                    assert t.tile_slice.origin[0] == before + t.slice.origin[0]
                got.append(out)
            ref = expected if use_roi is None else expected[use_roi]
            np.testing.assert_array_equal(np.concatenate(got), ref)
    fast = parts[0].layout is not None
    assert fast == (not isinstance(decoder, _SwapOnlyDecoder))


def test_backend_impls_directly(tmp_path, frames):
    files = write_records(tmp_path, frames, [5, 6])
    fs = FileSet(files)
    shape = Shape((11, *SIG), sig_dims=2)
    scheme = TilingScheme.make_for_shape((4, 3, 8), shape)
    rr = fs.get_read_ranges(0, 11, ">u2", scheme)
    for impl in (MMapBackendImpl(True), BufferedBackendImpl(1 << 20), DirectBackendImpl(1 << 20)):
        out = np.zeros((11, *SIG))
        for t in impl.get_tiles(
            scheme, fs, rr, None, ">u2", "f8", DtypeConversionDecoder(), 0, None
        ):
            out[t.slice.get()] = t.data
        np.testing.assert_array_equal(out, frames)
        assert impl.need_copy(None, None, "u2", "f4") and not impl.need_copy(
            None, None, "u2", "u2"
        )
    assert MMapBackend().get_impl().get_read_and_decode(decode_swap_2) is not None


def test_io_backend_objects():
    assert IOBackend.get_cls_by_id("Buffered") is BufferedBackend
    assert {"mmap", "buffered", "direct"} <= set(IOBackend.get_supported())
    assert MMapBackend.platform_supported() and DirectBackend.platform_supported()
    b = IOBackend.from_json({"type": "direct", "max_buffer_size": 4096})
    assert isinstance(b, DirectBackend) and b.max_buffer_size == 4096 == b.max_io_size
    assert BufferedBackend.from_json({"max_buffer_size": 10}) == BufferedBackend(10)
    assert MMapBackend.from_json(MMapBackend(True).to_json()) == MMapBackend(True)
    assert MMapBackend().max_io_size is None and "enable_readahead_hints" in repr(MMapBackend())
    with pytest.raises(ValueError, match="unknown I/O backend"):
        IOBackend.get_cls_by_id("turbo")
    with pytest.raises(ValueError, match="needs a 'type'"):
        IOBackend.from_json({})
    with pytest.raises(ValueError, match="max_buffer_size"):
        BufferedBackend(0)


@pytest.fixture
def raw_file(tmp_path):
    data = np.random.default_rng(8).integers(0, 4000, size=(5, 6, *SIG)).astype("<u2")
    path = tmp_path / "data.raw"
    data.tofile(path)
    return str(path), data


@pytest.mark.parametrize(
    "io_backend",
    [
        None,
        "mmap",
        MMapBackend(enable_readahead_hints=True),
        BufferedBackend(),
        BufferedBackend(max_buffer_size=300),
        "direct",
        DirectBackend(max_buffer_size=5000),
    ],
    ids=["default", "mmap", "mmap-hints", "buffered", "buffered-small", "direct", "direct-small"],
)
def test_run_udfs_each_backend(ctx, raw_file, io_backend):
    path, data = raw_file
    ds = ctx.load(
        "raw",
        path,
        "<u2",
        nav_shape=(5, 6),
        sig_shape=SIG,
        io_backend=io_backend,
        num_partitions=3,
    )
    roi = make_roi((5, 6), seed=9)
    for r in (None, roi):
        res = ctx.run_udf(dataset=ds, udf=[SumUDF(), SumSigUDF(), PickUDF()], roi=r)
        sel = data.reshape(-1, *SIG) if r is None else data[r]
        np.testing.assert_allclose(res[0]["intensity"].data, sel.sum(axis=0))
        np.testing.assert_allclose(res[1]["intensity"].raw_data, sel.sum(axis=(1, 2)))
        np.testing.assert_array_equal(res[2]["intensity"].raw_data, sel)


def test_direct_io_refused(monkeypatch, inline_ctx, raw_file):
    path, _ = raw_file
    real_open = os.open

    def no_direct(p, flags, *args):
        if flags & getattr(os, "O_DIRECT", 0):
            raise OSError(errno.EINVAL, "Invalid argument")
        return real_open(p, flags, *args)

    monkeypatch.setattr(os, "open", no_direct)
    ds = inline_ctx.load("raw", path, "<u2", nav_shape=(5, 6), sig_shape=SIG, io_backend="direct")
    with pytest.raises(DataSetException, match="refuses direct I/O.*buffered"):
        inline_ctx.run_udf(dataset=ds, udf=SumUDF())


def test_direct_reads_bypass_page_cache_alignment(raw_file):
    from libertem.io.dataset.base.filesource import FileFrameSource
    from libertem.io.dataset.base.layout import single_file_layout
    from libertem.io.dataset.base.readahead import DIRECT_ALIGN

    path, data = raw_file
    layout = single_file_layout(path, 0, 30, SIG, "<u2")
    src = FileFrameSource(layout, "u2", io_backend=DirectBackend(max_buffer_size=200))
    out = np.empty((7, *SIG), np.uint16)
    src.read_into(13, 20, out)
    np.testing.assert_array_equal(out, data.reshape(-1, *SIG)[13:20])
    assert src._raw.ctypes.data % DIRECT_ALIGN == 0
    src.close()


def test_unknown_backend_names_the_file(inline_ctx, raw_file):
    path, _ = raw_file
    with pytest.raises(DataSetException, match="unknown io_backend 'fast'"):
        inline_ctx.load("raw", path, "<u2", nav_shape=(5, 6), sig_shape=SIG, io_backend="fast")
    with pytest.raises(DataSetException, match="io_backend must be an IOBackend"):
        inline_ctx.load("raw", path, "<u2", nav_shape=(5, 6), sig_shape=SIG, io_backend=3)


def test_partition_slice_and_frames_agree(tmp_path, frames):
    files = write_records(tmp_path, frames, [11])
    meta = DataSetMeta(shape=Shape((11, *SIG), 2), raw_dtype="u2")
    sl = Slice((0, 0, 0), Shape((4, *SIG), 2))
    with pytest.raises(ValueError, match="num_frames 5"):
        BasePartition(meta, sl, FileSet(files), 0, 5, None)
