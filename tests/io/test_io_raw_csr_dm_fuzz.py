"""Fuzzing raw CSR descriptors and arrays, and the DM image selection: arbitrary or mutated
input only ever raises DataSetException (or reads correctly), never allocates from a corrupt
size, never reads out of bounds, and never writes to its input files."""

import hashlib
import os
import shutil
import tempfile

import numpy as np
import scipy.sparse
from hypothesis import given, settings
from hypothesis import strategies as st

from libertem.common.exceptions import DataSetException
from libertem.io.dataset.base import TilingScheme
from libertem.io.dataset.dm_header import read_dm_image
from libertem.io.dataset.raw_csr import RawCSRDataSet, get_descriptor
from writers_csr import sparse_frames, write_csr
from writers_dm_ser_seq import write_dm

FUZZ = settings(deadline=5000, max_examples=60)
_DIR = tempfile.mkdtemp(prefix="fuzz_raw_csr_dm_")
_DATA = sparse_frames((6, 4, 5), 0.4, "uint16", seed=3)
_BASE = write_csr(os.path.join(_DIR, "base"), _DATA)
#: partitions up to this many frames are also read with an ROI, and up to this many
#: empty frames are appended (a fuzzed nav_shape may declare far more frames than
#: memory holds)
_MAX_ROI_FRAMES = 10**6


def _digest(directory):
    h = hashlib.sha256()
    for name in sorted(os.listdir(directory)):
        with open(os.path.join(directory, name), "rb") as f:
            h.update(name.encode() + f.read())
    return h.digest()


def _read_all(ds):
    """The frames of ``ds`` as sparse CSR rows (empty frames after the last stored one
    only where they are few), through the partitions, with and without ROI.

    The rows stay sparse: a fuzzed descriptor may declare a huge (but valid) frame size,
    and densifying it here would allocate gigabytes the reader itself never needs.
    """
    sig = tuple(ds.shape.sig)
    size = int(np.prod(sig))
    scheme = TilingScheme.make_for_shape((4, *sig), ds.shape)
    rows, pos = [], 0
    for p in ds.get_partitions():
        for tile in p.get_tiles(scheme, np.float64):
            # frames without stored data are never delivered: they stay empty rows here
            start = int(tile.tile_slice.origin[0])
            if start > pos:
                rows.append(scipy.sparse.csr_array((start - pos, size)))
            rows.append(scipy.sparse.csr_array(tile.data))
            pos = start + tile.data.shape[0]
        if p.stop - p.start <= _MAX_ROI_FRAMES:
            roi = np.ones(p.stop - p.start, dtype=bool)
            roi[::2] = False
            for tile in p.get_tiles(scheme, np.float64, roi):
                assert tile.data.shape[1] == size
    if pos < ds.shape.nav.size <= pos + _MAX_ROI_FRAMES:
        rows.append(scipy.sparse.csr_array((ds.shape.nav.size - pos, size)))
    return scipy.sparse.vstack(rows, format="csr")


def _try(directory, **kwargs):
    before = _digest(directory)
    for name in os.listdir(directory):
        os.chmod(os.path.join(directory, name), 0o444)  # a write attempt fails loudly
    path = os.path.join(directory, "sparse.toml")
    try:
        RawCSRDataSet.detect_params(path)
        try:
            ds = RawCSRDataSet(path, **kwargs).initialize(None)
            ds.check_valid()
        except DataSetException:
            return None
        try:
            return _read_all(ds)
        except DataSetException:
            return None
    finally:
        for name in os.listdir(directory):
            os.chmod(os.path.join(directory, name), 0o644)
        assert _digest(directory) == before


_values = st.one_of(
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=6).map(lambda s: s.replace('"', "").replace("\\", "")),
    st.lists(st.integers(-(2**64), 2**64), max_size=5),
    st.booleans(),
)
_dtypes = st.sampled_from(
    [
        '"<u2"',
        '"<i8"',
        '"<i4"',
        '"<i8"',
        '"<i4"',
        '"<u2"',
        '"<i8"',
        '"<i4"',
        '">u4"',
        '"<f4"',
        '"<c8"',
        '"u1"',
        '"bogus"',
        '"V8"',
        '"O"',
        '"<M8"',
        "3",
    ]
)
_shapes = st.one_of(
    st.sampled_from(["[6]", "[2, 3]", "[3, 2]", "[4, 5]", "[20]", "[2, 2, 5]", "[7]"]),
    st.lists(st.integers(-3, 2**40), min_size=0, max_size=4).map(str),
    _values.map(lambda v: f'"{v}"' if isinstance(v, str) else str(v).lower()),
)


