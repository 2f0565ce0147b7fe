"""The reading side of the I/O backends: open files, read byte ranges, decode tiles.

Datasets normally read through the frame sources of
:mod:`~libertem.io.dataset.base.filesource` (blocks of frames, zero-copy where
possible). The implementations here serve partitions whose data needs a
:class:`~libertem.io.dataset.base.decoders.Decoder` that only has a per-range
decode function: :meth:`IOBackendImpl.get_tiles` reads the ranges that
:meth:`FileSet.get_read_ranges <libertem.io.dataset.base.fileset.FileSet.get_read_ranges>`
computed and decodes them into tile buffers.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

import numpy as np

from libertem.common.exceptions import DataSetException
from libertem.common.shape import Shape
from libertem.common.slice import Slice
from libertem.io.dataset.base.decoders import native_order
from libertem.io.dataset.base.files import open_file_map
from libertem.io.dataset.base.readahead import DIRECT_ALIGN, aligned_empty, no_direct_io
from libertem.io.dataset.base.tiles import DataTile

_KERNELS: dict = {}


def _read_and_decode_kernel(decode):
    """A compiled loop decoding the frames of a tile that lie in one file."""
    kernel = _KERNELS.get(decode)
    if kernel is None:
        import numba

        @numba.njit(nogil=True)
        def read_and_decode(data, file_idx, ranges, out, native_dtype, origin, shape, ds_shape):
            for k in range(ranges.shape[0]):
                if ranges[k, 0] == file_idx:
                    inp = data[ranges[k, 1] : ranges[k, 2]]
                    decode(inp, out, k, native_dtype, ranges[k], origin, shape, ds_shape)

        kernel = _KERNELS[decode] = read_and_decode
    return kernel


class MMapFileBase:
    """A file of a file set, opened for reading.

    Parameters
    ----------
    path
        The file.
    desc
        Its :class:`~libertem.io.dataset.base.file.File` description.
    """

    def __init__(self, path, desc):
        self._path = os.fspath(path)
        self._desc = desc
        self._handle = None
        self._mmap = None
        self._array = None

    def open(self) -> MMapFileBase:
        """Open the file read-only and map it; returns ``self``."""
        self._handle = open(self._path, "rb")
        self._mmap = open_file_map(self._path)
        return self

    def close(self) -> None:
        """Close the file (the map stays valid while arrays refer to it)."""
        if self._handle is not None:
            self._handle.close()
        self._handle = None
        self._mmap = None
        self._array = None

    @property
    def handle(self):
        """The open file object."""
        return self._handle

    @property
    def mmap(self) -> np.ndarray:
        """The whole file as a read-only ``uint8`` array."""
        if self._mmap is None:
            raise DataSetException(f"{self._path}: file is not open")
        return self._mmap

    @property
    def array(self) -> np.ndarray:
        """The file's frames, as its description lays them out."""
        if self._array is None:
            mm = self.mmap
            desc = self._desc
            self._array = desc.get_array_from_memview(
                memoryview(mm), desc.get_offsets_sizes(mm.size)
            )
        return self._array

    def __enter__(self):
        return self.open()

    def __exit__(self, *exc):
        self.close()


class MMapFile(MMapFileBase):
    """A file read through a read-only memory map."""


