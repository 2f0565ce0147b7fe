"""HDF5 files (h5py, opened read-only): contiguous and chunked datasets, compressed too.

Contiguous uncompressed datasets are memory-mapped at their file offset, so
tiles are views (or read with ``io_backend='buffered'``). Other datasets are
read in chunk-aligned blocks of frames: every chunk is read (and decompressed)
once, and tiles are cut from the block; partitions are aligned to chunk
boundaries along the navigation axes where possible.
"""

from __future__ import annotations

import os
import time
from math import ceil

import numpy as np

from libertem.common.alloc import zeros_aligned
from libertem.common.exceptions import DataSetException
from libertem.common.math import flat_nonzero, prod
from libertem.common.messageconverter import (
    COMMON_PROPERTIES,
    DatasetParamsConverter,
    MessageConverter,
    dataset_schema,
    shape_schema,
)
from libertem.common.shape import Shape
from libertem.common.slice import Slice
from libertem.io.corrections.corrset import CorrectionSet
from libertem.io.dataset.base import (
    DataSet,
    DataSetMeta,
    DataTile,
    FileSpan,
    FrameLayout,
    Partition,
    TilingScheme,
    dataset_shape,
    single_file_layout,
)
from libertem.io.dataset.base.checks import check_stored
from libertem.io.dataset.base.dataset import files_cache_key
from libertem.io.dataset.base.filebased import ignored_tileshape
from libertem.io.dataset.base.partition import frames_slice
from libertem.io.dataset.hdf5_read import (
    BLOCK_BYTES,
    HDF5_SIGNATURE,
    H5LayoutPartition,
    H5Partition,
    H5Reader,
    HDF5ArrayDescriptor,
    ListingTimeout,
    chunk_align,
    describe_array,
    find_arrays,
    find_datasets,
    has_hdf5_signature,
    list_arrays,
    open_hdf5,
)

NUMPY = "numpy"
CUDA = "cuda"


#: the clock of dataset listings (looked up at each call, so that it can be replaced)
current_time = time.time

#: environment variable: seconds a listing of a file's datasets may take (default 3)
TIMEOUT_ENV = "LIBERTEM_IO_HDF5_TIMEOUT_DEBUG"


def _listing_limit() -> int:
    try:
        return int(os.environ.get(TIMEOUT_ENV, ""))
    except ValueError:
        return 3


def _clock() -> float:
    return current_time()


def _listed(f) -> list[HDF5ArrayDescriptor]:
    """The datasets of 3 or more dimensions of ``f``; none if listing them takes longer
    than the limit (see :data:`TIMEOUT_ENV`)."""
    try:
        return list_arrays(f, _clock, _listing_limit())
    except ListingTimeout:
        return []


class HDF5DatasetParams(DatasetParamsConverter):
    """JSON parameters of HDF5 files: ``path``, ``ds_path``, ``nav_shape``, ..."""

    SCHEMA = dataset_schema(
        "HDF5DatasetParams",
        "HDF5",
        {
            **COMMON_PROPERTIES,
            "ds_path": {"type": "string"},
            "sig_dims": {"type": "integer", "minimum": 1},
            "tileshape": shape_schema(),
            "target_size": {"type": "integer", "minimum": 1},
            "min_num_partitions": {"type": "integer", "minimum": 1},
        },
    )


def _stored_bytes(ds, path: str) -> int:
    """Bytes the file(s) hold for dataset ``ds``: its allocated storage; for virtual
    datasets the sizes of the source files, for external storage of the external files."""
    if ds.is_virtual:
        folder = os.path.dirname(os.path.abspath(path))
        names = {
            os.path.abspath(path) if s.file_name == "." else os.path.join(folder, s.file_name)
            for s in ds.virtual_sources()
        }
        return sum(os.path.getsize(n) for n in names if os.path.isfile(n))
    if ds.external:
        folder = os.path.dirname(os.path.abspath(path))
        names = {os.path.join(folder, os.fsdecode(e[0])) for e in ds.external}
        return sum(os.path.getsize(n) for n in names if os.path.isfile(n))
    return int(ds.id.get_storage_size())


def _check_stored(ds, path: str, where: str) -> None:
    """Reject a dataset that claims far more data than the file stores for it."""
    claimed = prod(ds.shape) * np.dtype(ds.dtype).itemsize
    check_stored(claimed, lambda: _stored_bytes(ds, path), where)


