"""Reading ahead: large sequential reads of planned file extents, overlapped with compute.

The buffered and direct I/O backends know, before the first tile, which frames a
partition will read (its frame range, or the frames its ROI selects). They cut
those frames into *extents* — runs of whole frames of one file of at most
``max_buffer_size`` bytes — and a :class:`ReadAhead` reads the extents in order
in a background thread, into a small ring of (page-aligned) buffers: while the
tiles of one extent are converted and processed, the next extents are read.

The low-level reads (``preadv`` loops, ``O_DIRECT`` alignment) live here as well.
"""

from __future__ import annotations

import bisect
import errno
import mmap
import os
import queue
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from libertem.common.alloc import empty_aligned
from libertem.common.exceptions import DataSetException

#: alignment of O_DIRECT reads (file offsets, sizes and memory)
DIRECT_ALIGN = max(4096, mmap.PAGESIZE)

#: unselected frames between two selected runs are read along when they are at most
#: this many bytes: one larger read costs less than two requests
MERGE_GAP_BYTES = 256 * 1024

#: buffers per read-ahead: one being processed, the others being read
N_BUFFERS = 3


@dataclass(frozen=True)
class Extent:
    """Consecutive frames of one file, read with one request.

    Attributes
    ----------
    file_idx
        Index of the file.
    first, stop
        The frames ``[first, stop)``, counted across all files of the source.
    offset
        Byte offset of frame ``first``'s data in the file.
    nbytes
        Bytes from ``offset`` to the end of the last frame's data.
    """

    file_idx: int
    first: int
    stop: int
    offset: int
    nbytes: int


def merge_runs(runs: Sequence[tuple[int, int]], gap_frames: int) -> list[tuple[int, int]]:
    """Sorted runs ``(a, b)`` of frames, joined where at most ``gap_frames`` lie between."""
    merged: list[list[int]] = []
    for a, b in runs:
        if merged and a - merged[-1][1] <= gap_frames:
            merged[-1][1] = max(merged[-1][1], b)
        else:
            merged.append([a, b])
    return [(a, b) for a, b in merged]


