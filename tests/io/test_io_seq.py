"""Norpix .seq files. rsciio has no .seq reader, so the reference is a numpy decoding
written here from the format description (header fields at fixed offsets, frames every
``true_image_size`` bytes from byte 8192, or 1024 before version 5)."""

import hashlib
import struct

import numpy as np
import pytest

from libertem.common.exceptions import DataSetException
from libertem.io.dataset.seq import SEQDataSet
from utils import make_roi
from writers_dm_ser_seq import check_dataset, shifted, write_seq

NAV, SIG = (3, 5), (16, 12)


def _numpy_seq(path):
    """Independent decoding: all frames of an uncompressed 8/16-bit mono .seq file."""
    raw = np.fromfile(path, dtype=np.uint8)
    (magic,) = struct.unpack_from("<I", raw, 0)
    assert magic == 0xFEED
    assert bytes(raw[4:24]).decode("utf-16-le") == "Norpix seq"
    (version,) = struct.unpack_from("<i", raw, 28)
    w, h, bits = struct.unpack_from("<3I", raw, 548)
    (n,) = struct.unpack_from("<I", raw, 572)
    (stride,) = struct.unpack_from("<I", raw, 580)
    start = 8192 if version >= 5 else 1024
    dtype = np.dtype("<u2" if bits == 16 else "u1")
    nbytes = w * h * dtype.itemsize
    frames = [raw[start + k * stride : start + k * stride + nbytes].view(dtype) for k in range(n)]
    return np.stack(frames).reshape(n, h, w)


def _data(n=15, dtype="uint16", seed=0):
    return np.random.default_rng(seed).integers(0, 250, size=(n, *SIG)).astype(dtype)


@pytest.mark.parametrize("dtype", ["uint8", "uint16"])
@pytest.mark.parametrize("version", [4, 5])
def test_seq_read(ctx, tmp_path, dtype, version):
    data = _data(dtype=dtype, seed=version)
    path = write_seq(tmp_path / "a.seq", data, version=version, pad=version * 7)
    before = hashlib.md5(path.read_bytes()).hexdigest()
    ref = _numpy_seq(path)
    np.testing.assert_array_equal(ref, data)
    ds = ctx.load("auto", path=str(path))
    assert isinstance(ds, SEQDataSet)
    assert tuple(ds.shape) == (15, *SIG) and ds.dtype == np.dtype(dtype)
    check_dataset(ctx, ds, ref, roi=make_roi((15,), seed=1))
    ds = ctx.load("seq", path=str(path), nav_shape=NAV, num_partitions=3)
    check_dataset(ctx, ds, ref.reshape(NAV + SIG), roi=make_roi(NAV, seed=2))
    assert hashlib.md5(path.read_bytes()).hexdigest() == before


@pytest.mark.parametrize("sync_offset", [2, -5])
def test_seq_sync_offset_and_shapes(inline_ctx, tmp_path, sync_offset):
    data = _data(seed=11)
    path = write_seq(tmp_path / "a.seq", data)
    ref = _numpy_seq(path)
    ds = inline_ctx.load("seq", path=str(path), nav_shape=NAV, sync_offset=sync_offset)
    expected = shifted(ref, sync_offset, 15).reshape(NAV + SIG)
    check_dataset(inline_ctx, ds, expected, roi=make_roi(NAV, seed=3))
    ds = inline_ctx.load("seq", path=str(path), nav_shape=(2, 2), sig_shape=(192,))
    check_dataset(inline_ctx, ds, ref[:4].reshape(2, 2, 192))
    ds = inline_ctx.load("seq", path=str(path), nav_shape=(4, 5), sync_offset=sync_offset)
    check_dataset(inline_ctx, ds, shifted(ref, sync_offset, 20).reshape(4, 5, *SIG))


def test_seq_errors(inline_ctx, tmp_path):
    data = _data(seed=12)
    path = write_seq(tmp_path / "a.seq", data)
    raw = path.read_bytes()
    with pytest.raises(DataSetException, match="missing.seq.*no such file"):
        inline_ctx.load("seq", path=str(tmp_path / "missing.seq"))
    (tmp_path / "t.seq").write_bytes(raw[:-100])
    with pytest.raises(DataSetException, match="t.seq.*truncated.*15 frames"):
        inline_ctx.load("seq", path=str(tmp_path / "t.seq"))
    (tmp_path / "h.seq").write_bytes(raw[:500])
    with pytest.raises(DataSetException, match="h.seq.*1024 bytes"):
        inline_ctx.load("seq", path=str(tmp_path / "h.seq"))
    cases = {
        "c.seq": (620, 2, "compressed"),
        "f.seq": (568, 200, "image format 200"),
        "b.seq": (556, 32, "bit depth 32"),
        "s.seq": (564, 5, "image size"),
        "n.seq": (572, 10**6, "truncated"),
        "z.seq": (580, 1, "true image size"),
    }
    for name, (at, value, message) in cases.items():
        bad = bytearray(raw)
        bad[at : at + 4] = struct.pack("<I", value)
        (tmp_path / name).write_bytes(bytes(bad))
        with pytest.raises(DataSetException, match=f"{name}.*{message}"):
            inline_ctx.load("seq", path=str(tmp_path / name))
    bad = bytearray(raw)
    bad[0:4] = b"\x00\x00\x00\x00"
    (tmp_path / "m.seq").write_bytes(bytes(bad))
    with pytest.raises(DataSetException, match="m.seq.*magic"):
        inline_ctx.load("seq", path=str(tmp_path / "m.seq"))
    with pytest.raises(DataSetException, match="m.seq.*could not determine"):
        inline_ctx.load("auto", path=str(tmp_path / "m.seq"))
    assert SEQDataSet.detect_params(str(tmp_path / "m.seq")) is False
    # LiberTEM: nav_shape may ask for more frames than stored (never read)
    assert tuple(inline_ctx.load("seq", path=str(path), nav_shape=(4, 4)).shape.nav) == (4, 4)
    with pytest.raises(DataSetException, match="a.seq.*sig_shape"):
        inline_ctx.load("seq", path=str(path), sig_shape=(10, 10))
    with pytest.raises(DataSetException, match="sync_offset should be in"):
        inline_ctx.load("seq", path=str(path), sync_offset=15)
