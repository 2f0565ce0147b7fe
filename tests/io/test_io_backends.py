"""The base I/O layer: frame sources, mmap and buffered backends, decoders, tiles."""

import numpy as np
import pytest

from libertem.common.shape import Shape
from libertem.exceptions import DataSetException
from libertem.io.dataset.base import (
    FileFrameSource,
    FileSpan,
    FrameLayout,
    FrameSource,
    LayoutPartition,
    TilingScheme,
    check_io_backend,
    iter_tiles,
    single_file_layout,
)
from libertem.io.dataset.base.decode import get_decoder
from libertem.utils.sample_data import encode_mib_frames


def scheme_for(depth, tile, sig):
    """The scheme of tiles ``(depth, *tile)`` over frames of ``sig``."""
    return TilingScheme.make_for_shape((depth, *tile), Shape((1, *sig), sig_dims=len(sig)))


def headered_file(tmp_path, frames, header=40, dtype=">u2"):
    """Frames with a ``header``-byte prefix each, in one file; its layout."""
    path = tmp_path / "h.bin"
    stored = frames.astype(dtype)
    with open(path, "wb") as f:
        for fr in stored:
            f.write(b"H" * header + fr.tobytes())
    fb = stored[0].nbytes
    span = FileSpan(str(path), header, header + fb, frames.shape[0])
    return FrameLayout((span,), fb, frames.shape[1:], np.dtype(dtype).str)


def collect(source, n, scheme, dtype, roi=None):
    out = np.zeros((n if roi is None else int(roi.sum()), *scheme.sig_shape), dtype=dtype)
    for tile in iter_tiles(source, 0, n, scheme, dtype, roi):
        out[tile.slice.get()] = tile.data
    return out


@pytest.mark.parametrize("backend", ["mmap", "buffered"])
@pytest.mark.parametrize("tile", [(8, 8), (16, 8)])
@pytest.mark.parametrize("dtype", ["float32", "uint16", ">u2"])
def test_headered_layout(tmp_path, backend, tile, dtype):
    frames = np.random.default_rng(0).integers(0, 60000, size=(11, 8, 8))
    layout = headered_file(tmp_path, frames)
    source = FileFrameSource(layout, "uint16", sync_offset=-2, io_backend=backend)
    scheme = scheme_for(3, tile[:1] + (8,) if tile[0] < 8 else (8, 8), (8, 8))
    expected = np.zeros_like(frames)
    expected[2:] = frames[:-2]
    roi = np.random.default_rng(1).random(11) > 0.4
    np.testing.assert_array_equal(collect(source, 11, scheme, dtype), expected)
    np.testing.assert_array_equal(collect(source, 11, scheme, dtype, roi), expected[roi])


def test_views_when_native(tmp_path):
    frames = np.arange(6 * 4 * 4, dtype=np.uint16).reshape(6, 4, 4)
    path = tmp_path / "r.raw"
    frames.tofile(path)
    layout = single_file_layout(str(path), 0, 6, (4, 4), np.uint16)
    source = FileFrameSource(layout, np.uint16)
    tiles = list(iter_tiles(source, 0, 6, scheme_for(2, (4, 4), (4, 4)), np.uint16))
    assert all(not t.data.flags.writeable for t in tiles)  # read-only memmap views
    buffered = FileFrameSource(layout, np.uint16, io_backend="buffered")
    got = collect(buffered, 6, scheme_for(4, (4, 4), (4, 4)), np.uint16)
    np.testing.assert_array_equal(got, frames)


def test_multi_file_spans(tmp_path):
    frames = np.random.default_rng(2).integers(0, 100, size=(9, 4, 4)).astype("<u4")
    spans = []
    for i, (a, b) in enumerate([(0, 2), (2, 7), (7, 9)]):
        p = tmp_path / f"f{i}.bin"
        p.write_bytes(b"x" * 16 + frames[a:b].tobytes())
        spans.append(FileSpan(str(p), 16, 64, b - a))
    layout = FrameLayout(tuple(spans), 64, (4, 4), "<u4")
    for backend in ("mmap", "buffered"):
        part = LayoutPartition(layout, 1, 9, Shape((9, 4, 4), 2), "uint32", io_backend=backend)
        got = np.concatenate(
            [t.data.copy() for t in part.get_tiles(scheme_for(3, (4, 4), (4, 4)), "float64")]
        )
        np.testing.assert_array_equal(got, frames[1:])


def test_buffered_truncated(tmp_path):
    path = tmp_path / "t.raw"
    np.zeros((2, 4, 4), np.uint16).tofile(path)
    layout = single_file_layout(str(path), 0, 3, (4, 4), np.uint16)
    source = FileFrameSource(layout, np.uint16, io_backend="buffered")
    with pytest.raises(DataSetException, match="truncated"):
        source.read_into(0, 3, np.empty((3, 4, 4), np.uint16))


@pytest.mark.parametrize("depth", [1, 6, 12, 24])
@pytest.mark.parametrize("out_dtype", ["float32", "uint32", "float64"])
def test_r64_decoders_roundtrip(depth, out_dtype):
    frames = np.random.default_rng(depth).integers(0, 1 << depth, size=(3, 8, 32))
    raw = encode_mib_frames(frames, "R64", depth)
    out = np.empty(frames.shape, dtype=out_dtype)
    get_decoder("r64", (depth, False))(raw, out)
    np.testing.assert_array_equal(out, frames)
    strided = np.zeros((3, 16, 32), dtype=out_dtype)[:, ::2]  # not contiguous
    get_decoder("r64", (depth, False))(raw, strided)
    np.testing.assert_array_equal(strided, frames)


def test_array_source_defaults():
    frames = np.arange(5 * 2 * 2).reshape(5, 2, 2)
    source = FrameSource(frames, sync_offset=2)
    assert source.n_file_frames == 5 and source.sig_shape == (2, 2)
    np.testing.assert_array_equal(source.get(0, 3), frames[2:5])
    np.testing.assert_array_equal(source.get(2, 5)[1:], 0)
    out = np.empty((4, 2, 2))
    source.fill(1, 5, out)
    np.testing.assert_array_equal(out[:2], frames[3:5])
    np.testing.assert_array_equal(out[2:], 0)


def test_check_io_backend():
    assert check_io_backend(None, "x") == "mmap"
    assert check_io_backend("Buffered", "x") == "buffered"
    assert check_io_backend("direct", "x") == "direct"
    with pytest.raises(DataSetException, match="x: unknown io_backend"):
        check_io_backend("turbo", "x")
