"""Datasets from Dask arrays: partitions follow the array's chunks, computed where they run."""

from __future__ import annotations

import numpy as np

from libertem.common.exceptions import DataSetException
from libertem.common.math import prod
from libertem.common.messageconverter import MessageConverter
from libertem.common.shape import Shape
from libertem.common.slice import Slice
from libertem.io.dataset.base import (
    ArrayPartition,
    BasePartition,
    DataSet,
    DataSetMeta,
    File,
    FileSet,
    MMapBackend,
    MMapBackendImpl,
    MMapFile,
    MMapFileBase,
)
from libertem.io.dataset.base.dataset import PARTITION_TARGET_BYTES
from libertem.io.dataset.base.partition import frames_slice
from libertem.io.dataset.dask_chunks import (
    array_mult,
    findall,
    get_chunksizes,
    get_last_chunked_dim,
    get_values,
    merge_until_target,
    merged_chunking,
    min_neighbour,
    min_with_min_neighbor,
    modify_chunking,
    neighbour_idxs,
)


class DaskDatasetParams(MessageConverter):
    """Dask arrays cannot come as JSON: every message is refused."""

    SCHEMA = {"not": {}}

    def convert_to_python(self, raw_data):
        raise DataSetException("dask datasets are made from arrays in Python, not from JSON")


