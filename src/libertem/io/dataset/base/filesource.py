"""Frames stored at fixed strides in one or more files: memory-mapped or buffered reads.

A :class:`FrameLayout` describes where the frames are (files, offsets, strides,
stored dtype, optional decoder); :class:`FileFrameSource` reads them with the
chosen I/O backend, and :class:`LayoutPartition` is a ready-made partition for
such layouts. A format with headered, foreign-endian or packed frames only has
to build a :class:`FrameLayout`.

I/O backends (see :mod:`~libertem.io.dataset.base.backend`):

``'mmap'`` (default)
    Read-only memory maps; native-dtype frames are handed out as views.
``'buffered'``
    ``os.preadv`` of blocks of frames (at most ``max_buffer_size`` bytes) into a
    reused buffer, then byte-swap/convert or decode into the tile buffer. Better
    for files that are not in the page cache.
``'direct'``
    As buffered, but with ``O_DIRECT``: page-aligned reads into page-aligned
    buffers that bypass the page cache.
"""

from __future__ import annotations

import bisect
import errno
import mmap
import os
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from libertem.common.alloc import empty_aligned
from libertem.common.exceptions import DataSetException
from libertem.io.dataset.base.backend import IOBackend, MMapBackend, as_io_backend
from libertem.io.dataset.base.decode import get_decoder
from libertem.io.dataset.base.files import open_file_map
from libertem.io.dataset.base.meta import DataSetMeta
from libertem.io.dataset.base.partition import Partition
from libertem.io.dataset.base.tiles import FrameSource, iter_tiles

IO_BACKENDS = ("mmap", "buffered", "direct")

#: alignment of O_DIRECT reads (file offsets, sizes and memory)
DIRECT_ALIGN = max(4096, mmap.PAGESIZE)


def check_io_backend(io_backend, where: str) -> str:
    """The id of ``io_backend`` (``None``: ``'mmap'``; a name or an ``IOBackend``).

    Raises
    ------
    DataSetException
        If ``io_backend`` names no backend.
    """
    backend = as_io_backend(io_backend, where)
    return "mmap" if backend is None else backend.id_


def resolve_backend(io_backend, where: str) -> IOBackend:
    """``io_backend`` as an :class:`IOBackend` (``None``: the default, memory maps)."""
    return as_io_backend(io_backend, where) or MMapBackend()


@dataclass(frozen=True)
class FileSpan:
    """Consecutive frames in one file.

    Attributes
    ----------
    path
        The file.
    offset
        Byte offset of the first frame's data.
    stride
        Bytes from one frame's data to the next (frame size plus any header).
    n_frames
        Number of frames in the file.
    """

    path: str
    offset: int
    stride: int
    n_frames: int


