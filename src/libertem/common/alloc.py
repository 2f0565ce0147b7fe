"""Page-aligned memory, a pool of reusable byte buffers, and small array helpers.

Aligned buffers are what unbuffered (``O_DIRECT``) reads need; anonymous memory
maps are always page aligned.
"""

from __future__ import annotations

import itertools
import mmap
import threading
from collections import defaultdict
from collections.abc import Iterable, Iterator
from contextlib import contextmanager

import numpy as np

from libertem.common.math import prod

BufferSize = int | tuple[int, ...]

PAGE_SIZE = mmap.PAGESIZE


def _aligned_mmap(size: int, alignment: int = PAGE_SIZE) -> mmap.mmap:
    if alignment > PAGE_SIZE and alignment % PAGE_SIZE:
        raise ValueError(f"alignment {alignment} must be a multiple of the page size {PAGE_SIZE}")
    blocks = max(1, -(-int(size) // PAGE_SIZE))
    return mmap.mmap(-1, blocks * PAGE_SIZE)


def bytes_aligned(size: int) -> memoryview:
    """``size`` writable bytes starting at a page boundary (zero-filled)."""
    return memoryview(_aligned_mmap(size))[: int(size)]


def empty_aligned(size: BufferSize, dtype) -> np.ndarray:
    """An array of shape ``size`` whose data starts at a page boundary."""
    shape = (size,) if isinstance(size, (int, np.integer)) else tuple(size)
    dtype = np.dtype(dtype)
    raw = bytes_aligned(prod(shape) * dtype.itemsize)
    return np.frombuffer(raw, dtype=dtype).reshape(shape)


def zeros_aligned(size: BufferSize, dtype) -> np.ndarray:
    """Like :func:`empty_aligned`, zero-filled (fresh anonymous maps are zeros)."""
    return empty_aligned(size, dtype)


def batched(iterable: Iterable, n: int) -> Iterator[tuple]:
    """Tuples of ``n`` consecutive items of ``iterable``; the last one may be shorter."""
    if n < 1:
        raise ValueError("n must be at least one")
    it = iter(iterable)
    while chunk := tuple(itertools.islice(it, n)):
        yield chunk


def reshaped_view(a: np.ndarray, shape) -> np.ndarray:
    """``a`` reshaped to ``shape`` without copying: a view that shares memory with ``a``.

    Raises
    ------
    AttributeError
        If the memory layout of ``a`` does not allow it (a reshape would copy);
        numpy's error for assigning an incompatible ``shape``.
    """
    view = a.view()
    view.shape = tuple(shape) if isinstance(shape, (tuple, list)) else shape
    return view


class ManagedBuffer:
    """A byte buffer checked out of a :class:`BufferPool` while the ``with`` block runs.

    Parameters
    ----------
    pool
        The pool to check out of and back into.
    size
        Bytes.
    alignment
        Required start alignment in bytes.
    """

    def __init__(self, pool: BufferPool, size: int, alignment: int):
        self.pool = pool
        self.size = int(size)
        self.alignment = int(alignment)
        self.buf: memoryview | None = None

    def __enter__(self) -> memoryview:
        self.buf = self.pool.checkout_bytes(self.size, self.alignment)
        return self.buf

    def __exit__(self, *exc) -> None:
        self.pool.checkin_bytes(self.size, self.alignment, self.buf)
        self.buf = None


class BufferPool:
    """Reuses aligned byte buffers of the same size and alignment.

    Allocating and page-faulting large buffers per read is expensive; a pool
    keeps returned buffers and hands them out again. Thread safe.
    """

    def __init__(self):
        self._free: dict[tuple[int, int], list[memoryview]] = defaultdict(list)
        self._lock = threading.Lock()

    def checkout_bytes(self, size: int, alignment: int) -> memoryview:
        """A buffer of ``size`` bytes: a returned one if available, else a new one."""
        key = (int(size), int(alignment))
        with self._lock:
            free = self._free[key]
            if free:
                return free.pop()
        return memoryview(_aligned_mmap(size, alignment))[: int(size)]

    def checkin_bytes(self, size: int, alignment: int, buf: memoryview) -> None:
        """Return a buffer from :meth:`checkout_bytes` for reuse."""
        with self._lock:
            self._free[(int(size), int(alignment))].append(buf)

    def bytes(self, size: int, alignment: int = 4096) -> ManagedBuffer:
        """Context manager: a pooled buffer of ``size`` bytes for the ``with`` block."""
        return ManagedBuffer(self, size, alignment)

    @contextmanager
    def empty(self, size: BufferSize, dtype, alignment: int = 4096) -> Iterator[np.ndarray]:
        """Context manager: a pooled array of shape ``size`` (contents undefined)."""
        shape = (size,) if isinstance(size, (int, np.integer)) else tuple(size)
        dtype = np.dtype(dtype)
        with self.bytes(prod(shape) * dtype.itemsize, alignment) as buf:
            yield np.frombuffer(buf, dtype=dtype).reshape(shape)

    @contextmanager
    def zeros(self, size: BufferSize, dtype, alignment: int = 4096) -> Iterator[np.ndarray]:
        """Context manager: a pooled, zero-filled array of shape ``size``."""
        with self.empty(size, dtype, alignment) as arr:
            arr[...] = 0
            yield arr


__all__ = [
    "BufferPool",
    "ManagedBuffer",
    "batched",
    "bytes_aligned",
    "empty_aligned",
    "reshaped_view",
    "zeros_aligned",
]
