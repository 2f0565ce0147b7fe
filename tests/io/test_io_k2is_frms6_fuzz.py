"""Fuzzing the K2 IS and FRMS6 readers: corrupt headers (block headers, file headers, the
.hdr and .gtg files), arbitrary bytes and truncation only ever raise DataSetException at
load, or load data that then reads without other errors; no allocation follows a header
field that the file cannot back, and the input files stay unchanged."""

import atexit
import os
import shutil
import tempfile

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from libertem.common.exceptions import DataSetException
from libertem.io.dataset.base.tiling import TilingScheme
from libertem.io.dataset.frms6 import FRMS6DataSet
from libertem.io.dataset.k2is import BLOCK_SIZE, K2ISDataSet
from writers_frms6 import random_stored, write_frms6
from writers_k2is import random_frames, write_k2is

_DIR = tempfile.mkdtemp(prefix="fuzz_k2is_frms6_")
atexit.register(shutil.rmtree, _DIR, True)
_K2 = os.path.join(_DIR, "k2_template")
_FR = os.path.join(_DIR, "frms6_template")


def _templates():
    if not os.path.exists(_K2):
        os.makedirs(_K2)
        write_k2is(_K2, random_frames(1), blank=1, nav_shape=(1, 1))
        os.makedirs(_FR)
        dark = random_stored(2, 4, 8, seed=1, hi=30)
        write_frms6(_FR, dark, [random_stored(3, 4, 8, seed=2)], scan=(1, 3))


def _read_all(ds):
    """Read every frame of ``ds`` (full-frame tiles)."""
    scheme = TilingScheme.make_for_shape((1, *ds.shape.sig), ds.shape)
    for p in ds.get_partitions():
        for tile in p.get_tiles(scheme, dest_dtype=np.float32):
            assert np.all(np.isfinite(tile.data))


def _load_or_fail(make, path, files, originals):
    for f in files:
        os.chmod(f, 0o444)  # any write attempt fails loudly
    try:
        try:
            ds = make().initialize(None)
        except DataSetException as e:
            assert str(e)
            return
        _read_all(ds)
        ds.get_correction_data()
    finally:
        for f, data in zip(files, originals):
            with open(f, "rb") as fh:
                assert fh.read() == data


def _copy(template: str) -> tuple[str, list[str]]:
    folder = tempfile.mkdtemp(dir=_DIR)
    names = sorted(os.listdir(template))
    for n in names:
        shutil.copy(os.path.join(template, n), folder)
    return folder, [os.path.join(folder, n) for n in names]


def _mutate(path: str, edits, cut, region=None) -> bytes:
    with open(path, "rb") as f:
        raw = bytearray(f.read())
    for pos, value in edits:
        if region is None:
            raw[pos % len(raw)] = value
        else:
            raw[region(pos) % len(raw)] = value
    if cut is not None:
        raw = raw[: cut % (len(raw) + 1)]
    with open(path, "wb") as f:
        f.write(raw)
    return bytes(raw)


def _cleanup(folder):
    for n in os.listdir(folder):
        os.chmod(os.path.join(folder, n), 0o644)
    shutil.rmtree(folder)


def _header_byte(pos: int) -> int:
    """A byte in one of the first 96 block headers (two frames' worth plus some)."""
    block, offset = divmod(pos, 40)
    return (block % 96) * BLOCK_SIZE + offset


@settings(deadline=None, max_examples=40)
@given(
    sector=st.integers(0, 7),
    edits=st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 255)), max_size=6),
    cut=st.one_of(st.none(), st.integers(0, 2 * 32 * BLOCK_SIZE)),
)
def test_fuzz_k2is_block_headers(sector, edits, cut):
    _templates()
    folder, files = _copy(_K2)
    try:
        bins = [f for f in files if f.endswith(".bin")]
        _mutate(bins[sector], edits, cut, _header_byte)
        originals = [open(f, "rb").read() for f in files]
        _load_or_fail(lambda: K2ISDataSet(path=bins[0]), bins[0], files, originals)
    finally:
        _cleanup(folder)


