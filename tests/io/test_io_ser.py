"""TIA .ser files checked against ncempy and rsciio reading the same files."""

import hashlib
import struct

import ncempy.io.ser as ncem_ser
import numpy as np
import pytest
from rsciio.tia import file_reader as rsciio_tia

from libertem.common.exceptions import DataSetException
from libertem.io.dataset.ser import SERDataSet
from utils import make_roi
from writers_dm_ser_seq import check_dataset, shifted, write_ser

NAV, SIG = (3, 5), (16, 12)


def _data(n=15, dtype="uint16", seed=0, sig=SIG):
    rng = np.random.default_rng(seed)
    if np.dtype(dtype).kind == "f":
        return rng.normal(size=(n, *sig)).astype(dtype)
    return rng.integers(0, 200, size=(n, *sig)).astype(dtype)


def _independent(path):
    """Frames as ncempy reads them, checked against rsciio."""
    a = ncem_ser.serReader(str(path))["data"]
    b = rsciio_tia(str(path))[0]["data"]
    np.testing.assert_array_equal(a.reshape(b.shape), b)
    return np.asarray(b)


@pytest.mark.parametrize("version", [0x0210, 0x0220])
@pytest.mark.parametrize("even", [True, False], ids=["strided", "per-frame"])
def test_ser_images(ctx, tmp_path, version, even):
    data = _data(seed=version)
    gaps = None if even else [0, 5, 2] * 5
    path = write_ser(tmp_path / "a.ser", data, NAV, version=version, gaps=gaps)
    before = hashlib.md5(path.read_bytes()).hexdigest()
    ref = _independent(path)
    # TIA stores images bottom row first; ncempy and rsciio flip them
    np.testing.assert_array_equal(ref, data[:, ::-1].reshape(NAV + SIG))
    ds = ctx.load("auto", path=str(path))
    assert isinstance(ds, SERDataSet)
    assert tuple(ds.shape) == NAV + SIG
    check_dataset(ctx, ds, ref, roi=make_roi(NAV, seed=1))
    ds = ctx.load("ser", path=str(path), nav_shape=(15,), num_partitions=3)
    check_dataset(ctx, ds, ref.reshape(15, *SIG), roi=make_roi((15,), seed=2))
    assert hashlib.md5(path.read_bytes()).hexdigest() == before


@pytest.mark.parametrize("sync_offset", [4, -3])
@pytest.mark.parametrize("even", [True, False], ids=["strided", "per-frame"])
def test_ser_sync_offset(inline_ctx, tmp_path, sync_offset, even):
    data = _data(dtype="float32", seed=7)
    gaps = None if even else [3, 0] * 7 + [1]
    path = write_ser(tmp_path / "a.ser", data, NAV, gaps=gaps)
    frames = _independent(path).reshape(15, *SIG)
    ds = inline_ctx.load("ser", path=str(path), sync_offset=sync_offset, num_partitions=2)
    expected = shifted(frames, sync_offset, 15).reshape(NAV + SIG)
    check_dataset(inline_ctx, ds, expected, roi=make_roi(NAV, seed=3))
    ds = inline_ctx.load("ser", path=str(path), nav_shape=(2, 4), sync_offset=sync_offset)
    check_dataset(inline_ctx, ds, shifted(frames, sync_offset, 8).reshape(2, 4, *SIG))


def test_ser_spectra_and_partial(inline_ctx, tmp_path):
    spectra = _data(n=6, dtype="int32", seed=8, sig=(40,))
    path = write_ser(tmp_path / "s.ser", spectra, (6,), spectra=True)
    ref = _independent(path)
    np.testing.assert_array_equal(ref, spectra)
    ds = inline_ctx.load("ser", path=str(path))
    assert tuple(ds.shape) == (6, 40) and ds.shape.sig_dims == 1
    check_dataset(inline_ctx, ds, ref, roi=make_roi((6,), seed=4))
    ds = inline_ctx.load("ser", path=str(path), sig_shape=(5, 8))
    check_dataset(inline_ctx, ds, ref.reshape(6, 5, 8))
    # aborted acquisition: 9 of 15 elements valid; missing frames read as zeros
    data = _data(seed=9)
    path = write_ser(tmp_path / "p.ser", data, NAV, valid=9)
    ds = inline_ctx.load("ser", path=str(path))
    expected = np.zeros((15, *SIG), data.dtype)
    expected[:9] = data[:9, ::-1]
    check_dataset(inline_ctx, ds, expected.reshape(NAV + SIG))
    got = ncem_ser.serReader(str(path))["data"]
    np.testing.assert_array_equal(got, expected[:9])


def test_ser_errors(inline_ctx, tmp_path):
    data = _data(seed=10)
    path = write_ser(tmp_path / "a.ser", data, NAV)
    raw = path.read_bytes()
    with pytest.raises(DataSetException, match="missing.ser.*no such file"):
        inline_ctx.load("ser", path=str(tmp_path / "missing.ser"))
    (tmp_path / "t.ser").write_bytes(raw[: len(raw) - 200])  # offset array cut
    with pytest.raises(DataSetException, match="t.ser.*runs past the end"):
        inline_ctx.load("ser", path=str(tmp_path / "t.ser"))
    # header claims more elements than the offset array holds in the file
    bad = bytearray(raw)
    bad[14:18] = struct.pack("<I", 10**6)
    (tmp_path / "n.ser").write_bytes(bytes(bad))
    with pytest.raises(DataSetException, match="n.ser.*runs past the end"):
        inline_ctx.load("ser", path=str(tmp_path / "n.ser"))
    # an element offset beyond the end of the file
    bad = bytearray(raw)
    (offset_array,) = struct.unpack_from("<I", raw, 22)
    bad[offset_array + 4 * 3 : offset_array + 4 * 4] = struct.pack("<I", len(raw) - 10)
    (tmp_path / "o.ser").write_bytes(bytes(bad))
    with pytest.raises(DataSetException, match="o.ser.*element 3.*truncated"):
        inline_ctx.load("ser", path=str(tmp_path / "o.ser"))
    bad = bytearray(raw)
    bad[4:6] = struct.pack("<H", 0x0300)
    (tmp_path / "v.ser").write_bytes(bytes(bad))
    with pytest.raises(DataSetException, match="v.ser.*version"):
        inline_ctx.load("ser", path=str(tmp_path / "v.ser"))
    bad = bytearray(raw)
    bad[2:4] = b"\x00\x00"
    (tmp_path / "m.ser").write_bytes(bytes(bad))
    with pytest.raises(DataSetException, match="m.ser.*magic"):
        inline_ctx.load("ser", path=str(tmp_path / "m.ser"))
    with pytest.raises(DataSetException, match="m.ser.*could not determine"):
        inline_ctx.load("auto", path=str(tmp_path / "m.ser"))
    # LiberTEM: nav_shape may ask for more frames than stored (never read)
    assert tuple(inline_ctx.load("ser", path=str(path), nav_shape=(4, 4)).shape.nav) == (4, 4)
    with pytest.raises(DataSetException, match="a.ser.*sig_shape"):
        inline_ctx.load("ser", path=str(path), sig_shape=(12, 16))
    with pytest.raises(DataSetException, match="sync_offset should be in"):
        inline_ctx.load("ser", path=str(path), sync_offset=-15)
    assert SERDataSet.detect_params(str(tmp_path / "m.ser")) is False