@dataclass(frozen=True)
class FrameLayout:
    """Where and how frames are stored.

    Attributes
    ----------
    files
        The files, in frame order.
    frame_bytes
        Bytes of data per frame.
    sig_shape
        Shape of a decoded frame.
    stored_dtype
        Dtype of the stored values (e.g. ``'>u2'``) when they are plain values;
        ``'u1'`` for packed data that needs a decoder.
    decoder
        Name of a decoder in :mod:`~libertem.io.dataset.base.decode`, or ``None``.
    decoder_args
        Arguments of the decoder.
    """

    files: tuple[FileSpan, ...]
    frame_bytes: int
    sig_shape: tuple[int, ...]
    stored_dtype: str
    decoder: str | None = None
    decoder_args: tuple = ()

    @property
    def n_frames(self) -> int:
        """Frames in all files."""
        return sum(f.n_frames for f in self.files)


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
            self._advise(i, a - starts[i], b - a)
        return self._span_view(i)[a - starts[i] : b - starts[i]]

    def read_into(self, a, b, out):
        for i, first, count, off in self._pieces(a, b):
            if self.io_backend == "mmap":
                if self._hints:
                    self._advise(i, first, count)
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

    def _advise(self, i: int, first: int, count: int) -> None:
        """Tell the kernel that frames ``[first, first + count)`` of file ``i`` are read next."""
        mm = getattr(open_file_map(self.layout.files[i].path), "_mmap", None)
        if mm is None or not hasattr(mm, "madvise"):
            return
        span = self.layout.files[i]
        start = span.offset + first * span.stride
        aligned = start - start % mmap.PAGESIZE
        length = min(len(mm) - aligned, start - aligned + count * span.stride)
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
                    raise _no_direct_io(path) from e
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
            _pread_full(fd, memoryview(dest.reshape(-1).view(np.uint8)), offset, span.path)
            return None
        if self._raw is None or self._raw.size < nbytes:
            self._raw = np.empty(nbytes, dtype=np.uint8)
        _pread_full(fd, memoryview(self._raw[:nbytes]), offset, span.path)
        if self._decode is not None:
            return np.ndarray((count, fb), np.uint8, self._raw, 0, (span.stride, 1))
        return _frames_view(self._raw, 0, count, span.stride, self._stored, self.layout.sig_shape)

    def _read_direct(self, fd: int, offset: int, nbytes: int, path: str) -> np.ndarray:
        """Bytes ``[offset, offset + nbytes)`` read with ``O_DIRECT``: one aligned read into
        an aligned, reused buffer; returns the requested part of it."""
        lo = offset - offset % DIRECT_ALIGN
        hi = -(-(offset + nbytes) // DIRECT_ALIGN) * DIRECT_ALIGN
        if self._raw is None or self._raw.size < hi - lo:
            self._raw = _aligned_empty(hi - lo)
        buf = memoryview(self._raw[: hi - lo])
        pos, need = 0, offset + nbytes - lo
        while pos < need:
            try:
                n = os.preadv(fd, [buf[pos:]], lo + pos)
            except OSError as e:
                if e.errno == errno.EINVAL:
                    raise _no_direct_io(path) from e
                raise DataSetException(f"{path}: cannot read: {e}") from e
            if n <= 0:
                raise DataSetException(f"{path}: file truncated: cannot read byte {lo + pos}")
            pos += n
        return self._raw[offset - lo : offset - lo + nbytes]

    def close(self) -> None:
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


def _no_direct_io(path: str) -> DataSetException:
    return DataSetException(
        f"{path}: the file system refuses direct I/O (O_DIRECT); "
        "use io_backend 'buffered' or 'mmap' for this file"
    )


def _aligned_empty(nbytes: int) -> np.ndarray:
    """An uninitialized ``uint8`` array of ``nbytes`` whose data is page-aligned."""
    return empty_aligned(nbytes, np.uint8)


def _pread_full(fd: int, buf: memoryview, offset: int, path: str) -> None:
    """Fill ``buf`` from ``fd`` at ``offset``; a short file raises ``DataSetException``."""
    pos = 0
    total = len(buf)
    while pos < total:
        n = os.preadv(fd, [buf[pos:]], offset + pos)
        if n <= 0:
            raise DataSetException(f"{path}: file truncated: cannot read byte {offset + pos}")
        pos += n


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

    def _read_tiles(self, scheme, dest_dtype, roi_part):
        return iter_tiles(
            self.open_source(),
            self.start,
            self.stop,
            scheme,
            dest_dtype,
            roi_part,
            self._corrections,
        )


def single_file_layout(
    path: str, offset: int, n_frames: int, sig_shape: Sequence[int], dtype
) -> FrameLayout:
    """Layout of ``n_frames`` frames stored back to back in ``path`` from ``offset`` on."""
    dtype = np.dtype(dtype)
    frame_bytes = int(np.prod(sig_shape)) * dtype.itemsize
    span = FileSpan(os.fspath(path), int(offset), frame_bytes, int(n_frames))
    return FrameLayout((span,), frame_bytes, tuple(int(s) for s in sig_shape), dtype.str)
