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
from libertem.io.dataset.base import LayoutPartition, Partition, iter_tiles
from libertem.io.dataset.base.chunked import BlockFrameSource
from libertem.io.dataset.base.files import check_file

HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
BLOCK_BYTES = 16 * 1024 * 1024


def has_hdf5_signature(path: str) -> bool:
    """Whether ``path`` carries the HDF5 signature (at byte 0, 512, 1024 or 2048)."""
    try:
        with open(path, "rb") as f:
            for offset in (0, 512, 1024, 2048):
                f.seek(offset)
                if f.read(8) == HDF5_SIGNATURE:
                    return True
    except OSError:
        return False
    return False


def open_hdf5(path: str):
    """``path`` opened read-only with h5py.

    Raises
    ------
    DataSetException
        If the file is missing, is not an HDF5 file or cannot be opened.
    """
    import h5py

    check_file(path)
    if not has_hdf5_signature(path):
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


class ListingTimeout(Exception):
    """Listing the datasets of a file took too long."""


def list_arrays(f, clock=None, limit: float | None = None) -> list[HDF5ArrayDescriptor]:
    """The datasets of 3 or more dimensions in an open file, in h5py's visiting order.

    Parameters
    ----------
    f
        The open ``h5py.File``.
    clock
        A function returning the time in seconds, read once before the walk and once
        per visited object; ``None``: no time limit.
    limit
        Seconds the walk may take.

    Raises
    ------
    ListingTimeout
        If the walk takes longer than ``limit`` (or h5py raises ``TimeoutError``).
    DataSetException
        If the file cannot be walked.
    """
    import h5py

    found = []
    start = None if clock is None else clock()
    timed_out = []

    def visit(name, obj):
        if start is not None and clock() - start > limit:
            timed_out.append(name)
            return True  # stops the walk
        if isinstance(obj, h5py.Dataset) and obj.ndim >= 3:
            found.append(
                HDF5ArrayDescriptor(
                    name, tuple(obj.shape), np.dtype(obj.dtype), obj.compression, obj.chunks
                )
            )
        return None

    try:
        f.visititems(visit)
    except TimeoutError as e:
        raise ListingTimeout(str(e)) from e
    except (OSError, RuntimeError, KeyError, ValueError, TypeError) as e:
        raise DataSetException(f"{f.filename}: cannot list datasets: {e}") from e
    if timed_out:
        raise ListingTimeout(f"listing the datasets took more than {limit} s")
    return found


def find_arrays(f) -> list[HDF5ArrayDescriptor]:
    """The numeric datasets of 3 or more dimensions of an open file, largest first."""
    found = [d for d in list_arrays(f) if d.dtype.kind in "uifcb"]
    found.sort(key=lambda item: -prod(item.shape))
    return found


def find_datasets(f) -> list[tuple[str, tuple[int, ...]]]:
    """Paths and shapes of the datasets of 3 or more dimensions in an open file, largest
    first."""
    return [(d.name, d.shape) for d in find_arrays(f)]


def describe_array(d: HDF5ArrayDescriptor) -> dict:
    """What detection reports about a dataset: its shapes, navigation folded to 2D."""
    raw_nav = tuple(d.shape[:-2])
    nav = (1, raw_nav[0]) if len(raw_nav) == 1 else (prod(raw_nav[:-1]), raw_nav[-1])
    return {
        "path": d.name,
        "shape": tuple(d.shape),
        "compression": d.compression,
        "chunks": d.chunks,
        "raw_nav_shape": raw_nav,
        "nav_shape": nav,
        "sig_shape": tuple(d.shape[-2:]),
        "image_count": prod(raw_nav),
    }


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


class H5BlockSource(BlockFrameSource):
    """Frames of an HDF5 dataset read in chunk-aligned blocks through h5py.

    Tiles are views of the current block; each chunk is read once per partition.
    """

    def __init__(self, path, ds_path, nav_native, sig_shape, dtype, align, limit, sync_offset):
        super().__init__(nav_native, sig_shape, dtype, sync_offset)
        self.path = path
        self.ds_path = ds_path
        self.align = max(1, int(align))
        self.limit = limit
        self._file = None
        self._ds = None
        frame_bytes = prod(self._sig) * self._dtype.itemsize
        self.block_frames = max(
            self.align, BLOCK_BYTES // max(1, frame_bytes) // self.align * self.align
        )

    def _dataset(self):
        if self._ds is None:
            self._file = open_hdf5(self.path)
            self._ds = self._file[self.ds_path]
        return self._ds

    def block_range(self, a: int, b: int) -> tuple[int, int]:
        """Whole chunk rows from ``a`` on, at most a block, within the partition's frames."""
        start = a // self.align * self.align
        lo_lim, hi_lim = self.limit
        start = max(start, min(lo_lim, a))
        stop = min(
            max(start + self.block_frames, -(-b // self.align) * self.align), self.n_file_frames
        )
        if b <= hi_lim:
            stop = min(stop, max(hi_lim, b))
        return start, stop

    def stored_sig_shape(self) -> tuple[int, ...]:
        return tuple(self._dataset().shape[len(self.nav_native) :])

    def read_selection(self, selection: tuple, dest: np.ndarray) -> None:
        try:
            self._dataset().read_direct(dest, source_sel=selection)
        except (OSError, RuntimeError) as e:  # e.g. the file shrank since it was opened
            raise DataSetException(f"{self.path}: cannot read {self.ds_path}: {e}") from e

    def read_into(self, a, b, out):
        if out.dtype == self._dtype and out.flags.c_contiguous:
            self.read(a, b, out)
        else:
            super().read_into(a, b, out)

    def close(self):
        if self._file is not None:
            self._file.close()
            self._file = self._ds = None
        super().close()


class _H5Rows:
    """HDF5 partitions: tiles are hyperslabs within one row of the stored array's last
    navigation axis; macrotiles with a ROI report the partition's own start."""

    row_frames: int | None = None

    def _macrotile_origin(self, roi, tiles) -> int:
        if roi is not None:
            return self.start
        return super()._macrotile_origin(roi, tiles)


class H5LayoutPartition(_H5Rows, LayoutPartition):
    """A partition of an HDF5 dataset read in place (contiguous data, or uncompressed
    chunks of whole frames).

    Parameters
    ----------
    row_frames
        Extent of the stored array's last navigation axis.
    *args, **kwargs
        As for :class:`~libertem.io.dataset.base.LayoutPartition`.
    """

    def __init__(self, row_frames: int, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.row_frames = int(row_frames)

    def open_source(self):
        source = super().open_source()
        source.row_frames = self.row_frames
        return source


class H5Partition(_H5Rows, Partition):
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
        self.align = chunk_align(self.chunks, self.nav_native)

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
        source.row_frames = self.nav_native[-1]
        return iter_tiles(
            source, self.start, self.stop, scheme, dest_dtype, roi_part, self._corrections
        )


def chunk_align(chunks, nav) -> int:
    """Flat frame alignment of whole chunk rows along the navigation axes."""
    if chunks is None:
        return 1
    cnav = chunks[: len(nav)]
    for i, c in enumerate(cnav):
        if c > 1:
            return c * prod(nav[i + 1 :])
    return 1
