"""Fuzzing the .npy header reader: any bytes give a dataset or a DataSetException."""

from __future__ import annotations

import hashlib
import io

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from libertem.common.exceptions import DataSetException
from libertem.io.dataset.npy import NPYDataSet, read_npy_header


def _valid_npy_bytes() -> bytes:
    buf = io.BytesIO()
    np.save(buf, np.arange(2 * 3 * 4 * 5, dtype=np.uint16).reshape((2, 3, 4, 5)))
    return buf.getvalue()


VALID = _valid_npy_bytes()


def _check(path, data: bytes) -> None:
    before = hashlib.sha256(path.read_bytes()).hexdigest()
    try:
        read_npy_header(str(path))
        NPYDataSet(path=str(path)).initialize(None)
    except DataSetException as e:
        assert str(path) in str(e)
    assert hashlib.sha256(path.read_bytes()).hexdigest() == before


@settings(
    max_examples=150, deadline=2000, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.binary(max_size=400))
def test_arbitrary_bytes(tmp_path, data):
    path = tmp_path / "fuzz.npy"
    path.write_bytes(data)
    _check(path, data)


@settings(
    max_examples=200, deadline=2000, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    position=st.integers(min_value=0, max_value=len(VALID) - 1),
    replacement=st.binary(min_size=1, max_size=16),
    truncate=st.one_of(st.none(), st.integers(min_value=0, max_value=len(VALID))),
)
def test_mutated_headers(tmp_path, position, replacement, truncate):
    data = VALID[:position] + replacement + VALID[position + len(replacement) :]
    if truncate is not None:
        data = data[:truncate]
    path = tmp_path / "mutated.npy"
    path.write_bytes(data)
    _check(path, data)