class IOBackendImpl:
    """Reads tiles of a file set given its read ranges; subclasses say how bytes are read."""

    file_cls = MMapFile

    @contextlib.contextmanager
    def open_files(self, fileset):
        """A context giving the opened files of ``fileset`` (a list, in file order)."""
        files = [self.file_cls(f.path, f).open() for f in fileset]
        try:
            yield files
        finally:
            for f in files:
                f.close()

    def get_read_and_decode(self, decode):
        """The compiled function that decodes the frames of a tile found in one file:
        ``(file bytes, file index, ranges, out, native_dtype, origin, shape, ds_shape)``."""
        return _read_and_decode_kernel(decode)

    def need_copy(
        self,
        decoder,
        roi,
        native_dtype,
        read_dtype,
        tiling_scheme=None,
        fileset=None,
        sync_offset=0,
        corrections=None,
    ) -> bool:
        """Whether tiles must be written into buffers rather than be views of the data:
        with a decoder, a dtype conversion or corrections (``roi``, ``tiling_scheme``,
        ``fileset`` and ``sync_offset`` do not matter here)."""
        if corrections is not None and corrections.have_corrections():
            return True
        return decoder is not None or np.dtype(native_dtype) != np.dtype(read_dtype)

    def get_max_io_size(self) -> int | None:
        """Most bytes read at once (caps the tile size), or ``None`` for no limit."""
        return None

    def preprocess(self, data, tile_slice, corrections) -> None:
        """Apply ``corrections`` (a ``CorrectionSet`` or ``None``) to the tile ``data``
        at ``tile_slice``, in place."""
        if corrections is not None and corrections.have_corrections():
            corrections.apply(data, tile_slice)

    def _bytes(self, files, fi: int, ranges_t: np.ndarray):
        """The bytes of file ``fi`` covering its ranges in ``ranges_t``, and their offset."""
        return files[fi].mmap, 0

    def get_tiles(
        self,
        tiling_scheme,
        fileset,
        read_ranges,
        roi,
        native_dtype,
        read_dtype,
        decoder,
        sync_offset,
        corrections,
        array_backend=None,
    ) -> Iterator[DataTile]:
        """Decode the tiles that ``read_ranges`` describe.

        Parameters
        ----------
        tiling_scheme
            The scheme the ranges were computed for.
        fileset
            The files.
        read_ranges
            ``(tile_slices, ranges, scheme_indices)`` of ``FileSet.get_read_ranges``.
        roi
            Unused (the ranges hold the selection); kept for the interface.
        native_dtype, read_dtype
            Dtype of the stored values and of the tiles.
        decoder
            The :class:`~libertem.io.dataset.base.decoders.Decoder`.
        sync_offset
            Unused (the ranges hold it); kept for the interface.
        corrections
            A ``CorrectionSet`` applied to every tile, or ``None``.
        array_backend
            ``None`` or ``'numpy'``; other backends are converted by the partition.

        Yields
        ------
        DataTile
            With slices as in the read ranges (frames counted from the dataset start).
        """
        tile_slices, ranges, scheme_indices = read_ranges
        read_dtype = np.dtype(read_dtype)
        stored = np.dtype(decoder.get_native_dtype(native_dtype, read_dtype))
        decode = decoder.get_decode(native_dtype=stored, read_dtype=read_dtype)
        native = native_order(stored)
        kernel = self.get_read_and_decode(decode)
        clear = decoder.do_clear()
        if corrections is not None and not corrections.have_corrections():
            corrections = None
        ds_shape = np.array(tuple(tiling_scheme.dataset_shape), dtype=np.int64)
        sig_dims = len(tiling_scheme.sig_shape)
        depth = ranges.shape[1] if ranges.ndim == 3 else 1
        px = int(np.prod(tiling_scheme.sig_tile_shape))
        buffer = np.empty(depth * px, dtype=read_dtype)
        with self.open_files(fileset) as files:
            for t in range(tile_slices.shape[0]):
                origin, shape = tile_slices[t, 0], tile_slices[t, 1]
                n = int(shape[0])
                tile_px = int(np.prod(shape[1:]))
                out = buffer[: n * tile_px].reshape((n, tile_px))
                rr = ranges[t, :n]
                if clear or (rr[:, 0] < 0).any():
                    out[...] = 0
                for fi in np.unique(rr[:, 0]):
                    if fi < 0:
                        continue
                    data, base = self._bytes(files, int(fi), rr)
                    local = rr.copy()
                    local[:, 1:] -= base
                    kernel(data, fi, local, out, native, origin, shape, ds_shape)
                data_nd = out.reshape((n, *(int(s) for s in shape[1:])))
                tile_slice = Slice(tuple(int(o) for o in origin), Shape(tuple(shape), sig_dims))
                self.preprocess(data_nd, tile_slice, corrections)
                yield DataTile(data_nd, tile_slice, int(scheme_indices[t]))


