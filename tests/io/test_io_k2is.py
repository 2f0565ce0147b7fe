"""Gatan K2 IS datasets: reading, syncing, metadata, the block API and errors."""

import os

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from libertem.common.exceptions import DataSetException
from libertem.io.dataset import k2is
from libertem.io.dataset.base.tiling import TilingScheme
from libertem.io.dataset.k2is import (
    BLOCK_SHAPE,
    BLOCK_SIZE,
    SHUTTER_ACTIVE_MASK,
    K2ISDataSet,
    K2Syncer,
    Sector,
    decode_k2is,
    decode_uint12_le,
    get_filenames,
)
from utils import make_roi
from writers_dm_ser_seq import check_dataset, shifted
from writers_k2is import pack12, random_frames, write_k2is

N_FRAMES = 6


@pytest.fixture(scope="module")
def acq(tmp_path_factory):
    """Six frames; sector 4 starts two frames earlier, the files start mid-frame and end
    with an incomplete frame; a .gtg with a 2 x 3 scan."""
    folder = tmp_path_factory.mktemp("k2is")
    frames = random_frames(N_FRAMES, seed=3)
    paths = write_k2is(
        folder, frames, skew={3: 2}, drop_start_blocks=5, trailing_blocks=7, nav_shape=(2, 3)
    )
    return frames, paths, os.path.join(folder, "Capture_.gtg")


@pytest.mark.parametrize("io_backend", ["mmap", "buffered"])
@pytest.mark.parametrize("with_roi", [False, True])
def test_k2is_read(ctx, acq, io_backend, with_roi):
    frames, paths, gtg = acq
    ds = ctx.load("k2is", path=paths[2], io_backend=io_backend)
    assert tuple(ds.shape) == (2, 3, 1860, 2048)
    assert ds.dtype == np.uint16
    assert ds.sync_offset == 0
    roi = make_roi((2, 3), seed=4) if with_roi else None
    check_dataset(ctx, ds, frames.reshape(2, 3, 1860, 2048), roi=roi)


def test_k2is_gtg_path_nav_and_sig_shape(inline_ctx, acq):
    frames, paths, gtg = acq
    ds = inline_ctx.load("k2is", path=gtg, nav_shape=(3, 2), sig_shape=(3720, 1024))
    assert tuple(ds.shape) == (3, 2, 3720, 1024)
    check_dataset(inline_ctx, ds, frames.reshape(3, 2, 3720, 1024))
    # positional arguments in LiberTEM's order
    ds = inline_ctx.load("k2is", paths[0], (6,), None, 0)
    assert tuple(ds.shape) == (6, 1860, 2048)


@pytest.mark.parametrize("sync_offset", [2, -2])
def test_k2is_sync_offset(inline_ctx, acq, sync_offset):
    frames, paths, gtg = acq
    ds = inline_ctx.load("k2is", path=paths[0], sync_offset=sync_offset)
    assert ds.sync_offset == sync_offset
    ref = shifted(frames, sync_offset, N_FRAMES).reshape(2, 3, 1860, 2048)
    check_dataset(inline_ctx, ds, ref, roi=make_roi((2, 3), seed=1))
    info = ds.get_sync_offset_info()
    assert info["frames_skipped_start"] == max(0, sync_offset)
    assert info["frames_inserted_start"] == max(0, -sync_offset)


def test_k2is_default_sync_offset_from_scan(inline_ctx, tmp_path):
    """Frames beyond the .gtg scan size precede the scan: skipped by default."""
    frames = random_frames(8, seed=5)
    paths = write_k2is(tmp_path, frames, nav_shape=(2, 3))
    ds = inline_ctx.load("k2is", path=paths[0])
    assert ds.sync_offset == 2
    assert ds.image_count == 8
    check_dataset(inline_ctx, ds, frames[2:].reshape(2, 3, 1860, 2048))
    # an explicit sync_offset wins; without a .gtg: flat nav, offset 0
    assert inline_ctx.load("k2is", path=paths[0], sync_offset=0).sync_offset == 0
    os.unlink(tmp_path / "Capture_.gtg")
    ds = inline_ctx.load("k2is", path=paths[0])
    assert (tuple(ds.shape.nav), ds.sync_offset) == ((8,), 0)


def test_k2is_square_scan_without_gtg(inline_ctx, tmp_path):
    frames = random_frames(4, seed=6)
    paths = write_k2is(tmp_path, frames)
    ds = inline_ctx.load("k2is", path=paths[0])
    assert tuple(ds.shape.nav) == (2, 2)
    check_dataset(inline_ctx, ds, frames.reshape(2, 2, 1860, 2048))


def test_k2is_auto_and_detect(inline_ctx, acq, tmp_path):
    frames, paths, gtg = acq
    for path in (paths[5], gtg):
        ds = inline_ctx.load("auto", path=path)
        assert isinstance(ds, K2ISDataSet)
        assert tuple(ds.shape) == (2, 3, 1860, 2048)
    assert K2ISDataSet.detect_params(paths[0])["parameters"] == {"path": paths[0]}
    other = tmp_path / "foo_1.bin"
    other.write_bytes(b"\0" * 100)
    assert K2ISDataSet.detect_params(str(other)) is False
    assert K2ISDataSet.detect_params(str(tmp_path / "x.raw")) is False


