"""Fuzzing the DM, SER and SEQ header parsers: arbitrary or mutated bytes only ever raise
DataSetException, finish quickly, and leave the input file unchanged."""

import os
import tempfile

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from libertem.common.exceptions import DataSetException
from libertem.io.dataset.base import TilingScheme
from libertem.io.dataset.dm import DMDataSet
from libertem.io.dataset.seq import SEQDataSet
from libertem.io.dataset.ser import SERDataSet
from writers_dm_ser_seq import write_dm, write_seq, write_ser

_DIR = tempfile.mkdtemp(prefix="fuzz_dm_ser_seq_")


def _sample(name):
    path = os.path.join(_DIR, name)
    if not os.path.exists(path):
        rng = np.random.default_rng(0)
        if name.endswith(".dm3") or name.endswith(".dm4"):
            version = int(name[-1])
            layout = "sig_first" if "old" in name else "c"
            write_dm(path, rng.integers(0, 9, (2, 3, 4, 4)).astype(np.uint16), version, layout)
        elif name.endswith(".ser"):
            write_ser(path, rng.integers(0, 9, (6, 4, 4)).astype(np.uint16), (2, 3))
        else:
            write_seq(path, rng.integers(0, 9, (6, 4, 4)).astype(np.uint8))
    with open(path, "rb") as f:
        return f.read()


CLASSES = {"dm3": DMDataSet, "dm4": DMDataSet, "ser": SERDataSet, "seq": SEQDataSet}


def _try(cls, data: bytes, ext: str):
    fd, path = tempfile.mkstemp(suffix="." + ext, dir=_DIR)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.chmod(path, 0o444)  # a write attempt would fail loudly
    try:
        if cls.detect_params(path) is not False:
            assert ext in ("dm3", "dm4", "ser", "seq")
        try:
            ds = cls(path=path).initialize(None)
        except DataSetException as e:
            assert path in str(e)
            return
        # a valid-looking dataset must read without other errors
        for p in ds.get_partitions():
            scheme = TilingScheme.make_for_shape((min(2, p.shape[0]), *ds.shape.sig), ds.shape)
            np.asarray(next(iter(p.get_tiles(scheme, "float32"))))
    finally:
        with open(path, "rb") as f:
            assert f.read() == data
        os.chmod(path, 0o644)
        os.unlink(path)


@settings(deadline=2000, max_examples=60)
@given(data=st.binary(max_size=2048), ext=st.sampled_from(sorted(CLASSES)))
def test_fuzz_arbitrary_bytes(data, ext):
    _try(CLASSES[ext], data, ext)


@settings(deadline=2000, max_examples=60)
@given(
    ext=st.sampled_from(["dm3", "dm4", "old.dm4", "ser", "seq"]),
    edits=st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 255)), max_size=8),
    cut=st.one_of(st.none(), st.integers(0, 10**6)),
)
def test_fuzz_mutated(ext, edits, cut):
    raw = bytearray(_sample("sample." + ext))
    for pos, value in edits:
        raw[pos % len(raw)] = value
    if cut is not None:
        raw = raw[: cut % (len(raw) + 1)]
    key = ext.split(".")[-1]
    _try(CLASSES[key], bytes(raw), key)


@settings(deadline=2000, max_examples=40)
@given(
    ext=st.sampled_from(["dm4", "ser", "seq"]),
    words=st.lists(
        st.tuples(st.integers(0, 700), st.sampled_from([0, 1, 2**31 - 1, 2**32 - 1, 2**63])),
        min_size=1,
        max_size=4,
    ),
)
def test_fuzz_header_words(ext, words):
    """Large or zero integers written over header words (counts, sizes, offsets)."""
    raw = bytearray(_sample("sample." + ext))
    for pos, value in words:
        width = 8 if value >= 2**32 else 4
        pos = pos % (len(raw) - width)
        raw[pos : pos + width] = value.to_bytes(width, "little" if ext != "dm4" else "big")
    _try(CLASSES[ext], bytes(raw), ext)
