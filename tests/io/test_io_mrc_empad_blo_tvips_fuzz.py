"""Fuzzing the header parsers of mrc, empad, blo and tvips.

Arbitrary or mutated headers must only ever raise ``DataSetException``, never hang,
never write to their input; a file that opens must read completely.
"""

import hashlib
import itertools
import os
import shutil
import struct
import tempfile

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from libertem.exceptions import DataSetException
from libertem.io.dataset.base import TilingRequest, make_tiling_scheme
from libertem.io.dataset.blo import BloDataSet, parse_blo_header
from libertem.io.dataset.empad import EMPADDataSet, parse_empad_xml
from libertem.io.dataset.mrc import MRCDataSet, parse_mrc_header
from libertem.io.dataset.tvips import TVIPSDataSet, parse_tvips_header

FUZZ = settings(
    deadline=5000,
    max_examples=60,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
FILE_FUZZ = settings(FUZZ, max_examples=40)

_counter = itertools.count()


def call_parser(parser, buf, *args):
    """Run ``parser`` on a copy of ``buf``: only DataSetException, input unchanged."""
    data = bytes(buf)
    before = hashlib.sha256(data).digest()
    try:
        parser(data, *args)
    except DataSetException:
        pass
    assert hashlib.sha256(data).digest() == before


# --- parsers on arbitrary bytes -----------------------------------------------------------------


@FUZZ
@given(st.binary(max_size=1100))
def test_fuzz_mrc_parser_bytes(buf):
    call_parser(parse_mrc_header, buf, "fuzz.mrc")


@FUZZ
@given(
    st.lists(st.integers(-(2**31), 2**31 - 1), min_size=4, max_size=4),
    st.integers(-(2**31), 2**31 - 1),
    st.sampled_from([b"MAP ", b"MAP\x00", b"MAPX"]),
    st.sampled_from([b"\x44\x44", b"\x44\x41", b"\x11\x11", b"\x00\x00", b"\x12\x34"]),
    st.sampled_from("<>"),
)
def test_fuzz_mrc_parser_fields(dims_mode, nsymbt, ident, stamp, order):
    buf = bytearray(1024)
    struct.pack_into(order + "4i", buf, 0, *dims_mode)
    struct.pack_into(order + "i", buf, 92, nsymbt)
    buf[208:212], buf[212:214] = ident, stamp
    call_parser(parse_mrc_header, buf, "fuzz.mrc")


@FUZZ
@given(st.binary(max_size=300))
def test_fuzz_empad_parser_bytes(buf):
    call_parser(parse_empad_xml, buf, "fuzz.xml")


_XML_PARTS = st.sampled_from(
    [
        "<root>",
        "</root>",
        '<raw_file filename="a.raw"/>',
        "<raw_file/>",
        '<raw_file filename=""/>',
        "<pix_x>",
        "</pix_x>",
        "<pix_y>",
        "</pix_y>",
        "3",
        "-1",
        "0",
        "99999999999999999999",
        "x",
        "<scan_parameters>",
        "</scan_parameters>",
        "<series_count>",
        "</series_count>",
        "<scan_resolution_x>",
        "</scan_resolution_x>",
        "<!DOCTYPE root [<!ENTITY a 'aaaa'>]>",
        "&a;",
        "&#0;",
        "\x00",
        "<?xml version='1.0'?>",
    ]
)


@FUZZ
@given(st.lists(_XML_PARTS, max_size=14))
def test_fuzz_empad_parser_xml(parts):
    call_parser(parse_empad_xml, "".join(parts).encode("utf-8", "surrogatepass"), "fuzz.xml")


@FUZZ
@given(st.binary(max_size=300), st.sampled_from("<>"))
def test_fuzz_blo_parser_bytes(buf, order):
    call_parser(parse_blo_header, b"IMGBLO" + buf, order, "fuzz.blo")
    call_parser(parse_blo_header, buf, order, "fuzz.blo")


@FUZZ
@given(st.binary(max_size=300))
def test_fuzz_tvips_parser_bytes(buf):
    call_parser(parse_tvips_header, buf, "fuzz.tvips")


@FUZZ
@given(st.lists(st.integers(0, 2**32 - 1), min_size=13, max_size=13))
def test_fuzz_tvips_parser_fields(fields):
    call_parser(parse_tvips_header, struct.pack("<13I", *fields) + bytes(204), "fuzz.tvips")


# --- whole files: mutated valid samples ----------------------------------------------------------


def _mrc_sample(folder):
    rng = np.random.default_rng(1)
    data = rng.normal(size=(6, 8, 10)).astype("<f4")
    head = bytearray(1024)
    struct.pack_into("<4i", head, 0, 10, 8, 6, 2)
    struct.pack_into("<i", head, 92, 16)
    head[208:214] = b"MAP \x44\x44"
    path = os.path.join(folder, "s.mrc")
    with open(path, "wb") as f:
        f.write(bytes(head) + bytes(16) + data.tobytes())
    return path, 1040


def _blo_sample(folder):
    nx, ny, dp = 3, 2, 8
    head = bytearray(240)
    head[:6] = b"IMGBLO"
    struct.pack_into("<HIII", head, 6, 0x0102, 240, 256, 0)
    struct.pack_into("<HHHH", head, 20, dp, 0, nx, ny)
    body = bytearray(head + bytes(16))
    for i in range(nx * ny):
        body += struct.pack("<HI", 0x55AA, i) + bytes(range(i, i + dp * dp))
    path = os.path.join(folder, "s.blo")
    with open(path, "wb") as f:
        f.write(bytes(body))
    return path, 240


def _tvips_sample(folder):
    dimx, dimy, n = 6, 4, 5
    head = struct.pack("<13I", 256, 2, dimx, dimy, 16, 0, 0, 1, 1, 1, 200, 100, 64)
    record = bytes(64) + np.arange(dimx * dimy, dtype="<u2").tobytes()
    path = os.path.join(folder, "s_000.tvips")
    with open(path, "wb") as f:
        f.write(head + bytes(256 - len(head)) + record * n)
    with open(os.path.join(folder, "s_001.tvips"), "wb") as f:
        f.write(record * 2)
    return path, 52


def _empad_sample(folder):
    raw = np.zeros((2, 130, 128), "<f4")
    raw.tofile(os.path.join(folder, "scan_x2_y1.raw"))
    path = os.path.join(folder, "s.xml")
    with open(path, "wb") as f:
        f.write(
            b'<root><raw_file filename="scan_x2_y1.raw"/><pix_x>2</pix_x><pix_y>1</pix_y></root>'
        )
    return path, None


SAMPLES = {
    "mrc": (MRCDataSet, _mrc_sample),
    "blo": (BloDataSet, _blo_sample),
    "tvips": (TVIPSDataSet, _tvips_sample),
    "empad": (EMPADDataSet, _empad_sample),
}


@pytest.fixture(scope="module")
def sample_dir():
    folder = tempfile.mkdtemp(prefix="fuzz_b2_")
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def read_everything(ds):
    """Read all tiles of every partition (only DataSetException allowed)."""
    sig = tuple(ds.shape.sig)
    parts = list(ds.get_partitions())
    scheme = make_tiling_scheme(
        TilingRequest(total_size=4096),
        sig,
        ds.get_base_shape(),
        ds.dtype.itemsize,
        max(p.stop - p.start for p in parts),
        ds.get_preferred_depth(),
    )
    total = 0.0
    for p in parts:
        for tile in p.get_tiles(scheme, np.float64):
            total += float(np.nansum(tile.data))
    return total


def open_and_read(cls, path, **kwargs):
    try:
        ds = cls(path, **kwargs).initialize(None)
        read_everything(ds)
    except DataSetException as e:
        # names the file, or another file of the same recording (TVIPS series, EMPAD raw)
        folder = os.path.dirname(path)
        names = [path] + [os.path.join(folder, n) for n in os.listdir(folder)]
        # (LiberTEM's sync_offset text names no file)
        assert str(e).startswith("sync_offset should be in") or any(
            os.path.basename(n).split(".")[0] in str(e) for n in names
        ), str(e)
    found = cls.detect_params(path)  # never raises: False or parameters
    assert found is False or found["parameters"]["path"] == path


@pytest.mark.parametrize("fmt", sorted(SAMPLES))
@FILE_FUZZ
@given(data=st.data())
def test_fuzz_files(sample_dir, fmt, data):
    cls, make = SAMPLES[fmt]
    folder = os.path.join(sample_dir, f"{fmt}_{next(_counter)}")
    os.mkdir(folder)
    path, header_len = make(folder)
    with open(path, "rb") as f:
        buf = bytearray(f.read())
    limit = header_len or len(buf)
    edits = data.draw(
        st.lists(st.tuples(st.integers(0, limit - 1), st.integers(0, 255)), max_size=6)
    )
    for pos, value in edits:
        buf[pos] = value
    if data.draw(st.booleans()):
        buf = buf[: data.draw(st.integers(0, len(buf)))]
    with open(path, "wb") as f:
        f.write(buf)
    before = {name: open(os.path.join(folder, name), "rb").read() for name in os.listdir(folder)}
    kwargs = {}
    if data.draw(st.booleans()):
        kwargs["sync_offset"] = data.draw(st.integers(-8, 8))
    if data.draw(st.booleans()):
        kwargs["nav_shape"] = data.draw(st.lists(st.integers(-1, 4), min_size=1, max_size=3))
    kwargs["io_backend"] = data.draw(st.sampled_from(["mmap", "buffered"]))
    open_and_read(cls, path, **kwargs)
    after = {name: open(os.path.join(folder, name), "rb").read() for name in os.listdir(folder)}
    assert after == before


@pytest.mark.parametrize(
    "fmt,ext", [("mrc", ".mrc"), ("blo", ".blo"), ("tvips", ".tvips"), ("empad", ".xml")]
)
@FILE_FUZZ
@given(data=st.binary(max_size=2048))
def test_fuzz_random_files(sample_dir, fmt, ext, data):
    cls, _ = SAMPLES[fmt]
    path = os.path.join(sample_dir, f"rand{next(_counter)}{ext}")
    with open(path, "wb") as f:
        f.write(data)
    open_and_read(cls, path)
    with open(path, "rb") as f:
        assert f.read() == data
