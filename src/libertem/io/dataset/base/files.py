"""Opening input files: always read-only, memory maps cached per process."""

from __future__ import annotations

import functools
import os

import numpy as np

from libertem.common.exceptions import DataSetException


def check_file(path: str | os.PathLike) -> int:
    """Check that ``path`` is a readable file; return its size in bytes."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise DataSetException(f"{path}: no such file")
    if not os.path.isfile(path):
        raise DataSetException(f"{path}: not a regular file")
    if not os.access(path, os.R_OK):
        raise DataSetException(f"{path}: file is not readable")
    return os.path.getsize(path)


@functools.lru_cache(maxsize=64)
def _cached_memmap(path: str, dtype: str, offset: int, shape: tuple, mtime_ns: int) -> np.memmap:
    return np.memmap(path, dtype=np.dtype(dtype), mode="r", offset=offset, shape=shape)


def open_memmap(path: str | os.PathLike, dtype, offset: int, shape: tuple) -> np.memmap:
    """A read-only memory map of ``shape`` at ``offset``, reused while the file is unchanged."""
    path = os.fspath(path)
    mtime_ns = os.stat(path).st_mtime_ns
    return _cached_memmap(path, np.dtype(dtype).str, int(offset), tuple(shape), mtime_ns)


def open_file_map(path: str | os.PathLike) -> np.memmap:
    """A read-only ``uint8`` memory map of the whole file, reused while it is unchanged."""
    path = os.fspath(path)
    st = os.stat(path)
    return _cached_memmap(path, "|u1", 0, (st.st_size,), st.st_mtime_ns)