def plan_extents(
    runs: Sequence[tuple[int, int]],
    starts: Sequence[int],
    spans: Sequence,
    frame_bytes: int,
    max_read: int,
) -> list[Extent]:
    """Cut runs of frames into extents of at most ``max_read`` bytes (one frame at least).

    Parameters
    ----------
    runs
        Sorted, disjoint ``(a, b)`` frame ranges, counted across the files.
    starts
        First frame of each file, and the total number of frames last.
    spans
        The files (:class:`~libertem.io.dataset.base.layout.FileSpan`: ``offset``
        and ``stride``).
    frame_bytes
        Bytes of data per frame.
    max_read
        Most bytes per extent.
    """
    extents = []
    for a, b in runs:
        pos = a
        i = bisect.bisect_right(starts, pos) - 1
        while pos < b:
            while starts[i + 1] <= pos:
                i += 1
            span = spans[i]
            end = min(b, starts[i + 1])
            step = max(1, max_read // span.stride)
            while pos < end:
                n = min(step, end - pos)
                offset = span.offset + (pos - starts[i]) * span.stride
                nbytes = (n - 1) * span.stride + frame_bytes
                extents.append(Extent(i, pos, pos + n, offset, nbytes))
                pos += n
    return extents


def no_direct_io(path: str) -> DataSetException:
    """The error for a file system that refuses ``O_DIRECT``."""
    return DataSetException(
        f"{path}: the file system refuses direct I/O (O_DIRECT); "
        "use io_backend 'buffered' or 'mmap' for this file"
    )


def aligned_empty(nbytes: int) -> np.ndarray:
    """An uninitialized ``uint8`` array of ``nbytes`` whose data is page-aligned."""
    return empty_aligned(nbytes, np.uint8)


def pread_full(fd: int, buf: memoryview, offset: int, path: str) -> None:
    """Fill ``buf`` from ``fd`` at ``offset``; a short file raises ``DataSetException``."""
    pos = 0
    total = len(buf)
    while pos < total:
        n = os.preadv(fd, [buf[pos:]], offset + pos)
        if n <= 0:
            raise DataSetException(f"{path}: file truncated: cannot read byte {offset + pos}")
        pos += n


def direct_span(offset: int, nbytes: int) -> tuple[int, int]:
    """The aligned range ``[lo, hi)`` an ``O_DIRECT`` read of ``nbytes`` at ``offset`` needs."""
    lo = offset - offset % DIRECT_ALIGN
    hi = -(-(offset + nbytes) // DIRECT_ALIGN) * DIRECT_ALIGN
    return lo, hi


def pread_direct(fd: int, buf: np.ndarray, offset: int, nbytes: int, path: str) -> np.ndarray:
    """Bytes ``[offset, offset + nbytes)`` of an ``O_DIRECT`` file: one aligned read into
    the aligned ``buf`` (large enough for :func:`direct_span`); returns that part of ``buf``."""
    lo, hi = direct_span(offset, nbytes)
    view = memoryview(buf[: hi - lo])
    pos, need = 0, offset + nbytes - lo
    while pos < need:
        try:
            n = os.preadv(fd, [view[pos:]], lo + pos)
        except OSError as e:
            if e.errno == errno.EINVAL:
                raise no_direct_io(path) from e
            raise DataSetException(f"{path}: cannot read: {e}") from e
        if n <= 0:
            raise DataSetException(f"{path}: file truncated: cannot read byte {lo + pos}")
        pos += n
    return buf[offset - lo : offset - lo + nbytes]


class ExtentReader:
    """Reads extents of files opened by descriptor; holds nothing but what reading needs.

    Parameters
    ----------
    fds
        Open descriptors, by file index.
    paths
        The paths, by file index (for error messages).
    direct
        Whether the files are open with ``O_DIRECT`` (aligned reads into aligned buffers).
    """

    def __init__(self, fds: dict[int, int], paths: Sequence[str], direct: bool):
        self.fds = fds
        self.paths = paths
        self.direct = direct

    def buffer_bytes(self, extents: Sequence[Extent]) -> int:
        """Size of a buffer that holds any of ``extents``."""
        if self.direct:
            return max(hi - lo for lo, hi in (direct_span(e.offset, e.nbytes) for e in extents))
        return max(e.nbytes for e in extents)

    def read(self, ext: Extent, buf: np.ndarray) -> np.ndarray:
        """The bytes of ``ext``, read into ``buf``."""
        fd, path = self.fds[ext.file_idx], self.paths[ext.file_idx]
        if self.direct:
            return pread_direct(fd, buf, ext.offset, ext.nbytes, path)
        view = buf[: ext.nbytes]
        pread_full(fd, memoryview(view), ext.offset, path)
        return view


class _BufferPool:
    """Read buffers kept for reuse by later partitions of the process (fresh memory costs a
    page fault per page); at most ``max_bytes`` are kept."""

    def __init__(self, max_bytes: int):
        self.max_bytes = max_bytes
        self._free: dict[tuple[int, bool], list[np.ndarray]] = {}
        self._kept = 0
        self._lock = threading.Lock()

    def get(self, size: int, aligned: bool) -> np.ndarray:
        """A buffer of at least ``size`` bytes (a kept one of at most twice that size)."""
        with self._lock:
            fits = [k for k, v in self._free.items() if v and k[1] == aligned]
            fits = [k for k in fits if size <= k[0] <= 2 * size]
            if fits:
                key = min(fits)
                self._kept -= key[0]
                return self._free[key].pop()
        size = -(-size // DIRECT_ALIGN) * DIRECT_ALIGN
        return aligned_empty(size) if aligned else np.empty(size, np.uint8)

    def put(self, buf: np.ndarray, aligned: bool) -> None:
        """Keep ``buf`` for reuse, unless that would exceed ``max_bytes``."""
        with self._lock:
            if self._kept + buf.size <= self.max_bytes:
                self._free.setdefault((buf.size, aligned), []).append(buf)
                self._kept += buf.size


#: read buffers kept between partitions: enough for a few partitions read at once
BUFFER_POOL = _BufferPool(256 * 1024 * 1024)

_STOP = object()


class ReadAhead:
    """The extents of a plan, read in order by a background thread, buffers ahead.

    :meth:`next` hands out each extent with its bytes, in plan order; the bytes stay
    valid until the following call of :meth:`next` or :meth:`close` (their buffer is
    then refilled). A single-extent plan is read in the caller's thread.

    Parameters
    ----------
    extents
        What to read, in order.
    reader
        Reads one extent into a buffer.
    n_buffers
        Size of the ring of buffers (at least two for reading ahead).
    """

    def __init__(
        self, extents: Sequence[Extent], reader: ExtentReader, n_buffers: int = N_BUFFERS
    ):
        self.extents = list(extents)
        self._reader = reader
        self._size = reader.buffer_bytes(self.extents) if self.extents else 0
        self._n_buffers = max(2, int(n_buffers))
        self._next = 0
        self._held = None
        self._thread: threading.Thread | None = None
        self._free: queue.SimpleQueue = queue.SimpleQueue()
        self._ready: queue.SimpleQueue = queue.SimpleQueue()
        self._stopped = threading.Event()
        self._buffers: list[np.ndarray] = []

    def peek(self) -> Extent | None:
        """The extent :meth:`next` returns, or ``None`` when all were handed out."""
        return self.extents[self._next] if self._next < len(self.extents) else None

    def next(self) -> tuple[Extent, np.ndarray]:
        """The next extent and its bytes (raises ``IndexError`` after the last one).

        Errors of the background reads (e.g. a truncated file) are raised here.
        """
        if self._next >= len(self.extents):
            raise IndexError("read-ahead: all extents were handed out")
        if self._stopped.is_set():
            raise ValueError("read-ahead is closed")
        if len(self.extents) == 1:
            if self._held is None:
                self._held = self._alloc()
            self._next += 1
            return self.extents[0], self._reader.read(self.extents[0], self._held)
        if self._thread is None:
            for _ in range(min(self._n_buffers, len(self.extents))):
                self._free.put(None)
            self._thread = threading.Thread(
                target=_read_ahead,
                args=(self.extents, self._reader, self._alloc, self._free, self._ready),
                kwargs={"stopped": self._stopped},
                name="libertem-readahead",
                daemon=True,
            )
            self._thread.start()
        elif self._held is not None:
            self._free.put(self._held)
        self._held = None
        item = self._ready.get()
        if isinstance(item, BaseException):
            self.close()
            raise item
        ext, buf, data = item
        self._held = buf
        self._next += 1
        return ext, data

    def _alloc(self) -> np.ndarray:
        buf = BUFFER_POOL.get(self._size, self._reader.direct)
        self._buffers.append(buf)
        return buf

    def close(self) -> None:
        """Stop reading, wait for the background thread and return the buffers."""
        self._stopped.set()
        if self._thread is not None:
            self._free.put(_STOP)
            self._thread.join()
            self._thread = None
        self._held = None
        buffers, self._buffers = self._buffers, []
        for buf in buffers:
            BUFFER_POOL.put(buf, self._reader.direct)


def _read_ahead(
    extents: Sequence[Extent],
    reader: ExtentReader,
    alloc: Callable[[], np.ndarray],
    free: queue.SimpleQueue,
    ready: queue.SimpleQueue,
    stopped: threading.Event,
) -> None:
    """The background thread: read ``extents`` into buffers taken from ``free``."""
    try:
        for ext in extents:
            buf = free.get()
            if buf is _STOP or stopped.is_set():
                return
            if buf is None:
                buf = alloc()
            ready.put((ext, buf, reader.read(ext, buf)))
    except BaseException as e:  # handed to the consumer, raised there
        ready.put(e)
