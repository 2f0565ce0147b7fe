"""Fuzzing the MIB header parsers: only DataSetException, no hangs, no writes."""

import hashlib

from hypothesis import given, settings
from hypothesis import strategies as st

from libertem.exceptions import DataSetException
from libertem.io.dataset.mib import MIBDataSet, parse_mib_header, read_hdr, read_mib_header
from libertem.utils.sample_data import mib_header

VALID = mib_header(1, 16, 16, "U16", 12)


def _digest(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


@settings(deadline=2000, max_examples=150)
@given(st.binary(max_size=600))
def test_parse_mib_header_bytes(data):
    before = bytes(data)
    try:
        parse_mib_header(data, "fuzz")
    except DataSetException:
        pass
    assert data == before


@settings(deadline=2000, max_examples=150)
@given(st.integers(0, 383), st.binary(min_size=1, max_size=8))
def test_parse_mib_header_mutated(pos, junk):
    data = VALID[:pos] + junk + VALID[pos + len(junk) :]
    try:
        h = parse_mib_header(data, "fuzz")
        assert h.width >= 1 and h.height >= 1
    except DataSetException:
        pass


@settings(deadline=5000, max_examples=60)
@given(
    st.one_of(
        st.binary(max_size=2000),
        st.builds(
            lambda pos, junk: VALID[:pos] + junk, st.integers(0, 384), st.binary(max_size=700)
        ),
    )
)
def test_mib_file_load(tmp_path_factory, blob):
    path = tmp_path_factory.mktemp("fz") / "f.mib"
    path.write_bytes(blob)
    digest = _digest(path)
    try:
        read_mib_header(str(path))
        MIBDataSet(path=str(path)).initialize(None)
    except DataSetException:
        pass
    assert MIBDataSet.detect_params(str(path)) in (False, {"parameters": {"path": str(path)}})
    assert _digest(path) == digest


@settings(deadline=2000, max_examples=80)
@given(st.binary(max_size=1000))
def test_read_hdr(tmp_path_factory, blob):
    path = tmp_path_factory.mktemp("hdr") / "f.hdr"
    path.write_bytes(b"HDR,\t\n" + blob)
    digest = _digest(path)
    try:
        read_hdr(str(path))
        MIBDataSet(path=str(path)).initialize(None)
    except DataSetException:
        pass
    assert _digest(path) == digest
