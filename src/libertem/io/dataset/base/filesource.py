"""Frames stored at fixed strides in one or more files: memory-mapped or buffered reads.

A :class:`~libertem.io.dataset.base.layout.FrameLayout` describes where the frames
are (files, offsets, strides, stored dtype, optional decoder); :class:`FileFrameSource`
reads them with the chosen I/O backend, and :class:`LayoutPartition` is a ready-made
partition for such layouts. A format with headered, foreign-endian or packed frames
only has to build a ``FrameLayout``.

I/O backends (see :mod:`~libertem.io.dataset.base.backend`):

``'mmap'`` (default)
    Read-only memory maps; native-dtype frames are handed out as views.
``'buffered'``
    ``os.preadv`` of blocks of frames (at most ``max_buffer_size`` bytes) into a
    reused buffer, then byte-swap/convert or decode into the tile buffer. Better
    for files that are not in the page cache. A partition's frames are planned
    (:meth:`FileFrameSource.plan`) and read ahead by a background thread
    (:mod:`~libertem.io.dataset.base.readahead`).
``'direct'``
    As buffered, but with ``O_DIRECT``: page-aligned reads into page-aligned
    buffers that bypass the page cache.
"""

from __future__ import annotations

import bisect
import errno
import mmap
import os

import numpy as np

from libertem.common.exceptions import DataSetException
from libertem.io.dataset.base.backend import resolve_backend
from libertem.io.dataset.base.decode import get_decoder
from libertem.io.dataset.base.files import open_file_map
from libertem.io.dataset.base.layout import FrameLayout
from libertem.io.dataset.base.meta import DataSetMeta
from libertem.io.dataset.base.partition import Partition
from libertem.io.dataset.base.readahead import (
    MERGE_GAP_BYTES,
    Extent,
    ExtentReader,
    ReadAhead,
    aligned_empty,
    direct_span,
    no_direct_io,
    plan_extents,
    pread_direct,
    pread_full,
)
from libertem.io.dataset.base.tiles import FrameSource, iter_tiles

#: memory maps with readahead hints ask for the planned frames in blocks of this size
HINT_BYTES = 16 * 1024 * 1024