class H5DataSet(DataSet):
    """A 3D/4D (or, with ``sig_dims``, other) dataset in an HDF5 file.

    Parameters
    ----------
    path
        The HDF5 file.
    ds_path
        Path of the dataset inside the file; ``None`` (or ``'auto'``) picks the
        largest 3D/4D dataset.
    tileshape
        Ignored (tiles are negotiated); a warning says so.
    nav_shape, sig_shape
        Reinterpret the data with these shapes.
    target_size
        Wanted bytes per partition (by default about 256 MiB).
    min_num_partitions
        At least this many partitions.
    sig_dims
        Number of trailing signal axes.
    io_backend
        An :class:`~libertem.io.dataset.base.IOBackend` or its id; applies to contiguous
        uncompressed datasets and uncompressed whole-frame chunks, which are read in
        place; others are read through h5py.
    sync_offset
        Dataset frame ``i`` is file frame ``i + sync_offset``.
    num_partitions
        Number of partitions (overrides ``target_size`` and ``min_num_partitions``).
    """

    def __init__(
        self,
        path,
        ds_path=None,
        tileshape=None,
        nav_shape=None,
        sig_shape=None,
        target_size=None,
        min_num_partitions=None,
        sig_dims=2,
        io_backend=None,
        sync_offset: int = 0,
        num_partitions: int | None = None,
    ):
        super().__init__(
            io_backend=io_backend, num_partitions=num_partitions, sync_offset=sync_offset
        )
        ignored_tileshape(tileshape)
        self._target_size = None if target_size is None else int(target_size)
        self._min_num_partitions = None if min_num_partitions is None else int(min_num_partitions)
        self._path = os.fspath(path)
        self._ds_path = None if ds_path in (None, "auto") else str(ds_path)
        self._nav_shape = nav_shape
        self._sig_shape = sig_shape
        self._sig_dims = len(sig_shape) if sig_shape is not None else int(sig_dims)
        self._shape = None
        self._dtype = None
        self._chunks = None

    @classmethod
    def detect_params(cls, path, executor=None):
        """``{"parameters": {"path", "ds_path", "nav_shape", "sig_shape"}, "info":
        {"datasets": [...]}}`` for the largest dataset of 3 or more dimensions; only
        ``path`` (and no datasets) if there is none or listing them takes too long;
        ``False`` if ``path`` is not an HDF5 file."""
        path = os.fspath(path)
        if not has_hdf5_signature(path):
            return False
        try:
            with open_hdf5(path) as f:
                found = _listed(f)
        except (DataSetException, OSError):
            return False
        if not found:
            return {"parameters": {"path": path}, "info": {"datasets": []}}
        info = [describe_array(d) for d in found]
        largest = max(info, key=lambda d: prod(d["shape"]))
        return {
            "parameters": {
                "path": path,
                "ds_path": largest["path"],
                "nav_shape": largest["nav_shape"],
                "sig_shape": largest["sig_shape"],
            },
            "info": {"datasets": info},
        }

    @property
    def path(self) -> str:
        """The HDF5 file."""
        return self._path

    def initialize(self, executor) -> H5DataSet:
        with open_hdf5(self._path) as f:
            if self._ds_path is None:
                found = _listed(f)
                if not found:
                    raise DataSetException(f"Unable to infer dataset from file {self._path}")
                self._ds_path = max(found, key=lambda d: prod(d.shape)).name
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
        _check_stored(ds, self._path, where)
        if len(native) <= self._sig_dims:
            raise DataSetException("2D HDF5 files are currently not supported")
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
            self._nav_shape, sig_shape, native, sig_dims, n_file, self.sync_offset, where, stored
        )
        sig = tuple(self._shape.sig)
        self._n_file = n_file
        self._image_count = n_file
        self._offset = None
        chunks = ds.chunks
        if chunks is None and not ds.compression and ds.external is None:
            try:
                self._offset = ds.id.get_offset()
            except (OSError, RuntimeError, ValueError):
                self._offset = None
        self._stored = stored
        self._chunks = None if chunks is None else tuple(chunks)
        self._compression = ds.compression
        self._align = chunk_align(chunks, self._nav_native)
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

    @classmethod
    def get_msg_converter(cls):
        return HDF5DatasetParams

    @classmethod
    def get_supported_extensions(cls) -> set[str]:
        return {"h5", "hdf5", "hspy", "nxs", "emd"}

    def get_supported_io_backends(self) -> list[str]:
        """``['mmap', 'buffered', 'direct']`` (they apply to data read in place)."""
        return ["mmap", "buffered", "direct"]

    def get_reader(self) -> H5Reader:
        """The :class:`H5Reader` of the dataset."""
        return H5Reader(self._path, self._ds_path)

    def get_cache_key(self) -> str:
        return files_cache_key(self, [self._path], ds_path=self._ds_path)

    def get_diagnostics(self) -> list[dict]:
        """The dataset read and how, and the file's datasets (an empty list when listing
        them takes too long)."""
        try:
            with open_hdf5(self._path) as f:
                datasets = [describe_array(d) for d in _listed(f)]
        except (DataSetException, OSError):
            datasets = []
        return [
            {"name": "datasets", "value": datasets},
            {"name": "dataset", "value": str(self._ds_path)},
            {"name": "chunks", "value": str(self._chunks)},
            {"name": "compression", "value": str(getattr(self, "_compression", None))},
            {"name": "read in place", "value": str(self._reads_in_place())},
        ]

    def _reads_in_place(self) -> bool:
        return self._offset is not None or self._chunk_layout is not None

    def get_max_io_size(self) -> int | None:
        """The I/O backend's limit for data read in place; the block size for h5py reads."""
        if self._reads_in_place():
            return super().get_max_io_size()
        return BLOCK_BYTES

    def need_decode(self, roi, read_dtype, corrections) -> bool:
        """Whether tiles must be copied: always for h5py reads, else as for any dataset."""
        if not self._reads_in_place():
            return True
        return super().need_decode(read_dtype, roi, corrections)

    def get_num_partitions(self) -> int:
        if self._num_partitions is not None or (
            self._target_size is None and self._min_num_partitions is None
        ):
            n = super().get_num_partitions()
        else:
            nbytes = self.shape.size * np.dtype(self.dtype).itemsize
            target = self._target_size or min(256 * 1024 * 1024, self.MAX_PARTITION_SIZE)
            n = max(self._cores, ceil(nbytes / target))
        if self._num_partitions is None and self._min_num_partitions is not None:
            n = max(n, self._min_num_partitions)
        return max(1, min(n, self.shape.nav.size))

    def get_partition_ranges(self) -> list[tuple[int, int]]:
        """Nearly equal ranges, moved to chunk-row boundaries of chunked datasets."""
        ranges = super().get_partition_ranges()
        if self._align <= 1 or self._offset is not None:
            return ranges
        nav_size = self._shape.nav.size
        bounds = {0, nav_size}
        for start, _ in ranges[1:]:
            file_pos = start + self.sync_offset
            aligned = round(file_pos / self._align) * self._align - self.sync_offset
            bounds.add(min(max(aligned, 0), nav_size))
        bounds = sorted(bounds)
        return [(a, b) for a, b in zip(bounds[:-1], bounds[1:]) if b > a]

    def make_partition(self, start: int, stop: int) -> Partition:
        if self._shape is None:
            raise DataSetException(f"{self._path}: dataset is not initialized")
        sig = tuple(self._shape.sig)
        row = self._nav_native[-1]
        if self._offset is not None:
            layout = single_file_layout(self._path, self._offset, self._n_file, sig, self._stored)
            return H5LayoutPartition(
                row,
                layout,
                start,
                stop,
                self._shape,
                self._dtype,
                sync_offset=self.sync_offset,
                io_backend=self.get_io_backend(),
            )
        if self._chunk_layout is not None:
            return H5LayoutPartition(
                row,
                self._chunk_layout,
                start,
                stop,
                self._shape,
                self._dtype,
                sync_offset=self.sync_offset,
                io_backend=self.get_io_backend(),
            )
        meta = DataSetMeta(
            shape=self._shape,
            raw_dtype=self._dtype,
            sync_offset=self.sync_offset,
            image_count=self._n_file,
            metadata={"nav_native": self._nav_native, "ds_path": self._ds_path},
        )
        part_slice = frames_slice(start, stop, sig)
        return H5Partition(
            self.get_reader(), part_slice, self._chunks, self.sync_offset, meta=meta
        )


__all__ = [
    "BLOCK_BYTES",
    "HDF5_SIGNATURE",
    "CUDA",
    "NUMPY",
    "CorrectionSet",
    "DataSet",
    "DataSetException",
    "DataSetMeta",
    "DataTile",
    "H5DataSet",
    "H5Partition",
    "H5Reader",
    "HDF5ArrayDescriptor",
    "HDF5DatasetParams",
    "MessageConverter",
    "Partition",
    "Shape",
    "Slice",
    "TilingScheme",
    "find_arrays",
    "find_datasets",
    "flat_nonzero",
    "prod",
    "zeros_aligned",
]
