"""Fuzzing the HDF5 detection and opening: only DataSetException, no hangs, no writes."""

import hashlib

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from libertem.exceptions import DataSetException
from libertem.io.dataset.hdf5 import HDF5_SIGNATURE, H5DataSet


def _digest(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


@settings(deadline=10000, max_examples=40)
@given(st.binary(max_size=3000))
def test_hdf5_garbage(tmp_path_factory, blob):
    path = tmp_path_factory.mktemp("h5") / "f.h5"
    path.write_bytes(HDF5_SIGNATURE + blob)
    digest = _digest(path)
    try:
        H5DataSet(path=str(path)).initialize(None)
    except DataSetException:
        pass
    assert H5DataSet.detect_params(str(path)) is False
    assert _digest(path) == digest


@settings(deadline=10000, max_examples=30)
@given(st.integers(0, 10**6), st.binary(min_size=1, max_size=64))
def test_hdf5_mutated(tmp_path_factory, pos, junk):
    import h5py

    folder = tmp_path_factory.mktemp("h5m")
    good = folder / "g.h5"
    with h5py.File(good, "w") as f:
        f["data"] = np.arange(2 * 3 * 4 * 4, dtype=np.uint16).reshape(2, 3, 4, 4)
    blob = good.read_bytes()
    pos = pos % len(blob)
    bad = folder / "b.h5"
    bad.write_bytes(blob[:pos] + junk + blob[pos + len(junk) :])
    try:
        H5DataSet(path=str(bad)).initialize(None)
    except DataSetException:
        pass
