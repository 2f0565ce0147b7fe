"""DM3/DM4 files: stacks in one file (3D, 4D in both layouts) and lists of frame files,
checked against ncempy and rsciio reading the same files."""

import hashlib
import os

import ncempy.io.dm as ncem_dm
import numpy as np
import pytest
from rsciio.digitalmicrograph import file_reader as rsciio_dm

from libertem.common.exceptions import DataSetException
from libertem.io.dataset.dm import DMDataSet, read_dm_image
from utils import make_roi
from writers_dm_ser_seq import check_dataset, shifted, write_dm

NAV, SIG = (3, 5), (16, 16)


def _data(shape, dtype="uint16", seed=0):
    rng = np.random.default_rng(seed)
    if np.dtype(dtype).kind == "f":
        return rng.normal(size=shape).astype(dtype)
    return rng.integers(0, 200, size=shape).astype(dtype)


def _independent(path):
    """The image as ncempy and rsciio read it (they must agree)."""
    a = ncem_dm.dmReader(str(path))["data"]
    b = rsciio_dm(str(path))
    assert len(b) == 1  # the thumbnail is skipped
    np.testing.assert_array_equal(a, b[0]["data"])
    return np.asarray(a)


def _md5(path):
    return hashlib.md5(open(path, "rb").read()).hexdigest()


@pytest.mark.parametrize("version", [3, 4])
@pytest.mark.parametrize("dtype", ["uint16", "float32", "int8"])
def test_dm_3d_stack(inline_ctx, tmp_path, version, dtype):
    data = _data((15, *SIG), dtype, seed=version)
    path = write_dm(tmp_path / f"stack.dm{version}", data, version=version)
    ref = _independent(path)
    np.testing.assert_array_equal(ref, data)  # the writer against ncempy/rsciio
    before = _md5(path)
    ds = inline_ctx.load("auto", path=str(path))
    assert isinstance(ds, DMDataSet)
    assert tuple(ds.shape) == (15, *SIG)
    assert ds.dtype == np.dtype(dtype)
    check_dataset(inline_ctx, ds, ref, roi=make_roi((15,), seed=3))
    ds = inline_ctx.load("dm", path=str(path), nav_shape=NAV, num_partitions=2)
    check_dataset(inline_ctx, ds, ref.reshape(NAV + SIG), roi=make_roi(NAV, seed=4))
    assert _md5(path) == before


@pytest.mark.parametrize("version", [3, 4])
@pytest.mark.parametrize("layout", ["c", "sig_first"])
def test_dm_4d(ctx, tmp_path, version, layout):
    data = _data(NAV + SIG, "uint16", seed=10 + version)
    path = write_dm(tmp_path / f"4d.dm{version}", data, version=version, layout=layout)
    stored = _independent(path)
    # ncempy/rsciio give the stored C-order array; the scan axes are those the
    # dimension tags list last (C layout) or first (older STEMx layout)
    ref = stored if layout == "c" else stored.transpose(2, 3, 0, 1)
    np.testing.assert_array_equal(ref, data)
    ds = ctx.load("dm", path=str(path), num_partitions=3)
    assert tuple(ds.shape.nav) == NAV and tuple(ds.shape.sig) == SIG
    check_dataset(ctx, ds, ref, roi=make_roi(NAV, seed=5))


@pytest.mark.parametrize("layout", ["c", "sig_first"])
@pytest.mark.parametrize("sync_offset", [3, -4])
def test_dm_sync_offset_and_nav_shape(inline_ctx, tmp_path, layout, sync_offset):
    data = _data(NAV + SIG, "float32", seed=20)
    path = write_dm(tmp_path / "4d.dm4", data, version=4, layout=layout)
    stored = _independent(path)
    ref = stored if layout == "c" else stored.transpose(2, 3, 0, 1)
    frames = ref.reshape((-1, *SIG))
    ds = inline_ctx.load("dm", path=str(path), sync_offset=sync_offset, num_partitions=2)
    expected = shifted(frames, sync_offset, 15).reshape(NAV + SIG)
    check_dataset(inline_ctx, ds, expected, roi=make_roi(NAV, seed=6))
    ds = inline_ctx.load("dm", path=str(path), nav_shape=(2, 6), sync_offset=sync_offset)
    check_dataset(inline_ctx, ds, shifted(frames, sync_offset, 12).reshape((2, 6, *SIG)))