class FileFrameSource(FrameSource):
    """Frames of a :class:`FrameLayout`, read with memory maps or buffered reads.

    Parameters
    ----------
    layout
        Where the frames are.
    dtype
        Native dtype of the decoded values.
    sync_offset
        Dataset frame ``i`` is file frame ``i + sync_offset``.
    io_backend
        An :class:`~libertem.io.dataset.base.backend.IOBackend` or its id
        (``'mmap'``, ``'buffered'``, ``'direct'``).
    """

    def __init__(self, layout: FrameLayout, dtype, sync_offset: int = 0, io_backend="mmap"):
        super().__init__(None, sync_offset)
        self.layout = layout
        self.backend = resolve_backend(io_backend, layout.files[0].path)
        self.io_backend = self.backend.id_
        self._hints = getattr(self.backend, "enable_readahead_hints", False)
        self._max_read = getattr(self.backend, "max_buffer_size", None)
        self._native = np.dtype(dtype)
        self._stored = np.dtype(layout.stored_dtype)
        self._decode = None
        if layout.decoder is not None:
            self._decode = get_decoder(layout.decoder, tuple(layout.decoder_args))
        self.viewable = self._decode is None and self.io_backend == "mmap"
        self._starts = [0]
        for f in layout.files:
            self._starts.append(self._starts[-1] + int(f.n_frames))
        self._fds: dict[str, int] = {}
        self._raw = None
        self._span_views: dict[int, np.ndarray] = {}
        self._plan: list[Extent] | None = None
        self._ahead: ReadAhead | None = None
        self._current: tuple[Extent, np.ndarray] | None = None
        self._hint_plan: list[Extent] | None = None
        self._hint_next = 0

    @property
    def dtype(self) -> np.dtype:
        return self._stored if self._decode is None else self._native

    @property
    def n_file_frames(self) -> int:
        return self._starts[-1]

    @property
    def sig_shape(self) -> tuple[int, ...]:
        return tuple(self.layout.sig_shape)

    def _pieces(self, a: int, b: int):
        """(file index, first frame in file, count, output offset) covering ``[a, b)``."""
        starts = self._starts
        i = bisect.bisect_right(starts, a) - 1
        pos = a
        while pos < b:
            count = min(b, starts[i + 1]) - pos
            yield i, pos - starts[i], count, pos - a
            pos += count
            i += 1

    def _span_view(self, i: int) -> np.ndarray:
        """All frames of file ``i`` as a strided array (stored dtype, or raw bytes for
        decoders); mapped and checked once per source."""
        view = self._span_views.get(i)
        if view is None:
            span = self.layout.files[i]
            fb = self.layout.frame_bytes
            mm = open_file_map(span.path)
            if mm.size < span.offset + (span.n_frames - 1) * span.stride + fb:
                raise DataSetException(f"{span.path}: file truncated")
            if self._decode is not None:
                view = np.ndarray((span.n_frames, fb), np.uint8, mm, span.offset, (span.stride, 1))
            else:
                view = _frames_view(
                    mm,
                    span.offset,
                    span.n_frames,
                    span.stride,
                    self._stored,
                    self.layout.sig_shape,
                )
            self._span_views[i] = view
        return view

    def _mapped(self, i: int, first: int, count: int) -> np.ndarray:
        """Frames ``[first, first + count)`` of file ``i`` as a strided array."""
        return self._span_view(i)[first : first + count]

    def view(self, a, b):
        if not self.viewable:
            return None
        starts = self._starts
        i = 0 if len(starts) == 2 else bisect.bisect_right(starts, a) - 1
        if b > starts[i + 1]:
            return None
        if self._hints:
            self._hint(a, b)
        return self._span_view(i)[a - starts[i] : b - starts[i]]

    def plan(self, start: int, stop: int, roi_part: np.ndarray | None = None) -> None:
        """Announce that dataset frames ``[start, stop)`` (those ``roi_part`` selects) are
        read next, in order, with :meth:`read_into`.

        The buffered and direct backends then read them in extents of up to
        ``max_buffer_size`` bytes, ahead in a background thread, and :meth:`read_into`
        copies or decodes from those extents. Reads that leave the plan (other frames,
        going back) are served directly, as without one. Memory maps with readahead
        hints ask the kernel to read the planned frames ahead (``madvise``); without
        hints they ignore the plan.
        """
        self._close_ahead()
        if not self.layout.files or (self.io_backend == "mmap" and not self._hints):
            return
        first = int(start) + self.sync_offset
        if roi_part is None:
            runs = [(first, int(stop) + self.sync_offset)]
        else:
            idx = np.flatnonzero(roi_part) + first
            gap = MERGE_GAP_BYTES // max(1, self.layout.files[0].stride)
            breaks = np.flatnonzero(np.diff(idx) > gap + 1) + 1
            lo = idx[np.concatenate(([0], breaks))] if idx.size else idx
            hi = idx[np.concatenate((breaks - 1, [idx.size - 1]))] + 1 if idx.size else idx
            runs = list(zip(lo.tolist(), hi.tolist()))
        n = self.n_file_frames
        runs = [(max(a, 0), min(b, n)) for a, b in runs if min(b, n) > max(a, 0)]
        spans = self.layout.files
        fb = self.layout.frame_bytes
        if self.io_backend == "mmap":
            self._hint_plan = plan_extents(runs, self._starts, spans, fb, HINT_BYTES)
            self._hint_next = 0
            return
        self._plan = plan_extents(runs, self._starts, spans, fb, self._max_read)

    def _start_ahead(self) -> ReadAhead:
        plan, self._plan = self._plan, None
        spans = self.layout.files
        fds = {i: self._fd(spans[i].path) for i in sorted({e.file_idx for e in plan})}
        reader = ExtentReader(fds, [s.path for s in spans], self.io_backend == "direct")
        self._ahead = ReadAhead(plan, reader)
        return self._ahead

    def _read_planned(self, a: int, b: int, out: np.ndarray) -> int:
        """Write frames ``a, a + 1, ...`` (up to ``b``) that the plan holds into ``out``;
        returns the first frame not written."""
        ahead = self._ahead or self._start_ahead()
        base = a
        while a < b:
            cur = self._current
            if cur is None or a >= cur[0].stop:
                nxt = ahead.peek()
                if nxt is None or nxt.first > a:
                    break
                self._current = ahead.next()
                continue
            ext, data = cur
            if a < ext.first:
                break
            n = min(b, ext.stop) - a
            stride = self.layout.files[ext.file_idx].stride
            pos = (a - ext.first) * stride
            if self._decode is not None:
                fb = self.layout.frame_bytes
                src = np.ndarray((n, fb), np.uint8, data, pos, (stride, 1))
            else:
                src = _frames_view(data, pos, n, stride, self._stored, self.layout.sig_shape)
            self._convert(src, out[a - base : a - base + n])
            a += n
        return a

    def read_into(self, a, b, out):
        if self._plan is not None or self._ahead is not None:
            served = self._read_planned(a, b, out) - a
            if served == b - a:
                return
            a, out = a + served, out[served:]
        for i, first, count, off in self._pieces(a, b):
            if self.io_backend == "mmap":
                if self._hints:
                    self._hint(self._starts[i] + first, self._starts[i] + first + count)
                self._convert(self._mapped(i, first, count), out[off : off + count])
                continue
            # buffered and direct: reads of at most max_buffer_size bytes (one frame at least)
            stride = self.layout.files[i].stride
            step = max(1, (self._max_read or count * stride) // stride)
            for k in range(0, count, step):
                n = min(step, count - k)
                dest = out[off + k : off + k + n]
                src = self._read(i, first + k, n, dest)
                if src is not None:
                    self._convert(src, dest)

    def _convert(self, src: np.ndarray, dest: np.ndarray) -> None:
        if self._decode is not None:
            self._decode(src, dest)
        else:
            np.copyto(dest, src, casting="unsafe")

    def _hint(self, a: int, b: int) -> None:
        """Memory maps with readahead hints: frames ``[a, b)`` are read now. With a plan,
        the kernel is asked to read the planned extents up to ``2 * HINT_BYTES`` beyond
        ``b`` (each once); without one, frames ``[a, b)``."""
        plan = self._hint_plan
        if plan is None:
            for i, first, count, _ in self._pieces(a, b):
                span = self.layout.files[i]
                self._advise(i, span.offset + first * span.stride, count * span.stride)
            return
        k = self._hint_next
        ahead = b + 2 * HINT_BYTES // self.layout.files[0].stride
        while k < len(plan) and plan[k].first < ahead:
            self._advise(plan[k].file_idx, plan[k].offset, plan[k].nbytes)
            k += 1
        self._hint_next = k

    def _advise(self, i: int, start: int, nbytes: int) -> None:
        """Tell the kernel that bytes ``[start, start + nbytes)`` of file ``i`` are read soon."""
        mm = getattr(open_file_map(self.layout.files[i].path), "_mmap", None)
        if mm is None or not hasattr(mm, "madvise"):
            return
        aligned = start - start % mmap.PAGESIZE
        length = min(len(mm) - aligned, start - aligned + nbytes)
        if length > 0:
            mm.madvise(mmap.MADV_WILLNEED, aligned, length)

    # buffered and direct reads ------------------------------------------------------
    def _fd(self, path: str) -> int:
        fd = self._fds.get(path)
        if fd is None:
            flags = os.O_RDONLY | getattr(os, "O_BINARY", 0)
            if self.io_backend == "direct":
                flags |= getattr(os, "O_DIRECT", 0)
            try:
                fd = os.open(path, flags)
            except OSError as e:
                if self.io_backend == "direct" and e.errno == errno.EINVAL:
                    raise no_direct_io(path) from e
                raise DataSetException(f"{path}: cannot open: {e}") from e
            self._fds[path] = fd
        return fd

    def _read(self, i: int, first: int, count: int, dest: np.ndarray):
        """Read frames of file ``i`` with one ``preadv``; ``None``: read straight into ``dest``."""
        span = self.layout.files[i]
        fb = self.layout.frame_bytes
        offset = span.offset + first * span.stride
        nbytes = (count - 1) * span.stride + fb
        fd = self._fd(span.path)
        if self.io_backend == "direct":
            raw = self._read_direct(fd, offset, nbytes, span.path)
            if self._decode is not None:
                return np.ndarray((count, fb), np.uint8, raw, 0, (span.stride, 1))
            return _frames_view(raw, 0, count, span.stride, self._stored, self.layout.sig_shape)
        direct = (
            self._decode is None
            and span.stride == fb
            and dest.dtype == self._stored
            and dest.flags.c_contiguous
        )
        if direct:
            pread_full(fd, memoryview(dest.reshape(-1).view(np.uint8)), offset, span.path)
            return None
        if self._raw is None or self._raw.size < nbytes:
            self._raw = np.empty(nbytes, dtype=np.uint8)
        pread_full(fd, memoryview(self._raw[:nbytes]), offset, span.path)
        if self._decode is not None:
            return np.ndarray((count, fb), np.uint8, self._raw, 0, (span.stride, 1))
        return _frames_view(self._raw, 0, count, span.stride, self._stored, self.layout.sig_shape)

    def _read_direct(self, fd: int, offset: int, nbytes: int, path: str) -> np.ndarray:
        """Bytes ``[offset, offset + nbytes)`` read with ``O_DIRECT``: one aligned read into
        an aligned, reused buffer; returns the requested part of it."""
        lo, hi = direct_span(offset, nbytes)
        if self._raw is None or self._raw.size < hi - lo:
            self._raw = aligned_empty(hi - lo)
        return pread_direct(fd, self._raw, offset, nbytes, path)

    def _close_ahead(self) -> None:
        ahead, self._ahead = self._ahead, None
        self._plan = self._current = self._hint_plan = None
        if ahead is not None:
            ahead.close()

    def close(self) -> None:
        self._close_ahead()
        fds, self._fds = self._fds, {}
        for fd in fds.values():
            try:
                os.close(fd)
            except OSError:
                pass

    def __del__(self):
        self.close()


def _frames_view(buf, offset: int, count: int, stride: int, dtype: np.dtype, sig_shape):
    """``count`` frames of ``sig_shape`` x ``dtype`` at ``offset`` + k * ``stride`` in ``buf``."""
    strides = [dtype.itemsize]
    for s in reversed(sig_shape[1:]):
        strides.insert(0, strides[0] * s)
    return np.ndarray((count, *sig_shape), dtype, buf, offset, (stride, *strides))


class LayoutPartition(Partition):
    """A partition reading frames of a :class:`FrameLayout`.

    Parameters
    ----------
    layout
        Where the frames are.
    start, stop
        Range of dataset frames (flat navigation index).
    dataset_shape
        Shape of the whole dataset.
    dtype
        Native dtype of the decoded values.
    sync_offset
        Dataset frame ``i`` is file frame ``i + sync_offset``.
    io_backend
        An :class:`~libertem.io.dataset.base.backend.IOBackend` or its id;
        ``None``: memory maps.
    """

    def __init__(
        self,
        layout: FrameLayout,
        start: int,
        stop: int,
        dataset_shape,
        dtype,
        sync_offset: int = 0,
        io_backend=None,
    ):
        meta = DataSetMeta(shape=dataset_shape, raw_dtype=dtype, sync_offset=sync_offset)
        backend = resolve_backend(io_backend, layout.files[0].path if layout.files else "")
        super().__init__(meta, io_backend=backend, start=start, stop=stop)
        self.layout = layout
        self.sync_offset = int(sync_offset)

    @property
    def io_backend(self) -> str:
        """Id of the I/O backend."""
        return self._io_backend.id_

    def get_max_io_size(self) -> int | None:
        """Most bytes the I/O backend reads at once, or ``None``."""
        return self._io_backend.max_io_size

    def open_source(self) -> FileFrameSource:
        """The frame source of this partition."""
        return FileFrameSource(self.layout, self.dtype, self.sync_offset, self._io_backend)

    def _planned_source(self, roi_part: np.ndarray | None) -> FileFrameSource:
        """The frame source, told which frames the tiles will read (see
        :meth:`FileFrameSource.plan`)."""
        source = self.open_source()
        source.plan(self.start, self.stop, roi_part)
        return source

    def _read_tiles(self, scheme, dest_dtype, roi_part):
        return iter_tiles(
            self._planned_source(roi_part),
            self.start,
            self.stop,
            scheme,
            dest_dtype,
            roi_part,
            self._corrections,
        )