@settings(deadline=None, max_examples=40)
@given(
    edits=st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 255)), max_size=8),
    cut=st.one_of(st.none(), st.integers(0, 400)),
    junk=st.one_of(st.none(), st.binary(max_size=300)),
)
def test_fuzz_k2is_gtg(edits, cut, junk):
    _templates()
    folder, files = _copy(_K2)
    try:
        gtg = next(f for f in files if f.endswith(".gtg"))
        if junk is not None:
            with open(gtg, "wb") as f:
                f.write(junk)
        else:
            _mutate(gtg, edits, cut)
        originals = [open(f, "rb").read() for f in files]
        _load_or_fail(lambda: K2ISDataSet(path=gtg), gtg, files, originals)
    finally:
        _cleanup(folder)


def _frms6_header_byte(pos: int) -> int:
    # the fields of the file header (size fields, width, height, frame count) and the
    # first frame header
    fields = [0, 1, 2, 3, 7, 88, 89, 90, 91, 1020, 1021, 1022, 1023]
    if pos % 3:
        return fields[pos % len(fields)]
    return pos % 1200


@settings(deadline=None, max_examples=60)
@given(
    which=st.integers(0, 1),
    edits=st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 255)), max_size=6),
    cut=st.one_of(st.none(), st.integers(0, 2000)),
    correct=st.booleans(),
)
def test_fuzz_frms6_file_headers(which, edits, cut, correct):
    _templates()
    folder, files = _copy(_FR)
    try:
        data = [f for f in files if f.endswith(".frms6")]
        _mutate(data[which], edits, cut, _frms6_header_byte)
        hdr = next(f for f in files if f.endswith(".hdr"))
        originals = [open(f, "rb").read() for f in files]
        _load_or_fail(
            lambda: FRMS6DataSet(path=hdr, enable_offset_correction=correct),
            hdr,
            files,
            originals,
        )
    finally:
        _cleanup(folder)


_HDR_LINES = st.lists(
    st.one_of(
        st.sampled_from(["[readoutmode]", "[measurementInfo]", "bin=2", "bin=4", "bin=0"]),
        st.builds(
            lambda k, v: f"{k}={v}",
            st.sampled_from(["stemimagesizex", "stemimagesizey", "bin"]),
            st.one_of(
                st.integers(-5, 10**12).map(str), st.sampled_from(["nan", "1e400", "", "x"])
            ),
        ),
        st.text(max_size=20),
    ),
    max_size=8,
)


@settings(deadline=None, max_examples=60)
@given(lines=_HDR_LINES, junk=st.one_of(st.none(), st.binary(max_size=200)))
def test_fuzz_frms6_hdr(lines, junk):
    _templates()
    folder, files = _copy(_FR)
    try:
        hdr = next(f for f in files if f.endswith(".hdr"))
        with open(hdr, "wb") as f:
            f.write(junk if junk is not None else "\n".join(lines).encode("utf-8"))
        originals = [open(f, "rb").read() for f in files]
        _load_or_fail(lambda: FRMS6DataSet(path=hdr), hdr, files, originals)
        assert FRMS6DataSet.detect_params(hdr) in (
            False,
            {"parameters": {"path": hdr}, "info": {}},
        )
    finally:
        _cleanup(folder)


@settings(deadline=None, max_examples=30)
@given(data=st.binary(max_size=3000), ext=st.sampled_from(["frms6", "bin"]))
def test_fuzz_arbitrary_files(data, ext):
    folder = tempfile.mkdtemp(dir=_DIR)
    try:
        if ext == "bin":
            files = [os.path.join(folder, f"x_{i}.bin") for i in range(1, 9)]
            for f in files:
                with open(f, "wb") as fh:
                    fh.write(data)
            make = lambda: K2ISDataSet(path=files[0])  # noqa: E731
            assert K2ISDataSet.detect_params(files[0]) in (
                False,
                {"parameters": {"path": files[0]}, "info": {"native_sig_shape": (1860, 2048)}},
            )
        else:
            hdr = os.path.join(folder, "x.hdr")
            with open(hdr, "w") as f:
                f.write("[readoutmode]\nbin=1\n")
            files = [hdr]
            for i in range(2):
                files.append(os.path.join(folder, f"x_{i:03d}.frms6"))
                with open(files[-1], "wb") as fh:
                    fh.write(data)
            make = lambda: FRMS6DataSet(path=hdr)  # noqa: E731
        originals = [open(f, "rb").read() for f in files]
        _load_or_fail(make, files[0], files, originals)
    finally:
        _cleanup(folder)