def test_dm_sig_shape_and_force_c_order(inline_ctx, tmp_path):
    data = _data((6, *SIG), "uint16", seed=21)
    path = write_dm(tmp_path / "stack.dm3", data, version=3)
    ds = inline_ctx.load("dm", path=str(path), sig_shape=(256,))
    check_dataset(inline_ctx, ds, data.reshape(6, 256))
    data4 = _data(NAV + SIG, "uint16", seed=22)
    path = write_dm(tmp_path / "old.dm4", data4, version=4, layout="sig_first")
    ds = inline_ctx.load("dm", path=str(path), force_c_order=True)
    stored = _independent(path)
    assert tuple(ds.shape) == stored.shape
    check_dataset(inline_ctx, ds, stored)
    with pytest.raises(DataSetException, match="old.dm4.*sig_shape"):
        inline_ctx.load("dm", path=str(path), sig_shape=(256,))


def test_dm_2d_image_and_big_endian(inline_ctx, tmp_path):
    img = _data(SIG, "int16", seed=23)
    path = write_dm(tmp_path / "img.dm4", img, version=4, thumbnail=False)
    ds = inline_ctx.load("auto", path=str(path))
    assert tuple(ds.shape) == (1, *SIG)
    check_dataset(inline_ctx, ds, _independent(path)[None])
    data = _data((4, *SIG), "uint16", seed=24)
    for version in (3, 4):
        path = write_dm(tmp_path / f"be.dm{version}", data, version=version, byteorder=">")
        # rsciio parses the big-endian tag tree (shape) but reads the values unswapped
        shape = rsciio_dm(str(path))[0]["data"].shape
        assert shape == data.shape
        ds = inline_ctx.load("dm", path=str(path))
        assert ds.dtype == np.dtype(">u2")
        check_dataset(inline_ctx, ds, data)


@pytest.mark.parametrize("version", [3, 4])
def test_dm_file_list(ctx, tmp_path, version):
    frames = _data((15, *SIG), "float32", seed=30 + version)
    paths = []
    for i, frame in enumerate(frames):
        p = write_dm(tmp_path / f"f{i:02d}.dm{version}", frame, version=version, thumbnail=i % 2)
        np.testing.assert_array_equal(_independent(p), frame)
        paths.append(str(p))
    ds = ctx.load("dm", files=paths)
    assert tuple(ds.shape) == (15, *SIG)
    check_dataset(ctx, ds, frames, roi=make_roi((15,), seed=7))
    ds = ctx.load("dm", files=paths, nav_shape=NAV, num_partitions=2)
    check_dataset(ctx, ds, frames.reshape(NAV + SIG), roi=make_roi(NAV, seed=8))
    ds = ctx.load("dm", files=paths, nav_shape=NAV, sync_offset=-2)
    check_dataset(ctx, ds, shifted(frames, -2, 15).reshape(NAV + SIG))
    ds = ctx.load("dm", files=paths, sync_offset=5, sig_shape=(256,))
    check_dataset(ctx, ds, shifted(frames.reshape(15, 256), 5, 15))


# --- errors ------------------------------------------------------------------------------------