class DaskFile(File):
    """A chunk of a Dask array as a "file": frames ``[start_idx, end_idx)``, computed when
    opened (see :class:`FakeDaskMMapFile`).

    Parameters
    ----------
    *args, **kwargs
        As for :class:`~libertem.io.dataset.base.File` (the path is only a label).
    array_chunk
        The Dask array of the chunk's frames, ``(frames, *sig)``.
    """

    def __init__(self, *args, array_chunk=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.array_chunk = array_chunk


class DaskFileSet(FileSet):
    """The chunks of a Dask array dataset, as :class:`DaskFile` objects."""


class FakeDaskMMapFile(MMapFileBase):
    """Opens a :class:`DaskFile` by computing its chunk: :attr:`mmap` are its bytes."""

    def open(self) -> FakeDaskMMapFile:
        chunk = self._desc.array_chunk
        if chunk is None:
            raise DataSetException(f"{self._path}: the chunk has no array")
        data = np.ascontiguousarray(chunk.compute(scheduler="synchronous"))
        data = data.astype(self._desc.native_dtype, copy=False)
        self._array = data.reshape((-1, *self._desc.sig_shape))
        self._mmap = self._array.reshape(-1).view(np.uint8)
        return self

    def close(self) -> None:
        self._mmap = None
        self._array = None


class DaskBackendImpl(MMapBackendImpl):
    """Reads :class:`DaskFile` chunks (computing them) like memory-mapped files."""

    file_cls = FakeDaskMMapFile


class DaskBackend(MMapBackend):
    """The I/O backend of Dask array datasets: chunks are computed, not read from files."""

    def get_impl(self) -> DaskBackendImpl:
        return DaskBackendImpl(self.enable_readahead_hints)


class DaskPartition(ArrayPartition):
    """Frames of a range of the array's first axis, computed where the task runs.

    Parameters
    ----------
    dask_array
        The array of the partition's part, ``(rows, *other axes)``.
    *args, **kwargs
        As for :class:`~libertem.io.dataset.base.ArrayPartition`.
    """

    def __init__(self, dask_array, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._array = dask_array

    def open_frames(self) -> np.ndarray:
        block = self._array.compute(scheduler="synchronous")
        sig = tuple(self.dataset_shape.sig)
        return np.asarray(block).reshape((-1, *sig))

    def get_io_backend(self) -> DaskBackend:
        return DaskBackend()


class DaskDataSet(DataSet):
    """A Dask array as a dataset, read lazily chunk by chunk.

    Partitions are contiguous ranges of the first axis that follow its chunk
    boundaries; chunks smaller than ``min_size`` are merged with their smaller
    neighbour (:func:`merge_until_target`). Chunks along other axes (trailing
    navigation or signal axes) are combined when a partition is computed. This
    performs well when the array's chunks come from lazy I/O or functions (e.g. a lazy
    HyperSpy signal's ``.data``).

    Parameters
    ----------
    dask_array
        The array, navigation axes first.
    sig_dims
        How many trailing axes are signal axes.
    preserve_dimensions
        Keep the navigation axes of the array (``True``) or flatten them into one.
    min_size
        Target bytes per partition (default about 256 MiB).
    io_backend
        ``None`` or a :class:`DaskBackend`: the data is computed, not read from files.
    num_partitions
        Number of partitions, along chunk edges (keyword only).
    """

    def __init__(
        self,
        dask_array,
        *,
        sig_dims,
        preserve_dimensions=True,
        min_size=None,
        io_backend=None,
        num_partitions=None,
        sync_offset=0,
    ):
        if sync_offset:
            raise DataSetException("dask dataset: sync_offset is not supported")
        if io_backend is not None and not isinstance(io_backend, DaskBackend):
            raise DataSetException(
                "dask dataset: the data is computed by Dask; io_backend must be None or a "
                f"DaskBackend, got {io_backend!r}"
            )
        super().__init__(num_partitions=num_partitions)
        import dask.array as da

        if not isinstance(dask_array, da.Array):
            raise DataSetException(
                f"dask dataset: expected a dask.array.Array, got {type(dask_array).__name__}"
            )
        if not 1 <= sig_dims < dask_array.ndim:
            raise DataSetException(
                f"dask dataset: sig_dims={sig_dims} does not fit an array of shape "
                f"{dask_array.shape}"
            )
        self._array = dask_array
        shape = Shape(dask_array.shape, sig_dims=sig_dims)
        self._shape = shape if preserve_dimensions else shape.flatten_nav()
        self._preserve = bool(preserve_dimensions)
        self._min_size = PARTITION_TARGET_BYTES if min_size is None else int(min_size)

    def initialize(self, executor) -> DaskDataSet:
        return self

    @classmethod
    def get_msg_converter(cls):
        return DaskDatasetParams

    def get_io_backend(self) -> DaskBackend:
        """A :class:`DaskBackend`."""
        return DaskBackend()

    def check_valid(self) -> bool:
        if np.dtype(self._array.dtype).kind not in "biufc":
            raise DataSetException(f"dask dataset: dtype {self._array.dtype} is not numeric")
        return True

    @property
    def shape(self) -> Shape:
        return self._shape

    @property
    def dtype(self) -> np.dtype:
        return self._array.dtype

    @property
    def array(self):
        """The wrapped Dask array."""
        return self._array

    # chunk geometry -------------------------------------------------------------------
    @staticmethod
    def chunks_to_slices(chunk_lengths) -> list[slice]:
        """Slices along one axis for chunk lengths, e.g. ``(2, 3)``: ``[0:2, 2:5]``."""
        edges = np.cumsum((0, *chunk_lengths))
        return [slice(int(a), int(b)) for a, b in zip(edges[:-1], edges[1:])]

    @staticmethod
    def slices_to_origin(slices) -> tuple[int, ...]:
        """Start of each slice."""
        return tuple(int(s.start) for s in slices)

    @staticmethod
    def slices_to_shape(slices) -> tuple[int, ...]:
        """Length of each slice."""
        return tuple(int(s.stop - s.start) for s in slices)

    @staticmethod
    def flatten_nav(slices, nav_shape, sig_dims) -> Slice:
        """The flat-navigation :class:`~libertem.common.slice.Slice` of a chunk given by its
        per-axis ``slices`` in an array of navigation shape ``nav_shape``.

        Raises
        ------
        SliceUsageError
            If the chunk's frames are not one contiguous run.
        """
        origin = DaskDataSet.slices_to_origin(slices)
        extent = DaskDataSet.slices_to_shape(slices)
        sl = Slice(origin, Shape(extent, sig_dims=sig_dims))
        return sl.flatten_nav((*tuple(nav_shape), *extent[len(extent) - sig_dims :]))

    def _row_bounds(self) -> list[int]:
        """Partition boundaries along the first axis, on chunk edges."""
        edges = np.cumsum((0, *self._array.chunks[0]))
        if self._num_partitions is not None:
            wanted = np.linspace(0, edges[-1], self._num_partitions + 1)
            picked = {int(edges[np.abs(edges - w).argmin()]) for w in wanted}
            return sorted(picked | {0, int(edges[-1])})
        rows = merged_chunking(self._array, self._min_size)[0]
        return [int(b) for b in np.cumsum((0, *rows))]

    def get_num_partitions(self) -> int:
        return len(self._row_bounds()) - 1

    def get_slices(self):
        """``(partition_slice, start, stop)`` of each partition (flat frames)."""
        rows_per_frame = int(
            prod(self._array.shape[1 : len(self._array.shape) - self._shape.sig_dims])
        )
        sig = tuple(self._shape.sig)
        bounds = self._row_bounds()
        for a, b in zip(bounds[:-1], bounds[1:]):
            start, stop = a * rows_per_frame, b * rows_per_frame
            part = frames_slice(start, stop, sig)
            yield part, start, stop

    @property
    def fileset(self) -> DaskFileSet:
        """The partitions' parts of the array as :class:`DaskFile` objects."""
        sig = tuple(self._shape.sig)
        files = []
        bounds = self._row_bounds()
        for (_, start, stop), a, b in zip(self.get_slices(), bounds[:-1], bounds[1:]):
            chunk = self._array[a:b].reshape((stop - start, *sig))
            files.append(
                DaskFile(f"dask-{start}", start, stop, self.dtype, sig, array_chunk=chunk)
            )
        return DaskFileSet(files)

    def get_partitions(self):
        bounds = self._row_bounds()
        parts = []
        for idx, ((_, start, stop), a, b) in enumerate(
            zip(self.get_slices(), bounds[:-1], bounds[1:])
        ):
            p = DaskPartition(
                self._array[a:b],
                start=start,
                stop=stop,
                dataset_shape=self._shape,
                dtype=self.dtype,
                # the computed block holds only this partition's frames
                sync_offset=-start,
            )
            p.set_idx(idx)
            parts.append(p)
        return parts


__all__ = [
    "BasePartition",
    "DaskBackend",
    "DaskBackendImpl",
    "DaskDataSet",
    "DaskDatasetParams",
    "DaskFile",
    "DaskFileSet",
    "DaskPartition",
    "DataSet",
    "DataSetException",
    "DataSetMeta",
    "FakeDaskMMapFile",
    "File",
    "FileSet",
    "MMapBackend",
    "MMapBackendImpl",
    "MMapFile",
    "MessageConverter",
    "Shape",
    "Slice",
    "array_mult",
    "findall",
    "get_chunksizes",
    "get_last_chunked_dim",
    "get_values",
    "merge_until_target",
    "min_neighbour",
    "min_with_min_neighbor",
    "modify_chunking",
    "neighbour_idxs",
]
