"""Fuzzing the header fields (and parameters) that size an allocation, in every format.

Each format's sample file gets one or more of its sizing fields set to extreme values
(0, 2**16 - 1, 2**31 - 1, 2**32 - 1, 2**40, 2**63 - 1, ..., negatives where signed).
Loading must then either raise ``DataSetException``, or give a dataset whose shape is
possible, which reads completely within a memory cap and a time limit: no ``MemoryError``,
no numpy error mid-run, no wrapped-around size.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import resource
import shutil
import signal
import struct
import tempfile

import h5py
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from libertem.common.exceptions import DataSetException
from libertem.io.dataset import load
from libertem.io.dataset.base import TilingScheme
from libertem.io.dataset.base.checks import MAX_DATASET_BYTES, NUMERIC_KINDS
from libertem.utils.sample_data import write_mib_acquisition
from writers_csr import write_csr
from writers_dm_ser_seq import write_seq, write_ser
from writers_frms6 import random_stored, write_frms6

EXTREMES = [
    0,
    1,
    2,
    3,
    255,
    2**15 - 1,
    2**16 - 1,
    2**16,
    2**31 - 1,
    2**31,
    2**32 - 1,
    2**32,
    2**40,
    2**62,
    2**63 - 1,
    2**64 - 1,
    -1,
    -(2**31),
    -(2**63),
]
VALUES = st.sampled_from(EXTREMES)


class _TimeUp(BaseException):
    pass


@contextlib.contextmanager
def _limits(extra_bytes=1 << 30, seconds=30):
    """At most ``extra_bytes`` more heap (``RLIMIT_DATA``) and ``seconds`` of time."""
    with open("/proc/self/status") as f:
        data_kb = next(int(line.split()[1]) for line in f if line.startswith("VmData"))
    soft, hard = resource.getrlimit(resource.RLIMIT_DATA)
    cap = data_kb * 1024 + extra_bytes
    if hard != resource.RLIM_INFINITY:
        cap = min(cap, hard)

    def time_up(signum, frame):
        raise _TimeUp(f"still running after {seconds} s")

    previous = signal.signal(signal.SIGALRM, time_up)
    resource.setrlimit(resource.RLIMIT_DATA, (cap, hard))
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        resource.setrlimit(resource.RLIMIT_DATA, (soft, hard))
        signal.signal(signal.SIGALRM, previous)


def _files_bytes(folder) -> int:
    total = 0
    for root, _, names in os.walk(folder):
        total += sum(os.path.getsize(os.path.join(root, n)) for n in names)
    return total


def _exercise(folder, filetype, kwargs, compressed=False):
    """Load and read everything, or get a DataSetException; returns whether it loaded."""
    before = _files_bytes(folder)
    with _limits():
        try:
            ds = load(filetype, executor=None, **kwargs)
        except DataSetException as e:
            assert str(e)
            return False
        shape, dtype = tuple(ds.shape), np.dtype(ds.dtype)
        assert all(s >= 1 for s in shape) and dtype.kind in NUMERIC_KINDS
        nbytes = int(np.prod(shape, dtype=object)) * dtype.itemsize
        assert nbytes <= MAX_DATASET_BYTES
        frame_px = int(np.prod(shape[len(shape) - ds.shape.sig_dims :], dtype=object))
        if not compressed:
            # the frames a header claims must be in the files (sync_offset: zeros)
            frames = ds.image_count
            assert frames * frame_px * dtype.itemsize <= 8 * before + (1 << 20), (
                frames,
                shape,
            )
        try:
            ds.get_correction_data()
            depth = max(1, min(256, 2**16 // max(1, frame_px)))
            scheme = TilingScheme.make_for_shape((depth, *ds.shape.sig), ds.shape)
            for p in ds.get_partitions():
                for tile in p.get_tiles(scheme, dest_dtype=np.float32):
                    tile.data.sum()
        except DataSetException as e:
            assert str(e)
    assert _files_bytes(folder) == before
    return True


FUZZ = settings(
    deadline=None,
    max_examples=25,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@pytest.fixture
def folder():
    path = tempfile.mkdtemp(prefix="fuzz_sizes_")
    yield path
    shutil.rmtree(path, ignore_errors=True)


def _pack(buf: bytearray, offset: int, code: str, value: int) -> bool:
    try:
        struct.pack_into(code, buf, offset, value)
    except struct.error:
        return False
    return True


def _mutate_fields(path, fields, draws):
    """Set the struct ``fields`` ``{name: (offset, code)}`` named in ``draws`` of the file."""
    with open(path, "rb") as f:
        buf = bytearray(f.read())
    for name, value in draws.items():
        offset, code = fields[name]
        _pack(buf, offset, code, value)
    with open(path, "wb") as f:
        f.write(bytes(buf))


def _draws(data, names):
    chosen = data.draw(st.lists(st.sampled_from(sorted(names)), min_size=1, max_size=3))
    return {name: data.draw(VALUES, label=name) for name in chosen}


_RNG = np.random.default_rng(0)
FRAMES = _RNG.integers(0, 200, (6, 4, 4)).astype(np.uint16)


# --- user parameters: raw, memory, dask -------------------------------------------------------


@FUZZ
@given(data=st.data())
def test_raw_parameters(folder, data):
    path = os.path.join(folder, "a.raw")
    FRAMES.tofile(path)
    nav = data.draw(st.lists(VALUES, min_size=1, max_size=3))
    sig = data.draw(st.lists(VALUES, min_size=1, max_size=2))
    kwargs = dict(path=path, nav_shape=nav, sig_shape=sig, dtype="uint16")
    kwargs["sync_offset"] = data.draw(st.sampled_from([0, 1, -1, 2**40]))
    _exercise(folder, "raw", kwargs)


@pytest.mark.parametrize(
    "dtype", [[("a", "<u2"), ("b", "<f4")], "V8", "S4", "U2", "M8[s]", "O", ("<u2", (4,))]
)
def test_non_numeric_dtypes_rejected(folder, dtype):
    """Records, strings, bytes, dates, objects and sub-arrays: DataSetException at load."""
    path = os.path.join(folder, "a.raw")
    FRAMES.tofile(path)
    with pytest.raises(DataSetException, match="not supported|invalid dtype"):
        load("raw", executor=None, path=path, nav_shape=(2,), sig_shape=(4, 4), dtype=dtype)
    if np.dtype(dtype).kind != "O" and not np.dtype(dtype).subdtype:  # numpy expands those
        arr = np.zeros((2, 2, 4, 4), dtype=dtype)
        with pytest.raises(DataSetException, match="not supported"):
            load("memory", executor=None, data=arr)
        npy = os.path.join(folder, "a.npy")
        np.save(npy, arr)
        with pytest.raises(DataSetException, match="not supported"):
            load("npy", executor=None, path=npy)


def test_dask_and_memory_shapes(folder):
    import dask.array as da

    huge = da.zeros((2**40, 2**40, 4, 4), dtype=np.uint16, chunks=(2**30, 2**30, 4, 4))
    with pytest.raises(DataSetException, match="more than can be addressed"):
        load("dask", executor=None, dask_array=huge, sig_dims=2)
    rec = da.zeros((2, 2, 4, 4), dtype=[("a", "u2")], chunks=(1, 2, 4, 4))
    with pytest.raises(DataSetException, match="not supported"):
        load("dask", executor=None, dask_array=rec, sig_dims=2)
    load("memory", executor=None, data=np.zeros((2, 3, 4, 4), np.float32))
    with pytest.raises(DataSetException):
        load("memory", executor=None, data=np.zeros((2, 3, 4, 4)), nav_shape=(2**62, 2**62))


# --- npy -------------------------------------------------------------------------------------


def _npy_bytes(shape, descr="<u2", extra=64) -> bytes:
    buf = io.BytesIO()
    header = {"descr": descr, "fortran_order": False, "shape": tuple(shape)}
    np.lib.format.write_array_header_1_0(buf, header)
    return buf.getvalue() + b"\0" * extra


@FUZZ
@given(shape=st.lists(st.sampled_from([v for v in EXTREMES if v >= 0]), min_size=1, max_size=4))
def test_npy_header_shape(folder, shape):
    """Shapes whose product wraps around in 64 bits (a 192-byte file) are refused."""
    path = os.path.join(folder, "a.npy")
    with open(path, "wb") as f:
        f.write(_npy_bytes(shape))
    _exercise(folder, "npy", dict(path=path))


def test_npy_wrapping_product_refused(folder):
    # 2**32 * 2**32 * 4 * 4 wraps to 0 in int64 arithmetic; the file has 192 bytes
    path = os.path.join(folder, "a.npy")
    with open(path, "wb") as f:
        f.write(_npy_bytes((2**32, 2**32, 4, 4)))
    assert os.path.getsize(path) == 192
    with pytest.raises(DataSetException, match="truncated"):
        load("npy", executor=None, path=path)


# --- HDF5 ------------------------------------------------------------------------------------


@FUZZ
@given(
    n=st.sampled_from([1, 2**12, 2**31, 2**40, 2**50]),
    chunked=st.booleans(),
    compression=st.sampled_from([None, "gzip"]),
)
def test_hdf5_claimed_frames(folder, n, chunked, compression):
    """Datasets claiming far more frames than the file stores: DataSetException at load."""
    path = os.path.join(folder, "a.h5")
    with h5py.File(path, "w") as f:
        if compression or chunked:
            f.create_dataset(
                "d", shape=(n, 4, 4), dtype="u2", chunks=(1, 4, 4), compression=compression
            )
            f["d"][0] = 1
        else:  # contiguous storage is allocated at the first write: not written
            f.create_dataset("d", shape=(n, 4, 4), dtype="u2")
    loaded = _exercise(folder, "hdf5", dict(path=path, ds_path="d"), compressed=True)
    assert loaded == (n <= 2**12)


def test_hdf5_2_40_frames(folder):
    path = os.path.join(folder, "a.h5")
    with h5py.File(path, "w") as f:
        f.create_dataset("d", shape=(2**40, 16, 16), chunks=(1, 16, 16), dtype="u2")
    with pytest.raises(DataSetException, match="claims"):
        load("hdf5", executor=None, path=path, ds_path="d")


# --- MIB -------------------------------------------------------------------------------------


@FUZZ
@given(data=st.data())
def test_mib_header_fields(folder, data):
    path = write_mib_acquisition(os.path.join(folder, "a"), FRAMES, "U16")
    mib = path[:-4] + ".mib"
    with open(mib, "rb") as f:
        raw = f.read()
    header = raw[:384].decode("ascii").split(",")
    which = data.draw(st.sampled_from([2, 3, 4, 5]))  # header size, chips, width, height
    header[which] = str(data.draw(VALUES))
    text = ",".join(header).encode("ascii")[:384].ljust(384, b"\0")
    with open(mib, "wb") as f:
        f.write(text + raw[384:])
    with open(path) as f:
        hdr = f.read()
    frames = data.draw(VALUES)
    hdr = hdr.replace(
        "Frames in Acquisition (Number):\t6", f"Frames in Acquisition (Number):\t{frames}"
    )
    with open(path, "w") as f:
        f.write(hdr)
    sync_offset = data.draw(st.sampled_from([0, 1, -2]))
    _exercise(folder, "mib", dict(path=path, sync_offset=sync_offset))


def test_mib_hdr_claiming_2_40_frames(folder):
    path = write_mib_acquisition(os.path.join(folder, "a"), FRAMES, "U16")
    with open(path) as f:
        hdr = f.read().replace(
            "Frames in Acquisition (Number):\t6", f"Frames in Acquisition (Number):\t{2**40}"
        )
    with open(path, "w") as f:
        f.write(hdr)
    with pytest.raises(DataSetException, match="needs 1099511627776 frames"):
        load("mib", executor=None, path=path, sync_offset=1)


# --- formats with binary headers: MRC, BLO, TVIPS, SER, SEQ, FRMS6 -------------------------


def _mrc(folder):
    head = bytearray(1024)
    struct.pack_into("<4i", head, 0, 4, 4, 6, 6)
    struct.pack_into("<i", head, 92, 0)
    head[208:214] = b"MAP \x44\x44"
    path = os.path.join(folder, "a.mrc")
    with open(path, "wb") as f:
        f.write(bytes(head) + FRAMES.tobytes())
    fields = {"nx": (0, "<i"), "ny": (4, "<i"), "nz": (8, "<i"), "nsymbt": (92, "<i")}
    return "mrc", path, fields


def _blo(folder):
    nx, ny, dp = 3, 2, 4
    head = bytearray(240)
    head[:6] = b"IMGBLO"
    struct.pack_into("<HIII", head, 6, 0x0102, 240, 256, 0)
    struct.pack_into("<HHHH", head, 20, dp, 0, nx, ny)
    body = bytearray(head + bytes(16))
    for i in range(nx * ny):
        body += struct.pack("<HI", 0x55AA, i) + bytes(range(i, i + dp * dp))
    path = os.path.join(folder, "a.blo")
    with open(path, "wb") as f:
        f.write(bytes(body))
    fields = {"offset": (12, "<I"), "dp": (20, "<H"), "nx": (24, "<H"), "ny": (26, "<H")}
    return "blo", path, fields


def _tvips(folder):
    head = struct.pack("<13I", 256, 2, 4, 4, 16, 0, 0, 1, 1, 1, 200, 100, 64)
    record = bytes(64) + np.arange(16, dtype="<u2").tobytes()
    path = os.path.join(folder, "a_000.tvips")
    with open(path, "wb") as f:
        f.write(head + bytes(256 - len(head)) + record * 6)
    fields = {"size": (0, "<I"), "dimx": (8, "<I"), "dimy": (12, "<I"), "frame_header": (48, "<I")}
    return "tvips", path, fields


def _ser(folder):
    path = os.path.join(folder, "a.ser")
    write_ser(path, FRAMES, (2, 3))
    # header: total at 14, valid at 18, offset array at 22, ndims at 26; first dimension
    # size at 30; the first element header starts after the dimension array
    with open(path, "rb") as f:
        raw = f.read()
    (offset_array,) = struct.unpack_from("<I", raw, 22)
    (first,) = struct.unpack_from("<I", raw, offset_array)
    fields = {
        "total": (14, "<I"),
        "valid": (18, "<I"),
        "offset_array": (22, "<I"),
        "dim0": (30, "<i"),
        "first_offset": (offset_array, "<I"),
        "sx": (first + 42, "<i"),
        "sy": (first + 46, "<i"),
    }
    return "ser", path, fields


def _seq(folder):
    path = os.path.join(folder, "a.seq")
    write_seq(path, FRAMES.astype(np.uint8))
    fields = {
        name: (offset, "<" + code)
        for name, offset, code in [
            ("width", 548, "I"),
            ("height", 552, "I"),
            ("image_size_bytes", 564, "I"),
            ("allocated_frames", 572, "I"),
            ("true_image_size", 580, "I"),
        ]
    }
    return "seq", path, fields


@pytest.mark.parametrize("make", [_mrc, _blo, _tvips, _ser, _seq], ids=lambda m: m.__name__)
@FUZZ
@given(data=st.data())
def test_binary_header_fields(folder, make, data):
    sub = tempfile.mkdtemp(dir=folder)
    filetype, path, fields = make(sub)
    _mutate_fields(path, fields, _draws(data, fields))
    kwargs = dict(path=path)
    if data.draw(st.booleans()):
        kwargs["sync_offset"] = data.draw(st.sampled_from([1, -1]))
    _exercise(sub, filetype, kwargs)


def test_seq_corrections_sized_by_their_headers(folder):
    """A dark frame whose MRC header claims 2**31 x 2**31 values: DataSetException."""
    path = os.path.join(folder, "a.seq")
    write_seq(path, FRAMES.astype(np.uint8))
    head = bytearray(1024)
    struct.pack_into("<4i", head, 0, 2**31 - 1, 2**31 - 1, 1, 2)
    head[208:214] = b"MAP \x44\x44"
    with open(path + ".dark.mrc", "wb") as f:
        f.write(bytes(head) + bytes(64))
    ds = load("seq", executor=None, path=path)
    with _limits(), pytest.raises(DataSetException, match="dark.mrc"):
        ds.get_correction_data()
    os.unlink(path + ".dark.mrc")
    xml = os.path.splitext(path)[0] + ".xml"
    with open(xml, "w") as f:
        f.write(
            '<Defects><bad_pixel_map rows="2000000000" columns="2000000000">'
            '<defect row="1"/></bad_pixel_map></Defects>'
        )
    with _limits(), pytest.raises(DataSetException, match="impossible"):
        ds.get_correction_data()


@FUZZ
@given(data=st.data())
def test_frms6_header_fields(folder, data):
    sub = tempfile.mkdtemp(dir=folder)
    dark = random_stored(2, 4, 8, seed=1, hi=30)
    hdr = write_frms6(sub, dark, [random_stored(3, 4, 8, seed=2)], scan=(1, 3))
    fields = {
        "header_size": (0, "<H"),
        "frame_header_size": (2, "<H"),
        "width": (88, "<H"),
        "height": (90, "<H"),
        "num_frames": (1020, "<I"),
    }
    which = data.draw(st.sampled_from(["acq_000.frms6", "acq_001.frms6"]))
    _mutate_fields(os.path.join(sub, which), fields, _draws(data, fields))
    _exercise(sub, "frms6", dict(path=hdr))


# --- text descriptors: EMPAD XML, raw CSR TOML, Zarr JSON, DM tags ---------------------------


@FUZZ
@given(x=VALUES, y=VALUES, series=st.one_of(st.none(), VALUES))
def test_empad_xml_scan(folder, x, y, series):
    np.zeros((6, 130, 128), "<f4").tofile(os.path.join(folder, "a.raw"))
    scan = f"<pix_x>{x}</pix_x><pix_y>{y}</pix_y>"
    if series is not None:
        scan = f"<scan_parameters><series_count>{series}</series_count></scan_parameters>"
    path = os.path.join(folder, "a.xml")
    with open(path, "w") as f:
        f.write(f'<root><raw_file filename="a.raw"/>{scan}</root>')
    _exercise(folder, "empad", dict(path=path))


def test_empad_wrapping_scan_refused(folder):
    # 7 * 0x6DB6DB6DB6DB6DB7 == 1 modulo 2**64: a scan "of one frame" in int64 arithmetic
    np.zeros((1, 130, 128), "<f4").tofile(os.path.join(folder, "a.raw"))
    path = os.path.join(folder, "a.xml")
    with open(path, "w") as f:
        f.write(
            '<root><raw_file filename="a.raw"/>'
            f"<pix_x>{0x6DB6DB6DB6DB6DB7}</pix_x><pix_y>7</pix_y></root>"
        )
    with pytest.raises(DataSetException, match="needs"):
        load("empad", executor=None, path=path)


@FUZZ
@given(nav=st.lists(VALUES, min_size=1, max_size=2), sig=st.lists(VALUES, min_size=1, max_size=2))
def test_raw_csr_descriptor_shapes(folder, nav, sig):
    sub = tempfile.mkdtemp(dir=folder)
    path = write_csr(sub, (FRAMES.reshape(2, 3, 4, 4) > 100).astype(np.uint8))
    with open(path) as f:
        text = f.read()
    lines = []
    for line in text.splitlines():
        if line.startswith("nav_shape"):
            line = f"nav_shape = {json.dumps(nav)}"
        elif line.startswith("sig_shape"):
            line = f"sig_shape = {json.dumps(sig)}"
        lines.append(line)
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")
    # sparse: frames of any size may have few entries
    _exercise(sub, "raw_csr", dict(path=path), compressed=True)


@FUZZ
@given(shape=st.lists(st.sampled_from([1, 2, 6, 2**31, 2**40, 2**62]), min_size=3, max_size=4))
def test_zarr_claimed_shape(folder, shape):
    zarr = pytest.importorskip("zarr")
    sub = tempfile.mkdtemp(dir=folder)
    path = os.path.join(sub, "a.zarr")
    z = zarr.open(path, mode="w", shape=(6, 4, 4), chunks=(1, 4, 4), dtype="u2")
    z[:] = FRAMES
    meta_path = next(
        os.path.join(root, n)
        for root, _, names in os.walk(path)
        for n in names
        if n in (".zarray", "zarr.json")
    )
    with open(meta_path) as f:
        meta = json.load(f)
    meta["shape"] = list(shape)
    chunks = [1] * (len(shape) - 2) + [4, 4]
    if "chunks" in meta:
        meta["chunks"] = chunks
    else:
        meta["chunk_grid"]["configuration"]["chunk_shape"] = chunks
    with open(meta_path, "w") as f:
        json.dump(meta, f)
    _exercise(sub, "zarr", dict(path=path), compressed=True)


@FUZZ
@given(
    dims=st.lists(st.sampled_from([v for v in EXTREMES if 0 <= v < 2**32]), min_size=2, max_size=4)
)
def test_dm_image_dimensions(folder, dims):
    """DM image dimensions that claim more (or other) data than the image holds."""
    from writers_dm_ser_seq import DMWriter, Group, dm_image_group

    path = os.path.join(folder, "a.dm4")
    root = Group([("ImageList", Group([("", dm_image_group(FRAMES, dims))]))])
    body = DMWriter(4, "<").group(root)
    with open(path, "wb") as f:
        f.write(struct.pack(">IQ", 4, len(body) + 4) + struct.pack(">I", 1) + body + bytes(8))
    _exercise(folder, "dm", dict(path=path))


@pytest.fixture(scope="module")
def k2is_template():
    from writers_k2is import random_frames, write_k2is

    path = tempfile.mkdtemp(prefix="fuzz_sizes_k2_")
    write_k2is(path, random_frames(1), blank=1, nav_shape=(1, 1))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@settings(FUZZ, max_examples=12)
@given(
    ny=st.sampled_from([v for v in EXTREMES if -(2**31) <= v < 2**31]),
    nx=st.sampled_from([v for v in EXTREMES if -(2**31) <= v < 2**31]),
    sync_offset=st.sampled_from([0, 1]),
)
def test_k2is_gtg_scan(folder, k2is_template, ny, nx, sync_offset):
    from writers_k2is import write_gtg

    sub = os.path.join(tempfile.mkdtemp(dir=folder), "k2")
    shutil.copytree(k2is_template, sub)
    write_gtg(os.path.join(sub, "Capture_.gtg"), (ny, nx))
    _exercise(sub, "k2is", dict(path=os.path.join(sub, "Capture_1.bin"), sync_offset=sync_offset))