_VALID = {
    "nav_shape": "[6]",
    "sig_shape": "[4, 5]",
    "indptr_dtype": '"<i8"',
    "indices_dtype": '"<i4"',
    "data_file": '"sparse_data.raw"',
    "data_dtype": '"<u2"',
}
_RANDOM = {
    "nav_shape": _shapes,
    "sig_shape": _shapes,
    "indptr_dtype": _dtypes,
    "indices_dtype": _dtypes,
    "data_file": st.sampled_from(['"nope.raw"', '""', "7", '"../base"', '"sparse_indptr.raw"']),
    "data_dtype": _dtypes,
}


@FUZZ
@given(
    fields=st.dictionaries(st.sampled_from(sorted(_RANDOM)), st.none(), max_size=3),
    data=st.data(),
)
def test_fuzz_descriptor(fields, data):
    """Descriptors with up to three fields replaced by arbitrary values."""
    values = dict(_VALID)
    for key in fields:
        values[key] = data.draw(_RANDOM[key], label=key)
    directory = tempfile.mkdtemp(dir=_DIR)
    try:
        for name in os.listdir(os.path.dirname(_BASE)):
            if name.endswith(".raw"):
                shutil.copy(os.path.join(os.path.dirname(_BASE), name), directory)
        text = "\n".join(
            [
                "[params]",
                'filetype = "raw_csr"',
                f"nav_shape = {values['nav_shape']}",
                f"sig_shape = {values['sig_shape']}",
                "[raw_csr]",
                'indptr_file = "sparse_indptr.raw"',
                f"indptr_dtype = {values['indptr_dtype']}",
                'indices_file = "sparse_indices.raw"',
                f"indices_dtype = {values['indices_dtype']}",
                f"data_file = {values['data_file']}",
                f"data_dtype = {values['data_dtype']}",
            ]
        )
        with open(os.path.join(directory, "sparse.toml"), "w") as f:
            f.write(text)
        got = _try(directory)
        if values == _VALID:
            np.testing.assert_array_equal(got.toarray(), _DATA.reshape(6, 20))
    finally:
        shutil.rmtree(directory, ignore_errors=True)


@FUZZ
@given(
    which=st.sampled_from(["indptr", "indices", "data"]),
    edits=st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 255)), max_size=6),
    cut=st.one_of(st.none(), st.integers(0, 10**6)),
    sync_offset=st.integers(-3, 3),
)
def test_fuzz_arrays(which, edits, cut, sync_offset):
    directory = tempfile.mkdtemp(dir=_DIR)
    try:
        src = os.path.dirname(_BASE)
        for name in os.listdir(src):
            shutil.copy(os.path.join(src, name), directory)
        path = get_descriptor(os.path.join(directory, "sparse.toml"))
        target = getattr(path, f"{which}_file")
        raw = bytearray(open(target, "rb").read())
        for pos, value in edits:
            raw[pos % len(raw)] = value
        if cut is not None:
            raw = raw[: cut % (len(raw) + 1)]
        with open(target, "wb") as f:
            f.write(bytes(raw))
        got = _try(directory, sync_offset=sync_offset)
        if got is not None and not edits and cut is None:
            ref = np.zeros((6, 20))
            for i in range(6):
                if 0 <= i + sync_offset < 6:
                    ref[i] = _DATA.reshape(6, 20)[i + sync_offset]
            np.testing.assert_array_equal(got.toarray(), ref)
    finally:
        shutil.rmtree(directory, ignore_errors=True)


_DM = str(write_dm(os.path.join(_DIR, "stack.dm4"), np.zeros((3, 4, 4), np.uint16)))


@FUZZ
@given(index=st.one_of(st.none(), st.integers(-(2**70), 2**70), st.text(max_size=3)))
def test_fuzz_dm_dataset_index(index):
    try:
        image = read_dm_image(_DM, index)
    except DataSetException as e:
        assert "stack.dm4" in str(e)
        return
    assert image.index in (0, 1)
