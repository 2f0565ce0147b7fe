"""Datasets from Dask arrays: partitions follow the array's chunks, computed where they run."""

from __future__ import annotations

import itertools
import logging

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
from libertem.io.dataset.dask_chunks import (
    array_mult,
    contiguous_chunking,
    findall,
    get_chunksizes,
    get_last_chunked_dim,
    get_values,
    merge_until_target,
    min_neighbour,
    min_with_min_neighbor,
    modify_chunking,
    nav_order,
    neighbour_idxs,
    size_merged_chunking,
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
    """The frames of one chunk of the array (a contiguous run), computed where the task
    runs.

    Parameters
    ----------
    dask_array
        The chunk, with the array's axes.
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


#: default ``min_size`` of :class:`DaskDataSet`: bytes per partition (128 MiB)
DEFAULT_MIN_SIZE = 128 * 1024 * 1024

log = logging.getLogger(__name__)


def _check_array(dask_array, sig_dims) -> None:
    import dask.array as da

    if not isinstance(dask_array, da.Array):
        raise DataSetException(f"Expected a Dask array as input, recieved {type(dask_array)}.")
    if isinstance(sig_dims, bool) or not isinstance(sig_dims, (int, np.integer)) or sig_dims < 1:
        raise DataSetException(f"Expected a positive integer sig_dims, recieved {sig_dims}.")
    if any(np.isnan(s) for s in dask_array.shape) or any(
        np.isnan(c) for axis in dask_array.chunks for c in axis
    ):
        raise DataSetException(
            "Dask array has an unknown shape or chunk sizes so cannot be interpreted as "
            "LiberTEM partitions. Compute the chunk sizes first, e.g. with "
            "`array.compute_chunk_sizes()`."
        )
    if sig_dims >= dask_array.ndim:
        raise DataSetException(
            f"Number of sig_dims {sig_dims} not compatible with number of array dims "
            f"{dask_array.ndim}, there must be at least one navigation axis."
        )


class DaskDataSet(DataSet):
    """A Dask array as a dataset, read lazily chunk by chunk.

    When initialized, the array is re-chunked -- neighbouring chunks are only ever
    merged -- and each resulting chunk is one partition (chunk grid in C order):

    1. signal axes cut into several chunks become one chunk each;
    2. if every navigation axis is then one chunk, nothing more happens;
    3. with ``preserve_dimensions=False``, the navigation axes are reordered so that
       axes cut into more chunks come first (:func:`nav_order`);
    4. right of the first navigation axis whose chunks are not all of length 1, the
       navigation axes become one chunk each (chunks are runs of frames);
    5. data smaller than ``min_size`` becomes one chunk; otherwise chunks are merged
       with their smaller neighbours until the smallest holds ``min_size`` bytes
       (:func:`size_merged_chunking`).

    Parameters
    ----------
    dask_array
        The array, navigation axes first; chunk sizes must be known.
    sig_dims
        How many trailing axes are signal axes (an ``int``, fewer than the array's).
    preserve_dimensions
        Keep the navigation axes in their order (``True``), or reorder them as in step 3.
    min_size
        Bytes a chunk should at least hold (default 128 MiB; ``numpy.inf``: one chunk).
    io_backend
        Must be ``None``: the data is computed by Dask.

    Raises
    ------
    DataSetException
        For anything but a Dask array of known chunk sizes, a ``sig_dims`` that is not
        a positive ``int`` smaller than the number of axes, or an ``io_backend``.
    """

    def __init__(
        self,
        dask_array,
        *,
        sig_dims,
        preserve_dimensions=True,
        min_size=None,
        io_backend=None,
    ):
        if io_backend is not None:
            raise DataSetException(
                "DaskDataSet currently doesn't support alternative I/O backends"
            )
        super().__init__()
        _check_array(dask_array, sig_dims)
        self._input = dask_array
        self._sig_dims = int(sig_dims)
        self._preserve = bool(preserve_dimensions)
        self._min_size = DEFAULT_MIN_SIZE if min_size is None else min_size
        self._array = None

    def initialize(self, executor) -> DaskDataSet:
        """Re-chunk the array (see the class description)."""
        self._ready()
        return self

    def _ready(self):
        if self._array is None:
            self._array = self._adapt_chunking(self._input)
        return self._array

    def _adapt_chunking(self, array):
        nav_dims = array.ndim - self._sig_dims
        chunking = tuple(tuple(int(c) for c in axis) for axis in array.chunks)
        if any(len(axis) > 1 for axis in chunking[nav_dims:]):
            log.warning("DaskDataSet: merging the chunks of the signal axes")
            chunking = chunking[:nav_dims] + tuple((sum(axis),) for axis in chunking[nav_dims:])
        if all(len(axis) == 1 for axis in chunking[:nav_dims]):
            return _rechunked(array, chunking)
        if not self._preserve:
            order = nav_order(chunking, nav_dims)
            if order != tuple(range(nav_dims)):
                log.warning("DaskDataSet: reordering the navigation axes to %s", order)
                array = array.transpose(order + tuple(range(nav_dims, array.ndim)))
                chunking = tuple(chunking[i] for i in order) + chunking[nav_dims:]
        merged = contiguous_chunking(chunking, nav_dims)
        if merged != chunking:
            log.warning("DaskDataSet: merging navigation chunks into contiguous runs of frames")
        itemsize = np.dtype(array.dtype).itemsize
        sized = size_merged_chunking(merged, itemsize, self._min_size)
        if sized != merged:
            log.warning("DaskDataSet: merging chunks to at least %s bytes", self._min_size)
        return _rechunked(array, sized)

    @classmethod
    def get_msg_converter(cls):
        return DaskDatasetParams

    def get_io_backend(self) -> DaskBackend:
        """A :class:`DaskBackend`."""
        return DaskBackend()

    def check_valid(self) -> bool:
        if np.dtype(self._input.dtype).kind not in "biufc":
            raise DataSetException(f"dask dataset: dtype {self._input.dtype} is not numeric")
        return True

    @property
    def shape(self) -> Shape:
        return Shape(self._ready().shape, sig_dims=self._sig_dims)

    @property
    def dtype(self) -> np.dtype:
        return self._input.dtype

    @property
    def array(self):
        """The (re-chunked) Dask array."""
        return self._ready()

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

    def _chunk_grid(self):
        """``(block index, flat-frame slice)`` of each chunk, in C order."""
        array = self._ready()
        nav_dims = array.ndim - self._sig_dims
        nav_shape = tuple(array.shape[:nav_dims])
        per_axis = [self.chunks_to_slices(c) for c in array.chunks[:nav_dims]]
        sig = tuple(slice(0, int(s)) for s in array.shape[nav_dims:])
        for index in itertools.product(*(range(len(a)) for a in per_axis)):
            slices = tuple(per_axis[i][k] for i, k in enumerate(index)) + sig
            part = self.flatten_nav(slices, nav_shape, self._sig_dims)
            yield index + (0,) * self._sig_dims, part

    def get_num_partitions(self) -> int:
        """One partition per chunk of :attr:`array`."""
        return prod(len(c) for c in self._ready().chunks)

    def get_slices(self):
        """``(partition_slice, start, stop)`` of each partition (flat frames)."""
        for _, part in self._chunk_grid():
            start = int(part.origin[0])
            yield part, start, start + int(part.shape[0])

    @property
    def fileset(self) -> DaskFileSet:
        """The chunks of the array as :class:`DaskFile` objects."""
        sig = tuple(self.shape.sig)
        array = self._ready()
        files = []
        for index, part in self._chunk_grid():
            start, n = int(part.origin[0]), int(part.shape[0])
            chunk = array.blocks[index].reshape((n, *sig))
            files.append(
                DaskFile(f"dask-{start}", start, start + n, self.dtype, sig, array_chunk=chunk)
            )
        return DaskFileSet(files)

    def get_partition_ranges(self) -> list[tuple[int, int]]:
        return [(start, stop) for _, start, stop in self.get_slices()]

    def get_partitions(self):
        """One :class:`DaskPartition` per chunk of :attr:`array`, as a generator."""
        array = self._ready()
        for idx, (index, part) in enumerate(self._chunk_grid()):
            start, n = int(part.origin[0]), int(part.shape[0])
            p = DaskPartition(
                array.blocks[index],
                start=start,
                stop=start + n,
                dataset_shape=self.shape,
                dtype=self.dtype,
                # the computed block holds only this partition's frames
                sync_offset=-start,
            )
            p.set_idx(idx)
            yield p


def _rechunked(array, chunking):
    if chunking == tuple(tuple(int(c) for c in axis) for axis in array.chunks):
        return array
    return array.rechunk(chunking)


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