def test_k2is_facts(inline_ctx, acq):
    frames, paths, gtg = acq
    ds = inline_ctx.load("k2is", path=paths[0])
    assert ds.check_valid()
    assert ds.get_base_shape(None) == BLOCK_SHAPE
    assert ds.get_supported_extensions() == {"bin", "gtg"}
    assert ds.get_supported_io_backends() == ["mmap", "buffered"]
    assert ds.get_io_backend().id_ == "mmap"
    diag = {d["name"]: d["value"] for d in ds.get_diagnostics()}
    assert diag["Frames found"] == "6" and diag["First frame id"] == "1000"
    assert ds.get_cache_key() == inline_ctx.load("k2is", path=gtg).get_cache_key()
    assert ds.meta.image_count == N_FRAMES
    assert isinstance(ds.get_decoder(), k2is.K2ISDecoder)
    assert get_filenames(gtg) == paths
    assert get_filenames(paths[3], disable_glob=True) == [paths[3]]


def test_k2is_tiles_follow_blocks(inline_ctx, acq):
    frames, paths, gtg = acq
    ds = inline_ctx.load("k2is", path=paths[0])
    p = list(ds.get_partitions())[0]
    scheme = TilingScheme.make_for_shape((2, 930, 48), ds.shape)
    count = 0
    for t in p.get_tiles(scheme, dest_dtype="float32"):  # tiles reuse one buffer
        sl = t.tile_slice
        ref = frames[sl.origin[0] : sl.origin[0] + sl.shape[0]]
        np.testing.assert_array_equal(t.data, ref[(slice(None), *sl.get(sig_only=True))])
        count += 1
    assert count == ((p.stop - p.start + 1) // 2) * len(scheme)
    bad = TilingScheme.make_for_shape((2, 100, 100), ds.shape)
    with pytest.raises(ValueError, match="blocks"):
        list(p.get_tiles(bad))


def test_k2is_read_ranges_and_decoder(inline_ctx, acq):
    """LiberTEM's read range interface: one block per tile and frame, decoded by
    decode_k2is."""
    frames, paths, gtg = acq
    ds = inline_ctx.load("k2is", path=paths[0], sync_offset=1)
    fileset = ds._fileset
    scheme = TilingScheme.make_for_shape((3, 930, 16), ds.shape)
    tile_slices, ranges, scheme_idx = fileset.get_read_ranges(0, 4, np.uint16, scheme, 1)
    assert ranges.shape == (2 * len(scheme), 3, 3)
    decode = ds.get_decoder().get_decode(np.uint8, np.float32)
    assert decode is decode_k2is
    mms = [np.memmap(p, dtype=np.uint8, mode="r") for p in paths]
    for t in [0, 17, len(scheme) + 200]:
        origin, shape = tile_slices[t]
        out = np.zeros((3, 930 * 16), dtype=np.float32)
        for k, (fi, start, stop) in enumerate(ranges[t]):
            if fi >= 0:
                decode(mms[fi][start:stop], out, k, np.uint8, ranges[t, k], origin, shape, None)
        n = shape[0]
        y, x = origin[1], origin[2]
        ref = frames[origin[0] + 1 : origin[0] + 1 + n, y : y + 930, x : x + 16]
        np.testing.assert_array_equal(out[:n].reshape(n, 930, 16), ref)
    with pytest.raises(ValueError, match="one"):
        fileset.get_read_ranges(
            0, 4, np.uint16, TilingScheme.make_for_shape((3, 930, 32), ds.shape)
        )
    arr = fileset[2].get_array_from_memview(
        memoryview(mms[2]), fileset[2].get_offsets_sizes(mms[2].size)
    )
    assert arr.shape == (N_FRAMES, 32, BLOCK_SIZE)


def test_k2is_block_api(acq):
    frames, paths, gtg = acq
    syncer = K2Syncer(paths)
    assert syncer.sync() == N_FRAMES
    first = syncer.first_blocks()
    assert {b.header["frame_id"] for b in first} == {1000}
    assert all(b.is_valid and b.shutter_active for b in first)
    last = syncer.last_blocks()
    assert {b.header["frame_id"] for b in last} == {1000 + N_FRAMES - 1}
    syncer.validate_sync()
    frame = np.zeros((1860, 2048), dtype=np.uint16)
    for s in syncer.sectors:
        for blk in list(s.get_blocks())[32:64]:
            blk.copy_to_frame(frame)
    np.testing.assert_array_equal(frame, frames[1])
    block = syncer.sectors[1].first_block()
    np.testing.assert_array_equal(block.pixel_data, frames[0, :930, 256:272])
    assert block.pixel_data_raw.shape == (22320,)
    buf = bytearray(BLOCK_SIZE)
    assert block.readinto(buf) == BLOCK_SIZE
    assert buf[:4] == b"\xff\xff\x00\x55"
    assert block.header["flags"] & SHUTTER_ACTIVE_MASK
    syncer.close()
    # a fresh sector: the blank frames and the partial frame at the start
    s = Sector(paths[3], 3)
    assert not s.first_block().shutter_active
    found = s.first_block_with_search(lambda b: b.shutter_active, step=7)
    assert found.offset == s.first_block_with(lambda b: b.shutter_active).offset
    assert found.header["frame_id"] == 1000
    assert s.first_block_from_end_with(lambda b: b.is_valid).offset == s.last_block().offset
    backwards = list(s.get_blocks_from_end())
    assert backwards[0].offset == s.last_block().offset and len(backwards) == s.num_blocks
    assert s.get_block_by_index(3).offset == s.first_block_offset + 3 * BLOCK_SIZE
    s.seek(0)
    assert s.read(4) == b"\xff\xff\x00\x55"
    s.close()


@given(
    values=st.lists(st.integers(0, 4095), min_size=0, max_size=64).filter(
        lambda v: len(v) % 2 == 0
    )
)
def test_decode_uint12_le_roundtrip(values):
    values = np.array(values, dtype=np.uint16)
    packed = pack12(values) if values.size else np.zeros(0, np.uint8)
    out = np.zeros(values.size, dtype=np.float32)
    decode_uint12_le(packed, out)
    np.testing.assert_array_equal(out, values)


def test_k2is_corrections(inline_ctx, acq):
    from libertem.corrections import CorrectionSet
    from libertem.udf.sum import SumUDF

    frames, paths, gtg = acq
    ds = inline_ctx.load("k2is", path=paths[0])
    dark = np.full((1860, 2048), 7, dtype=np.float32)
    res = inline_ctx.run_udf(dataset=ds, udf=SumUDF(), corrections=CorrectionSet(dark=dark))
    np.testing.assert_allclose(res["intensity"].data, frames.sum(axis=0) - 7 * N_FRAMES)


# --- errors ---------------------------------------------------------------------------------


def test_k2is_missing_sector(inline_ctx, tmp_path):
    paths = write_k2is(tmp_path, random_frames(2))
    os.unlink(paths[6])
    with pytest.raises(DataSetException, match="8 sector files"):
        inline_ctx.load("k2is", path=paths[0])


def test_k2is_truncated(inline_ctx, tmp_path):
    paths = write_k2is(tmp_path, random_frames(2), blank=0)
    for p in paths:
        with open(p, "r+b") as f:
            f.truncate(20 * BLOCK_SIZE)
    with pytest.raises(DataSetException, match="no whole frame"):
        inline_ctx.load("k2is", path=paths[0])


def test_k2is_no_shutter(inline_ctx, tmp_path):
    paths = write_k2is(tmp_path, np.zeros((0, 1860, 2048), np.uint16), blank=2)
    with pytest.raises(DataSetException, match="shutter"):
        inline_ctx.load("k2is", path=paths[0])


def test_k2is_corrupt_block(inline_ctx, tmp_path):
    paths = write_k2is(tmp_path, random_frames(2), blank=0)
    with open(paths[4], "r+b") as f:  # the x position of block 3 of the first frame
        f.seek(3 * BLOCK_SIZE + 28)
        f.write(b"\x00\x20")
    with pytest.raises(DataSetException, match="out of place"):
        inline_ctx.load("k2is", path=paths[0])


def test_k2is_missing_blocks(inline_ctx, tmp_path):
    frames = random_frames(3)
    paths = write_k2is(tmp_path, frames, blank=0)
    with open(paths[2], "rb") as f:
        raw = f.read()
    with open(paths[2], "wb") as f:  # a block of the second frame is lost
        f.write(raw[: 40 * BLOCK_SIZE] + raw[41 * BLOCK_SIZE :])
    with pytest.raises(DataSetException, match="missing"):
        inline_ctx.load("k2is", path=paths[0])


def test_k2is_bad_parameters(inline_ctx, acq):
    frames, paths, gtg = acq
    # LiberTEM: nav_shape may ask for more frames than stored (never read)
    assert tuple(inline_ctx.load("k2is", path=paths[0], nav_shape=(4, 4)).shape.nav) == (4, 4)
    with pytest.raises(DataSetException, match="sig_shape"):
        inline_ctx.load("k2is", path=paths[0], sig_shape=(100, 100))
    with pytest.raises(DataSetException, match="sync_offset"):
        inline_ctx.load("k2is", path=paths[0], sync_offset=99)
    with pytest.raises(DataSetException, match="direct"):
        inline_ctx.load("k2is", path=paths[0], io_backend="direct")
    with pytest.raises(DataSetException, match="not a K2 IS file"):
        K2ISDataSet(path=paths[0][:-4] + ".raw").initialize(None)


def test_k2is_files_not_modified(inline_ctx, acq):
    frames, paths, gtg = acq
    before = [(os.stat(p).st_mtime_ns, os.stat(p).st_size) for p in paths]
    ds = inline_ctx.load("k2is", path=paths[0], io_backend="buffered")
    from libertem.udf.sum import SumUDF

    inline_ctx.run_udf(dataset=ds, udf=SumUDF())
    assert [(os.stat(p).st_mtime_ns, os.stat(p).st_size) for p in paths] == before