class MMapBackendImpl(IOBackendImpl):
    """Reads through read-only memory maps.

    Parameters
    ----------
    enable_readahead_hints
        Ask the kernel to read ahead (``madvise``) the mapped files.
    """

    def __init__(self, enable_readahead_hints=False):
        self._hints = bool(enable_readahead_hints)

    def _bytes(self, files, fi, ranges_t):
        mm = files[fi].mmap
        if self._hints:
            inner = getattr(mm, "_mmap", None)
            if inner is not None and hasattr(inner, "madvise"):
                import mmap

                inner.madvise(mmap.MADV_WILLNEED)
        return mm, 0


class BufferedBackendImpl(IOBackendImpl):
    """Reads the bytes of each tile with one ``preadv`` per file into a reused buffer.

    Parameters
    ----------
    max_buffer_size
        Most bytes read at once (tiles are negotiated to fit).
    direct_io
        Open the files with ``O_DIRECT`` (see :class:`DirectBackendImpl`).
    """

    def __init__(self, max_buffer_size: int, direct_io: bool = False):
        self.max_buffer_size = int(max_buffer_size)
        self.direct = bool(direct_io)
        self._buf = None
        self._fds: dict[int, int] = {}

    def get_max_io_size(self) -> int:
        """Most bytes read at once: the buffer size."""
        return self.max_buffer_size

    @contextlib.contextmanager
    def open_files(self, fileset):
        flags = os.O_RDONLY | getattr(os, "O_BINARY", 0)
        if self.direct:
            flags |= getattr(os, "O_DIRECT", 0)
        files = list(fileset)
        fds = []
        try:
            for f in files:
                try:
                    fds.append(os.open(f.path, flags))
                except OSError as e:
                    if self.direct and e.errno == 22:
                        raise no_direct_io(f.path) from e
                    raise DataSetException(f"{f.path}: cannot open: {e}") from e
            yield [(f, fd) for f, fd in zip(files, fds)]
        finally:
            for fd in fds:
                os.close(fd)

    def _bytes(self, files, fi, ranges_t):
        f, fd = files[fi]
        mine = ranges_t[ranges_t[:, 0] == fi]
        lo, hi = int(mine[:, 1].min()), int(mine[:, 2].max())
        if self.direct:
            lo -= lo % DIRECT_ALIGN
            hi = -(-hi // DIRECT_ALIGN) * DIRECT_ALIGN
        if self._buf is None or self._buf.size < hi - lo:
            self._buf = aligned_empty(hi - lo) if self.direct else np.empty(hi - lo, np.uint8)
        view = memoryview(self._buf[: hi - lo])
        need = int(mine[:, 2].max()) - lo
        pos = 0
        while pos < need:
            try:
                n = os.preadv(fd, [view[pos:]], lo + pos)
            except OSError as e:
                if self.direct and e.errno == 22:
                    raise no_direct_io(f.path) from e
                raise
            if n <= 0:
                raise DataSetException(f"{f.path}: file truncated: cannot read byte {lo + pos}")
            pos += n
        return self._buf[: hi - lo], lo


class DirectBackendImpl(BufferedBackendImpl):
    """Reads like :class:`BufferedBackendImpl`, with ``O_DIRECT`` and aligned buffers."""

    def __init__(self, max_buffer_size: int, direct_io: bool = True):
        super().__init__(max_buffer_size, direct_io)


def impl_for(backend) -> IOBackendImpl:
    """The implementation of an :class:`~libertem.io.dataset.base.backend.IOBackend`."""
    kind = backend.id_
    if kind == "buffered":
        return BufferedBackendImpl(backend.max_buffer_size)
    if kind == "direct":
        return DirectBackendImpl(backend.max_buffer_size)
    return MMapBackendImpl(getattr(backend, "enable_readahead_hints", False))
