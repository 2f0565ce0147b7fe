"""MIB's LiberTEM-compatible names: header readers, .hdr helpers, decoders, decode
functions per read range, encoders, read ranges, partitions."""

import os

import numpy as np
import pytest

from libertem.common.shape import Shape
from libertem.io.dataset.base import BasePartition, TilingScheme
from libertem.io.dataset.mib import (
    MIBDataSet,
    MIBDecoder,
    MIBHeaderReader,
    MIBPartition,
    decode_r1_swap,
    decode_r12_swap,
    encode_r1,
    encode_r6,
    encode_r12,
    encode_u1,
    encode_u2,
    get_filenames,
    get_image_count_and_sig_shape,
    is_valid_hdr,
    nav_shape_from_hdr,
    read_hdr_file,
)
from libertem.udf.raw import PickUDF
from libertem.utils.sample_data import encode_mib_frames, write_mib_acquisition
from utils import make_roi

NAV = (3, 4)


def _acq(tmp_path, pixel_depth="U16", depth=None, sig=(16, 16), n_files=1, name="a"):
    hi = 1 << (depth or 12)
    data = np.random.default_rng(hi).integers(0, hi, size=(*NAV, *sig))
    hdr = write_mib_acquisition(
        tmp_path / name, data, pixel_depth=pixel_depth, counter_depth=depth, n_files=n_files
    )
    return hdr, data.reshape(-1, *sig)


def test_header_reader_and_hdr(tmp_path):
    hdr, _ = _acq(tmp_path, n_files=3)
    files = get_filenames(hdr)
    assert len(files) == 3 and all(f.endswith(".mib") for f in files)
    readers = [MIBHeaderReader(f) for f in files]
    first = min(r.fields["sequence_first_image"] for r in readers)
    for r in readers:
        r.sequence_start = first
    readers.sort(key=lambda r: r.start_idx)
    assert [r.start_idx for r in readers] == [0, 4, 8]
    assert sum(r.num_frames for r in readers) == 12
    f = readers[0].fields
    assert f["mib_dtype"] == "U16" and f["mib_kind"] == "u" and f["dtype"] == ">u2"
    assert f["image_size"] == (16, 16) and f["image_size_bytes"] == 512
    assert f["header_size_bytes"] == 384 and f["bits_per_pixel"] == 16
    again = MIBHeaderReader(files[0], fields=f, sequence_start=0)
    assert again.fields is f and again.sequence_start == 0
    assert get_image_count_and_sig_shape(hdr) == (12, (16, 16))
    assert get_filenames(files[1], disable_glob=True) == [files[1]]
    assert get_image_count_and_sig_shape(files[1], disable_glob=True) == (4, (16, 16))
    h = read_hdr_file(hdr)
    assert h["Frames in Acquisition (Number)"] == "12" and is_valid_hdr(hdr)
    assert not is_valid_hdr(files[0]) and not is_valid_hdr(tmp_path / "missing.hdr")
    assert nav_shape_from_hdr(h) == NAV
    assert nav_shape_from_hdr({"Frames in Acquisition (Number)": "7"}) == (7,)
    assert nav_shape_from_hdr({}) is None


def test_disable_glob(tmp_path, inline_ctx):
    hdr, frames = _acq(tmp_path, n_files=3)
    one = sorted(get_filenames(hdr))[1]
    ds = inline_ctx.load("mib", one, disable_glob=True)
    n = ds.shape.nav.size
    assert n == 4
    got = inline_ctx.run_udf(dataset=ds, udf=PickUDF(), roi=np.ones(n, bool))
    idx = MIBHeaderReader(one).fields["sequence_first_image"] - 1
    np.testing.assert_array_equal(got["intensity"].raw_data, frames[idx : idx + 4])


@pytest.mark.parametrize("depth", [1, 6, 12])
def test_encoders_match_independent_writer(depth):
    frames = np.random.default_rng(depth).integers(0, 1 << depth, size=(2, 8, 64))
    ref = encode_mib_frames(frames, "R64", depth)
    out = np.zeros_like(ref)
    {1: encode_r1, 6: encode_r6, 12: encode_r12}[depth](frames, out)
    np.testing.assert_array_equal(out, ref)


def test_encode_processed():
    frames = np.random.default_rng(0).integers(0, 255, size=(3, 4, 8))
    out = np.zeros((3, 32), np.uint8)
    encode_u1(frames, out)
    np.testing.assert_array_equal(out, encode_mib_frames(frames, "U08", 6))
    out = np.zeros((3, 64), np.uint8)
    encode_u2(frames * 200, out)
    np.testing.assert_array_equal(out, encode_mib_frames(frames * 200, "U16", 12))
    with pytest.raises(ValueError, match="bytes per frame"):
        encode_u2(frames, np.zeros((3, 10), np.uint8))


