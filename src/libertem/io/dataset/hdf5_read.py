"""Reading HDF5 datasets through h5py: finding datasets, chunk-aligned block reads.

See :mod:`libertem.io.dataset.hdf5` for the dataset.
"""

from __future__ import annotations

import contextlib
import os
from typing import NamedTuple

import numpy as np

from libertem.common.exceptions import DataSetException
from libertem.common.math import prod
from libertem.common.slice import Slice
from libertem.io.dataset.base import FrameSource, Partition, iter_tiles
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


class HDF5ArrayDescriptor(NamedTuple):
    """A dataset found in an HDF5 file."""

    name: str
    shape: tuple[int, ...]
    dtype: np.dtype
    compression: str | None
    chunks: tuple[int, ...] | None


def find_arrays(f) -> list[HDF5ArrayDescriptor]:
    """The 3D/4D numeric datasets of an open file, largest first."""
    import h5py

    found = []

    def visit(name, obj):
        if isinstance(obj, h5py.Dataset) and obj.ndim in (3, 4) and obj.dtype.kind in "uifcb":
            found.append(
                HDF5ArrayDescriptor(
                    name, tuple(obj.shape), np.dtype(obj.dtype), obj.compression, obj.chunks
                )
            )

    try:
        f.visititems(visit)
    except (OSError, RuntimeError, KeyError, ValueError, TypeError) as e:
        raise DataSetException(f"{f.filename}: cannot list datasets: {e}") from e
    found.sort(key=lambda item: -prod(item.shape))
    return found


def find_datasets(f) -> list[tuple[str, tuple[int, ...]]]:
    """Paths and shapes of the 3D/4D datasets in an open file, largest first."""
    return [(d.name, d.shape) for d in find_arrays(f)]


class H5Reader:
    """Opens one dataset of an HDF5 file, read-only.

    Parameters
    ----------
    path
        The file.
    ds_path
        Path of the dataset inside the file.
    """

    def __init__(self, path, ds_path):
        self.path = os.fspath(path)
        self.ds_path = ds_path

    @contextlib.contextmanager
    def get_h5ds(self, cache_size=1024 * 1024):
        """A context giving the ``h5py.Dataset``, its file opened read-only with a chunk
        cache of ``cache_size`` bytes."""
        import h5py

        check_file(self.path)
        try:
            f = h5py.File(self.path, "r", rdcc_nbytes=int(cache_size))
        except (OSError, ValueError, RuntimeError) as e:
            raise DataSetException(f"{self.path}: cannot open as HDF5: {e}") from e
        try:
            yield f[self.ds_path]
        finally:
            f.close()


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
    """A partition of an HDF5 dataset read through h5py in chunk-aligned blocks.

    Parameters
    ----------
    reader
        The :class:`H5Reader` of the dataset.
    slice_nd
        The partition's slice (flat navigation axis first; the file's navigation axes
        are addressed through flat frame indices).
    chunks
        The dataset's chunk shape, or ``None``: blocks are read along whole chunks.
    sync_offset
        Dataset frame ``i`` is file frame ``i + sync_offset``.
    *args, **kwargs
        As for :class:`~libertem.io.dataset.base.Partition`.
    """

    def __init__(self, reader: H5Reader, slice_nd: Slice, chunks, sync_offset=0, *args, **kwargs):
        kwargs.setdefault("partition_slice", slice_nd)
        super().__init__(*args, **kwargs)
        self.reader = reader
        self.slice_nd = slice_nd
        self.chunks = None if chunks is None else tuple(chunks)
        self.sync_offset = int(sync_offset)
        nav_native = tuple(self.meta["nav_native"]) if self.meta.metadata else None
        self.nav_native = nav_native or tuple(self.dataset_shape.nav)
        self.align = _chunk_align(self.chunks, self.nav_native)

    def get_locations(self):
        """``None``: any worker can read the file."""
        return None

    def _read_tiles(self, scheme, dest_dtype, roi_part):
        limit = (self.start + self.sync_offset, self.stop + self.sync_offset)
        source = H5BlockSource(
            self.reader.path,
            self.reader.ds_path,
            self.nav_native,
            tuple(self.dataset_shape.sig),
            self.dtype,
            self.align,
            limit,
            self.sync_offset,
        )
        return iter_tiles(
            source, self.start, self.stop, scheme, dest_dtype, roi_part, self._corrections
        )


def _chunk_align(chunks, nav) -> int:
    """Flat frame alignment of whole chunk rows along the navigation axes."""
    if chunks is None:
        return 1
    cnav = chunks[: len(nav)]
    for i, c in enumerate(cnav):
        if c > 1:
            return c * prod(nav[i + 1 :])
    return 1
