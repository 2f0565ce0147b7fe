"""HDF5 files (h5py, opened read-only): contiguous and chunked datasets, compressed too.

Contiguous uncompressed datasets are memory-mapped at their file offset, so
tiles are views (or read with ``io_backend='buffered'``). Other datasets are
read in chunk-aligned blocks of frames: every chunk is read (and decompressed)
once, and tiles are cut from the block; partitions are aligned to chunk
boundaries along the navigation axes where possible.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from math import prod

import numpy as np

from libertem.common.exceptions import DataSetException
from libertem.common.shape import Shape
from libertem.io.dataset.base import (
    DataSet,
    FileSpan,
    FrameLayout,
    FrameSource,
    LayoutPartition,
    Partition,
    check_io_backend,
    dataset_shape,
    iter_tiles,
    single_file_layout,
)
from libertem.io.dataset.base.files import check_file

HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
BLOCK_BYTES = 16 * 1024 * 1024


def _has_signature(path: str) -> bool:
    try:
        with open(path, "rb") as f:
            for offset in (0, 512, 1024, 2048):
                f.seek(offset)
                if f.read(8) == HDF5_SIGNATURE:
                    return True
    except OSError:
        return False
    return False


def _open(path: str):
    import h5py

    check_file(path)
    if not _has_signature(path):
        raise DataSetException(f"{path}: not an HDF5 file (no HDF5 signature)")
    try:
        return h5py.File(path, "r")
    except (OSError, ValueError, RuntimeError, KeyError) as e:
        raise DataSetException(f"{path}: cannot open as HDF5: {e}") from e


def find_datasets(f) -> list[tuple[str, tuple[int, ...]]]:
    """Paths and shapes of the 3D/4D datasets in an open file, largest first."""
    import h5py

    found = []

    def visit(name, obj):
        if isinstance(obj, h5py.Dataset) and obj.ndim in (3, 4) and obj.dtype.kind in "uifcb":
            found.append((name, tuple(obj.shape)))

    try:
        f.visititems(visit)
    except (OSError, RuntimeError, KeyError, ValueError, TypeError) as e:
        raise DataSetException(f"{f.filename}: cannot list datasets: {e}") from e
    found.sort(key=lambda item: -prod(item[1]))
    return found


def _flat_slabs(a: int, b: int, shape: tuple[int, ...]):
    """Hyperslabs covering flat indices ``[a, b)`` of ``shape``: (flat offset, slices)."""
    if len(shape) == 1:
        yield a, (slice(a, b),)
        return
    row = prod(shape[1:])
    pos = a
    while pos < b:
        r, rem = divmod(pos, row)
        if rem == 0 and b - pos >= row:
            n_rows = (b - pos) // row
            yield pos, (slice(r, r + n_rows),) + tuple(slice(0, s) for s in shape[1:])
            pos += n_rows * row
            continue
        end = min(b, (r + 1) * row)
        for off, inner in _flat_slabs(rem, rem + end - pos, shape[1:]):
            yield pos + off - rem, (slice(r, r + 1),) + inner
        pos = end


class H5BlockSource(FrameSource):
    """Frames of an HDF5 dataset read in chunk-aligned blocks through h5py.

    Tiles are views of the current block; each chunk is read once per partition.
    """

    viewable = True

    def __init__(self, path, ds_path, nav_native, sig_shape, dtype, align, limit, sync_offset):
        super().__init__(None, sync_offset)
        self.path = path
        self.ds_path = ds_path
        self.nav_native = tuple(nav_native)
        self._sig = tuple(sig_shape)
        self._dtype = np.dtype(dtype)
        self.align = max(1, int(align))
        self.limit = limit
        self._file = None
        self._ds = None
        self._block = None
        self._buf = None
        self._range = (0, 0)
        frame_bytes = prod(self._sig) * self._dtype.itemsize
        self.block_frames = max(
            self.align, BLOCK_BYTES // max(1, frame_bytes) // self.align * self.align
        )

    @property
    def dtype(self):
        return self._dtype

    @property
    def n_file_frames(self):
        return prod(self.nav_native)

    @property
    def sig_shape(self):
        return self._sig

    def _dataset(self):
        if self._ds is None:
            self._file = _open(self.path)
            self._ds = self._file[self.ds_path]
        return self._ds

    def _read(self, a, b, out):
        ds = self._dataset()
        sig = tuple(slice(0, s) for s in ds.shape[len(self.nav_native) :])
        for off, slabs in _flat_slabs(a, b, self.nav_native):
            n = prod(s.stop - s.start for s in slabs)
            dest = out[off - a : off - a + n].reshape(
                tuple(s.stop - s.start for s in slabs) + tuple(ds.shape[len(self.nav_native) :])
            )
            ds.read_direct(dest, source_sel=slabs + sig)

    def view(self, a, b):
        lo, hi = self._range
        if lo <= a and b <= hi:
            return self._block[a - lo : b - lo]
        start = a // self.align * self.align
        lo_lim, hi_lim = self.limit
        start = max(start, min(lo_lim, a))
        stop = min(
            max(start + self.block_frames, -(-b // self.align) * self.align), self.n_file_frames
        )
        if b <= hi_lim:
            stop = min(stop, max(hi_lim, b))
        n = stop - start
        if self._buf is None or self._buf.shape[0] < n:
            self._buf = np.empty((n, *self._sig), dtype=self._dtype)
        self._block = self._buf[:n]
        self._range = (start, stop)
        self._read(start, stop, self._block)
        return self._block[a - start : b - start]

    def read_into(self, a, b, out):
        if out.dtype == self._dtype and out.flags.c_contiguous:
            self._read(a, b, out)
        else:
            np.copyto(out, self.view(a, b), casting="unsafe")

    def close(self):
        if self._file is not None:
            self._file.close()
            self._file = self._ds = None
        self._block = None
        self._range = (0, 0)


class H5Partition(Partition):
    """A partition of an HDF5 dataset read through h5py in chunk-aligned blocks."""

    def __init__(self, path, ds_path, nav_native, sig_native, align, sync_offset, **kwargs):
        super().__init__(**kwargs)
        self.path = path
        self.ds_path = ds_path
        self.nav_native = tuple(nav_native)
        self.sig_native = tuple(sig_native)
        self.align = align
        self.sync_offset = int(sync_offset)

    def get_tiles(self, scheme, dest_dtype, roi=None):
        limit = (self.start + self.sync_offset, self.stop + self.sync_offset)
        source = H5BlockSource(
            self.path,
            self.ds_path,
            self.nav_native,
            tuple(self.dataset_shape.sig),
            self.dtype,
            self.align,
            limit,
            self.sync_offset,
        )
        return iter_tiles(source, self.start, self.stop, scheme, dest_dtype, roi)


class H5DataSet(DataSet):
    """A 3D/4D (or, with ``sig_dims``, other) dataset in an HDF5 file.

    Parameters
    ----------
    path
        The HDF5 file.
    ds_path
        Path of the dataset inside the file; ``None`` (or ``'auto'``) picks the
        largest 3D/4D dataset.
    nav_shape, sig_shape
        Reinterpret the data with these shapes.
    sig_dims
        Number of trailing signal axes.
    sync_offset
        Dataset frame ``i`` is file frame ``i + sync_offset``.
    num_partitions
        Number of partitions; by default derived from size and worker count.
    io_backend
        ``'mmap'`` (default) or ``'buffered'``; applies to contiguous
        uncompressed datasets, others are read through h5py.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        ds_path: str | None = None,
        nav_shape: Sequence[int] | None = None,
        sig_shape: Sequence[int] | None = None,
        sig_dims: int = 2,
        sync_offset: int = 0,
        num_partitions: int | None = None,
        io_backend: str | None = None,
    ):
        super().__init__(num_partitions=num_partitions, sync_offset=sync_offset)
        self._path = os.fspath(path)
        self._ds_path = None if ds_path in (None, "auto") else str(ds_path)
        self._nav_shape = nav_shape
        self._sig_shape = sig_shape
        self._sig_dims = len(sig_shape) if sig_shape is not None else int(sig_dims)
        self._io_backend = check_io_backend(io_backend, self._path)
        self._shape = None
        self._dtype = None

    @classmethod
    def detect_params(cls, path, executor=None):
        path = os.fspath(path)
        if not _has_signature(path):
            return False
        try:
            with _open(path) as f:
                found = find_datasets(f)
        except (DataSetException, OSError):
            return False
        if not found:
            return False
        return {"parameters": {"path": path, "ds_path": found[0][0]}}

    def initialize(self, executor) -> H5DataSet:
        with _open(self._path) as f:
            if self._ds_path is None:
                found = find_datasets(f)
                if not found:
                    raise DataSetException(f"{self._path}: no 3D or 4D dataset in the file")
                self._ds_path = found[0][0]
            try:
                ds = f[self._ds_path]
            except (KeyError, ValueError, OSError, RuntimeError):
                raise DataSetException(f"{self._path}: no dataset {self._ds_path!r}") from None
            import h5py

            if not isinstance(ds, h5py.Dataset):
                raise DataSetException(f"{self._path}: {self._ds_path!r} is not a dataset")
            if ds.dtype.kind not in "uifcb":
                raise DataSetException(f"{self._path}: dataset {self._ds_path!r} is not numeric")
            self._init_from(ds)
        return self

    def _init_from(self, ds) -> None:
        where = f"{self._path}:{self._ds_path}"
        native = tuple(ds.shape)
        if len(native) <= self._sig_dims:
            raise DataSetException(
                f"{where}: shape {native} has no navigation axes for sig_dims={self._sig_dims}"
            )
        stored = np.dtype(ds.dtype)
        self._dtype = stored.newbyteorder("=")
        sig_dims = self._sig_dims
        self._nav_native = native[: len(native) - sig_dims]
        self._sig_native = native[len(native) - sig_dims :]
        frame = prod(self._sig_native)
        sig_shape = self._sig_shape
        if sig_shape is not None and prod(sig_shape) != frame:
            raise DataSetException(
                f"{where}: sig_shape {tuple(sig_shape)} holds {prod(sig_shape)} pixels, "
                f"the data's frames {self._sig_native} hold {frame}"
            )
        n_file = prod(self._nav_native)
        self._shape = dataset_shape(
            self._nav_shape, sig_shape, native, sig_dims, n_file, self.sync_offset, where
        )
        sig = tuple(self._shape.sig)
        self._n_file = n_file
        self._offset = None
        chunks = ds.chunks
        if chunks is None and not ds.compression and ds.external is None:
            try:
                self._offset = ds.id.get_offset()
            except (OSError, RuntimeError, ValueError):
                self._offset = None
        self._stored = stored
        self._align = self._chunk_align(chunks)
        self._chunk_layout = None
        if chunks is not None:
            self._chunk_layout = self._map_chunks(ds, tuple(sig))

    def _map_chunks(self, ds, sig) -> FrameLayout | None:
        """Layout of uncompressed chunks that hold whole frames in flat order, else ``None``.

        Such chunks are runs of consecutive frames in the file: they are
        memory-mapped like raw data, no h5py calls when reading.
        """
        nav, chunks = self._nav_native, ds.chunks
        cnav = chunks[: len(nav)]
        if tuple(chunks[len(nav) :]) != self._sig_native:
            return None
        try:
            if ds.id.get_create_plist().get_nfilters() != 0:
                return None
            n_chunks = ds.id.get_num_chunks()
        except (OSError, RuntimeError, ValueError, AttributeError):
            return None
        i0 = next((i for i, c in enumerate(cnav) if c > 1), len(nav) - 1)
        if any(cnav[j] != nav[j] for j in range(i0 + 1, len(nav))):
            return None
        expected = prod(-(-n // c) for n, c in zip(nav, cnav))
        if n_chunks != expected or n_chunks > 200_000:
            return None
        run = cnav[i0] * prod(nav[i0 + 1 :])
        frame_bytes = prod(self._sig_native) * self._stored.itemsize
        spans = []
        try:
            for i in range(n_chunks):
                info = ds.id.get_chunk_info(i)
                if info.byte_offset is None or info.filter_mask:
                    return None
                first = int(np.ravel_multi_index(info.chunk_offset[: len(nav)], nav))
                n = min(run, self._n_file - first)
                spans.append((first, FileSpan(self._path, int(info.byte_offset), frame_bytes, n)))
        except (OSError, RuntimeError, ValueError):
            return None
        spans.sort(key=lambda item: item[0])
        pos = 0
        for first, span in spans:
            if first != pos:
                return None
            pos += span.n_frames
        if pos != self._n_file:
            return None
        files = tuple(span for _, span in spans)
        return FrameLayout(files, frame_bytes, sig, self._stored.str)

    def _chunk_align(self, chunks) -> int:
        """Flat frame alignment of whole chunk rows along the navigation axes."""
        if chunks is None:
            return 1
        nav = self._nav_native
        cnav = chunks[: len(nav)]
        for i, c in enumerate(cnav):
            if c > 1:
                return c * prod(nav[i + 1 :])
        return 1

    @property
    def shape(self) -> Shape:
        return self._shape

    @property
    def dtype(self) -> np.dtype:
        return self._dtype

    @property
    def ds_path(self) -> str | None:
        """Path of the dataset inside the file."""
        return self._ds_path

    def get_partitions(self):
        parts = super().get_partitions()
        if self._align <= 1 or self._offset is not None:
            return parts
        nav_size = self._shape.nav.size
        bounds = {0, nav_size}
        for p in parts[1:]:
            file_pos = p.start + self.sync_offset
            aligned = round(file_pos / self._align) * self._align - self.sync_offset
            bounds.add(min(max(aligned, 0), nav_size))
        bounds = sorted(bounds)
        return [self.make_partition(a, b) for a, b in zip(bounds[:-1], bounds[1:]) if b > a]

    def make_partition(self, start: int, stop: int) -> Partition:
        if self._shape is None:
            raise DataSetException(f"{self._path}: dataset is not initialized")
        sig = tuple(self._shape.sig)
        if self._offset is not None:
            layout = single_file_layout(self._path, self._offset, self._n_file, sig, self._stored)
            return LayoutPartition(
                layout,
                start,
                stop,
                self._shape,
                self._dtype,
                sync_offset=self.sync_offset,
                io_backend=self._io_backend,
            )
        if self._chunk_layout is not None:
            return LayoutPartition(
                self._chunk_layout,
                start,
                stop,
                self._shape,
                self._dtype,
                sync_offset=self.sync_offset,
                io_backend=self._io_backend,
            )
        return H5Partition(
            self._path,
            self._ds_path,
            self._nav_native,
            self._sig_native,
            self._align,
            self.sync_offset,
            start=start,
            stop=stop,
            dataset_shape=self._shape,
            dtype=self._dtype,
        )
