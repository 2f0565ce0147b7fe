"""LiberTEM-listed helpers of raw, npy, hdf5, mrc, empad, blo and ser, numpy-checked."""

import os
import struct

import h5py
import mrcfile
import numpy as np
import pytest

from libertem.common.exceptions import DataSetException
from libertem.common.shape import Shape
from libertem.common.slice import Slice
from libertem.io.dataset.base import DataSetMeta, DtypeConversionDecoder, TilingScheme
from libertem.io.dataset.blo import MAGIC_EXPECT, get_header_dtype_list
from libertem.io.dataset.empad import (
    EMPAD_DETECTOR_SIZE,
    EMPAD_DETECTOR_SIZE_RAW,
    EMPADFileSet,
    get_params_from_xml,
)
from libertem.io.dataset.hdf5 import (
    H5Partition,
    H5Reader,
    HDF5ArrayDescriptor,
    find_arrays,
    zeros_aligned,
)
from libertem.io.dataset.mrc import MRCBackend, MRCBackendFile, MRCBackendImpl, MRCPartition
from libertem.io.dataset.npy import NPYInfo, read_npy_info
from libertem.io.dataset.raw import RawFile, RawFileSet, RawPartition
from libertem.io.dataset.ser import SERFile, SERFileSet, SERPartition
from libertem.udf.raw import PickUDF
from libertem.udf.sum import SumUDF
from utils import make_roi
from writers_dm_ser_seq import write_ser


def _pick(ctx, ds, roi=None):
    roi = np.ones(tuple(ds.shape.nav), bool) if roi is None else roi
    return ctx.run_udf(dataset=ds, udf=PickUDF(), roi=roi)["intensity"].raw_data


def test_raw_classes(tmp_path, inline_ctx):
    data = np.arange(2 * 3 * 4 * 4, dtype="<f4").reshape(2, 3, 4, 4)
    data.tofile(tmp_path / "r.raw")
    ds = inline_ctx.load("raw", str(tmp_path / "r.raw"), "<f4", nav_shape=(2, 3), sig_shape=(4, 4))
    parts = list(ds.get_partitions())
    assert all(isinstance(p, RawPartition) for p in parts)
    assert isinstance(parts[0].fileset, RawFileSet) and isinstance(parts[0].fileset[0], RawFile)
    assert ds.get_diagnostics()[1] == {"name": "frames in file", "value": "6"}


def test_npy_info(tmp_path):
    data = np.zeros((3, 4, 5), dtype=">i2")
    np.save(tmp_path / "a.npy", data)
    info = read_npy_info(str(tmp_path / "a.npy"))
    assert isinstance(info, NPYInfo)
    assert info == NPYInfo(">i2", (3, 4, 5), 60, info.offset) and info.offset >= 64
    with pytest.raises(DataSetException, match="not a valid .npy"):
        (tmp_path / "b.npy").write_bytes(b"nope")
        read_npy_info(str(tmp_path / "b.npy"))


# --- hdf5 --------------------------------------------------------------------------------------


@pytest.fixture
def h5(tmp_path):
    data = np.random.default_rng(0).random((6, 5, 8, 7)).astype("f4")
    path = str(tmp_path / "d.h5")
    with h5py.File(path, "w") as f:
        f.create_dataset("plain", data=data)
        f.create_dataset("packed", data=data, chunks=(2, 5, 8, 7), compression="gzip")
        f.create_dataset("small", data=np.zeros((2, 3)))
    return path, data


def test_h5_reader_and_descriptors(h5):
    path, data = h5
    reader = H5Reader(path, "packed")
    with reader.get_h5ds(cache_size=1 << 16) as ds:
        np.testing.assert_array_equal(ds[1], data[1])
    with h5py.File(path, "r") as f:
        found = find_arrays(f)
    assert [d.name for d in found] == ["packed", "plain"] or [d.name for d in found] == [
        "plain",
        "packed",
    ]
    packed = next(d for d in found if d.name == "packed")
    assert packed == HDF5ArrayDescriptor(
        "packed", data.shape, np.dtype("f4"), "gzip", (2, 5, 8, 7)
    )
    a = zeros_aligned((3, 4), "f8")
    assert a.shape == (3, 4) and not a.any() and a.ctypes.data % 4096 == 0