def test_decode_functions_per_range():
    frames = np.random.default_rng(1).integers(0, 4096, size=(1, 4, 64))
    raw = encode_mib_frames(frames, "R64", 12)[0]
    out = np.zeros((2, 128), np.float32)
    z = np.zeros(3, np.int64)
    origin = np.array([0, 2, 0])
    decode_r12_swap(raw[256:], out, 1, np.dtype("u1"), z, origin, origin, origin)
    np.testing.assert_array_equal(out[1], frames[0, 2:].ravel())
    bits = np.random.default_rng(2).integers(0, 2, size=(1, 2, 64))
    raw1 = encode_mib_frames(bits, "R64", 1)[0]
    decode_r1_swap(raw1, out, 0, np.dtype("u1"), z, origin, origin, origin)
    np.testing.assert_array_equal(out[0], bits.ravel())


class _RangeDecoder(MIBDecoder):
    """MIB decoding through the per-range decode functions only."""

    def layout_decoder(self, native_dtype):
        return None


@pytest.mark.parametrize(
    "pixel_depth, depth, sig",
    [
        ("U16", 12, (16, 16)),
        ("R64", 1, (16, 64)),
        ("R64", 6, (16, 16)),
        ("R64", 12, (16, 16)),
        ("R64", 24, (16, 16)),
        ("R64", 6, (512, 512)),
    ],
)
def test_partitions_with_decode_functions(tmp_path, inline_ctx, pixel_depth, depth, sig):
    hdr, frames = _acq(tmp_path, pixel_depth, depth, sig)
    ds = inline_ctx.load("mib", hdr, num_partitions=2)
    assert isinstance(ds.get_decoder(), MIBDecoder)
    scheme = TilingScheme.make_for_shape((5, *ds.get_base_shape(None)), ds.shape)
    roi = make_roi(NAV, seed=depth)
    for p in ds.get_partitions():
        assert isinstance(p, MIBPartition) and p.kind == ("u" if pixel_depth == "U16" else "r")
        assert p.bit_depth == depth
        slow = BasePartition(
            p.meta,
            p.slice,
            p.fileset,
            p.start_frame,
            p.num_frames,
            p.get_io_backend(),
            _RangeDecoder(ds.header),
        )
        assert slow.layout is None
        for r in (None, roi):
            fast_tiles = {t.slice: np.array(t.data) for t in p.get_tiles(scheme, "float32", r)}
            slow_tiles = {t.slice: np.array(t.data) for t in slow.get_tiles(scheme, "float32", r)}
            assert fast_tiles.keys() == slow_tiles.keys()
            for k in fast_tiles:
                np.testing.assert_array_equal(fast_tiles[k], slow_tiles[k])
        n = p.stop - p.start
        whole = np.concatenate(
            [
                np.array(t.data)
                for t in p.get_tiles(TilingScheme.make_for_shape((n, *sig), ds.shape), "float32")
            ]
        )
        np.testing.assert_array_equal(whole, frames[p.start : p.stop])


def test_base_shape_and_decoder(tmp_path, inline_ctx):
    hdr, _ = _acq(tmp_path, "R64", 1, (16, 16))
    ds = inline_ctx.load("mib", hdr)
    assert ds.get_base_shape(None) == (4, 16)  # 4 rows of 16 one-bit pixels: one word
    dec = ds.get_decoder()
    assert dec.get_native_dtype(">u2", "f4") == np.dtype("u1") and not dec.do_clear()
    assert dec.get_decode("u1", "f4").__name__ == "decode_r1_swap"
    hdr, _ = _acq(tmp_path, "U16", name="u")
    ds = inline_ctx.load("mib", hdr)
    assert ds.get_base_shape(None) == (1, 16)
    assert ds.get_decoder().get_native_dtype("u1", "f4") == np.dtype(">u2")
    assert ds.header["mib_dtype"] == "U16" and ds.layout.stored_dtype == ">u2"
    assert ds.meta["header"]["num_images"] == 12
    assert {"name": "pixel depth", "value": "U16"} in ds.get_diagnostics()
    assert (
        os.path.basename(hdr) in ds.get_cache_key().replace(".hdr", ".mib") or ds.get_cache_key()
    )
    assert MIBDataSet.get_supported_extensions() == {"mib", "hdr"}
    assert tuple(ds.shape) == (*NAV, 16, 16) and ds.shape == Shape((*NAV, 16, 16), 2)