def test_dm_errors_files_and_shapes(inline_ctx, tmp_path):
    data = _data((15, *SIG), "uint16", seed=40)
    path = str(write_dm(tmp_path / "stack.dm4", data))
    with pytest.raises(DataSetException, match="missing.dm4.*no such file"):
        inline_ctx.load("dm", path=str(tmp_path / "missing.dm4"))
    with pytest.raises(DataSetException, match="either path"):
        inline_ctx.load("dm")
    with pytest.raises(DataSetException, match="stack.dm4.*sig_shape"):
        inline_ctx.load("dm", path=path, sig_shape=(15, 15))
    # LiberTEM: nav_shape may ask for more frames than stored (never read)
    assert tuple(inline_ctx.load("dm", path=path, nav_shape=(4, 4)).shape.nav) == (4, 4)
    with pytest.raises(DataSetException, match="sync_offset should be in"):
        inline_ctx.load("dm", path=path, sync_offset=15)
    with pytest.raises(DataSetException, match="stack.dm4.*list of files|stack.dm4.*one frame"):
        inline_ctx.load("dm", files=[path])
    a = write_dm(tmp_path / "a.dm3", data[0])
    b = write_dm(tmp_path / "b.dm3", data[0, :8])
    with pytest.raises(DataSetException, match="b.dm3.*differs"):
        inline_ctx.load("dm", files=[str(a), str(b)])


def test_dm_errors_corrupt(inline_ctx, tmp_path):
    data = _data((15, *SIG), "uint16", seed=41)
    path = write_dm(tmp_path / "stack.dm4", data)
    raw = open(path, "rb").read()
    # truncated inside the image data
    trunc = tmp_path / "trunc.dm4"
    trunc.write_bytes(raw[: len(raw) // 2])
    with pytest.raises(DataSetException, match="trunc.dm4.*runs past the end|trunc.dm4.*needs"):
        inline_ctx.load("dm", path=str(trunc))
    # a data array longer than the file (header contradicts the file size)
    image = read_dm_image(path)
    big = bytearray(raw)
    count_at = image.offset - 8  # the array length, last word of the type description
    big[count_at : count_at + 8] = (10**9).to_bytes(8, "big")
    (tmp_path / "big.dm4").write_bytes(bytes(big))
    with pytest.raises(DataSetException, match="big.dm4.*runs past the end"):
        inline_ctx.load("dm", path=str(tmp_path / "big.dm4"))
    # corrupt tag header: delimiter overwritten
    bad = bytearray(raw)
    at = raw.index(b"%%%%")
    bad[at : at + 4] = b"XXXX"
    (tmp_path / "bad.dm4").write_bytes(bytes(bad))
    with pytest.raises(DataSetException, match="bad.dm4.*delimiter"):
        inline_ctx.load("dm", path=str(tmp_path / "bad.dm4"))
    # bad version / not a DM file for auto
    (tmp_path / "v5.dm4").write_bytes(b"\x00\x00\x00\x05" + raw[4:])
    with pytest.raises(DataSetException, match="v5.dm4.*version"):
        inline_ctx.load("dm", path=str(tmp_path / "v5.dm4"))
    with pytest.raises(DataSetException, match="v5.dm4.*could not determine"):
        inline_ctx.load("auto", path=str(tmp_path / "v5.dm4"))
    # unsupported image data type (RGB)
    rgb = bytearray(raw)
    needle = b"DataType" + b"\x00" * 8 + b"%%%%"
    at = rgb.rindex(b"DataType")
    value_at = at + len("DataType") + 8 + 4 + 8 + 8
    assert int.from_bytes(rgb[value_at : value_at + 4], "little") == 10, needle
    rgb[value_at : value_at + 4] = (23).to_bytes(4, "little")
    (tmp_path / "rgb.dm4").write_bytes(bytes(rgb))
    with pytest.raises(DataSetException, match="rgb.dm4.*data type 23"):
        inline_ctx.load("dm", path=str(tmp_path / "rgb.dm4"))


def test_dm_detect(tmp_path):
    data = _data((2, 4, 4), "uint8", seed=42)
    for version in (3, 4):
        path = str(write_dm(tmp_path / f"x.dm{version}", data, version=version))
        assert DMDataSet.detect_params(path) == {"parameters": {"path": path}}
    other = tmp_path / "x.raw"
    other.write_bytes(b"\x00\x00\x00\x03" + bytes(100))
    assert DMDataSet.detect_params(str(other)) is False
    assert DMDataSet.detect_params(str(tmp_path / "nope.dm4")) is False
    assert os.path.exists(tmp_path / "x.dm4")