@pytest.mark.parametrize("ds_path", ["plain", "packed"])
def test_h5_partitioning_and_members(ctx, h5, ds_path):
    path, data = h5
    with pytest.warns(FutureWarning, match="tileshape"):
        ds = ctx.load("hdf5", path, ds_path, (1, 8, 7), min_num_partitions=3)
    assert len(list(ds.get_partitions())) >= 3
    roi = make_roi((6, 5), seed=3)
    np.testing.assert_array_equal(_pick(ctx, ds, roi), data[roi])
    frame_bytes = 8 * 7 * 4
    ds = ctx.load("hdf5", path=path, ds_path=ds_path, target_size=10 * frame_bytes)
    assert ds.get_num_partitions() == 3
    assert ds.get_reader().ds_path == ds_path
    assert ds.need_decode(None, "f4", None) == (ds_path == "packed")
    assert ds.need_decode(None, "f8", None)
    assert ds.get_max_io_size() == (None if ds_path == "plain" else 16 * 1024 * 1024)
    assert {"name": "dataset", "value": ds_path} in ds.get_diagnostics()
    assert ds_path in ds.get_cache_key()
    res = ctx.run_udf(dataset=ds, udf=SumUDF())
    np.testing.assert_allclose(res["intensity"].data, data.sum(axis=(0, 1)), rtol=1e-5)


def test_h5_partition_liberTEM_form(h5):
    path, data = h5
    shape = Shape((30, 8, 7), sig_dims=2)
    meta = DataSetMeta(shape=shape, raw_dtype="f4", metadata={"nav_native": (6, 5)})
    sl = Slice((10, 0, 0), Shape((12, 8, 7), sig_dims=2))
    p = H5Partition(H5Reader(path, "packed"), sl, (2, 5, 8, 7), 0, meta=meta)
    assert p.get_locations() is None and (p.start, p.stop) == (10, 22)
    tile = p.get_macrotile(dest_dtype="f8")
    np.testing.assert_array_equal(tile.data, data.reshape(30, 8, 7)[10:22])


# --- mrc, empad, blo, ser ------------------------------------------------------------------------


def test_mrc_backend_classes(tmp_path, inline_ctx):
    data = np.random.default_rng(2).integers(0, 900, size=(6, 5, 7)).astype("i2")
    with mrcfile.new(str(tmp_path / "a.mrc")) as m:
        m.set_data(data)
        m.set_image_stack()
    ds = inline_ctx.load("mrc", str(tmp_path / "a.mrc"), (2, 3))
    assert isinstance(ds.get_io_backend(), MRCBackend) and ds.get_supported_io_backends()
    (p,) = ds.get_partitions()
    assert isinstance(p, MRCPartition)
    impl = ds.get_io_backend().get_impl()
    assert isinstance(impl, MRCBackendImpl)
    scheme = TilingScheme.make_for_shape((4, 5, 7), ds.shape)
    rr = p.fileset.get_read_ranges(0, 6, "i2", scheme)
    got = np.zeros((6, 5, 7))
    for t in impl.get_tiles(
        scheme, p.fileset, rr, None, "<i2", "f8", DtypeConversionDecoder(), 0, None
    ):
        got[t.slice.get()] = t.data
    np.testing.assert_array_equal(got, data)
    f = MRCBackendFile(p.fileset[0].path, p.fileset[0]).open()
    np.testing.assert_array_equal(f.array, data)
    assert f.handle is not None and f.mmap.size == os.path.getsize(p.fileset[0].path)
    f.close()
    stale = type(p.fileset[0])(p.fileset[0].path, 0, 5, "i2", (5, 7), file_header=1024)
    with pytest.raises(DataSetException, match="header changed"):
        MRCBackendFile(stale.path, stale).open()
    ds_b = inline_ctx.load("mrc", str(tmp_path / "a.mrc"), io_backend="buffered")
    np.testing.assert_array_equal(_pick(inline_ctx, ds_b), data)


