"""Opening input files: always read-only, memory maps cached per process and guarded.

Maps are reused while the file's size and modification time stay the same; every
map is registered with :mod:`~libertem.io.dataset.base.mapguard`, so that a file
that shrinks while it is mapped ends the run with a ``DataSetException`` instead of
killing the process.
"""

from __future__ import annotations

import functools
import os

import numpy as np

from libertem.common.exceptions import DataSetException
from libertem.common.math import prod
from libertem.io.dataset.base import mapguard


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


def _stat(path: str) -> os.stat_result:
    try:
        return os.stat(path)
    except OSError as e:
        raise DataSetException(f"{path}: cannot open: {e}") from e


@functools.lru_cache(maxsize=64)
def _cached_memmap(path: str, dtype: str, offset: int, shape: tuple, size: int, mtime_ns: int):
    dtype = np.dtype(dtype)
    end = offset + prod(shape) * dtype.itemsize
    if end > size:
        raise DataSetException(f"{path}: file truncated: {end} bytes needed, the file has {size}")
    try:
        mm = np.memmap(path, dtype=dtype, mode="r", offset=offset, shape=shape)
    except (OSError, ValueError) as e:
        raise DataSetException(f"{path}: cannot map: {e}") from e
    mapguard.guard_map(mm, path)
    return mm


def open_memmap(path: str | os.PathLike, dtype, offset: int, shape: tuple) -> np.memmap:
    """A read-only memory map of ``shape`` at ``offset``, reused while the file is unchanged.

    Raises
    ------
    DataSetException
        If the file is too short for the map (or cannot be mapped).
    """
    path = os.fspath(path)
    st = _stat(path)
    shape = tuple(int(s) for s in shape)
    return _cached_memmap(
        path, np.dtype(dtype).str, int(offset), shape, st.st_size, st.st_mtime_ns
    )


def open_file_map(path: str | os.PathLike) -> np.memmap:
    """A read-only ``uint8`` memory map of the whole file, reused while it is unchanged."""
    path = os.fspath(path)
    st = _stat(path)
    return _cached_memmap(path, "|u1", 0, (st.st_size,), st.st_size, st.st_mtime_ns)


def forget_maps() -> None:
    """Drop the cached maps (they are opened again on next use)."""
    _cached_memmap.cache_clear()