def _empad(tmp_path, body, n=6):
    raw = np.random.default_rng(4).random((n, 130, 128)).astype("<f4")
    raw.tofile(tmp_path / "s.raw")
    (tmp_path / "s.xml").write_text(f'<root><raw_file filename="s.raw"/>{body}</root>')
    return str(tmp_path / "s.xml"), raw[:, :128]


def test_empad_params(tmp_path, inline_ctx):
    body = (
        '<scan_parameters mode="search"><scan_resolution_x>6</scan_resolution_x>'
        "<scan_resolution_y>1</scan_resolution_y></scan_parameters>"
        '<scan_parameters mode="acquire"><scan_resolution_x>3</scan_resolution_x>'
        "<scan_resolution_y>2</scan_resolution_y></scan_parameters>"
    )
    xml, frames = _empad(tmp_path, body)
    raw_path, nav = get_params_from_xml(xml)
    assert raw_path == str(tmp_path / "s.raw") and nav == (2, 3)
    assert get_params_from_xml(xml, scan_parameters_mode="search")[1] == (1, 6)
    assert EMPAD_DETECTOR_SIZE == (128, 128) and EMPAD_DETECTOR_SIZE_RAW == (130, 128)
    ds = inline_ctx.load("empad", xml)
    assert tuple(ds.shape) == (2, 3, 128, 128)
    assert isinstance(list(ds.get_partitions())[0].fileset, EMPADFileSet)
    np.testing.assert_array_equal(_pick(inline_ctx, ds), frames)
    with pytest.warns(FutureWarning, match="scan_size"):
        ds = inline_ctx.load("empad", xml, (6,))
    assert tuple(ds.shape.nav) == (6,)


def test_blo_header(tmp_path, inline_ctx):
    dp, nx, ny = 8, 3, 2
    header = bytearray(512)
    header[:6] = b"IMGBLO"
    struct.pack_into("<HIII", header, 6, MAGIC_EXPECT[1], 256, 512, 0)
    struct.pack_into("<HHHH", header, 20, dp, 0, nx, ny)
    frames = np.random.default_rng(5).integers(0, 255, (nx * ny, dp, dp)).astype("u1")
    body = b"".join(struct.pack("<HI", 0x55AA, i) + f.tobytes() for i, f in enumerate(frames))
    path = tmp_path / "a.blo"
    path.write_bytes(bytes(header) + body)
    ds = inline_ctx.load("blo", str(path))
    assert ds.header["NX"] == nx and ds.header["DP_SZ"] == dp and ds.header["ID"] == b"IMGBLO"
    assert ds.header["MAGIC"] == 259 and ds.header["Data_offset_2"] == 512
    assert np.dtype(get_header_dtype_list(">")).itemsize == 64
    np.testing.assert_array_equal(_pick(inline_ctx, ds), frames)
    struct.pack_into("<H", header, 6, 7)
    path.write_bytes(bytes(header) + body)
    with pytest.raises(DataSetException, match="magic 7"):
        inline_ctx.load("blo", str(path))


def test_ser_classes(tmp_path, inline_ctx):
    data = np.random.default_rng(6).integers(0, 1000, size=(6, 5, 4)).astype("<u2")
    path = write_ser(tmp_path / "a.ser", data, nav_dims=(2, 3))
    emi = tmp_path / "a.emi"
    with pytest.raises(DataSetException, match="no such file"):
        inline_ctx.load("ser", str(path), str(emi))
    emi.write_bytes(b"emi")
    ds = inline_ctx.load("ser", str(path), str(emi))
    assert isinstance(ds.fileset, SERFileSet)
    (f,) = ds.fileset
    assert isinstance(f, SERFile) and (f.start_idx, f.end_idx, f.num_frames) == (0, 6, 6)
    with f.get_handle() as fh:
        assert fh.read(2) == b"II"
    assert all(isinstance(p, SERPartition) for p in ds.get_partitions())
    ds_b = inline_ctx.load("ser", str(path), io_backend="buffered")
    assert np.array_equal(_pick(inline_ctx, ds), _pick(inline_ctx, ds_b))
    with pytest.raises(DataSetException, match="does not support io_backend 'direct'"):
        inline_ctx.load("ser", str(path), io_backend="direct")
